//! Typed watch over a metadata server: how fast a follower receives
//! events, and how long after a publish is acknowledged its event
//! reaches the follower.
//!
//! The server runs in this process on 127.0.0.1:0 (see `server.rs`);
//! the producer and the follower are separate `Client::connect`s.
//! 1. delivery rate: the follower streams from the head while a producer
//!    sends `--events` creates in batches of 1000; events/s delivered vs
//!    the producer's own create rate in the same run.
//! 2. publish-to-delivery latency: `--latency-publishes` small files
//!    published one at a time (7 ms apart) while a follower task runs;
//!    for each, the time from `put` returning (committed) to the
//!    follower yielding its `published` event (p50, p99; an event that
//!    arrives before the ack counts as 0). Through a server the events
//!    are pushed by a server-streaming RPC.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use futures::StreamExt;
use nokv_client::{Client, ClientOptions, PutOptions};
use nokv_meta::MetaOp;
use serde_json::json;

use crate::common::{CommonArgs, Scratch};
use crate::report::{self, Report, Table};
use crate::server::{Served, TOKEN};

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Events for the delivery-rate measurement.
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Publishes for the latency measurement.
    #[arg(long, default_value_t = 200)]
    pub latency_publishes: usize,
}

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

pub fn run(args: &WatchArgs, scratch: &Scratch) -> Result<Report> {
    let served = Served::start(
        &scratch.sub("watch-vol")?.join("v"),
        args.common.durability,
        2,
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("client runtime")?;
    let url = served.url.clone();
    let result = rt.block_on(async {
        let producer = Client::connect(&url, Some(TOKEN), ClientOptions::default()).await?;
        let follower = Client::connect(&url, Some(TOKEN), ClientOptions::default()).await?;
        producer.mkdir("/d", 0o755).await?;
        producer.mkdir("/p", 0o755).await?;

        // 1. delivery rate
        let head = follower.watch_head().await?;
        let n = args.events;
        let follow = tokio::spawn({
            let follower = follower.clone();
            async move {
                let mut stream = follower.watch("/d", head);
                let mut got = 0usize;
                while got < n {
                    match stream.next().await {
                        Some(Ok(_)) => got += 1,
                        Some(Err(e)) => return Err(anyhow::Error::from(e)),
                        None => break,
                    }
                }
                Ok::<(usize, Instant), anyhow::Error>((got, Instant::now()))
            }
        });
        let start = Instant::now();
        let owner = producer.owner(0o644);
        for b in 0..n.div_ceil(1000) {
            let ops = (b * 1000..((b + 1) * 1000).min(n))
                .map(|i| MetaOp::Create {
                    path: format!("/d/file-{i:08}"),
                    owner,
                    exclusive: true,
                })
                .collect();
            for r in producer.batch(ops).await {
                r?;
            }
        }
        let produced = start.elapsed();
        let (got, done) = follow.await.context("follower task")??;
        anyhow::ensure!(got == n, "the follower saw {got} of {n} events");
        let delivered = done.duration_since(start);

        // 2. publish-to-delivery latency: the follower runs on its own
        // task and timestamps every event as it arrives.
        let head = follower.watch_head().await?;
        let publishes = args.latency_publishes;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(String, Instant)>();
        let follow = tokio::spawn({
            let follower = follower.clone();
            async move {
                let mut stream = follower.watch("/p", head);
                let mut got = 0;
                while got < publishes {
                    match stream.next().await {
                        Some(Ok(e)) => {
                            got += 1;
                            let _ = tx.send((e.path, Instant::now()));
                        }
                        Some(Err(e)) => return Err(anyhow::Error::from(e)),
                        None => break,
                    }
                }
                Ok::<(), anyhow::Error>(())
            }
        });
        let mut acked = std::collections::HashMap::new();
        for i in 0..publishes {
            let path = format!("/p/ckpt-{i:05}");
            producer
                .put_bytes(&path, b"weights", PutOptions::default())
                .await?;
            acked.insert(path, Instant::now());
            // Space publishes out so the follower is caught up (and
            // polling) when the next one lands, as in real use.
            tokio::time::sleep(Duration::from_millis(7)).await;
        }
        follow.await.context("follower task")??;
        let mut lat = Vec::with_capacity(publishes);
        while let Ok((path, at)) = rx.try_recv() {
            if let Some(ack) = acked.get(&path) {
                lat.push(at.saturating_duration_since(*ack));
            }
        }
        anyhow::ensure!(
            lat.len() == publishes,
            "{} of {publishes} publishes delivered",
            lat.len()
        );
        Ok::<_, anyhow::Error>((produced, delivered, lat))
    });
    served.stop()?;
    let (produced, delivered, mut lat) = result?;
    let n = args.events as f64;
    let create_rate = n / produced.as_secs_f64().max(1e-9);
    let delivery_rate = n / delivered.as_secs_f64().max(1e-9);
    let (p50, p99) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99));

    let mut t1 = Table::new(&["measure", "ops/s", "ratio"]);
    t1.row(vec![
        "creates committed (producer)".into(),
        report::int(create_rate),
        "1.00x".into(),
    ]);
    t1.row(vec![
        "events delivered (follower)".into(),
        report::int(delivery_rate),
        report::ratio(delivery_rate, create_rate),
    ]);
    let mut t2 = Table::new(&["publish -> delivery", "p50 ms", "p99 ms"]);
    t2.row(vec![
        format!("{} publishes, one at a time", lat.len()),
        format!("{:.1}", p50.as_secs_f64() * 1e3),
        format!("{:.1}", p99.as_secs_f64() * 1e3),
    ]);
    Ok(Report {
        bench: "watch",
        title: format!(
            "typed watch over a metadata server on 127.0.0.1: {} events, {} publishes; durability {}",
            args.events,
            args.latency_publishes,
            args.common.durability.name()
        ),
        tables: vec![(String::new(), t1), (String::new(), t2)],
        notes: vec!["server followers get events pushed (server-streaming Watch RPC)".into()],
        params: json!({"events": args.events, "latency_publishes": args.latency_publishes}),
        results: json!({"create_per_s": create_rate, "delivered_per_s": delivery_rate, "p50_ms": p50.as_secs_f64() * 1e3, "p99_ms": p99.as_secs_f64() * 1e3}),
    })
}
