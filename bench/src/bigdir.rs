//! Big directories: create rate and random-lookup rate in ONE directory
//! as it grows to 1k, 65k and 1M entries (`--sizes`).
//!
//! For each size, each side gets a fresh directory (nokv: a fresh
//! volume) and T threads create `size` files in it (timed; sizes below
//! `--min-creates` are repeated in fresh directories until that many
//! creates were timed), then T threads do `--lookups` lookups of
//! uniformly random existing names (timed). nokv uses the embedded Volume's inode API (`create`,
//! `lookup(dir, name)`); ext4 uses `create_new` + close and
//! `std::fs::metadata` on the scratch dir. Besides the rates it prints
//! each rate relative to the smallest size (flatness: 1.00x = no
//! slowdown as the directory grows) and nokv/ext4.

use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use nokv_types::ROOT_INO;
use serde_json::json;

use crate::common::{
    init_volume, rate, remove_if_exists, run_parallel, share, CommonArgs, NameStyle, Rng, Scratch,
    DIR_OWNER, FILE_OWNER,
};
use crate::posix;
use crate::report::{int, ratio, ratio_value, Report, Table};

#[derive(Debug, Clone, Args)]
pub struct BigdirArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Directory sizes to measure, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,65536,1000000")]
    pub sizes: Vec<usize>,
    /// Random lookups per size (split over the threads).
    #[arg(long, default_value_t = 200_000)]
    pub lookups: usize,
    /// Sizes smaller than this are created this many times over (each
    /// time in a fresh directory) and the create rate is the aggregate.
    #[arg(long, default_value_t = 65_536)]
    pub min_creates: usize,
    /// Shape of the names: `padded` (file-00000042) or `short` (file-42).
    #[arg(long, value_enum, default_value_t = NameStyle::Padded)]
    pub names: NameStyle,
}

struct Point {
    size: usize,
    nokv_create: f64,
    nokv_lookup: f64,
    ext4_create: f64,
    ext4_lookup: f64,
}

pub fn run(args: &BigdirArgs, scratch: &Scratch) -> Result<Report> {
    let threads = args.common.threads.max(1);
    let durability = args.common.durability;
    let lookups = args.lookups;
    let name = |i: usize| args.names.name("file-", i);
    let mut points = Vec::new();
    for &size in &args.sizes {
        let size = size.max(1);
        eprintln!("bigdir: {size} entries ...");

        // Small directories are created several times over (each time
        // fresh) so that every create rate covers at least
        // `--min-creates` operations: 1000 creates alone are too short
        // to time on a noisy machine.
        let rounds = args.min_creates.div_ceil(size).max(1);

        // nokv: a fresh volume per round.
        let mut t_create = Duration::ZERO;
        let mut t_lookup = Duration::ZERO;
        for round in 0..rounds {
            let home = scratch.sub(&format!("bigdir-nokv-{round}"))?;
            let vol = init_volume(&home, durability)?;
            let dir = vol
                .mkdir(ROOT_INO, b"big", DIR_OWNER)
                .context("nokv mkdir /big")?
                .ino;
            t_create += run_parallel(threads, |t| {
                let (lo, hi) = share(size, t, threads);
                for i in lo..hi {
                    let n = name(i);
                    vol.create(dir, n.as_bytes(), FILE_OWNER, true)
                        .with_context(|| format!("nokv create /big/{n}"))?;
                }
                Ok(())
            })?;
            if round + 1 == rounds {
                t_lookup = run_parallel(threads, |t| {
                    let (lo, hi) = share(lookups, t, threads);
                    let mut rng = Rng::new(t as u64 + 1);
                    for _ in lo..hi {
                        let n = name(rng.below(size));
                        std::hint::black_box(
                            vol.lookup(dir, n.as_bytes())
                                .with_context(|| format!("nokv lookup /big/{n}"))?,
                        );
                    }
                    Ok(())
                })?;
            }
            drop(vol);
        }
        let nokv_create = rate(size * rounds, t_create);
        let nokv_lookup = rate(lookups, t_lookup);

        // ext4: a fresh directory per round.
        let mut t_create = Duration::ZERO;
        let mut t_lookup = Duration::ZERO;
        for round in 0..rounds {
            let root = scratch.sub(&format!("bigdir-ext4-{round}"))?;
            let big = root.join("big");
            posix::mkdir(&big)?;
            t_create += run_parallel(threads, |t| {
                let (lo, hi) = share(size, t, threads);
                for i in lo..hi {
                    posix::create_file(&big.join(name(i)))?;
                }
                Ok(())
            })?;
            if round + 1 == rounds {
                t_lookup = run_parallel(threads, |t| {
                    let (lo, hi) = share(lookups, t, threads);
                    let mut rng = Rng::new(t as u64 + 1);
                    for _ in lo..hi {
                        std::hint::black_box(posix::stat_file(&big.join(name(rng.below(size))))?);
                    }
                    Ok(())
                })?;
            }
        }
        let ext4_create = rate(size * rounds, t_create);
        let ext4_lookup = rate(lookups, t_lookup);
        // Removal only after both sides are measured: bulk deletes make
        // later ext4 creates stall (this disk is mounted with `discard`).
        for round in 0..rounds {
            remove_if_exists(&scratch.path().join(format!("bigdir-nokv-{round}")))?;
            remove_if_exists(&scratch.path().join(format!("bigdir-ext4-{round}")))?;
        }
        points.push(Point {
            size,
            nokv_create,
            nokv_lookup,
            ext4_create,
            ext4_lookup,
        });
    }

    let first = match points.first() {
        Some(p) => (p.nokv_create, p.nokv_lookup, p.ext4_create, p.ext4_lookup),
        None => (0.0, 0.0, 0.0, 0.0),
    };
    let mut table = Table::new(&[
        "entries / op",
        "nokv ops/s",
        "nokv vs first",
        "ext4 ops/s",
        "ext4 vs first",
        "nokv/ext4",
    ]);
    let mut results = Vec::new();
    for p in &points {
        table.row(vec![
            format!("{} create", int(p.size as f64)),
            int(p.nokv_create),
            ratio(p.nokv_create, first.0),
            int(p.ext4_create),
            ratio(p.ext4_create, first.2),
            ratio(p.nokv_create, p.ext4_create),
        ]);
        table.row(vec![
            format!("{} lookup", int(p.size as f64)),
            int(p.nokv_lookup),
            ratio(p.nokv_lookup, first.1),
            int(p.ext4_lookup),
            ratio(p.ext4_lookup, first.3),
            ratio(p.nokv_lookup, p.ext4_lookup),
        ]);
        results.push(json!({
            "entries": p.size,
            "nokv_create_s": p.nokv_create,
            "nokv_lookup_s": p.nokv_lookup,
            "ext4_create_s": p.ext4_create,
            "ext4_lookup_s": p.ext4_lookup,
            "nokv_create_vs_first": ratio_value(p.nokv_create, first.0),
            "nokv_lookup_vs_first": ratio_value(p.nokv_lookup, first.1),
            "ext4_create_vs_first": ratio_value(p.ext4_create, first.2),
            "ext4_lookup_vs_first": ratio_value(p.ext4_lookup, first.3),
            "create_nokv_over_ext4": ratio_value(p.nokv_create, p.ext4_create),
            "lookup_nokv_over_ext4": ratio_value(p.nokv_lookup, p.ext4_lookup),
        }));
    }
    Ok(Report {
        bench: "bigdir",
        title: format!(
            "One directory grown to each size ({threads} threads create; then {lookups} \
             uniformly random lookups). NoKV durability={}; ext4 never fsynced.",
            durability.name()
        ),
        tables: vec![(String::new(), table)],
        notes: vec![
            "'vs first' = rate relative to the smallest size (1.00x = flat)".into(),
            format!(
                "sizes below {} are created repeatedly, each time in a fresh directory \
                 (nokv: fresh volume), until that many creates were timed",
                args.min_creates
            ),
            format!("names: {}", args.names.describe()),
            "nokv lookup = Volume::lookup(dir_ino, name); ext4 lookup = stat(2) of the full path"
                .into(),
        ],
        params: json!({
            "threads": threads,
            "sizes": args.sizes,
            "lookups": lookups,
            "min_creates": args.min_creates,
            "names": args.names.describe(),
            "durability": durability.name(),
        }),
        results: json!(results),
    })
}
