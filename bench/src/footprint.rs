//! Footprint: what a file costs NoKV on disk and in memory.
//!
//! A fresh volume gets `--files` empty files in directories of
//! `--dir-size` (T threads, one directory at a time each), then
//! `Volume::checkpoint()`. Reported, in total and per file:
//! - on-disk size of the volume home, walked like `du`: apparent bytes
//!   (sum of st_size) and allocated bytes (st_blocks*512), before and
//!   after the checkpoint (before = mostly WAL);
//! - process RSS (VmRSS) and peak (VmHWM) from /proc/self/status,
//!   before the volume exists and after building / checkpointing: the
//!   delta per file. holt's buffer pool is bounded (`--cache-frames`
//!   frames of 512 KiB), so the RSS delta flattens once it is full.
//!
//! With `--ext4`, the same tree of empty files is also created on the
//! scratch dir and its `du` (allocated) is printed for reference: that
//! is directory blocks only, ext4 inodes live in a preallocated table.
//!
//! `build_tree` is also used by `reopen`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use nokv_meta::{OpenOptions, Volume};
use nokv_types::ROOT_INO;
use serde_json::json;

use crate::common::{
    open_options, rate, remove_if_exists, run_parallel, CommonArgs, Scratch, DIR_OWNER, FILE_OWNER,
};
use crate::posix;
use crate::report::{bytes, int, ratio, ratio_value, Report, Table};

#[derive(Debug, Clone, Args)]
pub struct FootprintArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Files to create.
    #[arg(long, default_value_t = 1_000_000)]
    pub files: usize,
    /// Files per directory.
    #[arg(long, default_value_t = 1000)]
    pub dir_size: usize,
    /// holt buffer pool, in 512 KiB frames (default: the volume default).
    #[arg(long)]
    pub cache_frames: Option<usize>,
    /// Also build the same tree on the scratch dir and print its `du`.
    #[arg(long)]
    pub ext4: bool,
    /// Also print holt's own statistics (long).
    #[arg(long)]
    pub holt_stats: bool,
}

// Fixed width, >= 12 bytes (see `common::NameStyle` for why).
pub fn dir_name(d: usize) -> String {
    format!("dir-{d:08}")
}

pub fn file_name(j: usize) -> String {
    format!("file-{j:08}")
}

/// Creates `files` empty files as `/dir-<k>/file-<j>`, `dir_size` per
/// directory, directory k handled by thread k % threads. Returns the
/// wall time.
pub fn build_tree(vol: &Volume, files: usize, dir_size: usize, threads: usize) -> Result<Duration> {
    let dir_size = dir_size.max(1);
    let dirs = files.div_ceil(dir_size);
    let done = AtomicUsize::new(0);
    let tenth = (files / 10).max(1);
    run_parallel(threads, |t| {
        let mut d = t;
        while d < dirs {
            let dn = dir_name(d);
            let dir = vol
                .mkdir(ROOT_INO, dn.as_bytes(), DIR_OWNER)
                .with_context(|| format!("nokv mkdir /{dn}"))?
                .ino;
            let count = dir_size.min(files - d * dir_size);
            for j in 0..count {
                let f = file_name(j);
                vol.create(dir, f.as_bytes(), FILE_OWNER, true)
                    .with_context(|| format!("nokv create /{dn}/{f}"))?;
            }
            let before = done.fetch_add(count, Ordering::Relaxed);
            if files >= 200_000 && (before + count) / tenth != before / tenth {
                eprintln!("  built {} of {files} files", before + count);
            }
            d += threads;
        }
        Ok(())
    })
}

/// The same tree with std::fs.
fn build_ext4_tree(
    root: &std::path::Path,
    files: usize,
    dir_size: usize,
    threads: usize,
) -> Result<Duration> {
    let dir_size = dir_size.max(1);
    let dirs = files.div_ceil(dir_size);
    run_parallel(threads, |t| {
        let mut d = t;
        while d < dirs {
            let dir = root.join(dir_name(d));
            posix::mkdir(&dir)?;
            let count = dir_size.min(files - d * dir_size);
            for j in 0..count {
                posix::create_file(&dir.join(file_name(j)))?;
            }
            d += threads;
        }
        Ok(())
    })
}

pub fn run(args: &FootprintArgs, scratch: &Scratch) -> Result<Report> {
    let threads = args.common.threads.max(1);
    let durability = args.common.durability;
    let files = args.files.max(1);
    let per = |v: u64| v as f64 / files as f64;

    let mem0 = posix::memory()?;
    let home = scratch.sub("footprint-nokv")?;
    let mut open = open_options(durability);
    if let Some(frames) = args.cache_frames {
        open.cache_frames = frames;
    }
    let cache_frames = open.cache_frames;
    let vol = init_with(&home, open)?;
    let mem1 = posix::memory()?;
    let t_build = build_tree(&vol, files, args.dir_size, threads)?;
    let mem2 = posix::memory()?;
    let disk_before = posix::usage(&home)?;
    let start = Instant::now();
    vol.checkpoint().context("nokv checkpoint")?;
    let t_ckpt = start.elapsed();
    let mem3 = posix::memory()?;
    let disk_after = posix::usage(&home)?;
    let largest = posix::largest_files(&home, 6)?;
    let stats = vol
        .engine_stats()
        .unwrap_or_else(|e| format!("unavailable: {e}"));
    drop(vol);
    remove_if_exists(&home)?;

    let ext4 = if args.ext4 {
        let root = scratch.sub("footprint-ext4")?;
        let t = build_ext4_tree(&root, files, args.dir_size, threads)?;
        let u = posix::usage(&root)?;
        remove_if_exists(&root)?;
        Some((u, t))
    } else {
        None
    };

    let mut table = Table::new(&["measure", "total", "per file"]);
    let mut add = |label: &str, v: u64| {
        table.row(vec![
            label.to_string(),
            bytes(v),
            format!("{:.1} B", per(v)),
        ]);
    };
    add("disk apparent, before checkpoint", disk_before.apparent);
    add("disk allocated, before checkpoint", disk_before.allocated);
    add("disk apparent, after checkpoint", disk_after.apparent);
    add("disk allocated, after checkpoint", disk_after.allocated);
    let rss_build = mem2.rss.saturating_sub(mem0.rss);
    let rss_ckpt = mem3.rss.saturating_sub(mem0.rss);
    let hwm = mem3.hwm.saturating_sub(mem0.rss);
    add("RSS growth after build (VmRSS)", rss_build);
    add("RSS growth after checkpoint (VmRSS)", rss_ckpt);
    add("peak growth (VmHWM - start RSS)", hwm);
    if let Some((u, _)) = &ext4 {
        add("ext4 du (allocated) of the same tree", u.allocated);
    }

    let mut notes = vec![
        format!(
            "build: {} creates/s ({threads} threads, {} s); checkpoint {:.2} s",
            int(rate(files, t_build)),
            format_args!("{:.1}", t_build.as_secs_f64()),
            t_ckpt.as_secs_f64()
        ),
        format!(
            "RSS: start {}, after init {}, after build {}, after checkpoint {}, peak {}; \
             holt cache budget {} frames = {}",
            bytes(mem0.rss),
            bytes(mem1.rss),
            bytes(mem2.rss),
            bytes(mem3.rss),
            bytes(mem3.hwm),
            cache_frames,
            bytes(cache_frames as u64 * 512 * 1024)
        ),
        format!(
            "largest files after checkpoint: {}",
            largest
                .iter()
                .map(|(n, s)| format!("{n} {}", bytes(*s)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if mem0.hwm > mem0.rss + (16 << 20) {
        notes.push(format!(
            "this process had already peaked at {} before the volume existed: RSS growth \
             numbers include reuse of memory freed by earlier work; run `footprint` alone \
             for clean numbers",
            bytes(mem0.hwm)
        ));
    }
    if args.holt_stats {
        notes.push(format!("holt stats: {stats}"));
    }
    if let Some((u, t)) = &ext4 {
        notes.push(format!(
            "ext4 tree built at {} creates/s; nokv allocated / ext4 du = {} (ext4 du excludes \
             its inode table: 256 B per inode on a default mkfs, preallocated)",
            int(rate(files, *t)),
            ratio(disk_after.allocated as f64, u.allocated as f64)
        ));
    }
    Ok(Report {
        bench: "footprint",
        title: format!(
            "{files} empty files in directories of {}, fresh volume, then checkpoint. \
             NoKV durability={}.",
            args.dir_size,
            durability.name()
        ),
        tables: vec![(String::new(), table)],
        notes,
        params: json!({
            "files": files,
            "dir_size": args.dir_size,
            "threads": threads,
            "durability": durability.name(),
            "cache_frames": cache_frames,
            "ext4": args.ext4,
        }),
        results: json!({
            "disk_apparent_before_ckpt": disk_before.apparent,
            "disk_allocated_before_ckpt": disk_before.allocated,
            "disk_apparent_after_ckpt": disk_after.apparent,
            "disk_allocated_after_ckpt": disk_after.allocated,
            "disk_allocated_per_file": per(disk_after.allocated),
            "disk_apparent_per_file": per(disk_after.apparent),
            "rss_start": mem0.rss,
            "rss_after_build": mem2.rss,
            "rss_after_ckpt": mem3.rss,
            "hwm": mem3.hwm,
            "rss_growth_per_file": per(rss_ckpt),
            "build_creates_s": rate(files, t_build),
            "checkpoint_s": t_ckpt.as_secs_f64(),
            "ext4_du_allocated": ext4.as_ref().map(|(u, _)| u.allocated),
            "nokv_over_ext4_du": ext4.as_ref().and_then(|(u, _)| ratio_value(disk_after.allocated as f64, u.allocated as f64)),
        }),
    })
}

fn init_with(home: &std::path::Path, open: OpenOptions) -> Result<Volume> {
    let init = nokv_meta::InitOptions::new(nokv_types::ObjectLocation::Local {
        root: home.join("blocks"),
    });
    Volume::init(home, init, open)
        .with_context(|| format!("creating a volume in {}", home.display()))
}
