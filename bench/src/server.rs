//! The metadata server (`nokv-fs serve`) seen from the SDK, over real
//! loopback TCP, side by side with ext4 and with the embedded client.
//!
//! The server runs in this process: `nokv_server::Server` bound to
//! 127.0.0.1:0 (token auth on, no HTTP port) on a tokio runtime of its
//! own; clients are `Client::connect`s on a second runtime, so every op
//! crosses gRPC/HTTP2 over a TCP socket, as it would from another
//! process on the same machine. Three measurements:
//!
//! 1. batched create: T client tasks (`--threads`), each on its own
//!    connection, send `Client::batch` calls of `--batch` exclusive
//!    `MetaOp::Create`s; mdtest-easy layout (one dir per task) and
//!    mdtest-hard layout (one shared dir). Peers in the same run: ext4
//!    (std::fs `create_new` + close, T threads, same layout and count,
//!    run before and after the NoKV sides; the better run is the peer),
//!    the embedded `Client` doing the same batches, and, in an async
//!    run, a second server whose volume is `sync` (labelled).
//! 2. big directory: the same batched create (T tasks, one directory)
//!    into a directory that already holds `--big-dir` (65,536) entries
//!    vs into a fresh empty one; `--rounds` rounds, alternating which
//!    goes first (per-round ratios, best of each side, median ratio).
//! 3. single ops: `stat` and `create` latency, one client with one op in
//!    flight (`--latency-ops` each: p50, p99), and stat throughput of
//!    `--clients` (16) separate connections each doing
//!    `--client-stats` stats of random existing files. The embedded
//!    `Client` (`Client::init`, same process, no RPC) does the same, for
//!    reference.
//!
//! Rates are ops / wall time of the phase.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use nokv_client::{Client, ClientOptions, InitOptions, ObjectLocation};
use nokv_meta::MetaOp;
use nokv_server::{ServeOptions, Server};
use serde_json::json;
use tokio::runtime::Runtime;

use crate::common::{
    init_volume, rate, run_parallel, CommonArgs, DurabilityArg, NameStyle, Rng, Scratch, FILE_OWNER,
};
use crate::posix;
use crate::report::{int, ratio, ratio_value, Report, Table};

/// The bearer token of the benchmark's servers (auth stays on, as in a
/// real deployment).
pub(crate) const TOKEN: &str = "nokv-bench-token";

#[derive(Debug, Clone, Args)]
pub struct ServerArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Files each client task (and each ext4 thread) creates per layout.
    #[arg(long, default_value_t = 20_000)]
    pub files: usize,
    /// Ops per `Client::batch` call.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Entries already in the big directory before the timed creates.
    #[arg(long, default_value_t = 65_536)]
    pub big_dir: usize,
    /// Rounds of (empty dir, big dir) creates; the order alternates.
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Single ops (one in flight) per latency measurement.
    #[arg(long, default_value_t = 5000)]
    pub latency_ops: usize,
    /// Concurrent clients (separate connections) for stat throughput.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// Stats each concurrent client does.
    #[arg(long, default_value_t = 5000)]
    pub client_stats: usize,
    /// In an async run, skip the extra server on a sync volume.
    #[arg(long)]
    pub no_sync: bool,
    /// Shape of the names: `padded` (file.0.00000042) or `short`.
    #[arg(long, value_enum, default_value_t = NameStyle::Padded)]
    pub names: NameStyle,
    /// Run only part 1 (batched create vs ext4), e.g. to compare builds.
    #[arg(long)]
    pub create_only: bool,
}

fn file_name(names: NameStyle, prefix: &str, i: usize) -> String {
    match names {
        NameStyle::Padded => names.name(prefix, i),
        NameStyle::Short => format!("{prefix}{i}"),
    }
}

/// A metadata server on its own runtime, serving one volume.
pub(crate) struct Served {
    rt: Runtime,
    pub(crate) url: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<nokv_types::Result<()>>,
}

impl Served {
    pub(crate) fn start(home: &Path, durability: DurabilityArg, workers: usize) -> Result<Served> {
        let vol = init_volume(home, durability)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name("bench-server")
            .enable_all()
            .build()
            .context("starting the server's tokio runtime")?;
        let opts = ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            http_listen: None,
            token: Some(TOKEN.to_string()),
            ..ServeOptions::default()
        };
        let server = rt
            .block_on(Server::bind(vol, opts))
            .context("binding the metadata server on 127.0.0.1:0")?;
        let url = server.url().to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = rt.spawn(server.run(async move {
            let _ = stopped.await;
        }));
        Ok(Served {
            rt,
            url,
            stop,
            task,
        })
    }

    /// Graceful shutdown (finishes in-flight requests, checkpoints).
    pub(crate) fn stop(self) -> Result<()> {
        let Served {
            rt,
            stop,
            task,
            url,
            ..
        } = self;
        // A send error means the server already stopped; the join
        // below reports why.
        let _ = stop.send(());
        rt.block_on(task)
            .map_err(|e| anyhow!("the server task at {url} failed: {e}"))?
            .with_context(|| format!("the server at {url}"))?;
        Ok(())
    }
}

/// `n` connections to `url`.
fn connect_many(crt: &Runtime, url: &str, n: usize) -> Result<Vec<Client>> {
    (0..n)
        .map(|_| {
            crt.block_on(Client::connect(url, Some(TOKEN), ClientOptions::default()))
                .with_context(|| format!("connecting to {url}"))
        })
        .collect()
}

/// T tasks, task t on `clients[t % len]` into `dirs[t]`, each creating
/// `files` files named `<prefix><t>.<i>` in batches of `batch`.
fn batched_create(
    crt: &Runtime,
    clients: &[Client],
    dirs: &[String],
    files: usize,
    batch: usize,
    names: NameStyle,
    prefix: &str,
) -> Result<Duration> {
    let batch = batch.max(1);
    crt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(dirs.len());
        for (t, dir) in dirs.iter().enumerate() {
            let client = clients[t % clients.len()].clone();
            let dir = dir.clone();
            let prefix = format!("{prefix}{t}.");
            tasks.push(tokio::spawn(async move {
                let mut lo = 0;
                while lo < files {
                    let hi = (lo + batch).min(files);
                    let ops: Vec<MetaOp> = (lo..hi)
                        .map(|i| MetaOp::Create {
                            path: format!("{dir}/{}", file_name(names, &prefix, i)),
                            owner: FILE_OWNER,
                            exclusive: true,
                        })
                        .collect();
                    let results = client.batch(ops).await;
                    if results.len() != hi - lo {
                        bail!(
                            "{} results for a batch of {} creates",
                            results.len(),
                            hi - lo
                        );
                    }
                    for (k, r) in results.into_iter().enumerate() {
                        r.with_context(|| {
                            format!("create {dir}/{}", file_name(names, &prefix, lo + k))
                        })?;
                    }
                    lo = hi;
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("a create task panicked")??;
        }
        Ok(start.elapsed())
    })
}

fn ext4_create(dirs: &[PathBuf], files: usize, names: NameStyle, prefix: &str) -> Result<Duration> {
    for d in dirs {
        posix::mkdir(d)?;
    }
    run_parallel(dirs.len(), |t| {
        let prefix = format!("{prefix}{t}.");
        for i in 0..files {
            posix::create_file(&dirs[t].join(file_name(names, &prefix, i)))?;
        }
        Ok(())
    })
}

fn mkdirs(crt: &Runtime, client: &Client, dirs: &[String]) -> Result<()> {
    for d in dirs {
        crt.block_on(client.mkdir_all(d, 0o755))
            .with_context(|| format!("mkdir -p {d}"))?;
    }
    Ok(())
}

/// Latencies of `n` ops, one in flight.
async fn latencies<F, Fut>(n: usize, mut op: F) -> Result<Vec<Duration>>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        op(i).await?;
        out.push(t.elapsed());
    }
    Ok(out)
}

/// p50, p99 and ops/s (n / sum) of a latency sample.
struct Lat {
    p50: Duration,
    p99: Duration,
    ops_s: f64,
}

fn summarize(mut v: Vec<Duration>) -> Lat {
    v.sort_unstable();
    let n = v.len();
    let at = |q: usize| v.get((n * q / 100).min(n.saturating_sub(1))).copied();
    let total: Duration = v.iter().sum();
    Lat {
        p50: at(50).unwrap_or_default(),
        p99: at(99).unwrap_or_default(),
        ops_s: rate(n, total),
    }
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

/// Paths of files made by the mdtest-easy creates: `/easy/d<t>/...`.
fn easy_path(names: NameStyle, t: usize, i: usize) -> String {
    format!("/easy/d{t}/{}", file_name(names, &format!("file.{t}."), i))
}

/// Single-op stat and create latency on `client` (one op in flight).
fn single_ops(
    crt: &Runtime,
    client: &Client,
    args: &ServerArgs,
    threads: usize,
) -> Result<(Lat, Lat)> {
    let n = args.latency_ops.max(1);
    let names = args.names;
    let files = args.files.max(1);
    mkdirs(crt, client, &["/lat".to_string()])?;
    crt.block_on(async {
        let mut rng = Rng::new(7);
        let stat = latencies(n, |_| {
            let p = easy_path(names, rng.below(threads), rng.below(files));
            async move {
                std::hint::black_box(client.stat(&p).await.with_context(|| format!("stat {p}"))?);
                Ok(())
            }
        })
        .await?;
        let create = latencies(n, |i| {
            let p = format!("/lat/{}", file_name(names, "file.", i));
            async move {
                client
                    .create(&p, 0o644, true)
                    .await
                    .with_context(|| format!("create {p}"))?;
                Ok(())
            }
        })
        .await?;
        Ok((summarize(stat), summarize(create)))
    })
}

/// `clients.len()` tasks, each doing `per` stats of random easy files
/// on its own client; returns ops/s.
fn stat_throughput(
    crt: &Runtime,
    clients: &[Client],
    per: usize,
    names: NameStyle,
    threads: usize,
    files: usize,
) -> Result<f64> {
    let elapsed = crt.block_on(async {
        let start = Instant::now();
        let mut tasks = Vec::with_capacity(clients.len());
        for (c, client) in clients.iter().enumerate() {
            let client = client.clone();
            tasks.push(tokio::spawn(async move {
                let mut rng = Rng::new(100 + c as u64);
                for _ in 0..per {
                    let p = easy_path(names, rng.below(threads), rng.below(files));
                    std::hint::black_box(
                        client.stat(&p).await.with_context(|| format!("stat {p}"))?,
                    );
                }
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await.context("a stat task panicked")??;
        }
        anyhow::Ok(start.elapsed())
    })?;
    Ok(rate(per * clients.len(), elapsed))
}

pub fn run(args: &ServerArgs, scratch: &Scratch) -> Result<Report> {
    let threads = args.common.threads.max(1);
    let files = args.files.max(1);
    let batch = args.batch.max(1);
    let names = args.names;
    let durability = args.common.durability;
    let total = threads * files;
    let extra_sync = durability == DurabilityArg::Async && !args.no_sync;

    let crt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("starting the clients' tokio runtime")?;

    let server = Served::start(&scratch.sub("server-vol")?, durability, threads)?;
    let conns = connect_many(&crt, &server.url, threads)?;
    let sync_server = if extra_sync {
        let s = Served::start(
            &scratch.sub("server-sync-vol")?,
            DurabilityArg::Sync,
            threads,
        )?;
        let c = connect_many(&crt, &s.url, threads)?;
        Some((s, c))
    } else {
        None
    };
    let emb_home = scratch.sub("server-embedded")?;
    let embedded = crt
        .block_on(Client::init(
            &emb_home,
            InitOptions::new(ObjectLocation::Local {
                root: emb_home.join("blocks"),
            }),
            ClientOptions {
                durability: durability.engine(),
                ..ClientOptions::default()
            },
        ))
        .context("embedded: creating a volume")?;
    let ext4_root = scratch.sub("server-ext4")?;

    // 1. Batched create vs ext4, mdtest-easy and mdtest-hard layouts.
    let d = durability.name();
    let mut headers = vec![
        "layout".to_string(),
        "ext4 before / after".to_string(),
        "ext4 best ops/s".to_string(),
        format!("server ({d}) ops/s"),
        "server/ext4".to_string(),
    ];
    if extra_sync {
        headers.push("server (sync) ops/s".into());
        headers.push("sync/ext4".into());
    }
    headers.push(format!("embedded ({d}) ops/s"));
    headers.push("server/embedded".into());
    let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
    let mut create_table = Table::new(&header_refs);
    let mut create_json = Vec::new();
    for (layout, root) in [("mdtest-easy", "easy"), ("mdtest-hard", "hard")] {
        eprintln!("server: batched create, {layout} ...");
        let dirs: Vec<String> = (0..threads)
            .map(|t| match root {
                "easy" => format!("/easy/d{t}"),
                _ => "/hard/shared".to_string(),
            })
            .collect();
        // ext4 runs before and after the NoKV sides (its rate swings a
        // lot on this kind of VM); the best of the two is the peer.
        let ext4_dirs = |run: usize| -> Vec<PathBuf> {
            dirs.iter()
                .map(|d| {
                    ext4_root
                        .join(format!("run{run}"))
                        .join(d.trim_start_matches('/'))
                })
                .collect()
        };
        let ext4_first = rate(total, ext4_create(&ext4_dirs(0), files, names, "file.")?);
        mkdirs(&crt, &conns[0], &dirs)?;
        let srv = rate(
            total,
            batched_create(&crt, &conns, &dirs, files, batch, names, "file.")?,
        );
        let sync = match &sync_server {
            Some((_, c)) => {
                mkdirs(&crt, &c[0], &dirs)?;
                Some(rate(
                    total,
                    batched_create(&crt, c, &dirs, files, batch, names, "file.")?,
                ))
            }
            None => None,
        };
        mkdirs(&crt, &embedded, &dirs)?;
        let emb = rate(
            total,
            batched_create(
                &crt,
                std::slice::from_ref(&embedded),
                &dirs,
                files,
                batch,
                names,
                "file.",
            )?,
        );
        let ext4_second = rate(total, ext4_create(&ext4_dirs(1), files, names, "file.")?);
        let ext4 = ext4_first.max(ext4_second);
        let mut row = vec![
            layout.to_string(),
            format!("{} / {}", int(ext4_first), int(ext4_second)),
            int(ext4),
            int(srv),
            ratio(srv, ext4),
        ];
        if let Some(s) = sync {
            row.push(int(s));
            row.push(ratio(s, ext4));
        }
        row.push(int(emb));
        row.push(ratio(srv, emb));
        create_table.row(row);
        create_json.push(json!({
            "layout": layout,
            "ext4_ops_s": ext4,
            "ext4_runs_ops_s": [ext4_first, ext4_second],
            "server_ops_s": srv,
            "server_over_ext4": ratio_value(srv, ext4),
            "server_sync_ops_s": sync,
            "server_sync_over_ext4": sync.and_then(|s| ratio_value(s, ext4)),
            "embedded_ops_s": emb,
            "server_over_embedded": ratio_value(srv, emb),
        }));
    }
    if let Some((s, c)) = sync_server {
        drop(c);
        s.stop().context("stopping the sync server")?;
    }

    let create_title =
        format!("Batched create ({total} files per layout; target: server >= 3x ext4)");
    let title = format!(
        "Metadata server in this process on 127.0.0.1 (gRPC over loopback TCP, token auth), \
         {threads} client tasks x {files} files, batches of {batch}. NoKV durability={d}; \
         ext4 side is plain std::fs, never fsynced."
    );
    if args.create_only {
        drop(conns);
        server.stop().context("stopping the server")?;
        drop(embedded);
        drop(crt);
        return Ok(Report {
            bench: "server",
            title,
            tables: vec![(create_title, create_table)],
            notes: vec!["--create-only: parts 2 (big dir) and 3 (single ops) skipped".into()],
            params: json!({
                "threads": threads,
                "files_per_task": files,
                "batch": batch,
                "durability": d,
                "names": names.describe(),
            }),
            results: json!({ "create": create_json }),
        });
    }

    // 2. Batched create into a 65,536-entry directory vs an empty one.
    eprintln!("server: big directory ({} entries) ...", args.big_dir);
    mkdirs(&crt, &conns[0], &["/big".to_string()])?;
    let prefill = (args.big_dir, "pre.");
    if prefill.0 > 0 {
        batched_create(
            &crt,
            &conns[..1],
            &["/big".to_string()],
            prefill.0,
            batch,
            names,
            prefill.1,
        )?;
    }
    let mut big_table = Table::new(&[
        "round",
        "empty dir ops/s",
        &format!("{}-entry dir ops/s", int(args.big_dir as f64)),
        "big/empty",
    ]);
    let mut big_json = Vec::new();
    let (mut best_small, mut best_big) = (0f64, 0f64);
    let mut round_ratios = Vec::new();
    for round in 0..args.rounds.max(1) {
        let small_dirs = vec![format!("/small{round}"); threads];
        let big_dirs = vec!["/big".to_string(); threads];
        mkdirs(&crt, &conns[0], &small_dirs[..1])?;
        let prefix = format!("r{round}.");
        let measure = |dirs: &[String]| -> Result<f64> {
            Ok(rate(
                total,
                batched_create(&crt, &conns, dirs, files, batch, names, &prefix)?,
            ))
        };
        let (small, big) = if round % 2 == 0 {
            let s = measure(&small_dirs)?;
            (s, measure(&big_dirs)?)
        } else {
            let b = measure(&big_dirs)?;
            (measure(&small_dirs)?, b)
        };
        best_small = best_small.max(small);
        best_big = best_big.max(big);
        round_ratios.push(ratio_value(big, small).unwrap_or(f64::NAN));
        big_table.row(vec![
            format!(
                "{} ({} first)",
                round + 1,
                if round % 2 == 0 { "empty" } else { "big" }
            ),
            int(small),
            int(big),
            ratio(big, small),
        ]);
        big_json.push(json!({"round": round, "empty_ops_s": small, "big_ops_s": big}));
    }
    big_table.row(vec![
        "best of each".into(),
        int(best_small),
        int(best_big),
        ratio(best_big, best_small),
    ]);
    round_ratios.sort_by(f64::total_cmp);
    let median_ratio = match round_ratios.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => round_ratios[n / 2],
        n => (round_ratios[n / 2 - 1] + round_ratios[n / 2]) / 2.0,
    };
    big_table.row(vec![
        "median of round ratios".into(),
        String::new(),
        String::new(),
        format!("{median_ratio:.2}x"),
    ]);

    // 3. Single-op latency and concurrent stat throughput.
    eprintln!("server: single-op latency ...");
    let (s_stat, s_create) = single_ops(&crt, &conns[0], args, threads)?;
    let (e_stat, e_create) = single_ops(&crt, &embedded, args, threads)?;
    let mut lat_table = Table::new(&[
        "one op in flight",
        "server p50 µs",
        "server p99 µs",
        "server ops/s",
        "embedded p50 µs",
        "embedded p99 µs",
        "embedded ops/s",
    ]);
    for (op, s, e) in [("stat", &s_stat, &e_stat), ("create", &s_create, &e_create)] {
        lat_table.row(vec![
            op.to_string(),
            us(s.p50),
            us(s.p99),
            int(s.ops_s),
            us(e.p50),
            us(e.p99),
            int(e.ops_s),
        ]);
    }
    eprintln!("server: stat throughput, {} clients ...", args.clients);
    let many = connect_many(&crt, &server.url, args.clients.max(1))?;
    let s_many = stat_throughput(&crt, &many, args.client_stats, names, threads, files)?;
    drop(many);
    let emb_many: Vec<Client> = (0..args.clients.max(1)).map(|_| embedded.clone()).collect();
    let e_many = stat_throughput(&crt, &emb_many, args.client_stats, names, threads, files)?;
    drop(emb_many);
    let mut tput_table = Table::new(&[
        "stat throughput",
        "server ops/s",
        "embedded ops/s",
        "server/embedded",
    ]);
    tput_table.row(vec![
        "1 client, 1 in flight".into(),
        int(s_stat.ops_s),
        int(e_stat.ops_s),
        ratio(s_stat.ops_s, e_stat.ops_s),
    ]);
    tput_table.row(vec![
        format!("{} clients, 1 in flight each", args.clients.max(1)),
        int(s_many),
        int(e_many),
        ratio(s_many, e_many),
    ]);

    drop(conns);
    server.stop().context("stopping the server")?;
    drop(embedded);
    drop(crt);

    Ok(Report {
        bench: "server",
        title,
        tables: vec![
            (create_title, create_table),
            (
                format!(
                    "Batched create into one directory, {total} files per measurement \
                     (target: big/empty >= 0.9x)"
                ),
                big_table,
            ),
            (
                format!(
                    "Single ops, one client, {} ops each (stat: random existing files; \
                     create: exclusive, one new dir)",
                    args.latency_ops.max(1)
                ),
                lat_table,
            ),
            (
                format!(
                    "stat throughput ({} stats per client; server: separate \
                     Client::connect each; embedded: clones of one Client)",
                    args.client_stats
                ),
                tput_table,
            ),
        ],
        notes: vec![
            "server = Client::connect to nokv_server::Server in this process, one connection \
             per task; each task sends Client::batch of exclusive MetaOp::Create; embedded = \
             Client::init (same ops, no RPC); ext4 = create_new + close, one thread per task, run once before and once \
             after the NoKV sides (fresh dirs each time); ratios use the better ext4 run"
                .into(),
            if extra_sync {
                "server (sync) = a second server whose volume is durability=sync (WAL fsync \
                 per group commit)"
                    .into()
            } else {
                format!("every NoKV side runs durability={d}")
            },
            "ops/s of single ops = ops / sum of their latencies".into(),
            format!("names: {}", names.describe()),
        ],
        params: json!({
            "threads": threads,
            "files_per_task": files,
            "batch": batch,
            "durability": d,
            "big_dir": args.big_dir,
            "rounds": args.rounds,
            "latency_ops": args.latency_ops,
            "clients": args.clients,
            "client_stats": args.client_stats,
            "names": names.describe(),
        }),
        results: json!({
            "create": create_json,
            "big_dir": big_json,
            "big_dir_median_ratio": median_ratio,
            "latency": {
                "server_stat_p50_us": s_stat.p50.as_secs_f64() * 1e6,
                "server_stat_p99_us": s_stat.p99.as_secs_f64() * 1e6,
                "server_create_p50_us": s_create.p50.as_secs_f64() * 1e6,
                "server_create_p99_us": s_create.p99.as_secs_f64() * 1e6,
                "embedded_stat_p50_us": e_stat.p50.as_secs_f64() * 1e6,
                "embedded_stat_p99_us": e_stat.p99.as_secs_f64() * 1e6,
                "embedded_create_p50_us": e_create.p50.as_secs_f64() * 1e6,
                "embedded_create_p99_us": e_create.p99.as_secs_f64() * 1e6,
            },
            "stat_throughput": {
                "clients": args.clients,
                "server_ops_s": s_many,
                "embedded_ops_s": e_many,
                "server_1_client_ops_s": s_stat.ops_s,
                "embedded_1_client_ops_s": e_stat.ops_s,
            },
        }),
    })
}
