//! Publish and read through the SDK on a real holt volume, on both
//! block-store backends: a local directory and a real Garage S3 server.

use std::collections::BTreeSet;

use nokv_client::{
    BlockStoreOptions, Client, ClientOptions, Durability, Error, InitOptions, PutOptions,
};
use nokv_object::BlockStore;
use nokv_testkit::{backend_tests, Backend};

const BS: u32 = 64 * 1024;

struct Vol {
    _dir: tempfile::TempDir,
    home: std::path::PathBuf,
    store: BlockStore,
    opts: ClientOptions,
    client: Client,
}

async fn volume(backend: Backend) -> Vol {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vol");
    let (location, credentials) = backend.location(dir.path());
    let mut init = InitOptions::new(location.clone());
    init.block_size = BS;
    let opts = ClientOptions {
        durability: Durability::Async,
        credentials: credentials.clone(),
        ..ClientOptions::default()
    };
    let client = Client::init(&home, init, opts.clone()).await.unwrap();
    // A second, independent view of the same objects (no shared cache).
    let store = BlockStore::open(&location, &credentials, BlockStoreOptions::default()).unwrap();
    Vol {
        _dir: dir,
        home,
        store,
        opts,
        client,
    }
}

backend_tests!(
    round_trip_sizes,
    replace_reuses_unchanged_blocks_and_returns_old_body,
    if_generation_guards_publish,
    a_failed_upload_publishes_nothing_and_leaves_nothing,
    corrupted_block_is_an_error_not_data,
    missing_block_is_a_clear_error,
    truncate_shrinks_and_grows,
    remove_queues_blocks_and_gc_leaves_exactly_the_referenced_ones,
    readers_see_whole_generations_during_replace,
    a_put_racing_a_replace_still_lands,
    put_tree_swaps_whole_trees,
    gc_removes_trash_after_the_grace,
    gc_keeps_replaced_blocks_for_the_grace,
    a_reader_lease_keeps_replaced_blocks_until_it_ends,
    uploads_begun_ahead_are_used_once_and_given_back,
);

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 11) as u8)
        .collect()
}

/// Every block object in the volume's store (a bucket listing on S3).
async fn stored_keys(v: &Vol) -> BTreeSet<String> {
    v.store
        .list_keys("blocks/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect()
}

/// Every block key the metadata references (walks the whole tree).
async fn referenced_keys(c: &Client) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec!["/".to_string()];
    while let Some(dir) = stack.pop() {
        for e in c.list(&dir).await.unwrap() {
            let path = format!(
                "{}/{}",
                dir.trim_end_matches('/'),
                String::from_utf8_lossy(&e.name)
            );
            match e.attr.kind {
                nokv_client::FileKind::Dir => stack.push(path),
                nokv_client::FileKind::File => {
                    let (_, body) = c.body(&path).await.unwrap();
                    out.extend(body.blocks.iter().map(|b| b.object_key()));
                }
                _ => {}
            }
        }
    }
    out
}

async fn round_trip_sizes(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    for (i, len) in [
        0usize,
        1,
        BS as usize - 1,
        BS as usize,
        BS as usize + 1,
        3 * BS as usize + 77,
    ]
    .into_iter()
    .enumerate()
    {
        let bytes = data(len, i as u8);
        let path = format!("/f{i}");
        let out = c
            .put_bytes(&path, &bytes, PutOptions::default())
            .await
            .unwrap();
        assert_eq!(out.attr.size, len as u64);
        assert_eq!(out.attr.generation, 1);
        assert_eq!(out.attr.digest, Some(*blake3::hash(&bytes).as_bytes()));
        assert_eq!(c.read(&path).await.unwrap().as_ref(), &bytes[..]);
        let mid = len / 2;
        let r = c.read_range(&path, mid as u64, 100).await.unwrap();
        assert_eq!(r.as_ref(), &bytes[mid..(mid + 100).min(len)]);
    }
}

async fn replace_reuses_unchanged_blocks_and_returns_old_body(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    let first = data(4 * BS as usize + 10, 1);
    let out1 = c
        .put_bytes("/ckpt", &first, PutOptions::default())
        .await
        .unwrap();
    assert_eq!(out1.uploaded_blocks, 5);
    // append: only the changed tail block and the new one are uploaded
    let mut second = first.clone();
    second.extend(data(BS as usize, 2));
    let out2 = c
        .put_bytes("/ckpt", &second, PutOptions::default())
        .await
        .unwrap();
    assert_eq!(out2.attr.generation, 2);
    assert_eq!(out2.reused_blocks, 4);
    assert_eq!(out2.uploaded_blocks, 2);
    let replaced = out2.replaced.expect("old body returned");
    assert_eq!(replaced.size, first.len() as u64);
    assert_eq!(c.read("/ckpt").await.unwrap().as_ref(), &second[..]);
    // the one block no generation references is queued and collected
    let report = c.gc().await.unwrap();
    assert_eq!(report.queued_blocks_deleted, 1);
    assert_eq!(stored_keys(&v).await, referenced_keys(c).await);
}

async fn if_generation_guards_publish(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    let guarded = |g| PutOptions {
        if_generation: Some(g),
        ..PutOptions::default()
    };
    c.put_bytes("/m", b"v1", guarded(0)).await.unwrap();
    let err = c.put_bytes("/m", b"v2", guarded(0)).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::GenerationMismatch {
                expected: 0,
                actual: 1,
                ..
            }
        ),
        "{err}"
    );
    c.put_bytes("/m", b"v2", guarded(1)).await.unwrap();
    let err = c.put_bytes("/m", b"v3", guarded(1)).await.unwrap_err();
    assert!(matches!(err, Error::GenerationMismatch { .. }));
    assert_eq!(c.read("/m").await.unwrap().as_ref(), b"v2");
    // refused puts leave no objects behind
    c.gc().await.unwrap();
    assert_eq!(stored_keys(&v).await, referenced_keys(c).await);
}

struct FailingReader {
    left: usize,
}

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.left == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("input died")));
        }
        let n = self.left.min(buf.remaining()).min(10_000);
        buf.put_slice(&vec![7u8; n]);
        self.left -= n;
        std::task::Poll::Ready(Ok(()))
    }
}

async fn a_failed_upload_publishes_nothing_and_leaves_nothing(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    c.put_bytes("/f", b"old", PutOptions::default())
        .await
        .unwrap();
    let before = stored_keys(&v).await;
    let err = c
        .put(
            "/f",
            FailingReader {
                left: 3 * BS as usize,
            },
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("input died"), "{err}");
    assert_eq!(c.read("/f").await.unwrap().as_ref(), b"old");
    assert_eq!(c.stat("/f").await.unwrap().generation, 1);
    assert_eq!(
        stored_keys(&v).await,
        before,
        "the failed upload's blocks were removed"
    );
    let err = c
        .put(
            "/new",
            FailingReader { left: BS as usize },
            PutOptions::default(),
        )
        .await
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(matches!(c.stat("/new").await, Err(Error::NotFound(_))));
}

async fn corrupted_block_is_an_error_not_data(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    let bytes = data(2 * BS as usize, 9);
    c.put_bytes("/f", &bytes, PutOptions::default())
        .await
        .unwrap();
    let (_, body) = c.body("/f").await.unwrap();
    let key = body.blocks[1].object_key();
    let mut raw = v.store.get_raw(&key).await.unwrap().to_vec();
    raw[100] ^= 0xff;
    v.store.put_block(&key, raw.into()).await.unwrap();
    // reopen: cold cache
    drop(v.client);
    let c = Client::open(&v.home, v.opts.clone()).await.unwrap();
    let err = c.read("/f").await.unwrap_err();
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err}");
    // the intact first block still reads
    assert_eq!(
        c.read_range("/f", 0, 10).await.unwrap().as_ref(),
        &bytes[..10]
    );
}

async fn missing_block_is_a_clear_error(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    c.put_bytes("/f", &data(2 * BS as usize, 5), PutOptions::default())
        .await
        .unwrap();
    let (_, body) = c.body("/f").await.unwrap();
    let key = body.blocks[0].object_key();
    v.store.delete(&key).await.unwrap();
    drop(v.client);
    let c = Client::open(&v.home, v.opts.clone()).await.unwrap();
    let err = c.read("/f").await.unwrap_err();
    assert!(
        matches!(&err, Error::MissingBlock(k) if k.contains(&key)),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");
}

async fn truncate_shrinks_and_grows(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    let bytes = data(3 * BS as usize, 4);
    c.put_bytes("/t", &bytes, PutOptions::default())
        .await
        .unwrap();
    let a = c.truncate("/t", BS as u64 + 5).await.unwrap();
    assert_eq!(a.size, BS as u64 + 5);
    assert_eq!(
        c.read("/t").await.unwrap().as_ref(),
        &bytes[..BS as usize + 5]
    );
    c.truncate("/t", 2 * BS as u64).await.unwrap();
    let got = c.read("/t").await.unwrap();
    assert_eq!(&got[..BS as usize + 5], &bytes[..BS as usize + 5]);
    assert!(got[BS as usize + 5..].iter().all(|b| *b == 0));
    c.truncate("/t", 0).await.unwrap();
    assert_eq!(c.stat("/t").await.unwrap().size, 0);
    assert!(c.read("/t").await.unwrap().is_empty());
    c.gc().await.unwrap();
    assert_eq!(stored_keys(&v).await, referenced_keys(c).await);
}

async fn remove_queues_blocks_and_gc_leaves_exactly_the_referenced_ones(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    c.mkdir_all("/a/b", 0o755).await.unwrap();
    for i in 0..5 {
        c.put_bytes(
            &format!("/a/b/f{i}"),
            &data(BS as usize + i, i as u8),
            PutOptions::default(),
        )
        .await
        .unwrap();
    }
    c.link("/a/b/f0", "/a/hard").await.unwrap();
    c.remove("/a/b/f0").await.unwrap();
    c.rename("/a/b/f1", "/a/b/f2", true).await.unwrap();
    c.remove_all("/a/b").await.unwrap();
    let report = c.gc().await.unwrap();
    assert_eq!(
        report.queued_blocks_deleted, 8,
        "f1..f4 had two blocks each; f0 lives on"
    );
    assert_eq!(stored_keys(&v).await, referenced_keys(c).await);
    assert_eq!(c.read("/a/hard").await.unwrap().len(), BS as usize);
}

async fn readers_see_whole_generations_during_replace(backend: Backend) {
    let v = volume(backend).await;
    let c = v.client.clone();
    let a = data(3 * BS as usize, 1);
    let b = data(3 * BS as usize, 2);
    c.put_bytes("/g", &a, PutOptions::default()).await.unwrap();
    let writer = {
        let c = c.clone();
        let (a, b) = (a.clone(), b.clone());
        tokio::spawn(async move {
            for i in 0..30 {
                let bytes = if i % 2 == 0 { &b } else { &a };
                c.put_bytes("/g", bytes, PutOptions::default())
                    .await
                    .unwrap();
            }
        })
    };
    // Read for as long as the writer writes: every read overlaps replaces
    // (a read used to fail with "manifest chunk ... is missing" when a
    // replace deleted the manifest it had started to read).
    let mut reads = 0;
    while !writer.is_finished() || reads < 10 {
        let (got, meta) = tokio::join!(c.read("/g"), c.body("/g"));
        let got = got.unwrap();
        meta.unwrap();
        assert!(
            got.as_ref() == &a[..] || got.as_ref() == &b[..],
            "torn read"
        );
        reads += 1;
    }
    writer.await.unwrap();
}

/// A put that reused blocks of generation N, racing a writer that
/// replaces N first: without --if-generation it must still land (by
/// copying the reused blocks), and nothing may leak or go missing.
async fn a_put_racing_a_replace_still_lands(backend: Backend) {
    let v = volume(backend).await;
    let c = v.client.clone();
    let base = data(3 * BS as usize, 1);
    c.put_bytes("/r", &base, PutOptions::default())
        .await
        .unwrap();

    // Slow writer: same first block as the base (reused), then waits.
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(4);
    let reader = tokio_util::io::StreamReader::new(tokio_stream_from(rx));
    let mut slow_content = base[..BS as usize].to_vec();
    slow_content.extend(data(2 * BS as usize, 9));
    let slow = {
        let c = c.clone();
        tokio::spawn(async move { c.put("/r", reader, PutOptions::default()).await })
    };
    tx.send(Ok(bytes::Bytes::copy_from_slice(
        &slow_content[..BS as usize],
    )))
    .await
    .unwrap();
    // Let the slow put read and hash its first block, then replace the file.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other = data(3 * BS as usize, 5);
    c.put_bytes("/r", &other, PutOptions::default())
        .await
        .unwrap();
    tx.send(Ok(bytes::Bytes::copy_from_slice(
        &slow_content[BS as usize..],
    )))
    .await
    .unwrap();
    drop(tx);
    let out = slow.await.unwrap().expect("the racing put lands");
    assert_eq!(out.attr.generation, 3);
    assert_eq!(c.read("/r").await.unwrap().as_ref(), &slow_content[..]);
    c.gc().await.unwrap();
    assert_eq!(stored_keys(&v).await, referenced_keys(&c).await);
}

fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<std::io::Result<bytes::Bytes>>,
) -> impl futures::Stream<Item = std::io::Result<bytes::Bytes>> + Unpin {
    Box::pin(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

fn local_tree(root: &std::path::Path, tag: u8, files: usize) {
    std::fs::create_dir_all(root.join("shards/inner")).unwrap();
    for i in 0..files {
        let dir = if i % 2 == 0 { "shards" } else { "shards/inner" };
        std::fs::write(
            root.join(format!("{dir}/s{i}")),
            data(BS as usize / 2 + i, tag),
        )
        .unwrap();
    }
    std::os::unix::fs::symlink("shards/s0", root.join("latest")).unwrap();
}

/// Every (path, content) of the tree under `dir`, or None when a read
/// raced a removal (a reader must never see a mix of old and new).
async fn snapshot_tree(c: &Client, dir: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_string()];
    while let Some(d) = stack.pop() {
        let entries = c.list(&d).await.ok()?;
        for e in entries {
            let p = format!("{d}/{}", String::from_utf8_lossy(&e.name));
            match e.attr.kind {
                nokv_client::FileKind::Dir => stack.push(p),
                nokv_client::FileKind::File => {
                    out.push((p.clone(), c.read(&p).await.ok()?.to_vec()))
                }
                _ => out.push((p.clone(), c.readlink(&p).await.ok()?.into_bytes())),
            }
        }
    }
    out.sort();
    Some(out)
}

/// The same as `snapshot_tree`, relative to `dir`, but opened once by
/// path and then walked by inode: a handle on one tree.
async fn snapshot_tree_by_handle(c: &Client, dir: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let root = c.stat(dir).await.ok()?.ino;
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), root)];
    while let Some((rel, ino)) = stack.pop() {
        let page = c.list_ino(ino, None, 4096).await.ok()?;
        for e in page.entries {
            let p = format!("{rel}/{}", String::from_utf8_lossy(&e.name));
            match e.attr.kind {
                nokv_client::FileKind::Dir => stack.push((p, e.attr.ino)),
                nokv_client::FileKind::File => {
                    out.push((p, c.read_ino(e.attr.ino).await.ok()?.to_vec()))
                }
                _ => out.push((p, b"symlink".to_vec())),
            }
        }
    }
    out.sort();
    Some(out)
}

async fn put_tree_swaps_whole_trees(backend: Backend) {
    let v = volume(backend).await;
    let c = v.client.clone();
    let old_dir = v._dir.path().join("old");
    let new_dir = v._dir.path().join("new");
    local_tree(&old_dir, 1, 6);
    local_tree(&new_dir, 2, 9);
    c.mkdir("/ckpt", 0o755).await.unwrap();
    let out = c.put_tree(&old_dir, "/ckpt/step-1").await.unwrap();
    assert_eq!((out.files, out.dirs, out.symlinks), (6, 2, 1));
    assert!(out.replaced_tree.is_none());
    // Its files' uploads were begun ahead; none is left staged.
    assert_eq!(staging_records(&c).await, 0);
    // A destination that cannot be replaced is refused before anything
    // is uploaded, and nothing changes.
    c.put_bytes("/ckpt/file", b"x", PutOptions::default())
        .await
        .unwrap();
    let objects_before = v.store.list_keys("").await.unwrap().len();
    for (dst, want) in [
        ("/missing/step", "no such file"),
        ("/ckpt/file/step", "not a directory"),
        ("/ckpt/file", "not a directory"),
        ("/", "root"),
    ] {
        let e = c.put_tree(&new_dir, dst).await.unwrap_err();
        assert!(e.to_string().contains(want), "{dst}: {e}");
    }
    assert_eq!(v.store.list_keys("").await.unwrap().len(), objects_before);
    assert_eq!(staging_records(&c).await, 0);
    c.remove("/ckpt/file").await.unwrap();
    let old = snapshot_tree_by_handle(&c, "/ckpt/step-1").await.unwrap();
    assert_eq!(old.len(), 7);

    // A reader walks the tree over and over while it is replaced.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (c, stop) = (c.clone(), stop.clone());
        tokio::spawn(async move {
            let mut views = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(t) = snapshot_tree_by_handle(&c, "/ckpt/step-1").await {
                    views.push(t);
                }
            }
            views
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let out = c.put_tree(&new_dir, "/ckpt/step-1").await.unwrap();
    let trash = out.replaced_tree.expect("the old tree was moved aside");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let views = reader.await.unwrap();
    let new = snapshot_tree_by_handle(&c, "/ckpt/step-1").await.unwrap();
    assert_eq!(new.len(), 10);
    assert_ne!(old, new);
    assert!(!views.is_empty());
    for view in &views {
        assert!(*view == old || *view == new, "a reader saw a mixed tree");
    }
    // The old tree waits in the trash, whole, until gc after the grace.
    assert_eq!(snapshot_tree(&c, &trash).await.unwrap().len(), 7);
    c.gc().await.unwrap();
    assert!(c.stat(&trash).await.is_ok(), "kept during the grace period");
}

async fn gc_removes_trash_after_the_grace(backend: Backend) {
    let mut v = volume(backend).await;
    v.opts.trash_grace = std::time::Duration::ZERO;
    drop(v.client);
    v.client = Client::open(&v.home, v.opts.clone()).await.unwrap();
    let c = v.client.clone();
    let a = v._dir.path().join("a");
    let b = v._dir.path().join("b");
    local_tree(&a, 3, 4);
    local_tree(&b, 4, 4);
    c.put_tree(&a, "/t").await.unwrap();
    let trash = c.put_tree(&b, "/t").await.unwrap().replaced_tree.unwrap();
    let report = c.gc().await.unwrap();
    assert_eq!(report.trees_removed, 1);
    assert!(c.stat(&trash).await.is_err());
    assert_eq!(stored_keys(&v).await, referenced_keys(&c).await);
    // A non-directory local path, or a file at the destination, is refused.
    assert!(c.put_tree(&a.join("latest"), "/u").await.is_err());
    c.put_bytes("/file", b"x", PutOptions::default())
        .await
        .unwrap();
    assert!(matches!(
        c.put_tree(&a, "/file").await,
        Err(Error::NotADirectory(_))
    ));
}

/// A reader that opened a generation before it was replaced keeps
/// reading it while the GC grace lasts; a pass without grace collects.
async fn gc_keeps_replaced_blocks_for_the_grace(backend: Backend) {
    let mut v = volume(backend).await;
    v.opts.gc_grace = std::time::Duration::from_secs(3600);
    drop(v.client);
    v.client = Client::open(&v.home, v.opts.clone()).await.unwrap();
    let c = v.client.clone();
    let old = data(3 * BS as usize + 5, 1);
    c.put_bytes("/f", &old, PutOptions::default())
        .await
        .unwrap();
    let (_, opened) = c.body("/f").await.unwrap();
    let new = data(2 * BS as usize, 2);
    c.put_bytes("/f", &new, PutOptions::default())
        .await
        .unwrap();
    let report = c.gc().await.unwrap();
    assert_eq!(report.queued_blocks_deleted, 0);
    assert!(report.grace_pending);
    // Read through the second view of the store (no cache): the old
    // generation's blocks are all still there.
    let got = nokv_object::read_range(&v.store, &opened, 0, opened.size)
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &old[..]);

    let mut eager = v.opts.clone();
    eager.gc_grace = std::time::Duration::ZERO;
    drop(c);
    drop(v.client);
    let c = Client::open(&v.home, eager).await.unwrap();
    let report = c.gc().await.unwrap();
    assert_eq!(report.queued_blocks_deleted, 4);
    assert!(!report.grace_pending);
    let stored: BTreeSet<String> = v
        .store
        .list_keys("blocks/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(opened
        .blocks
        .iter()
        .all(|b| !stored.contains(&b.object_key())));
    assert_eq!(stored, referenced_keys(&c).await);
}

/// A reader lease keeps the blocks of generations replaced at or after
/// its `since` from GC without any grace, until it is released or
/// expires; blocks replaced before `since` are collected meanwhile.
async fn a_reader_lease_keeps_replaced_blocks_until_it_ends(backend: Backend) {
    let v = volume(backend).await;
    let c = v.client.clone();
    let put = |path: &'static str, seed: u8, blocks: usize| {
        let c = c.clone();
        async move {
            c.put_bytes(
                path,
                &data(blocks * BS as usize, seed),
                PutOptions::default(),
            )
            .await
            .unwrap()
        }
    };
    put("/early", 1, 2).await;
    put("/f", 2, 3).await;
    let (_, opened) = c.body("/f").await.unwrap();
    put("/early", 3, 1).await; // 2 blocks queued before the lease's since
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let since = nokv_types::now_nanos();
    const LEASE: u64 = 0x5eed;
    let ttl = std::time::Duration::from_secs(600);
    c.hold_readers(LEASE, since, ttl).await.unwrap();
    let info = c.info().await.unwrap();
    assert_eq!(
        (info.reader_leases, info.reader_leases_since),
        (1, Some(since))
    );
    put("/f", 4, 1).await; // the opened generation's 3 blocks
    c.remove("/early").await.unwrap(); // 1 more, also after since

    let report = c.gc().await.unwrap();
    assert_eq!(
        report.queued_blocks_deleted, 2,
        "only what was replaced before since"
    );
    let got = nokv_object::read_range(&v.store, &opened, 0, opened.size)
        .await
        .unwrap();
    assert_eq!(got.as_ref(), &data(3 * BS as usize, 2)[..]);
    // Renewing keeps holding; a second lease with a later since changes
    // nothing (the oldest since counts).
    c.hold_readers(LEASE, since, ttl).await.unwrap();
    c.hold_readers(LEASE + 1, nokv_types::now_nanos(), ttl)
        .await
        .unwrap();
    assert_eq!(c.gc().await.unwrap().queued_blocks_deleted, 0);

    c.release_readers(LEASE).await.unwrap();
    c.release_readers(LEASE).await.unwrap(); // twice is fine
    assert_eq!(c.info().await.unwrap().reader_leases, 1, "the later one");
    let report = c.gc().await.unwrap();
    assert_eq!(
        report.queued_blocks_deleted, 4,
        "released: all but the later lease's"
    );
    let stored = stored_keys(&v).await;
    assert!(opened
        .blocks
        .iter()
        .all(|b| !stored.contains(&b.object_key())));

    // An expired lease holds nothing.
    put("/g", 5, 1).await;
    let since = nokv_types::now_nanos();
    c.hold_readers(LEASE + 2, since - 1, std::time::Duration::from_millis(1))
        .await
        .unwrap();
    c.release_readers(LEASE + 1).await.unwrap();
    put("/g", 6, 1).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_eq!(c.gc().await.unwrap().queued_blocks_deleted, 1);
    assert_eq!(stored_keys(&v).await, referenced_keys(&c).await);

    // Bad input changes nothing.
    for (lease, ttl) in [
        (0, ttl),
        (LEASE, std::time::Duration::ZERO),
        (LEASE, std::time::Duration::from_secs(2 * 86_400)),
    ] {
        let err = c.hold_readers(lease, since, ttl).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
    put("/g", 7, 1).await;
    assert_eq!(c.gc().await.unwrap().queued_blocks_deleted, 1);
}

/// Staging records the volume holds (whatever their deadline).
async fn staging_records(c: &Client) -> usize {
    let r = c
        .batch(vec![nokv_client::MetaOp::ExpiredUploads {
            now: i64::MAX,
            limit: 10_000,
        }])
        .await;
    match &r[0] {
        Ok(nokv_client::MetaReply::Staged(v)) => v.len(),
        other => panic!("expired_uploads: {other:?}"),
    }
}

async fn uploads_begun_ahead_are_used_once_and_given_back(backend: Backend) {
    let v = volume(backend).await;
    let c = &v.client;
    assert_eq!(staging_records(c).await, 0);
    c.begin_uploads_ahead();
    // A burst of small publishes: uploads are begun in growing batches.
    let files: Vec<Vec<u8>> = (0..40u8).map(|i| data(1000 + i as usize, i)).collect();
    for (i, bytes) in files.iter().enumerate() {
        c.put_bytes(&format!("/f{i}"), bytes, PutOptions::default())
            .await
            .unwrap();
    }
    // 1 + 2 + 4 + 8 + 16 + 32 begun for 40 publishes: the rest wait.
    let left = staging_records(c).await;
    assert!(
        (1..=63 - 40 + 1).contains(&left),
        "{left} staging records left"
    );
    for (i, bytes) in files.iter().enumerate() {
        let got = c.read(&format!("/f{i}")).await.unwrap();
        assert_eq!(&got[..], &bytes[..], "file {i}");
    }
    // Every file has its own upload (ids are handed out once).
    let mut uploads = BTreeSet::new();
    for i in 0..files.len() {
        let (_, body) = c.body(&format!("/f{i}")).await.unwrap();
        assert!(uploads.insert(body.blocks[0].upload), "upload reused");
    }
    c.release_uploads_ahead().await;
    assert_eq!(staging_records(c).await, 0);
    // Off again: a publish begins exactly its own upload.
    c.put_bytes("/after", b"x", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(staging_records(c).await, 0);
    assert!(c.fsck(false).await.unwrap().is_clean());
}
