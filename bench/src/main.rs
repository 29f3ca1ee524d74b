//! `nokv-bench`: NoKV's benchmark harness.
//!
//! Every workload runs NoKV (the embedded volume, and where cheap the
//! async SDK) side by side with its peer (the local file system, by
//! std::fs, in the same scratch dir) in the same process, and prints
//! absolute numbers and ratios; ratios are what to compare across runs
//! on a noisy machine. `all` runs every workload with quick defaults.
//! See docs/benchmarks.md for results and how to read them.

mod bigdir;
mod common;
mod footprint;
mod fuse;
mod mdtest;
mod objects;
mod posix;
mod readdir;
mod reopen;
mod report;
mod server;
mod snapshot;
mod watch;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::common::{CommonArgs, Scratch};
use crate::report::Report;

#[derive(Debug, Parser)]
#[command(
    name = "nokv-bench",
    about = "NoKV benchmarks, each side by side with its peer"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// create/stat/remove, one directory per thread (vs ext4, sdk).
    MdtestEasy(mdtest::MdtestArgs),
    /// create/stat/remove, all threads in one directory (vs ext4, sdk).
    MdtestHard(mdtest::MdtestArgs),
    /// create + random lookup rate in one directory at growing sizes.
    Bigdir(bigdir::BigdirArgs),
    /// readdirplus entries/s over a big directory (vs ext4, sdk).
    Readdir(readdir::ReaddirArgs),
    /// on-disk bytes and RSS per file.
    Footprint(footprint::FootprintArgs),
    /// Volume::open time of a big volume, with and without checkpoint.
    Reopen(reopen::ReopenArgs),
    /// Checkpoint publish throughput vs raw object-store PUTs (and dd).
    Publish(objects::ObjectArgs),
    /// Dataset sample reads, cold and warm, vs raw object-store GETs.
    Read(objects::ObjectArgs),
    /// Metadata server over loopback: batched create vs ext4, big dir,
    /// single-op latency (vs embedded).
    Server(server::ServerArgs),
    /// Typed watch over a server: delivery rate and publish-to-delivery latency.
    Watch(watch::WatchArgs),
    /// Snapshot creation time vs tree size; write cost of a live snapshot.
    Snapshot(snapshot::SnapshotArgs),
    /// FUSE mounts side by side: nokv (embedded, --server) vs bindfs, s3fs, ext4, raw GETs.
    Fuse(fuse::FuseArgs),
    /// Every workload with quick defaults (a few minutes on 2 cores).
    All(AllArgs),
    /// Internal: the builder child of `reopen`.
    #[command(name = "__reopen-child", hide = true)]
    ReopenChild(reopen::ChildArgs),
}

#[derive(Debug, Clone, Args)]
struct AllArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Files per thread for mdtest-easy and mdtest-hard.
    #[arg(long, default_value_t = 20_000)]
    mdtest_files: usize,
    /// Directory sizes for bigdir.
    #[arg(long, value_delimiter = ',', default_value = "1000,65536")]
    bigdir_sizes: Vec<usize>,
    /// Random lookups per size for bigdir.
    #[arg(long, default_value_t = 200_000)]
    bigdir_lookups: usize,
    /// Directory size for readdir.
    #[arg(long, default_value_t = 100_000)]
    readdir_entries: usize,
    /// Files for footprint.
    #[arg(long, default_value_t = 100_000)]
    footprint_files: usize,
    /// Files for reopen.
    #[arg(long, default_value_t = 100_000)]
    reopen_files: usize,
}

fn start(common: &CommonArgs, what: &str) -> Result<Scratch> {
    let scratch = Scratch::new(common)?;
    println!("# nokv-bench {what}");
    println!("{}", report::machine_line(scratch.path()));
    println!(
        "nokv durability: {} | threads: {}",
        common.durability.name(),
        common.threads.max(1)
    );
    Ok(scratch)
}

fn single(
    common: &CommonArgs,
    what: &str,
    f: impl FnOnce(&Scratch) -> Result<Report>,
) -> Result<()> {
    let scratch = start(common, what)?;
    let report = f(&scratch)?;
    report.print(common.json);
    scratch.finish()
}

fn all(args: &AllArgs) -> Result<()> {
    let c = &args.common;
    let scratch = start(c, "all")?;
    let started = std::time::Instant::now();
    type Job<'a> = (&'static str, Box<dyn Fn(&Scratch) -> Result<Report> + 'a>);
    let md = mdtest::MdtestArgs {
        common: c.clone(),
        files: args.mdtest_files,
        no_sdk: false,
        names: common::NameStyle::Padded,
    };
    // footprint first: its RSS numbers want a process that has not
    // run anything else yet.
    let jobs: Vec<Job<'_>> = vec![
        (
            "footprint",
            Box::new(|s| {
                footprint::run(
                    &footprint::FootprintArgs {
                        common: c.clone(),
                        files: args.footprint_files,
                        dir_size: 1000,
                        cache_frames: None,
                        ext4: false,
                        holt_stats: false,
                    },
                    s,
                )
            }),
        ),
        (
            "reopen",
            Box::new(|s| {
                reopen::run(
                    &reopen::ReopenArgs {
                        common: c.clone(),
                        files: args.reopen_files,
                        dir_size: 1000,
                    },
                    s,
                )
            }),
        ),
        (
            "mdtest-easy",
            Box::new(|s| mdtest::run(mdtest::Mode::Easy, &md, s)),
        ),
        (
            "mdtest-hard",
            Box::new(|s| mdtest::run(mdtest::Mode::Hard, &md, s)),
        ),
        (
            "bigdir",
            Box::new(|s| {
                bigdir::run(
                    &bigdir::BigdirArgs {
                        common: c.clone(),
                        sizes: args.bigdir_sizes.clone(),
                        lookups: args.bigdir_lookups,
                        min_creates: 65_536,
                        names: common::NameStyle::Padded,
                    },
                    s,
                )
            }),
        ),
        (
            "readdir",
            Box::new(|s| {
                readdir::run(
                    &readdir::ReaddirArgs {
                        common: c.clone(),
                        entries: args.readdir_entries,
                        page: 4096,
                    },
                    s,
                )
            }),
        ),
    ];
    let mut failed = Vec::new();
    for (name, job) in jobs {
        let t = std::time::Instant::now();
        eprintln!("running {name} ...");
        match job(&scratch) {
            Ok(report) => {
                report.print(c.json);
                eprintln!("{name} took {:.1} s", t.elapsed().as_secs_f64());
            }
            Err(e) => {
                eprintln!("{name} FAILED: {e:#}");
                failed.push(name);
            }
        }
    }
    println!("all: {:.0} s total", started.elapsed().as_secs_f64());
    scratch.finish()?;
    if !failed.is_empty() {
        anyhow::bail!("failed workloads: {}", failed.join(", "));
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match &cli.cmd {
        Cmd::MdtestEasy(a) => single(&a.common, "mdtest-easy", |s| {
            mdtest::run(mdtest::Mode::Easy, a, s)
        }),
        Cmd::MdtestHard(a) => single(&a.common, "mdtest-hard", |s| {
            mdtest::run(mdtest::Mode::Hard, a, s)
        }),
        Cmd::Bigdir(a) => single(&a.common, "bigdir", |s| bigdir::run(a, s)),
        Cmd::Readdir(a) => single(&a.common, "readdir", |s| readdir::run(a, s)),
        Cmd::Footprint(a) => single(&a.common, "footprint", |s| footprint::run(a, s)),
        Cmd::Reopen(a) => single(&a.common, "reopen", |s| reopen::run(a, s)),
        Cmd::Publish(a) => single(&a.common, "publish", |s| objects::publish(a, s)),
        Cmd::Read(a) => single(&a.common, "read", |s| objects::read(a, s)),
        Cmd::Server(a) => single(&a.common, "server", |s| server::run(a, s)),
        Cmd::Watch(a) => single(&a.common, "watch", |s| watch::run(a, s)),
        Cmd::Snapshot(a) => single(&a.common, "snapshot", |s| snapshot::run(a, s)),
        Cmd::Fuse(a) => single(&a.common, "fuse", |s| fuse::run(a, s)),
        Cmd::All(a) => all(a),
        Cmd::ReopenChild(a) => reopen::child(a),
    }
}
