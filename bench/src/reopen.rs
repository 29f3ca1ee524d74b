//! Reopen time of a big volume, with and without a checkpoint.
//!
//! A child process (this binary re-executed with the hidden
//! `__reopen-child` subcommand) creates a fresh volume with `--files`
//! files (footprint's builder: directories of `--dir-size`), then either
//! checkpoints it or not, and leaves with `std::process::exit` without
//! dropping the volume: like a killed writer. The parent then times
//! `Volume::open` (which replays whatever WAL is left) and the first
//! lookup of the first file, counts every file (proves replay lost nothing
//! the child acknowledged in async mode, and times a first full scan),
//! and times a second open after a clean close.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use nokv_meta::Volume;
use nokv_types::ROOT_INO;
use serde_json::json;

use crate::common::{
    init_volume, open_options, remove_if_exists, CommonArgs, DurabilityArg, Scratch,
};
use crate::footprint::{build_tree, dir_name, file_name};
use crate::posix;
use crate::report::{bytes, int, ms, ratio, ratio_value, Report, Table};

#[derive(Debug, Clone, Args)]
pub struct ReopenArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Files in the volume.
    #[arg(long, default_value_t = 1_000_000)]
    pub files: usize,
    /// Files per directory.
    #[arg(long, default_value_t = 1000)]
    pub dir_size: usize,
}

/// Arguments of the hidden child that builds a volume and exits.
#[derive(Debug, Clone, Args)]
pub struct ChildArgs {
    #[arg(long)]
    pub home: PathBuf,
    #[arg(long)]
    pub files: usize,
    #[arg(long)]
    pub dir_size: usize,
    #[arg(long)]
    pub threads: usize,
    #[arg(long, value_enum)]
    pub durability: DurabilityArg,
    /// Checkpoint before exiting.
    #[arg(long)]
    pub checkpoint: bool,
}

/// The child: build, maybe checkpoint, exit without any cleanup.
pub fn child(args: &ChildArgs) -> Result<()> {
    let vol = init_volume(&args.home, args.durability)?;
    let t = build_tree(&vol, args.files, args.dir_size, args.threads)?;
    if args.checkpoint {
        vol.checkpoint().context("nokv checkpoint")?;
    }
    let mut out = std::io::stdout();
    writeln!(out, "BUILT {}", t.as_secs_f64()).context("writing to stdout")?;
    out.flush().context("flushing stdout")?;
    // No drop, no checkpoint, no WAL flush by us: the process just ends.
    std::process::exit(0);
}

struct Case {
    label: &'static str,
    build: f64,
    disk: posix::Usage,
    open: Duration,
    open_lookup: Duration,
    found: usize,
    scan: Duration,
    second_open: Duration,
}

fn spawn_child(args: &ReopenArgs, home: &Path, checkpoint: bool) -> Result<f64> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("__reopen-child")
        .arg("--home")
        .arg(home)
        .arg("--files")
        .arg(args.files.to_string())
        .arg("--dir-size")
        .arg(args.dir_size.to_string())
        .arg("--threads")
        .arg(args.common.threads.max(1).to_string())
        .arg("--durability")
        .arg(args.common.durability.name())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if checkpoint {
        cmd.arg("--checkpoint");
    }
    let out = cmd
        .spawn()
        .context("starting the builder child")?
        .wait_with_output()
        .context("waiting for the builder child")?;
    if !out.status.success() {
        bail!("the builder child failed: {}", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let secs = text
        .lines()
        .find_map(|l| l.strip_prefix("BUILT "))
        .and_then(|s| s.trim().parse::<f64>().ok())
        .with_context(|| format!("the builder child said {text:?}"))?;
    Ok(secs)
}

fn count_files(vol: &Volume, files: usize, dir_size: usize) -> Result<usize> {
    let dirs = files.div_ceil(dir_size.max(1));
    let mut n = 0;
    for d in 0..dirs {
        let dn = dir_name(d);
        let dir = match vol.lookup(ROOT_INO, dn.as_bytes()) {
            Ok(a) => a.ino,
            Err(nokv_types::Error::NotFound(_)) => continue,
            Err(e) => return Err(e).with_context(|| format!("nokv lookup /{dn}")),
        };
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = vol
                .readdir(dir, after.as_deref(), 4096)
                .with_context(|| format!("nokv readdir /{dn}"))?;
            n += page.entries.len();
            match page.next {
                Some(c) => after = Some(c),
                None => break,
            }
        }
    }
    Ok(n)
}

fn measure(args: &ReopenArgs, scratch: &Scratch, checkpoint: bool) -> Result<Case> {
    let label = if checkpoint {
        "after checkpoint"
    } else {
        "no checkpoint (WAL replay)"
    };
    eprintln!(
        "reopen: building {} files in a child, {label} ...",
        args.files
    );
    let home = scratch.sub(if checkpoint {
        "reopen-ckpt"
    } else {
        "reopen-wal"
    })?;
    let build = spawn_child(args, &home, checkpoint)?;
    let disk = posix::usage(&home)?;
    let opts = open_options(args.common.durability);

    let start = Instant::now();
    let vol = Volume::open(&home, opts.clone())
        .with_context(|| format!("reopening {}", home.display()))?;
    let open = start.elapsed();
    let d0 = vol
        .lookup(ROOT_INO, dir_name(0).as_bytes())
        .context("first lookup of the first dir")?;
    vol.lookup(d0.ino, file_name(0).as_bytes())
        .context("first lookup of the first file")?;
    let open_lookup = start.elapsed();
    let start = Instant::now();
    let found = count_files(&vol, args.files, args.dir_size)?;
    let scan = start.elapsed();
    drop(vol);

    let start = Instant::now();
    let vol = Volume::open(&home, opts).with_context(|| format!("reopening {}", home.display()))?;
    let second_open = start.elapsed();
    drop(vol);
    remove_if_exists(&home)?;
    Ok(Case {
        label,
        build,
        disk,
        open,
        open_lookup,
        found,
        scan,
        second_open,
    })
}

pub fn run(args: &ReopenArgs, scratch: &Scratch) -> Result<Report> {
    let ckpt = measure(args, scratch, true)?;
    let wal = measure(args, scratch, false)?;
    let mut table = Table::new(&[
        "case",
        "build s (child)",
        "home allocated",
        "open ms",
        "open + 1st lookup ms",
        "vs checkpointed",
        "files found",
        "full scan ms",
        "2nd open ms",
    ]);
    let mut results = Vec::new();
    for c in [&ckpt, &wal] {
        table.row(vec![
            c.label.to_string(),
            format!("{:.2}", c.build),
            bytes(c.disk.allocated),
            ms(c.open),
            ms(c.open_lookup),
            ratio(c.open_lookup.as_secs_f64(), ckpt.open_lookup.as_secs_f64()),
            int(c.found as f64),
            ms(c.scan),
            ms(c.second_open),
        ]);
        results.push(json!({
            "case": c.label,
            "build_s": c.build,
            "home_allocated": c.disk.allocated,
            "home_apparent": c.disk.apparent,
            "open_ms": c.open.as_secs_f64() * 1e3,
            "open_first_lookup_ms": c.open_lookup.as_secs_f64() * 1e3,
            "files_found": c.found,
            "full_scan_ms": c.scan.as_secs_f64() * 1e3,
            "second_open_ms": c.second_open.as_secs_f64() * 1e3,
            "vs_checkpointed": ratio_value(c.open_lookup.as_secs_f64(), ckpt.open_lookup.as_secs_f64()),
        }));
    }
    let mut notes = vec![
        "the child exits with std::process::exit right after building (and checkpointing, \
         in the first case): nothing is dropped or flushed by it"
            .to_string(),
        "2nd open = open again after the first reopen closed the volume cleanly".to_string(),
    ];
    for c in [&ckpt, &wal] {
        if c.found != args.files {
            notes.push(format!(
                "WARNING: {}: {} of {} files found after reopen",
                c.label, c.found, args.files
            ));
        }
    }
    Ok(Report {
        bench: "reopen",
        title: format!(
            "Volume of {} files in directories of {}, built by a child process with \
             durability={}; parent times Volume::open.",
            args.files,
            args.dir_size,
            args.common.durability.name()
        ),
        tables: vec![(String::new(), table)],
        notes,
        params: json!({
            "files": args.files,
            "dir_size": args.dir_size,
            "threads": args.common.threads,
            "durability": args.common.durability.name(),
        }),
        results: json!(results),
    })
}
