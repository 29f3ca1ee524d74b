//! Snapshots through the SDK on a real volume and real block stores
//! (a local directory and Garage): reads at a snapshot return exactly
//! what was visible when it was taken, whatever happened since; GC keeps
//! every block a live snapshot can read and reclaims them once it
//! retires; snapshots survive a restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use nokv_client::{Client, ClientOptions, Durability, Error, FileKind, InitOptions, PutOptions};
use nokv_testkit::{backend_tests, Backend};
use proptest::prelude::*;

const BS: u32 = 64 * 1024;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(29).wrapping_add(seed) ^ (i >> 12) as u8)
        .collect()
}

async fn volume(
    backend: Backend,
) -> (tempfile::TempDir, std::path::PathBuf, ClientOptions, Client) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vol");
    let (location, credentials) = backend.location(dir.path());
    let mut init = InitOptions::new(location);
    init.block_size = BS;
    let opts = ClientOptions {
        durability: Durability::Sync,
        credentials,
        trash_grace: Duration::ZERO,
        ..ClientOptions::default()
    };
    let client = Client::init(&home, init, opts.clone()).await.unwrap();
    (dir, home, opts, client)
}

async fn put(c: &Client, path: &str, bytes: &[u8]) {
    c.put_bytes(path, bytes, PutOptions::default())
        .await
        .unwrap();
}

backend_tests!(snapshot_reads_survive_every_change_gc_and_restart);

async fn snapshot_reads_survive_every_change_gc_and_restart(backend: Backend) {
    let (dir, home, opts, c) = volume(backend).await;
    let a1 = data(200_000, 1); // 4 blocks
    let b1 = data(70_000, 2);
    c.mkdir_all("/ds/train", 0o755).await.unwrap();
    put(&c, "/ds/train/a", &a1).await;
    put(&c, "/ds/train/b", &b1).await;
    put(&c, "/ds/meta.json", b"{\"v\":1}").await;
    c.symlink("train/a", "/ds/latest").await.unwrap();
    let meta_mode = c.stat("/ds/meta.json").await.unwrap().mode;

    let info = c.snapshot_create("/ds", "v1").await.unwrap();
    assert_eq!((info.name.as_str(), info.path.as_str()), ("v1", "/ds"));
    assert_eq!(info.kind, FileKind::Dir);
    let again = c.snapshot_create("/ds", "v1").await.unwrap_err();
    assert!(matches!(again, Error::Exists(_)), "{again}");

    // Every kind of change to the live tree.
    let mut a2 = a1.clone();
    a2[150_000] ^= 0xff; // one block changes, three are reused
    put(&c, "/ds/train/a", &a2).await;
    c.remove("/ds/train/b").await.unwrap();
    c.set_attr(
        "/ds/meta.json",
        nokv_client::SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    c.rename("/ds/train", "/ds/old-train", false).await.unwrap();
    put(&c, "/ds/train", b"now a file").await;
    // Replace the snapshotted directory itself with a new tree.
    let local = dir.path().join("new-ds");
    std::fs::create_dir_all(local.join("x")).unwrap();
    std::fs::write(local.join("x/y"), b"new tree").unwrap();
    c.put_tree(&local, "/ds").await.unwrap();
    let gc = c.gc().await.unwrap();
    assert_eq!(gc.live_snapshots, 1);
    // Blocks kept for the snapshot are queued, not leaked: fsck is clean
    // and --delete-leaked would delete nothing.
    let report = c.fsck(false).await.unwrap();
    assert!(report.is_clean() && report.leaked.is_empty(), "{report:?}");
    assert!(report.queued_objects >= 5, "{report:?}");

    let check = |c: Client| {
        let (a1, b1) = (a1.clone(), b1.clone());
        async move {
            let s = c.at_snapshot("v1");
            let names: BTreeSet<String> = s
                .list("/")
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.name_lossy())
                .collect();
            let want: BTreeSet<String> = ["latest", "meta.json", "train"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            assert_eq!(names, want);
            assert_eq!(s.read("/train/a").await.unwrap(), a1);
            assert_eq!(s.read("/train/b").await.unwrap(), b1);
            assert_eq!(
                s.read("/latest").await.unwrap(),
                a1,
                "symlink inside the snapshot"
            );
            assert_eq!(s.readlink("/latest").await.unwrap(), "train/a");
            assert_eq!(s.read("/meta.json").await.unwrap().as_ref(), b"{\"v\":1}");
            assert_eq!(s.stat("/meta.json").await.unwrap().mode, meta_mode);
            assert_eq!(
                s.read_range("/train/a", 131_072, 10).await.unwrap(),
                a1[131_072..131_082]
            );
            assert!(matches!(s.stat("/x").await, Err(Error::NotFound(_))));
            // The live tree is the new one.
            assert_eq!(c.read("/ds/x/y").await.unwrap().as_ref(), b"new tree");
            assert!(matches!(
                c.stat("/ds/meta.json").await,
                Err(Error::NotFound(_))
            ));
        }
    };
    check(c.clone()).await;

    // Durable across a restart of the volume.
    drop(c);
    let c = Client::open(&home, opts.clone()).await.unwrap();
    assert_eq!(c.snapshots().await.unwrap().len(), 1);
    check(c.clone()).await;

    // Snapshots are read-only; writes through AtSnapshot are refused.
    let refused = c
        .batch(vec![nokv_client::MetaOp::AtSnapshot {
            snapshot: "v1".into(),
            op: Box::new(nokv_client::MetaOp::Unlink {
                path: "/meta.json".into(),
            }),
        }])
        .await
        .remove(0)
        .unwrap_err();
    assert!(matches!(refused, Error::InvalidArgument(_)), "{refused}");

    // Retire: GC reclaims the old blocks and history; the bucket then
    // holds exactly what the live tree references.
    c.snapshot_retire("v1").await.unwrap();
    assert!(matches!(
        c.at_snapshot("v1").stat("/").await,
        Err(Error::NotFound(_))
    ));
    let gc = c.gc().await.unwrap();
    assert!(gc.queued_blocks_deleted >= 5, "{gc:?}");
    assert!(gc.history_pruned > 0, "{gc:?}");
    let report = c.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(
        report.referenced_blocks, report.stored_objects,
        "{report:?}"
    );
    assert_eq!(report.queued_objects, 0, "{report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_names_and_paths_are_checked() {
    let (_d, _h, _o, c) = volume(Backend::Local).await;
    put(&c, "/f", b"x").await;
    for bad in ["", "a/b", "..", "sp ace", &"n".repeat(300)] {
        let e = c.snapshot_create("/", bad).await.unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad:?}: {e}");
    }
    assert!(matches!(
        c.snapshot_create("/nope", "s").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        c.snapshot_retire("nope").await,
        Err(Error::NotFound(_))
    ));
    assert!(c.snapshots().await.unwrap().is_empty());
    // A snapshot of a file: its root is the file.
    c.snapshot_create("/f", "file").await.unwrap();
    put(&c, "/f", b"y").await;
    let s = c.at_snapshot("file");
    assert_eq!(s.read("/").await.unwrap().as_ref(), b"x");
    assert!(matches!(s.list("/").await, Err(Error::NotADirectory(_))));
}

// ---- property test: random changes, snapshots and GC vs a model ----

#[derive(Debug, Clone)]
enum Op {
    Put(usize, u8, usize),
    Remove(usize),
    Rename(usize, usize),
    Snap,
    Retire(usize),
    Gc,
}

const NAMES: [&str; 4] = ["a", "b", "c", "d"];

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..4usize, any::<u8>(), prop_oneof![Just(0usize), 1..1000usize, 60_000..140_000usize])
            .prop_map(|(i, s, l)| Op::Put(i, s, l)),
        1 => (0..4usize).prop_map(Op::Remove),
        1 => (0..4usize, 0..4usize).prop_map(|(a, b)| Op::Rename(a, b)),
        1 => Just(Op::Snap),
        1 => any::<usize>().prop_map(Op::Retire),
        2 => Just(Op::Gc),
    ]
}

type Files = BTreeMap<String, Vec<u8>>;

/// Every file of `/d` (live) or of a snapshot of `/d` reads back as the
/// model says, and nothing else is listed. Reading fetches every block,
/// so a block GC deleted too early fails here.
async fn check_reads(c: &Client, snap: Option<&str>, want: &Files) {
    let (names, mut got) = match snap {
        None => (c.list("/d").await.unwrap(), Files::new()),
        Some(s) => (c.at_snapshot(s).list("/").await.unwrap(), Files::new()),
    };
    for e in names {
        let name = e.name_lossy();
        let bytes = match snap {
            None => c.read(&format!("/d/{name}")).await,
            Some(s) => c.at_snapshot(s).read(&format!("/{name}")).await,
        };
        let bytes = bytes.unwrap_or_else(|e| panic!("{snap:?} {name}: {e}"));
        got.insert(name, bytes.to_vec());
    }
    assert_eq!(&got, want, "snapshot {snap:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn gc_never_deletes_a_block_a_snapshot_or_the_live_tree_reads(
        ops in prop::collection::vec(op(), 1..30)
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (_d, _h, _o, c) = volume(Backend::Local).await;
            c.mkdir("/d", 0o755).await.unwrap();
            let mut live = Files::new();
            let mut snaps: Vec<(String, Files)> = Vec::new();
            for (i, op) in ops.iter().enumerate() {
                match op {
                    Op::Put(n, seed, len) => {
                        let bytes = data(*len, *seed);
                        put(&c, &format!("/d/{}", NAMES[*n]), &bytes).await;
                        live.insert(NAMES[*n].to_string(), bytes);
                    }
                    Op::Remove(n) => {
                        let r = c.remove(&format!("/d/{}", NAMES[*n])).await;
                        assert_eq!(r.is_ok(), live.remove(NAMES[*n]).is_some());
                    }
                    Op::Rename(a, b) => {
                        let (a, b) = (NAMES[*a], NAMES[*b]);
                        let r = c.rename(&format!("/d/{a}"), &format!("/d/{b}"), true).await;
                        assert_eq!(r.is_ok(), live.contains_key(a));
                        if a != b {
                            if let Some(v) = live.remove(a) {
                                live.insert(b.to_string(), v);
                            }
                        }
                    }
                    Op::Snap => {
                        let name = format!("s{i}");
                        c.snapshot_create("/d", &name).await.unwrap();
                        snaps.push((name, live.clone()));
                    }
                    Op::Retire(k) => {
                        if !snaps.is_empty() {
                            let (name, _) = snaps.remove(k % snaps.len());
                            c.snapshot_retire(&name).await.unwrap();
                        }
                    }
                    Op::Gc => {
                        c.gc().await.unwrap();
                        check_reads(&c, None, &live).await;
                        for (name, want) in &snaps {
                            check_reads(&c, Some(name), want).await;
                        }
                    }
                }
            }
            // Retire all: GC leaves exactly the live tree's blocks.
            for (name, _) in snaps.drain(..) {
                c.snapshot_retire(&name).await.unwrap();
            }
            c.gc().await.unwrap();
            check_reads(&c, None, &live).await;
            let report = c.fsck(false).await.unwrap();
            assert!(report.is_clean(), "{report:?}");
            assert_eq!(report.referenced_blocks, report.stored_objects, "{report:?}");
        });
    }
}
