//! Bytes through the object store, side by side with the raw store.
//!
//! `publish`: one checkpoint of `--size-mib` (default 1 GiB) published
//! with `Client::put` (4 MiB blocks, 16 in flight) vs raw `object_store`
//! PUTs of the same blocks with the same concurrency; on the local
//! backend also vs `dd conv=fdatasync` of the same size to the same disk.
//!
//! `read`: a dataset of `--samples` files of `--sample-kib` (16 KiB)
//! read with 16 in flight: raw GETs of the same objects, NoKV cold (a
//! freshly opened client, empty block cache), NoKV warm (same client
//! again). Garage runs as a private server started for the run, so both
//! sides hit the same Garage.
//!
//! Every block is distinct pseudo-random data: Garage deduplicates equal
//! blocks, so repeated data would flatter whichever side wrote second.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use clap::{Args, ValueEnum};
use futures::{StreamExt, TryStreamExt};
use nokv_client::{
    BlockStoreOptions, Client, ClientOptions, Durability, InitOptions, PutOptions, StoreCredentials,
};
use nokv_object::BlockStore;
use nokv_testkit::PrivateGarage;
use nokv_types::ObjectLocation;
use serde_json::json;

use crate::common::{CommonArgs, Scratch};
use crate::report::{self, Report, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendArg {
    Local,
    Garage,
}

#[derive(Debug, Clone, Args)]
pub struct ObjectArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Where blocks go: a local directory or a private Garage server.
    #[arg(long, value_enum, default_value_t = BackendArg::Garage)]
    pub backend: BackendArg,
    /// publish: body size in MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: usize,
    /// read: number of sample files.
    #[arg(long, default_value_t = 2000)]
    pub samples: usize,
    /// read: sample size in KiB.
    #[arg(long, default_value_t = 16)]
    pub sample_kib: usize,
    /// Requests in flight on both sides.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

const BLOCK: usize = 4 << 20;

struct Target {
    _garage: Option<PrivateGarage>,
    location: ObjectLocation,
    credentials: StoreCredentials,
}

fn target(args: &ObjectArgs, scratch: &Path, name: &str) -> Result<Target> {
    Ok(match args.backend {
        BackendArg::Local => Target {
            _garage: None,
            location: ObjectLocation::Local {
                root: scratch.join(format!("{name}-blocks")),
            },
            credentials: StoreCredentials::default(),
        },
        BackendArg::Garage => {
            let g = PrivateGarage::start();
            let location = g.env.location(&format!("{name}/"));
            let credentials = g.env.credentials();
            Target {
                _garage: Some(g),
                location,
                credentials,
            }
        }
    })
}

fn store_options(concurrency: usize) -> BlockStoreOptions {
    BlockStoreOptions {
        concurrency,
        ..BlockStoreOptions::default()
    }
}

fn client_options(t: &Target, concurrency: usize) -> ClientOptions {
    ClientOptions {
        durability: Durability::Async,
        credentials: t.credentials.clone(),
        store: store_options(concurrency),
        ..ClientOptions::default()
    }
}

/// Distinct pseudo-random bytes (xorshift), `len` long.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / 1e6
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting tokio")
}

pub fn publish(args: &ObjectArgs, scratch: &Scratch) -> Result<Report> {
    let rt = runtime()?;
    let size = args.size_mib << 20;
    let blocks: Vec<Bytes> = (0..size.div_ceil(BLOCK))
        .map(|i| Bytes::from(random_bytes(BLOCK.min(size - i * BLOCK), 1000 + i as u64)))
        .collect();
    let t = target(args, scratch.path(), "publish")?;

    // raw: the same blocks, same concurrency, straight to the store
    let raw_store = BlockStore::open(&t.location, &t.credentials, store_options(args.concurrency))?;
    let raw_blocks = blocks.clone();
    let raw = rt.block_on(async {
        let start = Instant::now();
        futures::stream::iter(raw_blocks.into_iter().enumerate())
            .map(|(i, b)| {
                let s = raw_store.clone();
                async move { s.put_block(&format!("raw/{i:08}"), b).await }
            })
            .buffer_unordered(args.concurrency)
            .try_collect::<Vec<()>>()
            .await?;
        Ok::<Duration, anyhow::Error>(start.elapsed())
    })?;

    // nokv: a publish of different bytes (so no dedupe) of the same size
    let nokv_blocks: Vec<Bytes> = (0..blocks.len())
        .map(|i| Bytes::from(random_bytes(blocks[i].len(), 5000 + i as u64)))
        .collect();
    drop(blocks);
    let home = scratch.sub("publish-vol")?;
    let nokv = rt.block_on(async {
        let client = Client::init(
            &home.join("v"),
            InitOptions::new(t.location.clone()),
            client_options(&t, args.concurrency),
        )
        .await?;
        let stream =
            futures::stream::iter(nokv_blocks.into_iter().map(Ok::<Bytes, std::io::Error>));
        let reader = tokio_util::io::StreamReader::new(stream);
        let start = Instant::now();
        let out = client.put("/ckpt", reader, PutOptions::default()).await?;
        let took = start.elapsed();
        anyhow::ensure!(
            out.attr.size == size as u64,
            "published {} bytes",
            out.attr.size
        );
        Ok::<Duration, anyhow::Error>(took)
    })?;

    let mut table = Table::new(&["side", "seconds", "MB/s", "vs raw PUT"]);
    let raw_mbps = mbps(size as u64, raw);
    let nokv_mbps = mbps(size as u64, nokv);
    table.row(vec![
        "raw object_store PUT".into(),
        format!("{:.2}", raw.as_secs_f64()),
        format!("{raw_mbps:.0}"),
        "1.00x".into(),
    ]);
    table.row(vec![
        "nokv put (publish)".into(),
        format!("{:.2}", nokv.as_secs_f64()),
        format!("{nokv_mbps:.0}"),
        report::ratio(nokv_mbps, raw_mbps),
    ]);
    let mut results = json!({"raw_mbps": raw_mbps, "nokv_mbps": nokv_mbps});
    if args.backend == BackendArg::Local {
        let dd_path = scratch.path().join("dd.bin");
        let start = Instant::now();
        let status = std::process::Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", dd_path.display()))
            .arg("bs=4M")
            .arg(format!("count={}", size / BLOCK))
            .arg("conv=fdatasync")
            .stderr(std::process::Stdio::null())
            .status()
            .context("running dd")?;
        let dd = start.elapsed();
        anyhow::ensure!(status.success(), "dd failed");
        let dd_mbps = mbps(size as u64, dd);
        table.row(vec![
            "dd conv=fdatasync".into(),
            format!("{:.2}", dd.as_secs_f64()),
            format!("{dd_mbps:.0}"),
            report::ratio(dd_mbps, raw_mbps),
        ]);
        table.row(vec![
            "nokv / dd".into(),
            String::new(),
            String::new(),
            report::ratio(nokv_mbps, dd_mbps),
        ]);
        results["dd_mbps"] = json!(dd_mbps);
    }
    Ok(Report {
        bench: "publish",
        title: format!(
            "checkpoint publish of {} MiB, {} MiB blocks, {} in flight, backend {:?}",
            args.size_mib,
            BLOCK >> 20,
            args.concurrency,
            args.backend
        ),
        tables: vec![(String::new(), table)],
        notes: vec!["target: nokv >= 0.9x raw PUT".into()],
        params: json!({"size_mib": args.size_mib, "concurrency": args.concurrency, "backend": format!("{:?}", args.backend)}),
        results,
    })
}

pub fn read(args: &ObjectArgs, scratch: &Scratch) -> Result<Report> {
    let rt = runtime()?;
    let t = target(args, scratch.path(), "read")?;
    let home = scratch.sub("read-vol")?.join("v");
    let sample = args.sample_kib << 10;
    let n = args.samples;
    let total = (n * sample) as u64;

    // build the dataset
    let keys: Vec<String> = rt.block_on(async {
        let client = Client::init(
            &home,
            InitOptions::new(t.location.clone()),
            client_options(&t, args.concurrency),
        )
        .await?;
        client.mkdir("/data", 0o755).await?;
        let paths: Vec<String> = (0..n).map(|i| format!("/data/sample-{i:07}")).collect();
        futures::stream::iter(paths.iter().enumerate())
            .map(|(i, p)| {
                let c = client.clone();
                let bytes = random_bytes(sample, 77 + i as u64);
                async move { c.put_bytes(p, &bytes, PutOptions::default()).await }
            })
            .buffer_unordered(args.concurrency)
            .try_collect::<Vec<_>>()
            .await?;
        let mut keys = Vec::with_capacity(n);
        for p in &paths {
            let (_, body) = client.body(p).await?;
            keys.extend(body.blocks.iter().map(|b| b.object_key()));
        }
        Ok::<Vec<String>, anyhow::Error>(keys)
    })?;

    // raw GETs of the same objects, through a store with no cache
    let raw_store = BlockStore::open(
        &t.location,
        &t.credentials,
        BlockStoreOptions {
            cache_bytes: 0,
            ..store_options(args.concurrency)
        },
    )?;
    let raw = rt.block_on(async {
        let start = Instant::now();
        let got: Vec<Bytes> = futures::stream::iter(keys.iter())
            .map(|k| raw_store.get_raw(k))
            .buffer_unordered(args.concurrency)
            .try_collect()
            .await?;
        anyhow::ensure!(
            got.iter().map(|b| b.len() as u64).sum::<u64>() == total,
            "raw size"
        );
        Ok::<Duration, anyhow::Error>(start.elapsed())
    })?;

    // nokv: reopen (cold cache), read every sample; then again (warm)
    let (cold, warm) = rt.block_on(async {
        let client = Client::open(&home, client_options(&t, args.concurrency)).await?;
        let paths: Arc<Vec<String>> =
            Arc::new((0..n).map(|i| format!("/data/sample-{i:07}")).collect());
        let mut times = Vec::new();
        for _ in 0..2 {
            let start = Instant::now();
            let got: Vec<Bytes> = futures::stream::iter(paths.iter())
                .map(|p| client.read(p))
                .buffer_unordered(args.concurrency)
                .try_collect()
                .await?;
            times.push(start.elapsed());
            anyhow::ensure!(
                got.iter().map(|b| b.len() as u64).sum::<u64>() == total,
                "nokv size"
            );
        }
        Ok::<(Duration, Duration), anyhow::Error>((times[0], times[1]))
    })?;

    let rate = |d: Duration| n as f64 / d.as_secs_f64().max(1e-9);
    let mut table = Table::new(&["side", "samples/s", "MB/s", "ratio"]);
    table.row(vec![
        "raw GET".into(),
        report::int(rate(raw)),
        format!("{:.1}", mbps(total, raw)),
        "1.00x".into(),
    ]);
    table.row(vec![
        "nokv cold".into(),
        report::int(rate(cold)),
        format!("{:.1}", mbps(total, cold)),
        format!("{} vs raw", report::ratio(rate(cold), rate(raw))),
    ]);
    table.row(vec![
        "nokv warm (cache)".into(),
        report::int(rate(warm)),
        format!("{:.1}", mbps(total, warm)),
        format!("{} vs cold", report::ratio(rate(warm), rate(cold))),
    ]);
    Ok(Report {
        bench: "read",
        title: format!(
            "dataset read: {n} samples of {} KiB, {} in flight, backend {:?}",
            args.sample_kib, args.concurrency, args.backend
        ),
        tables: vec![(String::new(), table)],
        notes: vec!["targets: cold >= 0.9x raw GETs; warm >= 10x cold".into()],
        params: json!({"samples": n, "sample_kib": args.sample_kib, "concurrency": args.concurrency, "backend": format!("{:?}", args.backend)}),
        results: json!({"raw_per_s": rate(raw), "cold_per_s": rate(cold), "warm_per_s": rate(warm)}),
    })
}
