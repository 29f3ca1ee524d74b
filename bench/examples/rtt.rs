//! Where a single metadata round trip's time goes: one client, one op in
//! flight, against a `nokv_server::Server` in this process over loopback
//! TCP, with the caller and the two runtimes placed four ways:
//!
//! - `block-on`: the client runtime is multi-threaded and the loop runs in
//!   `block_on` on the main thread (a `#[tokio::main]` program, the CLI);
//! - `task`: the same runtime, the loop inside a spawned task (the FUSE
//!   mount, a server built on the SDK);
//! - `one-thread`: the client runtime is current-thread (no hop between
//!   the caller and the connection);
//! - `one-thread-both`: the server runtime is current-thread as well.
//!
//! ```sh
//! cargo build --profile bench-fast -p nokv-bench --example rtt
//! ./target/bench-fast/examples/rtt [stat|create] [ops]
//! ```
//!
//! Prints p50/p90/p99 µs and the process CPU time per op (user + system,
//! both sides together, from getrusage).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nokv_client::{Client, ClientOptions, InitOptions, ObjectLocation};
use nokv_meta::{Durability, OpenOptions, Volume};
use nokv_server::{ServeOptions, Server};
use tokio::runtime::{Builder, Runtime};

const TOKEN: &str = "rtt";

fn runtime(multi: bool) -> Result<Runtime> {
    let mut b = if multi {
        let mut b = Builder::new_multi_thread();
        b.worker_threads(2);
        b
    } else {
        Builder::new_current_thread()
    };
    b.enable_all().build().context("starting a runtime")
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

async fn ops(client: Client, create: bool, dir: String, n: usize) -> Result<Vec<u64>> {
    let mut lats = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        if create {
            client.create(&format!("{dir}/f{i}"), 0o644, true).await?;
        } else {
            client.stat("/f").await?;
        }
        lats.push(t.elapsed().as_micros() as u64);
    }
    Ok(lats)
}

fn run(placement: &str, create: bool, n: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let init = InitOptions::new(ObjectLocation::Local {
        root: dir.path().join("blocks"),
    });
    let open = OpenOptions {
        durability: Durability::Async,
        ..OpenOptions::default()
    };
    let vol = Volume::init(dir.path(), init, open)?;
    let srt = runtime(placement != "one-thread-both")?;
    let opts = ServeOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_listen: None,
        token: Some(TOKEN.to_string()),
        ..ServeOptions::default()
    };
    let server = srt.block_on(Server::bind(vol, opts))?;
    let url = server.url().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = std::thread::spawn(move || {
        srt.block_on(server.run(async move {
            let _ = stopped.await;
        }))
    });

    let crt = runtime(matches!(placement, "block-on" | "task"))?;
    let client = crt.block_on(Client::connect(&url, Some(TOKEN), ClientOptions::default()))?;
    crt.block_on(client.create("/f", 0o644, true))?;
    let sub = format!("/{placement}");
    crt.block_on(client.mkdir(&sub, 0o755))?;
    let cpu = cpu_time();
    let mut lats = if placement == "task" {
        let c = client.clone();
        crt.block_on(async move { tokio::spawn(ops(c, create, sub, n)).await })??
    } else {
        crt.block_on(ops(client.clone(), create, sub, n))?
    };
    let cpu = cpu_time() - cpu;
    lats.sort_unstable();
    let at = |q: usize| lats[(lats.len() * q / 100).min(lats.len() - 1)];
    println!(
        "| {placement:<15} | {:>5} | {:>5} | {:>5} | {:>6.0} |",
        at(50),
        at(90),
        at(99),
        cpu.as_secs_f64() * 1e6 / n as f64
    );
    drop(client);
    drop(crt);
    let _ = stop.send(());
    serving
        .join()
        .map_err(|_| anyhow::anyhow!("the server thread panicked"))??;
    Ok(())
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let create = args.next().as_deref() == Some("create");
    let n: usize = match args.next() {
        Some(v) => v.parse().context("ops must be a number")?,
        None => 20_000,
    };
    let op = if create { "create" } else { "stat" };
    println!("{n} {op}s, one in flight, async volume, loopback TCP\n");
    println!("| placement       | p50 µs | p90 µs | p99 µs | CPU µs/op |");
    println!("| --------------- | -----: | -----: | -----: | --------: |");
    for placement in ["block-on", "task", "one-thread", "one-thread-both"] {
        run(placement, create, n)?;
    }
    Ok(())
}
