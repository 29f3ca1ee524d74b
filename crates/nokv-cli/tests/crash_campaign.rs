//! Crash campaign: a real `nokv-fs serve --durability sync` over Garage,
//! SIGKILLed at random moments while client tasks (each with its own
//! gRPC connection) publish, replace, rename and remove files and
//! directories with known contents. After every restart:
//!
//! - every acknowledged operation is present (each writer's subtree is
//!   exactly its model; the one operation in flight at the kill is
//!   either wholly there or wholly absent);
//! - every visible file reads back as one whole version it was given
//!   (no torn or partial body: reads verify every block and the digest);
//! - fsck is clean (no referenced block missing, nothing leaked);
//! - the watch log, replayed from the start, gives exactly the namespace.
//!
//! At the end, after the staging deadline and a GC, the bucket holds
//! exactly the blocks the namespace references.
//!
//! A second test SIGKILLs client processes (`nokv-fs put`) in the middle
//! of their publishes, with the same end check.
//!
//! CI runs 50 server kills; `NOKV_CRASH_KILLS=1000` makes the long run
//! (`NOKV_CRASH_SEED` picks another random sequence).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nokv_client::{
    BlockStoreOptions, Client, ClientOptions, Error, FileKind, PutOptions, WatchEvent,
};
use nokv_object::BlockStore;
use nokv_testkit::S3Env;
use support::bin;

const BS: u64 = 64 * 1024;
const WRITERS: usize = 4;
const STAGING_TTL: Duration = Duration::from_secs(3);

/// xorshift64*: a reproducible random sequence per seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Content of the `v`-th version a writer gives a file: 1 byte to
/// 2.3 blocks, every byte tied to (writer, version), so a block of
/// another version or file cannot pass for it.
fn content(writer: usize, v: u64, rng: &mut Rng) -> Vec<u8> {
    let len = 1 + rng.below(BS * 23 / 10) as usize;
    let tag = format!("w{writer}v{v}:");
    tag.bytes().cycle().take(len).collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File(Vec<u8>),
}

type Tree = BTreeMap<String, Node>;

fn parent_of(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// `tree` with `from` (and everything below it) moved to `to`.
fn moved(tree: &Tree, from: &str, to: &str) -> Tree {
    tree.iter()
        .map(|(p, n)| {
            let p = if p == from {
                to.to_string()
            } else if let Some(rest) = p.strip_prefix(&format!("{from}/")) {
                format!("{to}/{rest}")
            } else {
                p.clone()
            };
            (p, n.clone())
        })
        .collect()
}

fn without(tree: &Tree, gone: &str) -> Tree {
    tree.iter()
        .filter(|(p, _)| *p != gone && !p.starts_with(&format!("{gone}/")))
        .map(|(p, n)| (p.clone(), n.clone()))
        .collect()
}

#[derive(Debug, Clone)]
enum Op {
    Put(String, Vec<u8>),
    RenameFile(String, String),
    RemoveFile(String),
    Mkdir(String),
    RenameDir(String, String),
    RemoveTree(String),
}

impl Op {
    fn apply(&self, tree: &Tree) -> Tree {
        let mut t = tree.clone();
        match self {
            Op::Put(p, data) => {
                t.insert(p.clone(), Node::File(data.clone()));
            }
            Op::Mkdir(p) => {
                t.insert(p.clone(), Node::Dir);
            }
            Op::RenameFile(a, b) | Op::RenameDir(a, b) => t = moved(&t, a, b),
            Op::RemoveFile(p) | Op::RemoveTree(p) => t = without(&t, p),
        }
        t
    }

    async fn run(&self, c: &Client) -> nokv_client::Result<()> {
        match self {
            Op::Put(p, data) => c.put_bytes(p, data, PutOptions::default()).await.map(drop),
            Op::RenameFile(a, b) | Op::RenameDir(a, b) => c.rename(a, b, false).await,
            Op::RemoveFile(p) => c.remove(p).await,
            Op::Mkdir(p) => c.mkdir(p, 0o755).await.map(drop),
            Op::RemoveTree(p) => c.remove_all(p).await.map(drop),
        }
    }
}

/// One client task's share of the namespace: `/w<id>` and below.
struct Writer {
    id: usize,
    client: Client,
    model: Tree,
    rng: Rng,
    names: u64,
    versions: u64,
    acked: u64,
    /// The op that failed when the server died: committed or not.
    in_doubt: Option<Op>,
    /// What the writer is doing now (for a watchdog report).
    doing: Arc<Mutex<String>>,
}

impl Writer {
    fn root(&self) -> String {
        format!("/w{}", self.id)
    }

    fn pick(&mut self, kind: FileKind) -> Option<String> {
        let all: Vec<&String> = self
            .model
            .iter()
            .filter(|(_, n)| {
                matches!(
                    (n, kind),
                    (Node::Dir, FileKind::Dir) | (Node::File(_), FileKind::File)
                )
            })
            .map(|(p, _)| p)
            .collect();
        if all.is_empty() {
            return None;
        }
        Some(all[self.rng.below(all.len() as u64) as usize].clone())
    }

    fn fresh(&mut self, dir: &str, prefix: &str) -> String {
        self.names += 1;
        format!("{dir}/{prefix}{}", self.names)
    }

    fn some_dir(&mut self) -> String {
        if self.rng.below(2) == 0 {
            self.root()
        } else {
            self.pick(FileKind::Dir).unwrap_or_else(|| self.root())
        }
    }

    fn next_op(&mut self) -> Op {
        let files = self
            .model
            .values()
            .filter(|n| matches!(n, Node::File(_)))
            .count();
        let dirs = self.model.len() - files;
        loop {
            let roll = self.rng.below(100);
            let op = match roll {
                0..=29 if files < 24 => {
                    let dir = self.some_dir();
                    let path = self.fresh(&dir, "f");
                    self.versions += 1;
                    Some(Op::Put(
                        path,
                        content(self.id, self.versions, &mut self.rng),
                    ))
                }
                30..=49 => self.pick(FileKind::File).map(|p| {
                    self.versions += 1;
                    Op::Put(p, content(self.id, self.versions, &mut self.rng))
                }),
                50..=59 => self.pick(FileKind::File).map(|p| {
                    let dir = self.some_dir();
                    Op::RenameFile(p, self.fresh(&dir, "f"))
                }),
                60..=69 => self.pick(FileKind::File).map(Op::RemoveFile),
                70..=79 if dirs < 6 => {
                    let root = self.root();
                    Some(Op::Mkdir(self.fresh(&root, "d")))
                }
                80..=89 => self.pick(FileKind::Dir).map(|p| {
                    let root = self.root();
                    Op::RenameDir(p, self.fresh(&root, "d"))
                }),
                90..=99 => self.pick(FileKind::Dir).map(Op::RemoveTree),
                _ => None,
            };
            if let Some(op) = op {
                return op;
            }
        }
    }

    /// Runs ops until one fails (the server is gone).
    async fn run_until_failure(mut self) -> Writer {
        loop {
            let op = self.next_op();
            *self.doing.lock().unwrap() = format!("{op:?}").chars().take(200).collect();
            match op.run(&self.client).await {
                Ok(()) => {
                    self.model = op.apply(&self.model);
                    self.acked += 1;
                }
                Err(e) => {
                    // Only the server's death may stop a writer: every
                    // op is valid against the model.
                    assert!(
                        matches!(e, Error::Io(_) | Error::Metadata(_)),
                        "writer {}: {op:?} failed with a non-transport error: {e:?}",
                        self.id
                    );
                    self.in_doubt = Some(op);
                    return self;
                }
            }
        }
    }
}

/// The namespace below `root` as the server shows it, with every file
/// read back (verified blocks and whole-body digest).
async fn actual_tree(c: &Client, root: &str) -> Tree {
    let mut tree = Tree::new();
    let mut dirs = vec![root.to_string()];
    while let Some(dir) = dirs.pop() {
        for e in c.list(&dir).await.unwrap() {
            let path = format!("{dir}/{}", String::from_utf8_lossy(&e.name));
            match e.attr.kind {
                FileKind::Dir => {
                    tree.insert(path.clone(), Node::Dir);
                    dirs.push(path);
                }
                FileKind::File => {
                    let bytes = c
                        .read(&path)
                        .await
                        .unwrap_or_else(|err| panic!("{path}: visible but unreadable: {err}"));
                    assert_eq!(bytes.len() as u64, e.attr.size, "{path}: partial body");
                    tree.insert(path, Node::File(bytes.to_vec()));
                }
                FileKind::Symlink => panic!("{path}: no writer makes symlinks"),
            }
        }
    }
    tree
}

/// The paths on which two trees differ, for a failure message.
fn tree_diff(got: &Tree, want: &Tree) -> String {
    let mut out = Vec::new();
    for (p, n) in want {
        match got.get(p) {
            None => out.push(format!("missing {p}")),
            Some(g) if g != n => out.push(format!("different {p}")),
            _ => {}
        }
    }
    for p in got.keys() {
        if !want.contains_key(p) {
            out.push(format!("extra {p}"));
        }
    }
    out.join(", ")
}

/// The tree of snapshot `name` (of `/`), read through the server.
async fn snapshot_tree(c: &Client, name: &str) -> Tree {
    let s = c.at_snapshot(name);
    let mut tree = Tree::new();
    let mut dirs = vec![String::new()];
    while let Some(dir) = dirs.pop() {
        let listed = if dir.is_empty() {
            "/".to_string()
        } else {
            dir.clone()
        };
        for e in s.list(&listed).await.unwrap() {
            let path = format!("{dir}/{}", String::from_utf8_lossy(&e.name));
            match e.attr.kind {
                FileKind::Dir => {
                    tree.insert(path.clone(), Node::Dir);
                    dirs.push(path);
                }
                FileKind::File => {
                    let bytes = s.read(&path).await.unwrap_or_else(|err| {
                        panic!("snapshot {name}: {path}: listed but unreadable: {err}")
                    });
                    tree.insert(path, Node::File(bytes.to_vec()));
                }
                FileKind::Symlink => panic!("{path}: no writer makes symlinks"),
            }
        }
    }
    tree
}

/// Checks a writer's subtree against its model and settles the op in
/// doubt. Returns whether that op had committed.
async fn settle(w: &mut Writer, verifier: &Client) -> Option<bool> {
    let actual = actual_tree(verifier, &w.root()).await;
    let op = w.in_doubt.take();
    let Some(op) = op else {
        assert_eq!(actual, w.model, "writer {}: namespace differs", w.id);
        return None;
    };
    let after = op.apply(&w.model);
    if actual == w.model {
        return Some(false);
    }
    if actual == after {
        w.model = after;
        return Some(true);
    }
    if let Op::RemoveTree(top) = &op {
        // `rm -r` removes one name per command: an interrupted one
        // leaves a smaller tree (never a name without its parent).
        let ok = actual.iter().all(|(p, n)| w.model.get(p) == Some(n))
            && after.iter().all(|(p, n)| actual.get(p) == Some(n))
            && actual
                .keys()
                .filter(|p| p.starts_with(&format!("{top}/")))
                .all(|p| actual.contains_key(parent_of(p)));
        if ok {
            w.model = actual;
            return Some(true);
        }
    }
    let diff: Vec<_> = actual
        .keys()
        .chain(w.model.keys())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|p| actual.get(*p) != w.model.get(*p))
        .collect();
    panic!(
        "writer {}: the namespace is neither before nor after {op:?}; differing paths: {diff:?}",
        w.id
    );
}

/// Namespace replayed from the watch log: path -> (kind, digest).
#[derive(Default)]
struct Replay {
    cursor: u64,
    tree: BTreeMap<String, (FileKind, Option<[u8; 32]>)>,
    events: u64,
}

impl Replay {
    fn apply(&mut self, e: &WatchEvent) {
        use nokv_client::EventKind as K;
        self.events += 1;
        match e.kind {
            K::Created | K::Published | K::Replaced | K::AttrChanged => {
                self.tree.insert(e.path.clone(), (e.file_kind, e.digest));
            }
            K::Removed => {
                let gone = e.path.clone();
                self.tree
                    .retain(|p, _| *p != gone && !p.starts_with(&format!("{gone}/")));
            }
            K::Renamed => {
                let from = e.old_path.clone().expect("a rename event has an old path");
                let to = &e.path;
                let keys: Vec<String> = self
                    .tree
                    .keys()
                    .filter(|p| **p == from || p.starts_with(&format!("{from}/")))
                    .cloned()
                    .collect();
                let mut moved_nodes = Vec::new();
                for k in keys {
                    let v = self.tree.remove(&k).expect("listed key");
                    moved_nodes.push((format!("{to}{}", &k[from.len()..]), v));
                }
                self.tree.extend(moved_nodes);
            }
            // Snapshots change no path of the live tree.
            K::SnapshotCreated | K::SnapshotRetired => {}
        }
    }

    async fn catch_up(&mut self, c: &Client) {
        loop {
            let page = c.watch_page("/", self.cursor, 4096).await.unwrap();
            for e in &page.events {
                self.apply(e);
            }
            let done = page.events.is_empty() || page.next == self.cursor;
            self.cursor = page.next;
            if done {
                return;
            }
        }
    }

    /// The replayed namespace must be the writers' models exactly.
    fn check(&self, writers: &[Writer]) {
        let mut expected = BTreeMap::new();
        for w in writers {
            expected.insert(w.root(), (FileKind::Dir, None));
            for (p, n) in &w.model {
                let v = match n {
                    Node::Dir => (FileKind::Dir, None),
                    Node::File(d) => (FileKind::File, Some(*blake3::hash(d).as_bytes())),
                };
                expected.insert(p.clone(), v);
            }
        }
        if self.tree != expected {
            let diff: Vec<_> = self
                .tree
                .keys()
                .chain(expected.keys())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .filter(|p| self.tree.get(*p) != expected.get(*p))
                .take(10)
                .collect();
            panic!("the watch log does not replay to the namespace: {diff:?}");
        }
    }
}

/// A `nokv-fs serve` process on a fixed port, restartable.
struct Served {
    child: Option<Child>,
    home: PathBuf,
    port: u16,
    env: S3Env,
    log: PathBuf,
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

impl Served {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        for attempt in 0.. {
            let mut child = Command::new(bin())
                .args(["serve", "--listen", &format!("127.0.0.1:{}", self.port)])
                .args(["--no-http", "--gc-interval", "0", "--durability", "sync"])
                .env("NOKV_HOME", &self.home)
                .env("AWS_ACCESS_KEY_ID", &self.env.access_key_id)
                .env("AWS_SECRET_ACCESS_KEY", &self.env.secret_access_key)
                .env_remove("NOKV_SERVER")
                .env_remove("NOKV_TOKEN")
                .stdout(Stdio::piped())
                .stderr(log.try_clone().unwrap())
                .spawn()
                .unwrap();
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            if line.starts_with("listening on http://") {
                self.child = Some(child);
                return;
            }
            let _ = child.wait();
            assert!(
                attempt < 50,
                "the server does not come back: {}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            // The port may still be held by the killed process's sockets.
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until the restarted server answers (the client's channel
/// notices the old connection is gone and dials again).
async fn wait_ready(c: &Client) {
    for _ in 0..100 {
        if c.info().await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.info().await.expect("the restarted server answers");
}

fn init_volume(home: &Path, env: &S3Env, prefix: &str) {
    let out = Command::new(bin())
        .args(["init", "--object-backend", "s3", "--block-size"])
        .arg(BS.to_string())
        .args(["--s3-bucket", &env.bucket, "--s3-endpoint", &env.endpoint])
        .args(["--s3-region", &env.region, "--s3-prefix", prefix])
        .env("NOKV_HOME", home)
        .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "init: {out:?}");
}

fn client_opts(env: &S3Env) -> ClientOptions {
    ClientOptions {
        credentials: env.credentials(),
        staging_ttl: STAGING_TTL,
        store: BlockStoreOptions {
            timeout: Duration::from_secs(10),
            ..BlockStoreOptions::default()
        },
        ..ClientOptions::default()
    }
}

fn token(home: &Path) -> String {
    std::fs::read_to_string(home.join("TOKEN"))
        .unwrap()
        .trim()
        .to_string()
}

/// After the staging deadline and a GC: fsck clean, nothing staged,
/// queued or leaked, and the bucket holds exactly the referenced blocks.
async fn final_check(c: &Client, store: &BlockStore, files: &[String]) {
    tokio::time::sleep(STAGING_TTL + Duration::from_millis(200)).await;
    let gc = c.gc().await.unwrap();
    let report = c.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.leaked.is_empty(), "leaked: {:?}", report.leaked);
    assert_eq!(report.staged_objects, 0, "{report:?}");
    assert_eq!(report.queued_objects, 0, "{report:?}");
    let mut referenced = BTreeSet::new();
    for f in files {
        let (_, body) = c.body(f).await.unwrap();
        referenced.extend(body.blocks.iter().map(|b| b.object_key()));
    }
    let in_bucket: BTreeSet<String> = store
        .list_keys("blocks/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        in_bucket, referenced,
        "the bucket must hold exactly the referenced blocks"
    );
    eprintln!(
        "final: gc deleted {} queued + {} staged blocks ({} expired uploads); bucket = {} referenced blocks",
        gc.queued_blocks_deleted,
        gc.staged_blocks_deleted,
        gc.expired_uploads,
        referenced.len()
    );
}

fn unique(tag: &str) -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{tag}-{t:x}-{}/", std::process::id())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sigkill_campaign_loses_nothing() {
    let kills = env_u64("NOKV_CRASH_KILLS", 50);
    let seed = env_u64("NOKV_CRASH_SEED", 0x00c0_ffee);
    let env = S3Env::shared();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let prefix = unique("crash");
    init_volume(&home, &env, &prefix);
    let mut server = Served {
        child: None,
        home: home.clone(),
        port: free_port(),
        env: env.clone(),
        log: tmp.path().join("server.log"),
    };
    server.start();
    let tok = token(&home);
    let opts = client_opts(&env);
    let verifier = Client::connect(&server.url(), Some(&tok), opts.clone())
        .await
        .unwrap();
    let mut writers = Vec::new();
    for id in 0..WRITERS {
        verifier.mkdir(&format!("/w{id}"), 0o755).await.unwrap();
        writers.push(Writer {
            id,
            client: Client::connect(&server.url(), Some(&tok), opts.clone())
                .await
                .unwrap(),
            model: Tree::new(),
            rng: Rng::new(seed ^ ((id as u64 + 1) * 0x1000_0001)),
            names: 0,
            versions: 0,
            acked: 0,
            in_doubt: None,
            doing: Arc::new(Mutex::new(String::new())),
        });
    }
    let mut rng = Rng::new(seed);
    let mut replay = Replay::default();
    let (mut committed, mut not_committed) = (0u64, 0u64);
    let started = Instant::now();
    let writers_doing: Vec<Arc<Mutex<String>>> = writers.iter().map(|w| w.doing.clone()).collect();
    // Snapshots of `/` taken between rounds (writers idle) with the tree
    // each must keep reading, whatever the kills and writes after it.
    let mut snapshots: Vec<(String, Tree)> = Vec::new();
    let mut snapshot_checks = 0u64;
    for round in 0..kills {
        let tasks: Vec<_> = writers
            .drain(..)
            .map(|w| tokio::spawn(w.run_until_failure()))
            .collect();
        // Let the writers run, then kill the server wherever it is.
        tokio::time::sleep(Duration::from_millis(20 + rng.below(200))).await;
        server.kill();
        let doing: Vec<_> = writers_doing.clone();
        for (i, t) in tasks.into_iter().enumerate() {
            // A writer must notice a dead server, never hang (an RPC
            // gives up after 60 s at most).
            match tokio::time::timeout(Duration::from_secs(150), t).await {
                Ok(w) => writers.push(w.unwrap()),
                Err(_) => panic!(
                    "round {round}: writer {i} still busy 150 s after the kill: {}",
                    doing[i].lock().unwrap()
                ),
            }
        }
        if (round + 1) % 50 == 0 {
            eprintln!(
                "{} kills survived ({:.0} s)",
                round + 1,
                started.elapsed().as_secs_f64()
            );
        }
        server.start();
        wait_ready(&verifier).await;
        for w in writers.iter_mut() {
            match settle(w, &verifier).await {
                Some(true) => committed += 1,
                Some(false) => not_committed += 1,
                None => {}
            }
        }
        replay.catch_up(&verifier).await;
        replay.check(&writers);
        let report = verifier.fsck(false).await.unwrap();
        assert!(
            report.is_clean() && report.leaked.is_empty(),
            "round {round}: {report:?}"
        );
        // One live snapshot per round (in turn) still reads exactly its tree.
        if !snapshots.is_empty() {
            let (name, want) = &snapshots[round as usize % snapshots.len()];
            let got = snapshot_tree(&verifier, name).await;
            assert!(
                got == *want,
                "round {round}: snapshot {name} changed: {}",
                tree_diff(&got, want)
            );
            snapshot_checks += 1;
        }
        if round % 10 == 0 {
            if snapshots.len() >= 3 {
                let (old, _) = snapshots.remove(0);
                verifier.snapshot_retire(&old).await.unwrap();
            }
            let name = format!("k{round}");
            let mut want = Tree::new();
            for w in &writers {
                want.insert(w.root(), Node::Dir);
                want.extend(actual_tree(&verifier, &w.root()).await);
            }
            verifier.snapshot_create("/", &name).await.unwrap();
            snapshots.push((name, want));
        }
    }
    for (name, want) in snapshots.drain(..) {
        assert!(
            snapshot_tree(&verifier, &name).await == want,
            "snapshot {name} changed"
        );
        verifier.snapshot_retire(&name).await.unwrap();
        snapshot_checks += 1;
    }
    let acked: u64 = writers.iter().map(|w| w.acked).sum();
    let files: Vec<String> = writers
        .iter()
        .flat_map(|w| {
            w.model
                .iter()
                .filter(|(_, n)| matches!(n, Node::File(_)))
                .map(|(p, _)| p.clone())
        })
        .collect();
    let store = BlockStore::open(
        &env.location(&prefix),
        &env.credentials(),
        BlockStoreOptions::default(),
    )
    .unwrap();
    final_check(&verifier, &store, &files).await;
    eprintln!(
        "crash campaign: {kills} server SIGKILLs survived in {:.1}s, {acked} acknowledged ops all present, \
         {} ops in flight at a kill ({committed} had committed, {not_committed} had not), \
         {} watch events replayed to the namespace, {} files at the end, \
         {snapshot_checks} snapshot reads exact; nothing lost",
        started.elapsed().as_secs_f64(),
        committed + not_committed,
        replay.events,
        files.len()
    );
    assert!(acked > kills, "too little work between kills: {acked} ops");
}

/// Bytes for the client-kill test: `len` bytes tied to `(file, attempt)`.
fn attempt_bytes(file: usize, attempt: usize, len: usize) -> Vec<u8> {
    format!("file{file}-attempt{attempt};")
        .bytes()
        .cycle()
        .take(len)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_sigkill_mid_publish_leaves_nothing_behind() {
    const FILES: usize = 3;
    let attempts = env_u64("NOKV_CLIENT_KILLS", 20) as usize;
    let env = S3Env::shared();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let prefix = unique("clientkill");
    init_volume(&home, &env, &prefix);
    let mut server = Served {
        child: None,
        home: home.clone(),
        port: free_port(),
        env: env.clone(),
        log: tmp.path().join("server.log"),
    };
    server.start();
    let tok = token(&home);
    let c = Client::connect(&server.url(), Some(&tok), client_opts(&env))
        .await
        .unwrap();
    c.mkdir("/c", 0o755).await.unwrap();
    let mut rng = Rng::new(env_u64("NOKV_CRASH_SEED", 7));
    // Per file: every attempt's bytes, and the index of the last
    // attempt known to be acknowledged.
    let mut tried: Vec<Vec<Vec<u8>>> = vec![Vec::new(); FILES];
    let mut last_ack: Vec<Option<usize>> = vec![None; FILES];
    let (mut killed, mut finished) = (0, 0);
    for i in 0..attempts {
        let file = i % FILES;
        let len = (BS / 2 + rng.below(4 * BS)) as usize;
        let data = attempt_bytes(file, i, len);
        tried[file].push(data.clone());
        let attempt = tried[file].len() - 1;
        let mut child = Command::new(bin())
            .args(["put", &format!("/c/f{file}"), "-"])
            .env("NOKV_SERVER", server.url())
            .env("NOKV_TOKEN", &tok)
            .env("NOKV_STAGING_TTL", STAGING_TTL.as_secs().to_string())
            .env("AWS_ACCESS_KEY_ID", &env.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &env.secret_access_key)
            .env_remove("NOKV_HOME")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Feed part or all of the input, then kill at a random moment:
        // mid-upload, or (input complete) around the publish.
        let mut stdin = child.stdin.take().unwrap();
        let cut = if rng.below(3) == 0 {
            len
        } else {
            rng.below(len as u64) as usize
        };
        for chunk in data[..cut].chunks(16 * 1024) {
            if stdin.write_all(chunk).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if cut == len {
            drop(stdin);
            // A put takes ~100-300 ms here: some die before, some
            // during, some after the publish.
            std::thread::sleep(Duration::from_millis(rng.below(400)));
        }
        match child.try_wait().unwrap() {
            Some(status) => {
                finished += 1;
                if status.success() {
                    last_ack[file] = Some(attempt);
                }
            }
            None => {
                // SAFETY: kill(2) on our own child.
                unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
                let _ = child.wait();
                killed += 1;
            }
        }
    }
    // Every visible file is one whole attempt, not older than the last
    // acknowledged one.
    let mut files = Vec::new();
    for file in 0..FILES {
        let path = format!("/c/f{file}");
        match c.read(&path).await {
            Ok(bytes) => {
                let which = tried[file]
                    .iter()
                    .position(|t| t.as_slice() == bytes.as_ref());
                let which = which.unwrap_or_else(|| panic!("{path}: not any whole attempt"));
                if let Some(acked) = last_ack[file] {
                    assert!(which >= acked, "{path}: acknowledged attempt {acked} lost");
                }
                files.push(path);
            }
            Err(Error::NotFound(_)) => {
                assert!(last_ack[file].is_none(), "{path}: acknowledged, then lost");
            }
            Err(e) => panic!("{path}: {e}"),
        }
    }
    let store = BlockStore::open(
        &env.location(&prefix),
        &env.credentials(),
        BlockStoreOptions::default(),
    )
    .unwrap();
    final_check(&c, &store, &files).await;
    eprintln!(
        "client kills: {killed} client processes SIGKILLed mid-publish, {finished} finished first; nothing leaked"
    );
    assert!(killed >= attempts / 3, "too few kills: {killed}");
}
