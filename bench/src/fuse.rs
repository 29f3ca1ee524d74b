//! `fuse`: the NoKV FUSE mount side by side with its peers, in one run
//! on one machine, all through the kernel with plain file I/O:
//!
//! - ext4: the scratch directory itself (no FUSE);
//! - bindfs: a passthrough FUSE mount of an ext4 directory (the FUSE
//!   round-trip floor);
//! - nokv: `nokv-fs mount` on an embedded volume;
//! - nokv --server: `nokv-fs mount --server` on a `nokv-fs serve`;
//! - s3fs: s3fs-fuse on the same Garage (a private server started for
//!   the run); both NoKV volumes keep their blocks there too;
//! - raw GETs: the blocks of the NoKV file read straight from Garage,
//!   16 in flight (the object-store ceiling for a cold read);
//! - raw PUTs: as many distinct pseudo-random block-sized objects PUT
//!   straight to Garage, 16 in flight, under a scratch prefix deleted
//!   afterwards (the object-store ceiling for a sequential write).
//!
//! Workloads: empty-file create rate (one thread), sequential write of
//! `--size-mib` (including close, which publishes / uploads), cold
//! sequential read of it (fresh mount process, so no cache), `tar x`
//! of a real source tree, and `--small-files` files of `--small-kib`
//! written one by one then read cold by 16 threads (a data loader) next
//! to raw GETs of their blocks. Each side writes distinct pseudo-random bytes
//! (Garage deduplicates equal blocks).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use futures::StreamExt;
use nokv_client::{BlockStoreOptions, Client, ClientOptions, ObjectLocation, StoreCredentials};
use nokv_object::BlockStore;
use nokv_testkit::PrivateGarage;
use serde_json::json;

use crate::common::{CommonArgs, Rng, Scratch};
use crate::report::{self, Report, Table};

#[derive(Debug, Clone, Args)]
pub struct FuseArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Empty files created per side (s3fs: --s3fs-creates).
    #[arg(long, default_value_t = 3000)]
    pub creates: usize,
    #[arg(long, default_value_t = 300)]
    pub s3fs_creates: usize,
    /// Size of the sequential write/read file, MiB.
    #[arg(long, default_value_t = 1024)]
    pub size_mib: usize,
    /// Source tree for `tar x` [default: the first ~/.cargo/registry/src/* index]
    #[arg(long)]
    pub tar_source: Option<PathBuf>,
    /// Files taken from the source tree (whole crates, up to this many).
    #[arg(long, default_value_t = 3000)]
    pub tar_files: usize,
    /// The nokv-fs binary [default: next to this one]
    #[arg(long)]
    pub nokv_fs: Option<PathBuf>,
    /// Also mount the served volume with this (older) nokv-fs binary, as
    /// one more create-rate side: before/after in one run
    #[arg(long)]
    pub baseline_nokv_fs: Option<PathBuf>,
    /// Measure the create rate only (no sequential I/O, no tar x)
    #[arg(long)]
    pub creates_only: bool,
    /// Small files written, then read cold by 16 threads, per side
    #[arg(long, default_value_t = 2000)]
    pub small_files: usize,
    /// Size of each small file, KiB
    #[arg(long, default_value_t = 64)]
    pub small_kib: usize,
}

fn mounted(dir: &Path) -> bool {
    let want = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

fn wait_mounted(dir: &Path) -> Result<()> {
    let start = Instant::now();
    while !mounted(dir) {
        if start.elapsed() > Duration::from_secs(20) {
            bail!("{} did not get mounted", dir.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// One mounted peer.
struct Mount {
    dir: PathBuf,
    /// `nokv-fs mount` runs in the foreground; bindfs and s3fs daemonize.
    child: Option<Child>,
}

impl Mount {
    fn unmount(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let status = c.wait()?;
            if !status.success() {
                bail!("nokv-fs mount exited with {status}");
            }
        } else if mounted(&self.dir) {
            let out = Command::new("fusermount3")
                .args(["-u"])
                .arg(&self.dir)
                .output()?;
            if !out.status.success() {
                bail!(
                    "fusermount3 -u {}: {}",
                    self.dir.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        Ok(())
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if mounted(&self.dir) {
            let _ = Command::new("fusermount3")
                .args(["-u", "-z"])
                .arg(&self.dir)
                .output();
        }
    }
}

struct Env {
    bin: PathBuf,
    garage: PrivateGarage,
    scratch: PathBuf,
    durability: &'static str,
}

impl Env {
    fn nokv(&self) -> Command {
        self.nokv_bin(&self.bin)
    }

    fn nokv_bin(&self, bin: &Path) -> Command {
        let mut c = Command::new(bin);
        c.env("AWS_ACCESS_KEY_ID", &self.garage.env.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &self.garage.env.secret_access_key)
            .env("NOKV_SPOOL_DIR", self.scratch.join("spool"))
            .env("NOKV_DURABILITY", self.durability)
            .env_remove("NOKV_SERVER")
            .env_remove("NOKV_TOKEN");
        c
    }

    fn init(&self, home: &Path, prefix: &str) -> Result<()> {
        let g = &self.garage.env;
        let out = self
            .nokv()
            .arg("--home")
            .arg(home)
            .args(["init", "--object-backend", "s3", "--s3-bucket", &g.bucket])
            .args(["--s3-endpoint", &g.endpoint, "--s3-region", &g.region])
            .args(["--s3-prefix", prefix])
            .output()?;
        if !out.status.success() {
            bail!("init: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(())
    }

    fn mount_nokv(&self, dir: &Path, home: &Path, server: Option<(&str, &str)>) -> Result<Mount> {
        self.mount_nokv_with(&self.bin, dir, home, server, &[])
    }

    fn mount_nokv_with(
        &self,
        bin: &Path,
        dir: &Path,
        home: &Path,
        server: Option<(&str, &str)>,
        extra: &[&str],
    ) -> Result<Mount> {
        std::fs::create_dir_all(dir)?;
        let mut c = self.nokv_bin(bin);
        c.arg("--home").arg(home);
        if let Some((url, token)) = server {
            c.env("NOKV_SERVER", url).env("NOKV_TOKEN", token);
        }
        let mut child = c
            .arg("mount")
            .arg(dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let mut line = String::new();
        let mut out = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut byte = [0u8; 1];
        while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
        if !line.starts_with("mounted") {
            let _ = child.kill();
            bail!("nokv-fs mount printed {line:?}");
        }
        Ok(Mount {
            dir: dir.to_path_buf(),
            child: Some(child),
        })
    }

    fn mount_s3fs(&self, dir: &Path, prefix: &str) -> Result<Mount> {
        std::fs::create_dir_all(dir)?;
        let g = &self.garage.env;
        let pass = self.scratch.join("s3fs.passwd");
        std::fs::write(
            &pass,
            format!("{}:{}", g.access_key_id, g.secret_access_key),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&pass, std::fs::Permissions::from_mode(0o600))?;
        let status = Command::new("s3fs")
            .arg(format!("{}:/{prefix}", g.bucket))
            .arg(dir)
            .args(["-o", &format!("url={}", g.endpoint)])
            .args(["-o", "use_path_request_style", "-o", "sigv4"])
            .args(["-o", &format!("endpoint={}", g.region)])
            .args(["-o", &format!("passwd_file={}", pass.display())])
            .status()
            .context("running s3fs (apt-get install s3fs)")?;
        if !status.success() {
            bail!("s3fs exited with {status}");
        }
        wait_mounted(dir)?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            child: None,
        })
    }

    fn mount_bindfs(&self, dir: &Path, under: &Path) -> Result<Mount> {
        std::fs::create_dir_all(dir)?;
        std::fs::create_dir_all(under)?;
        let status = Command::new("bindfs")
            .arg(under)
            .arg(dir)
            .status()
            .context("running bindfs (apt-get install bindfs)")?;
        if !status.success() {
            bail!("bindfs exited with {status}");
        }
        wait_mounted(dir)?;
        Ok(Mount {
            dir: dir.to_path_buf(),
            child: None,
        })
    }
}

/// Creates `n` empty files in a new directory `name` under `root`; files/s.
fn create_rate(root: &Path, name: &str, n: usize) -> Result<f64> {
    let dir = root.join(name);
    std::fs::create_dir(&dir)?;
    let start = Instant::now();
    for i in 0..n {
        std::fs::File::create(dir.join(format!("f{i:07}")))?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

const CHUNK: usize = 1 << 20;

/// Create-rate rounds per side (median reported).
const ROUNDS: usize = 3;

/// Writes `mib` MiB of pseudo-random bytes (seeded) to `path`, closing
/// it (a FUSE close publishes / uploads); MB/s.
fn seq_write(path: &Path, mib: usize, seed: u64) -> Result<f64> {
    let mut rng = Rng::new(seed);
    let mut chunk = vec![0u8; CHUNK];
    let start = Instant::now();
    let mut f = std::fs::File::create(path)?;
    for _ in 0..mib {
        for w in chunk.chunks_mut(8) {
            w.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        f.write_all(&chunk)?;
    }
    drop(f);
    Ok(mbps((mib * CHUNK) as u64, start.elapsed()))
}

/// Unmounts every side, then stops the metadata server.
fn stop_all(mounts: impl Iterator<Item = Mount>, serve: &mut Child) -> Result<()> {
    for m in mounts {
        m.unmount()?;
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(serve.id() as i32, libc::SIGTERM) };
    let _ = serve.wait();
    Ok(())
}

/// Flushes every dirty page to disk, so the next measurement does not
/// pay for the previous one's writeback.
fn sync_disks() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn seq_read(path: &Path) -> Result<(f64, u64)> {
    let mut f = std::fs::File::open(path)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    let start = Instant::now();
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        total += n as u64;
    }
    Ok((mbps(total, start.elapsed()), total))
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64().max(1e-9)
}

/// How long `f` took.
fn timed(f: impl FnOnce() -> Result<()>) -> Result<Duration> {
    let start = Instant::now();
    f()?;
    Ok(start.elapsed())
}

/// Readers (and raw GETs in flight) of the small-file reads.
const SMALL_READERS: usize = 16;

/// Writes `n` files of `len` distinct pseudo-random bytes into `dir`,
/// one by one (each close publishes / uploads); files/s.
fn write_small(dir: &Path, n: usize, len: usize, seed: u64) -> Result<f64> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng::new(seed);
    let mut data = vec![0u8; len];
    let start = Instant::now();
    for i in 0..n {
        for w in data.chunks_mut(8) {
            w.copy_from_slice(&rng.next_u64().to_le_bytes()[..w.len()]);
        }
        std::fs::write(dir.join(format!("s{i:06}")), &data)?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Reads every file of `dir` (each `want_len` bytes, `want` of them)
/// with `threads` threads; files/s.
fn read_small(dir: &Path, threads: usize, want: usize, want_len: usize) -> Result<f64> {
    let names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    if names.len() != want {
        bail!(
            "{} holds {} files, wrote {want}",
            dir.display(),
            names.len()
        );
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(p) = names.get(i) else {
                            return Ok(());
                        };
                        let n = std::fs::read(p)?.len();
                        if n != want_len {
                            bail!("{} read {n} bytes, wrote {want_len}", p.display());
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| anyhow!("reader panicked"))?)
    })?;
    Ok(want as f64 / start.elapsed().as_secs_f64())
}

/// Raw GETs of the blocks of every file under `dir` of the served
/// volume, `SMALL_READERS` in flight (keys listed before the clock
/// starts); objects/s.
fn raw_small_gets(env: &Env, url: &str, token: &str, dir: &str) -> Result<f64> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (client, creds) = served_client(env, url, token).await?;
        let info = client.info().await?;
        let store_opts = BlockStoreOptions {
            cache_bytes: 0,
            ..BlockStoreOptions::default()
        };
        let store = BlockStore::open(&info.location, &creds, store_opts)?;
        let mut keys = Vec::new();
        for e in client.list(dir).await? {
            let (_, body) = client.body_ino(e.attr.ino).await?;
            keys.extend(
                body.blocks
                    .iter()
                    .map(|b| nokv_types::block_object_key(b.upload, b.index)),
            );
        }
        let start = Instant::now();
        let mut gets =
            futures::stream::iter(keys.iter().map(|k| store.get_raw(k))).buffered(SMALL_READERS);
        while let Some(b) = gets.next().await {
            b?;
        }
        Ok::<f64, anyhow::Error>(keys.len() as f64 / start.elapsed().as_secs_f64())
    })
}

fn tar_x(tarball: &Path, into: &Path) -> Result<Duration> {
    std::fs::create_dir_all(into)?;
    let start = Instant::now();
    let status = Command::new("tar")
        .arg("-C")
        .arg(into)
        .arg("-xf")
        .arg(tarball)
        .status()?;
    if !status.success() {
        bail!("tar x into {} failed: {status}", into.display());
    }
    Ok(start.elapsed())
}

/// A tarball of whole crates from `src`, up to `max_files` files.
fn make_tarball(src: &Path, max_files: usize, out: &Path) -> Result<(usize, u64)> {
    let mut crates: Vec<PathBuf> = std::fs::read_dir(src)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    crates.sort();
    let mut chosen = Vec::new();
    let (mut files, mut bytes) = (0usize, 0u64);
    for c in crates {
        let (f, b) = count(&c)?;
        if files + f > max_files {
            continue;
        }
        files += f;
        bytes += b;
        chosen.push(c.file_name().unwrap_or_default().to_os_string());
        if files + 50 >= max_files {
            break;
        }
    }
    if chosen.is_empty() {
        bail!("no crate under {} fits in {max_files} files", src.display());
    }
    let status = Command::new("tar")
        .arg("-C")
        .arg(src)
        .arg("-cf")
        .arg(out)
        .args(&chosen)
        .status()?;
    if !status.success() {
        bail!("tar c failed");
    }
    Ok((files, bytes))
}

fn count(dir: &Path) -> Result<(usize, u64)> {
    let (mut files, mut bytes) = (0, 0);
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let t = e.file_type()?;
            if t.is_dir() {
                stack.push(e.path());
            } else {
                files += 1;
                bytes += e.metadata()?.len();
            }
        }
    }
    Ok((files, bytes))
}

fn default_tar_source() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("$HOME is not set"))?;
    let reg = PathBuf::from(home).join(".cargo/registry/src");
    std::fs::read_dir(&reg)
        .with_context(|| format!("reading {}", reg.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir())
        .ok_or_else(|| anyhow!("no crate sources under {}", reg.display()))
}

fn nokv_fs_bin(args: &FuseArgs) -> Result<PathBuf> {
    if let Some(b) = &args.nokv_fs {
        return Ok(b.clone());
    }
    let me = std::env::current_exe()?;
    let b = me.with_file_name("nokv-fs");
    if !b.is_file() {
        bail!(
            "{} not found: build it (cargo build --release -p nokv-cli) or pass --nokv-fs",
            b.display()
        );
    }
    Ok(b)
}

/// A client of the served volume with the run's Garage credentials.
async fn served_client(env: &Env, url: &str, token: &str) -> Result<(Client, StoreCredentials)> {
    let creds = StoreCredentials {
        access_key_id: Some(env.garage.env.access_key_id.clone()),
        secret_access_key: Some(env.garage.env.secret_access_key.clone()),
        session_token: None,
    };
    let opts = ClientOptions {
        credentials: creds.clone(),
        ..ClientOptions::default()
    };
    Ok((Client::connect(url, Some(token), opts).await?, creds))
}

/// Raw GETs of every block of `path` on the served volume, 16 in flight.
fn raw_gets(env: &Env, url: &str, token: &str, path: &str) -> Result<f64> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (client, creds) = served_client(env, url, token).await?;
        let (_, body) = client.body(path).await?;
        let info = client.info().await?;
        let store_opts = BlockStoreOptions {
            cache_bytes: 0,
            ..BlockStoreOptions::default()
        };
        let store = BlockStore::open(&info.location, &creds, store_opts)?;
        let keys: Vec<String> = body
            .blocks
            .iter()
            .map(|b| nokv_types::block_object_key(b.upload, b.index))
            .collect();
        let start = Instant::now();
        let mut total = 0u64;
        let mut gets = futures::stream::iter(keys.iter().map(|k| store.get_raw(k))).buffered(16);
        while let Some(b) = gets.next().await {
            total += b?.len() as u64;
        }
        Ok::<f64, anyhow::Error>(mbps(total, start.elapsed()))
    })
}

/// Raw PUTs of `mib` MiB as distinct pseudo-random objects of the
/// served volume's block size, 16 in flight, to a scratch prefix of its
/// bucket (deleted afterwards). The data is made before the clock starts.
fn raw_puts(env: &Env, url: &str, token: &str, mib: usize) -> Result<f64> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async {
        let (client, creds) = served_client(env, url, token).await?;
        let info = client.info().await?;
        let location = match info.location {
            ObjectLocation::S3(mut s3) => {
                s3.prefix = format!("{}raw-puts/", s3.prefix);
                ObjectLocation::S3(s3)
            }
            other => bail!("raw PUTs need an S3 volume, not {}", other.describe()),
        };
        let store = BlockStore::open(&location, &creds, BlockStoreOptions::default())?;
        let bs = info.block_size.max(1) as usize;
        let n = (mib * CHUNK).div_ceil(bs);
        let mut rng = Rng::new(0x005e_ed0f_9075);
        let objects: Vec<(String, bytes::Bytes)> = (0..n)
            .map(|i| {
                let mut v = vec![0u8; bs];
                for w in v.chunks_mut(8) {
                    w.copy_from_slice(&rng.next_u64().to_le_bytes()[..w.len()]);
                }
                (
                    nokv_types::block_object_key(1, i as u32),
                    bytes::Bytes::from(v),
                )
            })
            .collect();
        let start = Instant::now();
        let mut puts =
            futures::stream::iter(objects.iter().map(|(k, b)| store.put_block(k, b.clone())))
                .buffer_unordered(16);
        while let Some(r) = puts.next().await {
            r?;
        }
        let took = start.elapsed();
        for (k, _) in &objects {
            store.delete(k).await?;
        }
        Ok::<f64, anyhow::Error>(mbps((n * bs) as u64, took))
    })
}

pub fn run(args: &FuseArgs, scratch: &Scratch) -> Result<Report> {
    if !Path::new("/dev/fuse").exists() {
        bail!("/dev/fuse does not exist: no FUSE on this machine");
    }
    let bin = nokv_fs_bin(args)?;
    eprintln!("starting a private Garage ...");
    let garage = PrivateGarage::start();
    let root = scratch.path().to_path_buf();
    let env = Env {
        bin,
        garage,
        scratch: root.clone(),
        durability: args.common.durability.name(),
    };
    let ext4 = scratch.sub("ext4")?;
    let run_id = std::process::id();

    // NoKV embedded and through a server, both on Garage.
    let emb_home = root.join("emb-vol");
    env.init(&emb_home, &format!("bench-{run_id}-emb/"))?;
    let srv_home = root.join("srv-vol");
    env.init(&srv_home, &format!("bench-{run_id}-srv/"))?;
    let mut serve = env
        .nokv()
        .arg("--home")
        .arg(&srv_home)
        .args(["serve", "--listen", "127.0.0.1:0", "--no-http"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut line = String::new();
    {
        let mut out = serve.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let mut byte = [0u8; 1];
        while out.read(&mut byte)? == 1 && byte[0] != b'\n' {
            line.push(byte[0] as char);
        }
    }
    let url = line
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| anyhow!("serve printed {line:?}"))?
        .to_string();
    let token = std::fs::read_to_string(srv_home.join("TOKEN"))?
        .trim()
        .to_string();
    let server = Some((url.as_str(), token.as_str()));

    let emb_dir = root.join("mnt-nokv");
    let srv_dir = root.join("mnt-nokv-server");
    let nocache_dir = root.join("mnt-nokv-server-nocache");
    let base_dir = root.join("mnt-nokv-server-baseline");
    let bind_dir = root.join("mnt-bindfs");
    let s3_dir = root.join("mnt-s3fs");
    let mut emb = env.mount_nokv(&emb_dir, &emb_home, None)?;
    let mut srv = env.mount_nokv(&srv_dir, &srv_home, server)?;
    let nocache = env.mount_nokv_with(
        &env.bin,
        &nocache_dir,
        &srv_home,
        server,
        &["--no-dir-cache"],
    )?;
    let baseline = match &args.baseline_nokv_fs {
        Some(b) => Some(env.mount_nokv_with(b, &base_dir, &srv_home, server, &[])?),
        None => None,
    };
    let bind = env.mount_bindfs(&bind_dir, &root.join("bindfs-under"))?;
    let mut s3 = env.mount_s3fs(&s3_dir, &format!("bench-{run_id}-s3fs"))?;

    // 1. create rate
    eprintln!("create rate ...");
    // Rounds that alternate the sides, median per side: the machine is
    // shared, and a burst of load should not land on one side only.
    let mut sides: Vec<(&str, &str, &Path, usize)> = vec![
        ("ext4", "ext4", &ext4, args.creates),
        (
            "bindfs (passthrough FUSE)",
            "bindfs",
            &bind_dir,
            args.creates,
        ),
        ("nokv mount (embedded)", "nokv", &emb_dir, args.creates),
        ("nokv mount --server", "nokv_server", &srv_dir, args.creates),
        (
            "nokv mount --server --no-dir-cache",
            "nokv_server_no_dir_cache",
            &nocache_dir,
            args.creates,
        ),
    ];
    if baseline.is_some() {
        sides.push((
            "nokv mount --server (baseline binary)",
            "nokv_server_baseline",
            &base_dir,
            args.creates,
        ));
    }
    sides.push(("s3fs (Garage)", "s3fs", &s3_dir, args.s3fs_creates));
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); sides.len()];
    for round in 0..ROUNDS {
        for (i, (_, key, dir, n)) in sides.iter().enumerate() {
            // Several sides mount the one served volume: a dir per side.
            rates[i].push(create_rate(
                dir,
                &format!("creates-{key}-{round}"),
                (*n / ROUNDS).max(1),
            )?);
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let rate: Vec<f64> = rates.iter_mut().map(median).collect();
    let by_key = |k: &str| {
        sides
            .iter()
            .position(|s| s.1 == k)
            .map(|i| rate[i])
            .unwrap_or(f64::NAN)
    };
    let (c_bind, c_emb, c_srv, c_s3) = (
        by_key("bindfs"),
        by_key("nokv"),
        by_key("nokv_server"),
        by_key("s3fs"),
    );
    let mut creates = Table::new(&["side", "files/s", "vs bindfs", "vs s3fs"]);
    for (i, (side, _, _, _)) in sides.iter().enumerate() {
        creates.row(vec![
            side.to_string(),
            report::int(rate[i]),
            report::ratio(rate[i], c_bind),
            report::ratio(rate[i], c_s3),
        ]);
    }
    let create_json: serde_json::Map<String, serde_json::Value> = sides
        .iter()
        .zip(&rate)
        .map(|(s, r)| (s.1.to_string(), json!(r)))
        .collect();
    let ok = |b: bool| if b { "met" } else { "NOT met" };
    let create_note = format!(
        "create: embedded {} bindfs (target >= 1.0x: {}); --server {} (target >= 0.5x: {}); vs s3fs {} / {} (target >= 20x: {})",
        report::ratio(c_emb, c_bind),
        ok(c_emb >= c_bind),
        report::ratio(c_srv, c_bind),
        ok(c_srv >= 0.5 * c_bind),
        report::ratio(c_emb, c_s3),
        report::ratio(c_srv, c_s3),
        ok(c_emb >= 20.0 * c_s3 && c_srv >= 20.0 * c_s3)
    );
    let create_title =
        format!("Empty-file create rate (one thread; median of {ROUNDS} alternating rounds)");
    if args.creates_only {
        stop_all(
            [emb, srv, nocache, s3, bind].into_iter().chain(baseline),
            &mut serve,
        )?;
        return Ok(Report {
            bench: "fuse",
            title: format!(
                "FUSE mounts side by side: {} creates ({} on s3fs); nokv durability {}",
                args.creates,
                args.s3fs_creates,
                args.common.durability.name()
            ),
            tables: vec![(create_title, creates)],
            notes: vec![create_note],
            params: json!({"creates": args.creates, "s3fs_creates": args.s3fs_creates, "creates_only": true}),
            results: json!({ "create_per_s": create_json }),
        });
    }

    // 2. sequential write, 3. cold sequential read
    let mib = args.size_mib;
    eprintln!("sequential write {mib} MiB ...");
    // Two rounds, the second in reverse order, each write followed by
    // an (untimed) `sync`: otherwise a side pays for the writeback of
    // the one before it (ext4's 1 GiB of dirty pages lands on the disk
    // Garage and the spools share). Each side's rate is the mean.
    let sides = [ext4.as_path(), &emb_dir, &srv_dir, &s3_dir];
    let mut rates = [[0f64; 2]; 4];
    for (round, name) in ["big", "big-2"].into_iter().enumerate() {
        let mut order: Vec<usize> = (0..sides.len()).collect();
        if round == 1 {
            order.reverse();
        }
        for i in order {
            rates[i][round] = seq_write(&sides[i].join(name), mib, (round * 4 + i + 1) as u64)?;
            sync_disks();
        }
    }
    let mean = |r: [f64; 2]| (r[0] + r[1]) / 2.0;
    let (w_ext4, w_emb, w_srv, w_s3) = (
        mean(rates[0]),
        mean(rates[1]),
        mean(rates[2]),
        mean(rates[3]),
    );
    for (side, r) in ["ext4", "embedded", "--server", "s3fs"].iter().zip(rates) {
        eprintln!("  write {side}: {:.0} / {:.0} MB/s", r[0], r[1]);
    }
    let raw_put = raw_puts(&env, &url, &token, mib)?;
    eprintln!("  raw PUTs: {raw_put:.0} MB/s");
    sync_disks();
    eprintln!("cold sequential read ...");
    // Fresh mount processes: no block cache, no kernel page cache.
    emb.stop()?;
    srv.stop()?;
    s3.stop()?;
    let mut emb = env.mount_nokv(&emb_dir, &emb_home, None)?;
    let mut srv = env.mount_nokv(&srv_dir, &srv_home, server)?;
    let mut s3 = env.mount_s3fs(&s3_dir, &format!("bench-{run_id}-s3fs"))?;
    let want = (mib * CHUNK) as u64;
    let mut reads = Vec::new();
    for (side, dir) in [
        ("nokv mount (embedded)", &emb_dir),
        ("nokv mount --server", &srv_dir),
        ("s3fs (Garage)", &s3_dir),
    ] {
        sync_disks();
        let (r, n) = seq_read(&dir.join("big"))?;
        if n != want {
            bail!("{side} read {n} bytes, wrote {want}");
        }
        reads.push((side, r));
    }
    let raw = raw_gets(&env, &url, &token, "/big")?;
    let r_s3 = reads[2].1;
    let mut bytes_table = Table::new(&[
        "side",
        "write MB/s",
        "cold read MB/s",
        "read vs s3fs",
        "read vs raw GETs",
        "write vs s3fs",
        "write vs raw PUTs",
    ]);
    bytes_table.row(vec![
        "ext4 (page cache, no fsync)".into(),
        format!("{w_ext4:.0}"),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]);
    for ((side, r), w) in reads.iter().zip([w_emb, w_srv, w_s3]) {
        bytes_table.row(vec![
            side.to_string(),
            format!("{w:.0}"),
            format!("{r:.0}"),
            report::ratio(*r, r_s3),
            report::ratio(*r, raw),
            report::ratio(w, w_s3),
            report::ratio(w, raw_put),
        ]);
    }
    bytes_table.row(vec![
        "raw parallel GETs / PUTs (16 in flight)".into(),
        format!("{raw_put:.0}"),
        format!("{raw:.0}"),
        report::ratio(raw, r_s3),
        "1.00x".into(),
        report::ratio(raw_put, w_s3),
        "1.00x".into(),
    ]);

    // 4. tar x of a real source tree
    let src = match &args.tar_source {
        Some(s) => s.clone(),
        None => default_tar_source()?,
    };
    let tarball = root.join("src.tar");
    let (files, bytes) = make_tarball(&src, args.tar_files, &tarball)?;
    eprintln!("tar x of {files} files ...");
    let t_ext4 = tar_x(&tarball, &ext4.join("tarx"))?;
    let t_emb = tar_x(&tarball, &emb_dir.join("tarx"))?;
    let t_srv = tar_x(&tarball, &srv_dir.join("tarx"))?;
    let t_s3 = tar_x(&tarball, &s3_dir.join("tarx"))?;
    // `--async-close` mounts (a volume of its own for the embedded one):
    // tar returns before the last publishes end, so the time until the
    // unmount (which publishes everything) is reported too.
    let ac_home = root.join("emb-async-vol");
    env.init(&ac_home, &format!("bench-{run_id}-emb-async/"))?;
    let ac_args = ["--async-close"];
    let emb_ac_dir = root.join("mnt-nokv-async");
    let emb_ac = env.mount_nokv_with(&env.bin, &emb_ac_dir, &ac_home, None, &ac_args)?;
    let t_emb_ac = tar_x(&tarball, &emb_ac_dir.join("tarx"))?;
    let t_emb_ac_all = t_emb_ac + timed(|| emb_ac.unmount())?;
    let srv_ac_dir = root.join("mnt-nokv-server-async");
    let srv_ac = env.mount_nokv_with(&env.bin, &srv_ac_dir, &srv_home, server, &ac_args)?;
    let t_srv_ac = tar_x(&tarball, &srv_ac_dir.join("tarx"))?;
    let t_srv_ac_all = t_srv_ac + timed(|| srv_ac.unmount())?;
    let mut tar = Table::new(&[
        "side",
        "seconds",
        "files/s",
        "vs ext4 (time)",
        "vs s3fs (speed)",
        "all published (s)",
    ]);
    for (side, t, all) in [
        ("ext4", t_ext4, None),
        ("nokv mount (embedded)", t_emb, None),
        ("nokv mount --server", t_srv, None),
        (
            "nokv mount --async-close (embedded)",
            t_emb_ac,
            Some(t_emb_ac_all),
        ),
        (
            "nokv mount --server --async-close",
            t_srv_ac,
            Some(t_srv_ac_all),
        ),
        ("s3fs (Garage)", t_s3, None),
    ] {
        tar.row(vec![
            side.into(),
            format!("{:.2}", t.as_secs_f64()),
            report::int(files as f64 / t.as_secs_f64()),
            report::ratio(t.as_secs_f64(), t_ext4.as_secs_f64()),
            report::ratio(t_s3.as_secs_f64(), t.as_secs_f64()),
            format!("{:.2}", all.unwrap_or(t).as_secs_f64()),
        ]);
    }

    // 5. small files: written (close publishes each), then read cold by
    // 16 threads (a data loader), next to raw GETs of the same blocks.
    let (n_small, small_len) = (args.small_files, args.small_kib * 1024);
    eprintln!("{n_small} small files of {} KiB ...", args.small_kib);
    let mut small_writes = Vec::new();
    for (i, dir) in [&emb_dir, &srv_dir, &s3_dir].into_iter().enumerate() {
        small_writes.push(write_small(
            &dir.join("small"),
            n_small,
            small_len,
            100 + i as u64,
        )?);
    }
    emb.stop()?;
    srv.stop()?;
    s3.stop()?;
    let emb = env.mount_nokv(&emb_dir, &emb_home, None)?;
    let srv = env.mount_nokv(&srv_dir, &srv_home, server)?;
    let s3 = env.mount_s3fs(&s3_dir, &format!("bench-{run_id}-s3fs"))?;
    let mut small_reads = Vec::new();
    for dir in [&emb_dir, &srv_dir, &s3_dir] {
        sync_disks();
        small_reads.push(read_small(
            &dir.join("small"),
            SMALL_READERS,
            n_small,
            small_len,
        )?);
    }
    let small_raw = raw_small_gets(&env, &url, &token, "/small")?;
    let mut small = Table::new(&[
        "side",
        "write files/s",
        "cold read files/s",
        "read vs s3fs",
        "read vs raw GETs",
    ]);
    for (i, side) in [
        "nokv mount (embedded)",
        "nokv mount --server",
        "s3fs (Garage)",
    ]
    .into_iter()
    .enumerate()
    {
        small.row(vec![
            side.into(),
            report::int(small_writes[i]),
            report::int(small_reads[i]),
            report::ratio(small_reads[i], small_reads[2]),
            report::ratio(small_reads[i], small_raw),
        ]);
    }
    small.row(vec![
        format!("raw parallel GETs ({SMALL_READERS} in flight)"),
        "-".into(),
        report::int(small_raw),
        report::ratio(small_raw, small_reads[2]),
        "1.00x".into(),
    ]);

    stop_all(
        [emb, srv, nocache, s3, bind].into_iter().chain(baseline),
        &mut serve,
    )?;

    let notes = vec![
        create_note,
        format!(
            "cold read {mib} MiB (embedded): {} s3fs (target >= 1.5x: {}), {} raw GETs (target >= 0.8x: {})",
            report::ratio(reads[0].1, r_s3),
            ok(reads[0].1 >= 1.5 * r_s3),
            report::ratio(reads[0].1, raw),
            ok(reads[0].1 >= 0.8 * raw)
        ),
        format!(
            "sequential write (embedded): {} s3fs (target >= 1.5x: {}), {} raw PUTs",
            report::ratio(w_emb, w_s3),
            ok(w_emb >= 1.5 * w_s3),
            report::ratio(w_emb, raw_put)
        ),
        format!(
            "tar x of {files} files ({}) from {}",
            report::bytes(bytes),
            src.display()
        ),
    ];
    Ok(Report {
        bench: "fuse",
        title: format!(
            "FUSE mounts side by side: {} creates ({} on s3fs), {mib} MiB sequential, tar x of {files} files; nokv durability {}",
            args.creates,
            args.s3fs_creates,
            args.common.durability.name()
        ),
        tables: vec![
            (create_title, creates),
            (format!("Sequential {mib} MiB (write includes close, mean of 2 rounds in opposite orders, sync between sides; read is cold)"), bytes_table),
            ("tar x of a source tree".into(), tar),
            (format!("{n_small} small files of {} KiB: written one by one, read cold by {SMALL_READERS} threads", args.small_kib), small),
        ],
        notes,
        params: json!({"creates": args.creates, "s3fs_creates": args.s3fs_creates, "size_mib": mib, "tar_files": files}),
        results: json!({
            "create_per_s": create_json,
            "write_mbps": {"ext4": w_ext4, "nokv": w_emb, "nokv_server": w_srv, "s3fs": w_s3, "raw_puts": raw_put},
            "cold_read_mbps": {"nokv": reads[0].1, "nokv_server": reads[1].1, "s3fs": r_s3, "raw_gets": raw},
            "tar_x_s": {"ext4": t_ext4.as_secs_f64(), "nokv": t_emb.as_secs_f64(), "nokv_server": t_srv.as_secs_f64(), "nokv_async_close": t_emb_ac.as_secs_f64(), "nokv_server_async_close": t_srv_ac.as_secs_f64(), "s3fs": t_s3.as_secs_f64()},
            "tar_x_all_published_s": {"nokv_async_close": t_emb_ac_all.as_secs_f64(), "nokv_server_async_close": t_srv_ac_all.as_secs_f64()},
            "small_write_files_per_s": {"nokv": small_writes[0], "nokv_server": small_writes[1], "s3fs": small_writes[2]},
            "small_cold_read_files_per_s": {"nokv": small_reads[0], "nokv_server": small_reads[1], "s3fs": small_reads[2], "raw_gets": small_raw},
        }),
    })
}
