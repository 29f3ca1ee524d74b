//! Load: 32 concurrent clients (each its own connection) run a mixed
//! workload (create, stat, list, publish, read, rename, remove) against
//! one `nokv-fs serve --durability sync` over Garage for a bounded time.
//! Every op must succeed (each client works in its own directory and
//! only asks for what its model says is valid), every read must return
//! the bytes last published. Prints p50/p99 per op and the server's RSS
//! over time; the RSS must level off.
//!
//! CI: 10 s. Long run: `NOKV_LOAD_SECS=300 NOKV_LOAD_CLIENTS=32`.

mod support;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nokv_client::{BlockStoreOptions, Client, ClientOptions, PutOptions};
use nokv_testkit::S3Env;
use support::bin;

const OPS: [&str; 7] = [
    "create", "stat", "list", "publish", "read", "rename", "remove",
];

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// One client's loop; returns latencies (µs) per op index.
async fn client_loop(
    id: usize,
    c: Client,
    stop: Arc<AtomicBool>,
) -> (Vec<Vec<u64>>, u64, Vec<String>) {
    let dir = format!("/c{id}");
    c.mkdir(&dir, 0o755).await.unwrap();
    let mut rng = Rng(0x51ed_u64.wrapping_add(id as u64 * 7919) | 1);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); OPS.len()];
    let mut next = 0u64;
    let mut errors = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let mut op = rng.below(OPS.len() as u64) as usize;
        if files.is_empty() && !matches!(op, 0 | 2 | 3) {
            op = 3;
        }
        if files.len() >= 40 && matches!(op, 0 | 3) {
            op = 6;
        }
        let pick = |rng: &mut Rng, files: &BTreeMap<String, Vec<u8>>| {
            let i = rng.below(files.len() as u64) as usize;
            files.keys().nth(i).cloned().unwrap_or_default()
        };
        let start = Instant::now();
        let result: Result<(), String> = match op {
            0 => {
                next += 1;
                let p = format!("{dir}/n{next}");
                match c.create(&p, 0o644, true).await {
                    Ok(_) => {
                        files.insert(p, Vec::new());
                        Ok(())
                    }
                    Err(e) => Err(format!("create {p}: {e}")),
                }
            }
            1 => {
                let p = pick(&mut rng, &files);
                match c.stat(&p).await {
                    Ok(a) if a.size == files[&p].len() as u64 => Ok(()),
                    Ok(a) => Err(format!("stat {p}: size {} != {}", a.size, files[&p].len())),
                    Err(e) => Err(format!("stat {p}: {e}")),
                }
            }
            2 => match c.list(&dir).await {
                Ok(l) if l.len() == files.len() => Ok(()),
                Ok(l) => Err(format!(
                    "list {dir}: {} entries, expected {}",
                    l.len(),
                    files.len()
                )),
                Err(e) => Err(format!("list {dir}: {e}")),
            },
            3 => {
                let p = if files.is_empty() || rng.below(2) == 0 {
                    next += 1;
                    format!("{dir}/p{next}")
                } else {
                    pick(&mut rng, &files)
                };
                let len = 1 + rng.below(16 * 1024) as usize;
                let data: Vec<u8> = format!("{p}@{next};").bytes().cycle().take(len).collect();
                match c.put_bytes(&p, &data, PutOptions::default()).await {
                    Ok(_) => {
                        files.insert(p, data);
                        Ok(())
                    }
                    Err(e) => Err(format!("publish {p}: {e}")),
                }
            }
            4 => {
                let p = pick(&mut rng, &files);
                match c.read(&p).await {
                    Ok(b) if b.as_ref() == files[&p].as_slice() => Ok(()),
                    Ok(_) => Err(format!("read {p}: wrong bytes")),
                    Err(e) => Err(format!("read {p}: {e}")),
                }
            }
            5 => {
                let p = pick(&mut rng, &files);
                next += 1;
                let q = format!("{dir}/r{next}");
                match c.rename(&p, &q, false).await {
                    Ok(()) => {
                        let v = files.remove(&p).unwrap_or_default();
                        files.insert(q, v);
                        Ok(())
                    }
                    Err(e) => Err(format!("rename {p}: {e}")),
                }
            }
            _ => {
                let p = pick(&mut rng, &files);
                match c.remove(&p).await {
                    Ok(()) => {
                        files.remove(&p);
                        Ok(())
                    }
                    Err(e) => Err(format!("remove {p}: {e}")),
                }
            }
        };
        lat[op].push(start.elapsed().as_micros() as u64);
        if let Err(e) = result {
            errors.push(e);
        }
    }
    let total = lat.iter().map(|l| l.len() as u64).sum();
    (lat, total, errors)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_clients_mixed_workload() {
    let clients = env_u64("NOKV_LOAD_CLIENTS", 32) as usize;
    let secs = env_u64("NOKV_LOAD_SECS", 10);
    let env = S3Env::shared();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let prefix = format!("load-{}-{}/", std::process::id(), nokv_types_now());
    let out = Command::new(bin())
        .args(["init", "--object-backend", "s3", "--s3-bucket", &env.bucket])
        .args(["--s3-endpoint", &env.endpoint, "--s3-region", &env.region])
        .args(["--s3-prefix", &prefix, "--block-size", "65536"])
        .env("NOKV_HOME", &home)
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut server = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--no-http"])
        .args(["--durability", "sync", "--gc-interval", "2"])
        .env("NOKV_HOME", &home)
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env_remove("NOKV_SERVER")
        .env_remove("NOKV_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.split_whitespace().nth(2).unwrap().to_string();
    let tok = std::fs::read_to_string(home.join("TOKEN"))
        .unwrap()
        .trim()
        .to_string();
    let pid = server.id();
    let opts = ClientOptions {
        credentials: env.credentials(),
        store: BlockStoreOptions {
            cache_bytes: 8 << 20,
            ..BlockStoreOptions::default()
        },
        ..ClientOptions::default()
    };

    let stop = Arc::new(AtomicBool::new(false));
    let rss_start = rss_kib(pid).unwrap_or(0);
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let t0 = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                if let Some(r) = rss_kib(pid) {
                    samples.push((t0.elapsed().as_secs_f64(), r));
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            samples
        })
    };
    let mut tasks = Vec::new();
    for id in 0..clients {
        let c = Client::connect(&url, Some(&tok), opts.clone())
            .await
            .unwrap();
        tasks.push(tokio::spawn(client_loop(id, c, stop.clone())));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<Vec<u64>> = vec![Vec::new(); OPS.len()];
    let mut total = 0;
    let mut errors = Vec::new();
    for t in tasks {
        let (l, n, e) = t.await.unwrap();
        for (i, v) in l.into_iter().enumerate() {
            lat[i].extend(v);
        }
        total += n;
        errors.extend(e);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let samples = sampler.await.unwrap();
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = server.wait().unwrap();

    println!(
        "load: {clients} clients, {elapsed:.1} s, {total} ops ({:.0} ops/s), {} errors",
        total as f64 / elapsed,
        errors.len()
    );
    println!("| op | count | p50 ms | p99 ms |");
    println!("| --- | ---: | ---: | ---: |");
    for (i, name) in OPS.iter().enumerate() {
        lat[i].sort_unstable();
        println!(
            "| {name} | {} | {:.2} | {:.2} |",
            lat[i].len(),
            pct(&lat[i], 0.5),
            pct(&lat[i], 0.99)
        );
    }
    let step = (samples.len() / 12).max(1);
    let timeline: Vec<String> = samples
        .iter()
        .step_by(step)
        .chain(samples.last())
        .map(|(t, r)| format!("{t:.0}s {:.0}MiB", *r as f64 / 1024.0))
        .collect();
    println!(
        "server RSS: start {:.0} MiB; over time: {}",
        rss_start as f64 / 1024.0,
        timeline.join(", ")
    );
    assert!(
        errors.is_empty(),
        "unexpected errors: {:?}",
        &errors[..errors.len().min(10)]
    );
    assert!(status.success(), "server exit: {status:?}");
    assert!(total > clients as u64 * 10, "too little work: {total}");
    // RSS levels off: the last third of the run grows little over the
    // middle third (the namespace is bounded, so memory must be too).
    let third = samples.len() / 3;
    if third >= 2 {
        let max = |s: &[(f64, u64)]| s.iter().map(|(_, r)| *r).max().unwrap_or(0);
        let middle = max(&samples[third..2 * third]);
        let last = max(&samples[2 * third..]);
        assert!(
            last <= middle + middle / 4 + 32 * 1024,
            "server RSS keeps growing: {} KiB in the middle third, {} KiB at the end",
            middle,
            last
        );
    }
}

fn nokv_types_now() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}
