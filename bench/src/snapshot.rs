//! Snapshots: creation time as the snapshotted tree grows (it must stay
//! flat), and what a live snapshot costs the writers (create, chmod of
//! existing files, small-file publish and replace), each measured with
//! and without a live snapshot side by side, alternating, best of
//! `--rounds`.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use nokv_client::{Client, ClientOptions, InitOptions, ObjectLocation, PutOptions};
use nokv_meta::{MetaOp, Volume};
use nokv_types::{NokvPath, SetAttr, ROOT_INO};
use serde_json::json;

use crate::common::{init_volume, run_parallel, share, CommonArgs, Scratch, DIR_OWNER, FILE_OWNER};
use crate::footprint::build_tree;
use crate::report::{int, ratio, ratio_value, Report, Table};

#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Files under the snapshotted path, one volume per size.
    #[arg(long, value_delimiter = ',', default_value = "1000,100000,1000000")]
    pub sizes: Vec<usize>,
    /// Snapshot creations timed per size (median reported).
    #[arg(long, default_value_t = 9)]
    pub creates_timed: usize,
    /// Files created (and chmod-ed) per round of the write-cost cases.
    #[arg(long, default_value_t = 40_000)]
    pub files: usize,
    /// Small files published (and then replaced) per round.
    #[arg(long, default_value_t = 2_000)]
    pub publishes: usize,
    /// Rounds of each write-cost case (best reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

fn root() -> NokvPath {
    NokvPath::root()
}

/// Deletes the history a retired snapshot left (untimed cleanup).
fn prune(vol: &Volume) -> Result<()> {
    let mut after = None;
    loop {
        match nokv_meta::execute(
            vol,
            MetaOp::PruneHistory {
                after,
                limit: 16_384,
            },
        )? {
            nokv_meta::MetaReply::Pruned { next: Some(n), .. } => after = Some(n),
            _ => return Ok(()),
        }
    }
}

pub fn run(args: &SnapshotArgs, scratch: &Scratch) -> Result<Report> {
    let threads = args.common.threads.max(1);
    let mut tables = Vec::new();
    let mut notes = Vec::new();

    // ---- creation time vs tree size ----
    let mut creation = Table::new(&[
        "files under path",
        "build s",
        "create p50",
        "create max",
        "vs smallest",
    ]);
    let mut medians: Vec<(usize, Duration)> = Vec::new();
    for &n in &args.sizes {
        let home = scratch.sub(&format!("snap-{n}"))?;
        let vol = init_volume(&home, args.common.durability)?;
        eprintln!("  building {n} files");
        let build = build_tree(&vol, n, 1000, threads)?;
        let mut times = Vec::new();
        for i in 0..args.creates_timed.max(1) {
            let t = Instant::now();
            vol.snapshot_create(&root(), &format!("s{i}"))
                .context("snapshot create")?;
            times.push(t.elapsed());
        }
        times.sort();
        let p50 = times[times.len() / 2];
        let max = times[times.len() - 1];
        let base = medians.first().map(|(_, d)| *d).unwrap_or(p50);
        medians.push((n, p50));
        creation.row(vec![
            int(n as f64),
            format!("{:.1}", build.as_secs_f64()),
            format!("{:.3} ms", p50.as_secs_f64() * 1e3),
            format!("{:.3} ms", max.as_secs_f64() * 1e3),
            ratio(p50.as_secs_f64(), base.as_secs_f64()),
        ]);
        drop(vol);
        crate::common::remove_if_exists(&home)?;
    }
    tables.push((
        "Snapshot creation (durability as set; one command, one record)".to_string(),
        creation,
    ));

    // ---- write cost of a live snapshot ----
    let home = scratch.sub("snap-writes")?;
    let vol = init_volume(&home, args.common.durability)?;
    let best =
        |name: &str, live: bool, d: Duration, ops: usize, acc: &mut Vec<(String, bool, f64)>| {
            let r = ops as f64 / d.as_secs_f64().max(1e-9);
            match acc.iter_mut().find(|(n, l, _)| n == name && *l == live) {
                Some(e) => e.2 = e.2.max(r),
                None => acc.push((name.to_string(), live, r)),
            }
        };
    let mut rates: Vec<(String, bool, f64)> = Vec::new();
    for round in 0..args.rounds.max(1) {
        for live in [false, true] {
            let tag = format!("r{round}-{}", if live { "live" } else { "none" });
            eprintln!("  metadata writes, round {round}, snapshot live: {live}");
            if live {
                vol.snapshot_create(&root(), &tag)?;
            }
            // Creates: one fresh directory per thread.
            let dirs: Vec<u64> = (0..threads)
                .map(|t| {
                    vol.mkdir(ROOT_INO, format!("{tag}-{t}").as_bytes(), DIR_OWNER)
                        .map(|a| a.ino)
                })
                .collect::<nokv_types::Result<_>>()?;
            let per = args.files / threads;
            let d = run_parallel(threads, |t| {
                for j in 0..per {
                    vol.create(dirs[t], format!("f{j:08}").as_bytes(), FILE_OWNER, true)?;
                }
                Ok(())
            })?;
            best("create", live, d, per * threads, &mut rates);
            // chmod of files that existed before the snapshot: the first
            // change of each saves its old record.
            let (mut victims, mut after) = (Vec::new(), None::<Vec<u8>>);
            let mut source_dirs = Vec::new();
            for t in 0..threads {
                source_dirs.push(vol.lookup(ROOT_INO, format!("r0-none-{t}").as_bytes())?.ino);
            }
            if live {
                vol.snapshot_retire(&tag)?;
                vol.snapshot_create(&root(), &tag)?;
            }
            for dir in &source_dirs {
                loop {
                    let page = vol.readdirplus(*dir, after.as_deref(), 4096)?;
                    victims.extend(page.entries.iter().map(|e| e.attr.ino));
                    match page.next {
                        Some(n) => after = Some(n),
                        None => break,
                    }
                }
                after = None;
            }
            let mode = 0o600 + (round as u32 % 2) * 0o40 + u32::from(live) * 0o4;
            let d = run_parallel(threads, |t| {
                let (lo, hi) = share(victims.len(), t, threads);
                for ino in &victims[lo..hi] {
                    vol.setattr(
                        *ino,
                        SetAttr {
                            mode: Some(mode),
                            ..Default::default()
                        },
                    )?;
                }
                Ok(())
            })?;
            best("chmod existing", live, d, victims.len(), &mut rates);
            if live {
                vol.snapshot_retire(&tag)?;
                prune(&vol)?;
            }
        }
    }
    drop(vol);
    crate::common::remove_if_exists(&home)?;

    // ---- small-file publish and replace through the SDK ----
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads.max(2))
        .enable_all()
        .build()?;
    let home = scratch.sub("snap-publish")?;
    rt.block_on(async {
        let location = ObjectLocation::Local {
            root: home.join("blocks"),
        };
        let opts = ClientOptions {
            durability: args.common.durability.engine(),
            ..ClientOptions::default()
        };
        let c = Client::init(&home.join("v"), InitOptions::new(location), opts).await?;
        let body = vec![7u8; 4096];
        for round in 0..args.rounds.max(1) {
            for live in [false, true] {
                let tag = format!("p{round}-{}", if live { "live" } else { "none" });
                eprintln!("  publishes, round {round}, snapshot live: {live}");
                c.mkdir(&format!("/{tag}"), 0o755).await?;
                if live {
                    c.snapshot_create("/", &tag).await?;
                }
                for (name, pass) in [("publish 4 KiB", 0u8), ("replace 4 KiB", 1u8)] {
                    let t = Instant::now();
                    let mut tasks = Vec::new();
                    for w in 0..threads * 4 {
                        let (c, mut body) = (c.clone(), body.clone());
                        let tag = tag.clone();
                        let n = args.publishes / (threads * 4);
                        tasks.push(tokio::spawn(async move {
                            for j in 0..n {
                                body[0] = pass;
                                c.put_bytes(
                                    &format!("/{tag}/w{w}-{j}"),
                                    &body,
                                    PutOptions::default(),
                                )
                                .await?;
                            }
                            Ok::<(), nokv_types::Error>(())
                        }));
                    }
                    for task in tasks {
                        task.await??;
                    }
                    let n = args.publishes / (threads * 4) * threads * 4;
                    best(name, live, t.elapsed(), n, &mut rates);
                }
                if live {
                    c.snapshot_retire(&tag).await?;
                    c.gc().await?;
                }
            }
        }
        Ok::<(), anyhow::Error>(())
    })?;
    crate::common::remove_if_exists(&home)?;

    let mut writes = Table::new(&[
        "workload",
        "no snapshot ops/s",
        "live snapshot ops/s",
        "live / none",
    ]);
    let mut results = Vec::new();
    let names: Vec<String> = rates.iter().filter(|r| !r.1).map(|r| r.0.clone()).collect();
    for name in names {
        let get = |live: bool| {
            rates
                .iter()
                .find(|r| r.0 == name && r.1 == live)
                .map(|r| r.2)
                .unwrap_or(0.0)
        };
        let (none, live) = (get(false), get(true));
        writes.row(vec![name.clone(), int(none), int(live), ratio(live, none)]);
        results.push(
            json!({"workload": name, "none": none, "live": live, "ratio": ratio_value(live, none)}),
        );
    }
    tables.push((
        format!(
            "Writes with one live snapshot of / vs none ({threads} threads, best of {} rounds)",
            args.rounds
        ),
        writes,
    ));
    if let (Some((n0, d0)), Some((n1, d1))) = (medians.first(), medians.last()) {
        notes.push(format!(
            "creation p50 at {} files is {} the {}-file case ({:.3} ms vs {:.3} ms); target: <= 2x and < 10 ms",
            int(*n1 as f64),
            ratio(d1.as_secs_f64(), d0.as_secs_f64()),
            int(*n0 as f64),
            d1.as_secs_f64() * 1e3,
            d0.as_secs_f64() * 1e3
        ));
    }
    notes.push("target for writes: live / none >= 0.7".into());
    Ok(Report {
        bench: "snapshot",
        title: format!(
            "snapshot creation at {:?} files; write cost of a live snapshot ({} files, {} publishes per round)",
            args.sizes, args.files, args.publishes
        ),
        tables,
        notes,
        params: json!({"sizes": args.sizes, "files": args.files, "publishes": args.publishes, "rounds": args.rounds}),
        results: json!({
            "creation_p50_ms": medians.iter().map(|(n, d)| json!({"files": n, "ms": d.as_secs_f64() * 1e3})).collect::<Vec<_>>(),
            "writes": results,
        }),
    })
}
