//! The core's behaviour without a kernel: spooled writes publish on
//! flush/close, readers see published generations only, O_TRUNC,
//! O_APPEND, sparse writes, truncation, block reuse, last close wins.

use nokv_client::{
    Client, ClientOptions, Durability, FileKind, InitOptions, ObjectLocation, Owner, SetAttr,
};

use super::{FsCore, FsOptions, OpenIntent};

const BS: u32 = 64 * 1024;
const ROOT: u64 = 1;

struct T {
    _dir: tempfile::TempDir,
    core: FsCore,
    client: Client,
}

async fn core() -> T {
    core_with(FsOptions::default()).await
}

async fn core_with(base: FsOptions) -> T {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vol");
    let mut init = InitOptions::new(ObjectLocation::Local {
        root: dir.path().join("blocks"),
    });
    init.block_size = BS;
    let opts = ClientOptions {
        durability: Durability::Async,
        ..ClientOptions::default()
    };
    let client = Client::init(&home, init, opts).await.unwrap();
    let fs = FsOptions {
        spool_dir: dir.path().join("spool"),
        ..base
    };
    let core = FsCore::new(client.clone(), fs).unwrap();
    T {
        _dir: dir,
        core,
        client,
    }
}

fn dir_owner() -> Owner {
    Owner {
        mode: 0o755,
        uid: 0,
        gid: 0,
    }
}

fn owner() -> Owner {
    Owner {
        mode: 0o644,
        uid: 0,
        gid: 0,
    }
}

const W: OpenIntent = OpenIntent {
    write: true,
    append: false,
    truncate: false,
};
const R: OpenIntent = OpenIntent {
    write: false,
    append: false,
    truncate: false,
};

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(7) ^ seed).collect()
}

async fn read_all(t: &T, ino: u64) -> Vec<u8> {
    let fh = t.core.open(ino, R).await.unwrap();
    let size = t.core.getattr(ino).await.unwrap().size;
    let out = t.core.read(fh, 0, size as u32 + 10).await.unwrap().to_vec();
    t.core.release(fh).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_are_private_until_flush_then_one_generation() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"f", owner(), true, W).await.unwrap();
    let body = data(3 * BS as usize + 100, 1);
    for (i, chunk) in body.chunks(10_000).enumerate() {
        t.core.write(fh, (i * 10_000) as u64, chunk).await.unwrap();
    }
    // stat during the write shows the writer's size; readers see gen 0.
    assert_eq!(
        t.core.getattr(attr.ino).await.unwrap().size,
        body.len() as u64
    );
    assert_eq!(t.client.getattr(attr.ino).await.unwrap().generation, 0);
    assert!(read_all(&t, attr.ino).await.is_empty());
    // The writer reads its own bytes.
    let back = t.core.read(fh, 5, 20).await.unwrap();
    assert_eq!(&back[..], &body[5..25]);
    t.core.flush(fh).await.unwrap();
    let a = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!((a.generation, a.size), (1, body.len() as u64));
    // A clean handle publishes nothing more at close.
    t.core.release(fh).await.unwrap();
    assert_eq!(t.client.getattr(attr.ino).await.unwrap().generation, 1);
    assert_eq!(read_all(&t, attr.ino).await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_keeps_the_mtime_the_writer_gave_the_file() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"f", owner(), true, W).await.unwrap();
    t.core.write(fh, 0, b"archived bytes").await.unwrap();
    // `tar x` and `cp -p`: write, set the original mtime on the open
    // file, close. The kernel sees it at once, and close keeps it.
    let old = 1_153_704_088_000_000_000;
    let set_old = SetAttr {
        mtime: Some(old),
        ..SetAttr::default()
    };
    let seen = t
        .core
        .setattr(attr.ino, Some(fh), set_old.clone())
        .await
        .unwrap();
    assert_eq!(seen.mtime, old);
    t.core.release(fh).await.unwrap();
    let a = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!((a.generation, a.mtime), (1, old));

    // A write after the explicit time is newer, as on a local disk.
    let fh = t.core.open(attr.ino, W).await.unwrap();
    t.core.setattr(attr.ino, Some(fh), set_old).await.unwrap();
    let before_write = nokv_client::now_nanos();
    t.core.write(fh, 0, b"changed").await.unwrap();
    t.core.release(fh).await.unwrap();
    let a = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!(a.generation, 2);
    assert!(a.mtime >= before_write, "{} < {before_write}", a.mtime);

    // Without a utimens, the file's mtime is its last write, not the
    // (later) close.
    let fh = t.core.open(attr.ino, W).await.unwrap();
    t.core.write(fh, 0, b"third").await.unwrap();
    let written = t.core.getattr(attr.ino).await.unwrap().mtime;
    std::thread::sleep(std::time::Duration::from_millis(20));
    t.core.release(fh).await.unwrap();
    let a = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!((a.generation, a.mtime), (3, written));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_and_mode_changes_of_a_file_being_written_go_with_its_publish() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"f", owner(), true, W).await.unwrap();
    // Clean handle: a chmod goes out at once.
    let chmod = |mode| SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    };
    t.core.setattr(attr.ino, None, chmod(0o640)).await.unwrap();
    assert_eq!(t.client.getattr(attr.ino).await.unwrap().mode, 0o640);
    // With unpublished writes (the kernel names no handle for fchown or
    // fchmod): kept for the publish, shown here at once.
    t.core.write(fh, 0, b"bytes").await.unwrap();
    let chown = SetAttr {
        uid: Some(1000),
        gid: Some(100),
        ..SetAttr::default()
    };
    let seen = t.core.setattr(attr.ino, None, chown).await.unwrap();
    assert_eq!(
        (seen.uid, seen.gid, seen.mode, seen.size),
        (1000, 100, 0o640, 5)
    );
    let seen = t.core.setattr(attr.ino, None, chmod(0o4755)).await.unwrap();
    assert_eq!((seen.uid, seen.mode), (1000, 0o4755));
    assert_eq!(t.core.getattr(attr.ino).await.unwrap().mode, 0o4755);
    let server = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!((server.uid, server.mode, server.generation), (0, 0o640, 0));
    t.core.release(fh).await.unwrap();
    let a = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!(
        (a.generation, a.size, a.uid, a.gid, a.mode),
        (1, 5, 1000, 100, 0o4755)
    );

    // Two write handles on the file: nothing is deferred (either publish
    // could be the one that loses).
    let w1 = t.core.open(attr.ino, W).await.unwrap();
    let w2 = t.core.open(attr.ino, W).await.unwrap();
    t.core.write(w1, 0, b"BYTES").await.unwrap();
    t.core.setattr(attr.ino, None, chmod(0o600)).await.unwrap();
    assert_eq!(t.client.getattr(attr.ino).await.unwrap().mode, 0o600);
    t.core.release(w1).await.unwrap();
    t.core.release(w2).await.unwrap();
    let a = t.client.getattr(attr.ino).await.unwrap();
    assert_eq!((a.generation, a.mode), (2, 0o600));
    assert_eq!(read_all(&t, attr.ino).await, b"BYTES");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_close_publishes_in_the_background_and_reads_back_as_closed() {
    let T { _dir, core, client } = core_with(FsOptions {
        async_close: true,
        ..FsOptions::default()
    })
    .await;
    let core = std::sync::Arc::new(core);
    let rt = tokio::runtime::Handle::current();
    let close = |fh: u64| {
        let core = core.clone();
        let rt = rt.clone();
        async move {
            core.close(fh).await.unwrap();
            core.release_in_background(fh, &rt);
        }
    };
    // More files than the limit of publishes in flight.
    let n = super::after_close::DEFAULT_PENDING_LIMIT * 2 + 5;
    let mut files = Vec::new();
    for i in 0..n {
        let name = format!("f{i}");
        let (attr, fh) = core
            .create(ROOT, name.as_bytes(), owner(), true, W)
            .await
            .unwrap();
        let body = data(1000 + i * 37, i as u8);
        core.write(fh, 0, &body).await.unwrap();
        close(fh).await;
        // Closed: this mount shows the file as written at once.
        assert_eq!(
            core.getattr(attr.ino).await.unwrap().size,
            body.len() as u64
        );
        files.push((attr.ino, body));
    }
    // An fsync of a directory is a barrier: everything closed before it
    // is published when it returns.
    core.wait_closed_published().await;
    for (ino, body) in &files {
        let a = client.getattr(*ino).await.unwrap();
        assert_eq!((a.generation, a.size), (1, body.len() as u64));
    }
    // Opening waits for the file's publish: it reads back as closed.
    for (ino, body) in &files[..3] {
        let fh = core.open(*ino, R).await.unwrap();
        let back = core.read(fh, 0, body.len() as u32 + 10).await.unwrap();
        assert_eq!(&back[..], &body[..]);
        core.release(fh).await.unwrap();
    }
    // A writer reopening a file starts from its closed bytes.
    let (ino, body) = &files[4];
    let fh = core.open(*ino, W).await.unwrap();
    core.write(fh, body.len() as u64, b"tail").await.unwrap();
    close(fh).await;
    let fh = core.open(*ino, R).await.unwrap();
    let back = core.read(fh, 0, body.len() as u32 + 10).await.unwrap();
    assert_eq!(&back[..body.len()], &body[..]);
    assert_eq!(&back[body.len()..], b"tail");
    core.release(fh).await.unwrap();
    // What an unmount does: every closed file is published.
    assert_eq!(core.flush_all().await, 0);
    for (i, (ino, body)) in files.iter().enumerate() {
        let a = client.getattr(*ino).await.unwrap();
        let want = if i == 4 { 2 } else { 1 };
        assert_eq!(a.generation, want, "file {i}");
        if i != 4 {
            assert_eq!(a.size, body.len() as u64, "file {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_change_reuses_the_unchanged_blocks() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"big", owner(), true, W).await.unwrap();
    let mut body = data(8 * BS as usize, 2);
    t.core.write(fh, 0, &body).await.unwrap();
    t.core.release(fh).await.unwrap();
    let (_, before) = t.client.body_ino(attr.ino).await.unwrap();

    // Rewrite 10 bytes in block 5 through a new handle.
    let fh = t.core.open(attr.ino, W).await.unwrap();
    let at = 5 * BS as usize + 17;
    t.core.write(fh, at as u64, b"0123456789").await.unwrap();
    t.core.release(fh).await.unwrap();
    body[at..at + 10].copy_from_slice(b"0123456789");
    let (a, after) = t.client.body_ino(attr.ino).await.unwrap();
    assert_eq!(a.generation, 2);
    let same: Vec<bool> = before
        .blocks
        .iter()
        .zip(&after.blocks)
        .map(|(x, y)| x == y)
        .collect();
    assert_eq!(
        same,
        [true, true, true, true, true, false, true, true],
        "only the changed block is new"
    );
    assert_eq!(read_all(&t, attr.ino).await, body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trunc_append_sparse_and_truncate() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"f", owner(), true, W).await.unwrap();
    t.core
        .write(fh, 0, &data(2 * BS as usize, 3))
        .await
        .unwrap();
    t.core.release(fh).await.unwrap();
    let ino = attr.ino;

    // O_TRUNC with nothing written still publishes the empty file.
    let trunc = OpenIntent {
        truncate: true,
        ..W
    };
    let fh = t.core.open(ino, trunc).await.unwrap();
    assert_eq!(t.core.getattr(ino).await.unwrap().size, 0);
    t.core.release(fh).await.unwrap();
    let a = t.client.getattr(ino).await.unwrap();
    assert_eq!((a.size, a.generation), (0, 2));

    // O_APPEND ignores the offset.
    let append = OpenIntent { append: true, ..W };
    for part in [&b"abc"[..], b"def"] {
        let fh = t.core.open(ino, append).await.unwrap();
        t.core.write(fh, 0, part).await.unwrap();
        t.core.release(fh).await.unwrap();
    }
    assert_eq!(read_all(&t, ino).await, b"abcdef");

    // Sparse: a write far past the end leaves zeros between.
    let fh = t.core.open(ino, W).await.unwrap();
    let far = 3 * BS as u64 + 5;
    t.core.write(fh, far, b"Z").await.unwrap();
    t.core.release(fh).await.unwrap();
    let got = read_all(&t, ino).await;
    assert_eq!(got.len() as u64, far + 1);
    assert_eq!(&got[..6], b"abcdef");
    assert!(got[6..far as usize].iter().all(|&b| b == 0));
    assert_eq!(got[far as usize], b'Z');

    // Shrink then grow through one handle: the cut bytes never return.
    let fh = t.core.open(ino, W).await.unwrap();
    t.core
        .setattr(
            ino,
            Some(fh),
            SetAttr {
                size: Some(2),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    t.core
        .setattr(
            ino,
            Some(fh),
            SetAttr {
                size: Some(10),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    t.core.release(fh).await.unwrap();
    assert_eq!(read_all(&t, ino).await, b"ab\0\0\0\0\0\0\0\0");

    // truncate(path) without a handle publishes right away.
    t.core
        .setattr(
            ino,
            None,
            SetAttr {
                size: Some(BS as u64 + 1),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    let got = read_all(&t, ino).await;
    assert_eq!(got.len(), BS as usize + 1);
    assert_eq!(&got[..2], b"ab");
    assert!(got[2..].iter().all(|&b| b == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_close_wins_and_readers_keep_their_generation() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"f", owner(), true, W).await.unwrap();
    t.core.write(fh, 0, b"original").await.unwrap();
    t.core.release(fh).await.unwrap();
    let ino = attr.ino;

    let reader = t.core.open(ino, R).await.unwrap();
    let a = t.core.open(ino, W).await.unwrap();
    let b = t.core.open(ino, W).await.unwrap();
    t.core.write(a, 0, b"AAAAAAAAAAAA").await.unwrap();
    t.core.write(b, 0, b"BB").await.unwrap();
    t.core.release(b).await.unwrap();
    t.core.release(a).await.unwrap();
    // a closed last: its whole view wins (not a merge).
    assert_eq!(read_all(&t, ino).await, b"AAAAAAAAAAAA");
    // The reader opened before both still reads its generation.
    assert_eq!(&t.core.read(reader, 0, 100).await.unwrap()[..], b"original");
    t.core.release(reader).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_over_an_open_file_and_unlink_while_open() {
    let t = core().await;
    let (old, fh) = t
        .core
        .create(ROOT, b"target", owner(), true, W)
        .await
        .unwrap();
    t.core.write(fh, 0, b"old bytes").await.unwrap();
    t.core.release(fh).await.unwrap();
    let reader = t.core.open(old.ino, R).await.unwrap();
    let (new, fh) = t.core.create(ROOT, b"tmp", owner(), true, W).await.unwrap();
    t.core.write(fh, 0, b"new bytes!").await.unwrap();
    t.core.release(fh).await.unwrap();
    t.core
        .rename(ROOT, b"tmp", ROOT, b"target", false)
        .await
        .unwrap();
    assert_eq!(t.core.lookup(ROOT, b"target").await.unwrap().ino, new.ino);
    assert_eq!(
        &t.core.read(reader, 0, 100).await.unwrap()[..],
        b"old bytes"
    );
    t.core.release(reader).await.unwrap();

    // RENAME_NOREPLACE refuses an existing target.
    let (_, fh) = t
        .core
        .create(ROOT, b"other", owner(), true, W)
        .await
        .unwrap();
    t.core.release(fh).await.unwrap();
    let e = t
        .core
        .rename(ROOT, b"other", ROOT, b"target", true)
        .await
        .unwrap_err();
    assert_eq!(e.errno(), libc::EEXIST);

    // A file removed while open for writing: close drops the writes.
    let fh = t.core.open(new.ino, W).await.unwrap();
    t.core.write(fh, 0, b"lost").await.unwrap();
    t.core.unlink(ROOT, b"target").await.unwrap();
    t.core.release(fh).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_all_publishes_every_dirty_handle() {
    let t = core().await;
    let mut inos = Vec::new();
    for name in [&b"a"[..], b"b", b"c"] {
        let (attr, fh) = t.core.create(ROOT, name, owner(), true, W).await.unwrap();
        t.core.write(fh, 0, name).await.unwrap();
        inos.push(attr.ino);
    }
    assert_eq!(t.core.flush_all().await, 0);
    for (ino, name) in inos.iter().zip([&b"a"[..], b"b", b"c"]) {
        assert_eq!(t.client.read_ino(*ino).await.unwrap().as_ref(), name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn directories_list_once_per_handle_and_read_only_refuses_changes() {
    let t = core().await;
    for i in 0..50 {
        t.core
            .mkdir(ROOT, format!("d{i:02}").as_bytes(), owner())
            .await
            .unwrap();
    }
    let fh = t.core.opendir(ROOT);
    let first = t.core.readdir(fh).await.unwrap();
    t.core.mkdir(ROOT, b"late", owner()).await.unwrap();
    let again = t.core.readdir(fh).await.unwrap();
    assert_eq!(first.len(), 50);
    assert_eq!(again.len(), 50, "offsets stay stable within one handle");
    t.core.releasedir(fh);

    let ro = FsCore::new(
        t.client.clone(),
        FsOptions {
            read_only: true,
            spool_dir: std::env::temp_dir(),
            ..FsOptions::default()
        },
    )
    .unwrap();
    assert!(ro.mkdir(ROOT, b"x", owner()).await.is_err());
    assert!(ro.open(2, W).await.is_err());
}

/// Every object in the test volume's block directory, as object keys.
fn objects(t: &T) -> std::collections::BTreeSet<String> {
    fn walk(
        dir: &std::path::Path,
        root: &std::path::Path,
        out: &mut std::collections::BTreeSet<String>,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.insert(rel.to_string_lossy().into_owned());
            }
        }
    }
    let root = t._dir.path().join("blocks");
    let mut out = std::collections::BTreeSet::new();
    walk(&root, &root, &mut out);
    out
}

async fn referenced(t: &T, ino: u64) -> std::collections::BTreeSet<String> {
    let (_, body) = t.client.body_ino(ino).await.unwrap();
    body.blocks.iter().map(|b| b.object_key()).collect()
}

/// Waits (bounded) until the block directory holds exactly `want`.
async fn objects_become(t: &T, want: &std::collections::BTreeSet<String>) {
    for _ in 0..100 {
        if &objects(t) == want {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(&objects(t), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completed_blocks_upload_while_writing() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"seq", owner(), true, W).await.unwrap();
    let body = data(20 * BS as usize + 123, 5);
    for (i, chunk) in body.chunks(BS as usize / 4).enumerate() {
        t.core
            .write(fh, (i * BS as usize / 4) as u64, chunk)
            .await
            .unwrap();
    }
    // Twenty blocks are complete; all but the last sixteen in flight
    // have landed in the store before anything is published.
    let early = objects(&t).len();
    assert!(
        early >= 20 - 16,
        "only {early} blocks uploaded while writing"
    );
    assert_eq!(t.client.getattr(attr.ino).await.unwrap().size, 0);
    t.core.release(fh).await.unwrap();
    assert_eq!(read_all(&t, attr.ino).await, body);
    let (_, published) = t.client.body_ino(attr.ino).await.unwrap();
    assert_eq!(published.blocks.len(), 21);
    // The close hashed only the tail; the whole-body digest continued
    // from the blocks hashed while writing is still the file's.
    assert_eq!(published.digest, *blake3::hash(&body).as_bytes());
    // The staged blocks are the published ones: nothing extra, nothing
    // uploaded twice under another upload.
    assert_eq!(objects(&t), referenced(&t, attr.ino).await);
    // Every staging gave its share of the mount's budget back.
    let whole = (super::STAGING_BUDGET_BYTES / u64::from(BS)) as usize;
    assert_eq!(t.core.staging_budget.available_permits(), whole);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_blocks_changed_or_cut_off_later_are_not_published() {
    let t = core().await;
    let (attr, fh) = t.core.create(ROOT, b"f", owner(), true, W).await.unwrap();
    let mut model = data(6 * BS as usize, 6);
    t.core.write(fh, 0, &model).await.unwrap(); // stages blocks 0..6
                                                // Block 1 changes after it was staged; the file is then cut to 4.5
                                                // blocks (staged blocks 4 and 5 are past the end or partial).
    let at = BS as usize + 99;
    t.core.write(fh, at as u64, b"changed").await.unwrap();
    model[at..at + 7].copy_from_slice(b"changed");
    let cut = 4 * BS as u64 + BS as u64 / 2;
    let change = SetAttr {
        size: Some(cut),
        ..SetAttr::default()
    };
    t.core.setattr(attr.ino, Some(fh), change).await.unwrap();
    model.truncate(cut as usize);
    t.core.release(fh).await.unwrap();
    assert_eq!(read_all(&t, attr.ino).await, model);
    let (_, published) = t.client.body_ino(attr.ino).await.unwrap();
    assert_eq!(published.digest, *blake3::hash(&model).as_bytes());
    // Staged objects the body does not name are gone right away.
    assert_eq!(objects(&t), referenced(&t, attr.ino).await);

    // A second handle rewriting the same bytes reuses every block; one
    // rewriting block 0 stages only that block.
    let fh = t.core.open(attr.ino, W).await.unwrap();
    let before = referenced(&t, attr.ino).await;
    t.core.write(fh, 0, &model[..BS as usize]).await.unwrap();
    let other = data(BS as usize, 7);
    t.core.write(fh, BS as u64, &other).await.unwrap();
    model[BS as usize..2 * BS as usize].copy_from_slice(&other);
    t.core.release(fh).await.unwrap();
    assert_eq!(read_all(&t, attr.ino).await, model);
    let after = referenced(&t, attr.ino).await;
    assert_eq!(before.intersection(&after).count(), before.len() - 1);
    t.client.gc().await.unwrap();
    assert_eq!(objects(&t), after, "gc leaves exactly the live blocks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_gives_its_staged_blocks_back() {
    let t = core().await;
    let (_, fh) = t
        .core
        .create(ROOT, b"gone", owner(), true, W)
        .await
        .unwrap();
    t.core
        .write(fh, 0, &data(20 * BS as usize, 8))
        .await
        .unwrap();
    // Twenty complete blocks, at most sixteen stagings in flight.
    assert!(objects(&t).len() >= 4);
    t.core.unlink(ROOT, b"gone").await.unwrap();
    t.core.release(fh).await.unwrap();
    objects_become(&t, &Default::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_body_digest_survives_every_way_a_prefix_ends() {
    let t = core().await;
    let bs = BS as usize;
    // (what to do after writing 4 blocks sequentially, expected edit)
    type Edit = fn(&mut Vec<u8>) -> Option<(usize, Vec<u8>)>;
    let cases: [(&str, Edit); 4] = [
        // Rewrite a byte inside block 0 (no block completed by it).
        ("rewrite block 0", |m| {
            m[5] ^= 0xff;
            Some((5, vec![m[5]]))
        }),
        // Write block 2 again, whole (staged twice).
        ("restage block 2", |m| {
            let new = data(BS as usize, 9);
            m[2 * BS as usize..3 * BS as usize].copy_from_slice(&new);
            Some((2 * BS as usize, new))
        }),
        // Skip ahead, leaving a hole of zeros (a gap in the prefix).
        ("gap", |m| {
            let at = m.len() + BS as usize;
            m.resize(at, 0);
            m.extend_from_slice(&data(BS as usize + 3, 10));
            Some((at, m[at..].to_vec()))
        }),
        // Nothing more: the prefix covers every full block.
        ("plain", |_| None),
    ];
    for (i, (what, edit)) in cases.iter().enumerate() {
        let name = format!("f{i}");
        let (attr, fh) = t
            .core
            .create(ROOT, name.as_bytes(), owner(), true, W)
            .await
            .unwrap();
        let mut model = data(4 * bs + 77, i as u8);
        for (n, chunk) in model.chunks(bs / 3).enumerate() {
            t.core
                .write(fh, (n * (bs / 3)) as u64, chunk)
                .await
                .unwrap();
        }
        if let Some((at, bytes)) = edit(&mut model) {
            t.core.write(fh, at as u64, &bytes).await.unwrap();
        }
        // Publish mid-way, then keep appending: the next publish starts
        // a new staged upload whose prefix cannot start at block 0.
        t.core.flush(fh).await.unwrap();
        let (_, body) = t.client.body_ino(attr.ino).await.unwrap();
        assert_eq!(body.digest, *blake3::hash(&model).as_bytes(), "{what}");
        assert_eq!(read_all(&t, attr.ino).await, model, "{what}");
        let more = data(2 * bs, 11);
        let at = model.len();
        t.core.write(fh, at as u64, &more).await.unwrap();
        model.extend_from_slice(&more);
        t.core.release(fh).await.unwrap();
        let (_, body) = t.client.body_ino(attr.ino).await.unwrap();
        assert_eq!(body.digest, *blake3::hash(&model).as_bytes(), "{what}");
        assert_eq!(read_all(&t, attr.ino).await, model, "{what}");
    }
}

/// Applies every event from `from` on to `cache`; returns the next `from`.
async fn catch_up(t: &T, cache: &super::DirCache, from: u64) -> u64 {
    let mut next = from;
    loop {
        let page = t.client.watch_page("/", next, 1000).await.unwrap();
        for e in &page.events {
            cache.apply(e);
        }
        if page.next == next {
            return next;
        }
        next = page.next;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absent_names_in_own_directories_are_answered_locally() {
    let t = core_with(FsOptions {
        dir_cache: true,
        ..FsOptions::default()
    })
    .await;
    let cache = t.core.dir_cache().unwrap();
    let from = t.client.watch_head().await.unwrap();
    let d = t.core.mkdir(ROOT, b"d", dir_owner()).await.unwrap().ino;
    assert!(!cache.is_cached(d), "not before its creation event");
    let from = catch_up(&t, &cache, from).await;
    assert!(cache.is_cached(d));
    assert!(!cache.is_cached(ROOT), "the root was not made here");

    let asked = cache.stats().absent_answers;
    assert!(matches!(
        t.core.lookup(d, b"x").await,
        Err(nokv_client::Error::NotFound(_))
    ));
    assert_eq!(cache.stats().absent_answers, asked + 1);
    // Own new names are found at once, before their events.
    let (f, fh) = t.core.create(d, b"mine", owner(), true, W).await.unwrap();
    t.core.release(fh).await.unwrap();
    assert_eq!(t.core.lookup(d, b"mine").await.unwrap().ino, f.ino);
    t.core.symlink(d, b"l", b"mine", owner()).await.unwrap();
    t.core.link(f.ino, d, b"hard").await.unwrap();
    t.core.rename(d, b"hard", d, b"moved", false).await.unwrap();
    let sub = t.core.mkdir(d, b"sub", dir_owner()).await.unwrap().ino;
    for n in [&b"mine"[..], b"l", b"moved", b"sub"] {
        t.core.lookup(d, n).await.unwrap();
    }

    // Another writer's name is invisible here until its event is
    // applied (it is absent in a state no older than the watch lag)...
    let other = t
        .client
        .create_at(d, b"theirs", owner(), true)
        .await
        .unwrap();
    assert!(t.core.lookup(d, b"theirs").await.is_err());
    // ... and a create without O_EXCL of it opens that file, as on a
    // local disk, while O_EXCL fails.
    let (opened, fh) = t
        .core
        .create(d, b"theirs", owner(), false, W)
        .await
        .unwrap();
    assert_eq!(opened.ino, other.ino);
    t.core.write(fh, 0, b"hello").await.unwrap();
    t.core.release(fh).await.unwrap();
    assert_eq!(read_all(&t, other.ino).await, b"hello");
    assert!(matches!(
        t.core.create(d, b"theirs", owner(), true, W).await,
        Err(nokv_client::Error::Exists(_))
    ));
    let other2 = t
        .client
        .create_at(d, b"theirs2", owner(), true)
        .await
        .unwrap();
    catch_up(&t, &cache, from).await;
    assert_eq!(t.core.lookup(d, b"theirs2").await.unwrap().ino, other2.ino);
    // Removals show once a later command's event is in.
    t.client.unlink_at(d, b"theirs2").await.unwrap();
    t.client.create_at(sub, b"z", owner(), true).await.unwrap();
    catch_up(&t, &cache, from).await;
    assert!(matches!(
        t.core.lookup(d, b"theirs2").await,
        Err(nokv_client::Error::NotFound(_))
    ));
    assert!(cache.is_cached(sub));
    assert_eq!(t.core.lookup(sub, b"z").await.unwrap().kind, FileKind::File);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_follower_keeps_the_cache_and_drops_it_when_it_stops() {
    let t = core_with(FsOptions {
        dir_cache: true,
        ..FsOptions::default()
    })
    .await;
    let cache = t.core.dir_cache().unwrap();
    let follower = tokio::spawn(crate::invalidate::follow(
        t.client.clone(),
        crate::invalidate::NoInvalidation,
        t.core.watch_caches(),
    ));
    // The follower starts at the head it reads first: retry the mkdir
    // until one comes after it.
    let mut d = 0;
    for i in 0..50 {
        let ino = t
            .core
            .mkdir(ROOT, format!("d{i}").as_bytes(), dir_owner())
            .await
            .unwrap()
            .ino;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(500);
        while !cache.is_cached(ino) && std::time::Instant::now() < until {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        if cache.is_cached(ino) {
            d = ino;
            break;
        }
    }
    assert!(d != 0, "no directory got cached");
    // Own creates keep the directory's attributes answerable here, with
    // the mtime each create gave it.
    let attrs = t.core.dir_attrs().unwrap();
    t.core.getattr(d).await.unwrap();
    for name in [&b"o1"[..], b"o2"] {
        let (a, fh) = t
            .core
            .create(d, name, owner(), false, OpenIntent::default())
            .await
            .unwrap();
        t.core.release(fh).await.unwrap();
        let known = t.core.known_attr(d).expect("known after an own create");
        assert_eq!(known.mtime, a.ctime);
        assert_eq!(known, t.client.getattr(d).await.unwrap());
    }
    let hits = attrs.hits();
    let other = t.client.create_at(d, b"x", owner(), true).await.unwrap();
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match t.core.lookup(d, b"x").await {
            Ok(a) => {
                assert_eq!(a.ino, other.ino);
                break;
            }
            Err(_) => assert!(std::time::Instant::now() < until, "x never showed"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // Another client's create reached the follower: the directory's
    // attributes come from the server again, with that create's mtime.
    assert_eq!(t.core.getattr(d).await.unwrap().mtime, other.ctime);
    assert_eq!(attrs.hits(), hits, "answered from before the other create");
    follower.abort();
    let _ = follower.await;
    assert!(!cache.is_cached(d), "a stopped follower leaves no cache");
    assert!(t.core.known_attr(d).is_none(), "nor directory attributes");
    assert!(t.core.lookup(d, b"y").await.is_err());
}

/// A read handle on a file another writer replaces makes the mount hold
/// a reader lease: GC without any grace keeps the old blocks until the
/// handle closes, then collects them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_across_a_replacement_holds_its_blocks_until_it_closes() {
    let t = core_with(FsOptions {
        reader_leases: Some(std::time::Duration::from_secs(60)),
        ..FsOptions::default()
    })
    .await;
    let leases = t.core.reader_leases().unwrap();
    let follower = tokio::spawn(crate::invalidate::follow(
        t.client.clone(),
        crate::invalidate::NoInvalidation,
        t.core.watch_caches(),
    ));
    let keeper = tokio::spawn(leases.clone().keep(t.client.clone()));
    let old: Vec<u8> = (0..5 * BS as usize).map(|i| (i % 251) as u8).collect();
    let put = |bytes: Vec<u8>| {
        let c = t.client.clone();
        async move {
            c.put_bytes("/f", &bytes, nokv_client::PutOptions::default())
                .await
                .unwrap()
                .attr
        }
    };
    let ino = put(old.clone()).await.ino;
    let fh = t.core.open(ino, R).await.unwrap();
    assert_eq!(t.core.read(fh, 0, 10).await.unwrap().as_ref(), &old[..10]);
    // The follower starts at the watch head it reads first: replace
    // until one replacement comes after it.
    let wait = |want: bool| {
        let leases = leases.clone();
        async move {
            let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while leases.held().is_some() != want {
                assert!(std::time::Instant::now() < until, "lease never {want}");
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
    };
    for seed in 0..50u8 {
        put(vec![seed; 100]).await;
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if leases.since().is_some() {
            break;
        }
    }
    wait(true).await;
    assert_eq!(t.client.gc().await.unwrap().queued_blocks_deleted, 0);
    let got = t.core.read(fh, 0, 5 * BS).await.unwrap();
    assert_eq!(got.as_ref(), &old[..], "the old generation, whole");
    t.core.release(fh).await.unwrap();
    wait(false).await;
    assert!(t.client.gc().await.unwrap().queued_blocks_deleted >= 5);
    follower.abort();
    keeper.abort();
}
