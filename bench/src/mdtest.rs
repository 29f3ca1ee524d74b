//! mdtest-style metadata rates: T threads each create F empty files
//! (exclusive create), then stat all of them (lookup), then remove all
//! (unlink). `easy`: every thread works in its own directory; `hard`:
//! all threads share one directory.
//!
//! Sides, run phase by phase in the same process (create: nokv, ext4,
//! sdk; then stat: ...; then remove: ...):
//! - nokv: the embedded `nokv_meta::Volume`, inode-level API
//!   (`create(dir, name, owner, exclusive=true)`, `lookup`, `unlink`);
//! - ext4: the same layout on the scratch dir with std::fs
//!   (`OpenOptions::create_new` + close, `metadata`, `remove_file`);
//! - sdk: the async `nokv_client::Client` by path on a second volume
//!   (T tokio tasks on T workers), to show the SDK's overhead.
//!
//! Rates are ops / wall time of the phase; ratios nokv/ext4 and
//! sdk/nokv are printed per phase.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use nokv_client::{Client, ClientOptions, InitOptions, ObjectLocation};
use nokv_types::ROOT_INO;
use serde_json::json;

use crate::common::{
    init_volume, rate, remove_if_exists, run_parallel, CommonArgs, NameStyle, Scratch, DIR_OWNER,
    FILE_OWNER,
};
use crate::posix;
use crate::report::{int, ratio, ratio_value, Report, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One directory per thread.
    Easy,
    /// One directory shared by all threads.
    Hard,
}

#[derive(Debug, Clone, Args)]
pub struct MdtestArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Files each thread creates, stats and removes.
    #[arg(long, default_value_t = 20_000)]
    pub files: usize,
    /// Skip the SDK side (async Client by path).
    #[arg(long)]
    pub no_sdk: bool,
    /// Shape of the names: `padded` (file.0.00000042) or `short` (f0.42).
    #[arg(long, value_enum, default_value_t = NameStyle::Padded)]
    pub names: NameStyle,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Create,
    Stat,
    Remove,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Create => "create",
            Phase::Stat => "stat",
            Phase::Remove => "remove",
        }
    }
}

fn file_name(names: NameStyle, t: usize, i: usize) -> String {
    match names {
        NameStyle::Padded => names.name(&format!("file.{t}."), i),
        NameStyle::Short => format!("f{t}.{i}"),
    }
}

fn dir_name(mode: Mode, t: usize) -> String {
    match mode {
        Mode::Easy => format!("d{t}"),
        Mode::Hard => "shared".to_string(),
    }
}

pub fn run(mode: Mode, args: &MdtestArgs, scratch: &Scratch) -> Result<Report> {
    let bench = match mode {
        Mode::Easy => "mdtest-easy",
        Mode::Hard => "mdtest-hard",
    };
    let threads = args.common.threads.max(1);
    let files = args.files;
    let durability = args.common.durability;
    let total = threads * files;
    let names = args.names;

    // nokv: embedded volume, inode API.
    let nokv_home = scratch.sub("mdtest-nokv")?;
    let vol = init_volume(&nokv_home, durability)?;
    let base = vol
        .mkdir(ROOT_INO, b"mdtest", DIR_OWNER)
        .context("nokv mkdir /mdtest")?
        .ino;
    let mut nokv_dirs = Vec::with_capacity(threads);
    for t in 0..threads {
        let name = dir_name(mode, t);
        let ino = match vol.lookup(base, name.as_bytes()) {
            Ok(a) => a.ino,
            Err(_) => {
                vol.mkdir(base, name.as_bytes(), DIR_OWNER)
                    .with_context(|| format!("nokv mkdir /mdtest/{name}"))?
                    .ino
            }
        };
        nokv_dirs.push(ino);
    }

    // ext4: same layout.
    let ext4_root = scratch.sub("mdtest-ext4")?;
    let ext4_dirs: Vec<PathBuf> = (0..threads)
        .map(|t| ext4_root.join("mdtest").join(dir_name(mode, t)))
        .collect();
    for d in &ext4_dirs {
        posix::mkdir(d)?;
    }

    // sdk: a second volume behind the async client.
    let sdk = if args.no_sdk {
        None
    } else {
        let home = scratch.sub("mdtest-sdk")?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
            .context("starting a tokio runtime")?;
        let opts = ClientOptions {
            durability: durability.engine(),
            ..ClientOptions::default()
        };
        let init = InitOptions::new(ObjectLocation::Local {
            root: home.join("blocks"),
        });
        let client = rt
            .block_on(Client::init(&home, init, opts))
            .context("sdk: creating a volume")?;
        let dirs: Vec<String> = (0..threads)
            .map(|t| format!("/mdtest/{}", dir_name(mode, t)))
            .collect();
        for d in &dirs {
            rt.block_on(client.mkdir_all(d, 0o755))
                .with_context(|| format!("sdk mkdir -p {d}"))?;
        }
        Some((rt, client, dirs, home))
    };

    let mut table = Table::new(&[
        "phase",
        "nokv ops/s",
        "ext4 ops/s",
        "nokv/ext4",
        "sdk ops/s",
        "sdk/nokv",
    ]);
    let mut results = Vec::new();
    for phase in [Phase::Create, Phase::Stat, Phase::Remove] {
        let nokv_time = run_parallel(threads, |t| {
            let dir = nokv_dirs[t];
            for i in 0..files {
                let name = file_name(names, t, i);
                let n = name.as_bytes();
                match phase {
                    Phase::Create => {
                        vol.create(dir, n, FILE_OWNER, true)
                            .with_context(|| format!("nokv create {name}"))?;
                    }
                    Phase::Stat => {
                        std::hint::black_box(
                            vol.lookup(dir, n)
                                .with_context(|| format!("nokv lookup {name}"))?,
                        );
                    }
                    Phase::Remove => {
                        vol.unlink(dir, n)
                            .with_context(|| format!("nokv unlink {name}"))?;
                    }
                }
            }
            Ok(())
        })?;
        let ext4_time = run_parallel(threads, |t| {
            let dir = &ext4_dirs[t];
            for i in 0..files {
                let path = dir.join(file_name(names, t, i));
                match phase {
                    Phase::Create => posix::create_file(&path)?,
                    Phase::Stat => {
                        std::hint::black_box(posix::stat_file(&path)?);
                    }
                    Phase::Remove => posix::remove_file(&path)?,
                }
            }
            Ok(())
        })?;
        let sdk_time = match &sdk {
            Some((rt, client, dirs, _)) => {
                Some(sdk_phase(names, rt, client, dirs, threads, files, phase)?)
            }
            None => None,
        };
        let nokv = rate(total, nokv_time);
        let ext4 = rate(total, ext4_time);
        let sdk_rate = sdk_time.map(|d| rate(total, d));
        table.row(vec![
            phase.name().to_string(),
            int(nokv),
            int(ext4),
            ratio(nokv, ext4),
            sdk_rate.map(int).unwrap_or_else(|| "-".into()),
            sdk_rate
                .map(|s| ratio(s, nokv))
                .unwrap_or_else(|| "-".into()),
        ]);
        results.push(json!({
            "phase": phase.name(),
            "nokv_ops_s": nokv,
            "ext4_ops_s": ext4,
            "sdk_ops_s": sdk_rate,
            "nokv_over_ext4": ratio_value(nokv, ext4),
            "sdk_over_nokv": sdk_rate.and_then(|s| ratio_value(s, nokv)),
        }));
    }

    drop(vol);
    if let Some((rt, client, _, home)) = sdk {
        drop(client);
        drop(rt);
        remove_if_exists(&home)?;
    }
    remove_if_exists(&nokv_home)?;
    remove_if_exists(&ext4_root)?;

    let layout = match mode {
        Mode::Easy => "one directory per thread",
        Mode::Hard => "all threads in one shared directory",
    };
    Ok(Report {
        bench,
        title: format!(
            "{threads} threads x {files} files each ({total} total), {layout}. \
             NoKV durability={}; ext4 side is plain std::fs, never fsynced.",
            durability.name()
        ),
        tables: vec![(String::new(), table)],
        notes: vec![
            "nokv = embedded Volume, inode API (create exclusive / lookup / unlink); \
             sdk = async Client by path on a second volume (T tasks, T workers)"
                .into(),
            format!("names: {}", names.describe()),
        ],
        params: json!({
            "threads": threads,
            "files_per_thread": files,
            "durability": durability.name(),
            "layout": layout,
            "names": names.describe(),
        }),
        results: json!(results),
    })
}

#[allow(clippy::too_many_arguments)]
fn sdk_phase(
    names: NameStyle,
    rt: &tokio::runtime::Runtime,
    client: &Client,
    dirs: &[String],
    threads: usize,
    files: usize,
    phase: Phase,
) -> Result<Duration> {
    rt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(threads);
        for (t, dir) in dirs.iter().enumerate().take(threads) {
            let client = client.clone();
            let dir = dir.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..files {
                    let path = format!("{dir}/{}", file_name(names, t, i));
                    let outcome = match phase {
                        Phase::Create => client.create(&path, 0o644, true).await.map(|_| ()),
                        Phase::Stat => client.stat(&path).await.map(|a| {
                            std::hint::black_box(a);
                        }),
                        Phase::Remove => client.remove(&path).await,
                    };
                    outcome.with_context(|| format!("sdk {} {path}", phase.name()))?;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("an sdk task panicked")??;
        }
        Ok(start.elapsed())
    })
}
