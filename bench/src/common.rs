//! Shared plumbing of the workloads: command-line knobs every
//! subcommand takes, the scratch directory, opening volumes, running a
//! phase on N threads released together, and a tiny deterministic PRNG.
//!
//! Timing rule used everywhere: a phase's wall time runs from the moment
//! all worker threads are released by one barrier until the last one
//! has finished; rates are total operations divided by that time.

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use clap::{Args, ValueEnum};
use nokv_meta::{Durability, InitOptions, OpenOptions, Owner, Volume};
use nokv_types::ObjectLocation;

/// Durability of the NoKV side (the ext4 side is never fsynced).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    Sync,
    Async,
}

impl DurabilityArg {
    pub fn engine(self) -> Durability {
        match self {
            DurabilityArg::Sync => Durability::Sync,
            DurabilityArg::Async => Durability::Async,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DurabilityArg::Sync => "sync",
            DurabilityArg::Async => "async",
        }
    }
}

/// Knobs every workload takes.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Parent of the scratch directory (a fresh subdirectory is created
    /// in it and removed at the end). Should be on the local disk under
    /// test: the ext4 peer runs there too.
    #[arg(long, env = "NOKV_BENCH_DIR", default_value = "/tmp")]
    pub dir: PathBuf,
    /// Keep the scratch directory instead of removing it.
    #[arg(long)]
    pub keep: bool,
    /// NoKV durability: sync (WAL fsync per group commit) or async.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Async)]
    pub durability: DurabilityArg,
    /// Worker threads per side.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Also print one machine-readable JSON line per workload.
    #[arg(long)]
    pub json: bool,
}

/// The scratch directory of one run; removed on drop unless kept.
pub struct Scratch {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl Scratch {
    pub fn new(common: &CommonArgs) -> Result<Scratch> {
        std::fs::create_dir_all(&common.dir)
            .with_context(|| format!("creating {}", common.dir.display()))?;
        let dir = tempfile::Builder::new()
            .prefix("nokv-bench-")
            .tempdir_in(&common.dir)
            .with_context(|| format!("creating a scratch dir in {}", common.dir.display()))?;
        let path = dir.path().to_path_buf();
        if common.keep {
            let kept = dir.keep();
            Ok(Scratch {
                dir: None,
                path: kept,
            })
        } else {
            Ok(Scratch {
                dir: Some(dir),
                path,
            })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh, empty subdirectory `name` of the scratch dir.
    pub fn sub(&self, name: &str) -> Result<PathBuf> {
        let p = self.path.join(name);
        remove_if_exists(&p)?;
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    }

    /// Removes the scratch dir now, reporting failures.
    pub fn finish(mut self) -> Result<()> {
        if let Some(dir) = self.dir.take() {
            let shown = dir.path().display().to_string();
            dir.close()
                .with_context(|| format!("removing scratch dir {shown}"))?;
        } else {
            eprintln!("scratch dir kept: {}", self.path.display());
        }
        Ok(())
    }
}

pub fn remove_if_exists(p: &Path) -> Result<()> {
    match std::fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", p.display())),
    }
}

pub fn open_options(durability: DurabilityArg) -> OpenOptions {
    OpenOptions {
        durability: durability.engine(),
        ..OpenOptions::default()
    }
}

/// A fresh volume in `home` with its blocks in `home/blocks`.
pub fn init_volume(home: &Path, durability: DurabilityArg) -> Result<Volume> {
    let init = InitOptions::new(ObjectLocation::Local {
        root: home.join("blocks"),
    });
    Volume::init(home, init, open_options(durability))
        .with_context(|| format!("creating a volume in {}", home.display()))
}

pub const FILE_OWNER: Owner = Owner {
    mode: 0o644,
    uid: 0,
    gid: 0,
};

pub const DIR_OWNER: Owner = Owner {
    mode: 0o755,
    uid: 0,
    gid: 0,
};

/// Runs `work(t)` for t in 0..threads, all released together by one
/// barrier; returns the wall time from the earliest start to the latest
/// finish, both taken by the workers themselves (the coordinating thread
/// may not even be scheduled while they run on a 2-core machine). The
/// first error of any worker is returned.
pub fn run_parallel<F>(threads: usize, work: F) -> Result<Duration>
where
    F: Fn(usize) -> Result<()> + Sync,
{
    let threads = threads.max(1);
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || -> Result<(Instant, Instant)> {
                    barrier.wait();
                    let start = Instant::now();
                    work(t)?;
                    Ok((start, Instant::now()))
                })
            })
            .collect();
        let mut first_err = None;
        let mut span: Option<(Instant, Instant)> = None;
        for h in handles {
            let outcome = match h.join() {
                Ok(r) => r,
                Err(_) => Err(anyhow!("a worker thread panicked")),
            };
            match outcome {
                Ok((a, b)) => {
                    span = Some(match span {
                        Some((lo, hi)) => (lo.min(a), hi.max(b)),
                        None => (a, b),
                    });
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match (first_err, span) {
            (Some(e), _) => Err(e),
            (None, Some((lo, hi))) => Ok(hi.duration_since(lo)),
            (None, None) => Err(anyhow!("no worker ran")),
        }
    })
}

/// The half-open share `[lo, hi)` of `0..n` that thread `t` of
/// `threads` works on.
pub fn share(n: usize, t: usize, threads: usize) -> (usize, usize) {
    let threads = threads.max(1);
    (n * t / threads, n * (t + 1) / threads)
}

/// Operations per second.
pub fn rate(ops: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        ops as f64 / s
    } else {
        f64::INFINITY
    }
}

/// splitmix64: a deterministic PRNG, enough for picking random names.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// Shape of generated file names. The default, `padded`, is fixed
/// width and at least 12 bytes long everywhere, because holt 0.9.2
/// fails with "blob slot table exhausted (10240 slots)" once a volume
/// holds ~10k entries whose names are 11 bytes or shorter (entry key
/// <= 20 bytes); see docs/benchmarks.md. `short` (`f42`, like
/// `touch f$i`) reproduces that failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NameStyle {
    /// Fixed width: `<prefix>00000042`.
    Padded,
    /// Variable width, like `touch f$i`: `f42`.
    Short,
}

impl NameStyle {
    pub fn name(self, prefix: &str, i: usize) -> String {
        match self {
            NameStyle::Padded => format!("{prefix}{i:08}"),
            NameStyle::Short => format!("f{i}"),
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            NameStyle::Padded => "padded, fixed width, >= 12 bytes",
            NameStyle::Short => "short (f42)",
        }
    }
}
