//! Block store behaviour against the real local-directory backend, a
//! real Garage S3 server (started by scripts/test.sh) and the in-memory
//! backend. Every test that does not need the filesystem runs once per
//! backend via `backends()`.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use nokv_object::{
    read_range, read_stream, upload_body, BlockStore, BlockStoreOptions, StoreCredentials,
    UploadOutcome,
};
use nokv_types::{Body, Error, ObjectLocation, S3Location};
use tokio::io::{AsyncRead, ReadBuf};

const BS: u32 = 64 * 1024;
const BSU: usize = BS as usize;

struct Backend {
    name: &'static str,
    store: BlockStore,
    root: Option<PathBuf>,
    _dir: Option<tempfile::TempDir>,
}

fn local_backend() -> Backend {
    let dir = tempfile::tempdir().expect("tempdir");
    // A not-yet-existing subdirectory: open must create it.
    let root = dir.path().join("objects");
    let store = BlockStore::open(
        &ObjectLocation::Local { root: root.clone() },
        &StoreCredentials::default(),
        BlockStoreOptions {
            concurrency: 4,
            ..Default::default()
        },
    )
    .expect("open local store");
    Backend {
        name: "local",
        store,
        root: Some(root),
        _dir: Some(dir),
    }
}

fn backends() -> Vec<Backend> {
    let memory = BlockStore::open(
        &ObjectLocation::Memory,
        &StoreCredentials::default(),
        BlockStoreOptions {
            concurrency: 4,
            ..Default::default()
        },
    )
    .expect("open memory store");
    let garage = {
        let s3 = nokv_testkit::S3Env::shared();
        let prefix = format!("object-tests-{}/", uuid::Uuid::new_v4());
        BlockStore::open(
            &s3.location(&prefix),
            &s3.credentials(),
            BlockStoreOptions {
                concurrency: 4,
                ..Default::default()
            },
        )
        .expect("open garage store")
    };
    vec![
        local_backend(),
        Backend {
            name: "garage",
            store: garage,
            root: None,
            _dir: None,
        },
        Backend {
            name: "memory",
            store: memory,
            root: None,
            _dir: None,
        },
    ]
}

/// Deterministic pseudo-random bytes (xorshift64*), different per seed.
fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

async fn upload(
    store: &BlockStore,
    data: &[u8],
    upload_id: u64,
    previous: Option<&Body>,
) -> UploadOutcome {
    upload_body(store, data, BS, upload_id, previous, &|_| {})
        .await
        .expect("upload")
}

/// Hands out at most `step` bytes per read, to exercise block assembly
/// from short reads; fails with an I/O error after `fail_after` bytes.
struct Trickle {
    data: Vec<u8>,
    pos: usize,
    step: usize,
    fail_after: Option<usize>,
}

impl AsyncRead for Trickle {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(limit) = self.fail_after {
            if self.pos >= limit {
                return Poll::Ready(Err(io::Error::other("disk on fire")));
            }
        }
        let n = self
            .step
            .min(buf.remaining())
            .min(self.data.len() - self.pos);
        let pos = self.pos;
        buf.put_slice(&self.data[pos..pos + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

#[tokio::test]
async fn round_trip_sizes() {
    let sizes = [0, 1, BSU - 1, BSU, BSU + 1, BSU * 7 / 2];
    for b in backends() {
        for (i, &size) in sizes.iter().enumerate() {
            let data = random_bytes(size, i as u64 + 1);
            let seen = AtomicU64::new(0);
            let out = upload_body(&b.store, &data[..], BS, 100 + i as u64, None, &|n| {
                assert!(n >= seen.load(Ordering::Relaxed), "progress goes backwards");
                seen.store(n, Ordering::Relaxed);
            })
            .await
            .expect("upload");
            let ctx = format!("{} size {size}", b.name);
            out.body.check().expect(&ctx);
            assert_eq!(out.body.size, size as u64, "{ctx}");
            assert_eq!(out.body.blocks.len(), size.div_ceil(BSU), "{ctx}");
            assert_eq!(out.body.digest, *blake3::hash(&data).as_bytes(), "{ctx}");
            assert_eq!(out.uploaded_keys.len(), out.body.blocks.len(), "{ctx}");
            assert_eq!(out.uploaded_bytes, size as u64, "{ctx}");
            assert_eq!(out.reused_blocks, 0, "{ctx}");
            assert_eq!(seen.load(Ordering::Relaxed), size as u64, "{ctx}");
            for (j, blk) in out.body.blocks.iter().enumerate() {
                assert_eq!(blk.upload, 100 + i as u64, "{ctx}");
                assert_eq!(blk.index as usize, j, "{ctx}");
                assert_eq!(out.uploaded_keys[j], blk.object_key(), "{ctx}");
            }
            let back = read_range(&b.store, &out.body, 0, size as u64)
                .await
                .expect(&ctx);
            assert_eq!(&back[..], &data[..], "{ctx}");
            let back = read_range(&b.store, &out.body, 0, u64::MAX)
                .await
                .expect(&ctx);
            assert_eq!(&back[..], &data[..], "{ctx}");
        }
    }
}

#[tokio::test]
async fn short_reads_assemble_full_blocks() {
    for b in backends() {
        let data = random_bytes(BSU * 5 / 2, 7);
        let reader = Trickle {
            data: data.clone(),
            pos: 0,
            step: 777,
            fail_after: None,
        };
        let out = upload_body(&b.store, reader, BS, 1, None, &|_| {})
            .await
            .expect("upload");
        let lens: Vec<u32> = out.body.blocks.iter().map(|b| b.len).collect();
        assert_eq!(lens, vec![BS, BS, BS / 2], "{}", b.name);
        let back = read_range(&b.store, &out.body, 0, u64::MAX)
            .await
            .expect("read");
        assert_eq!(&back[..], &data[..], "{}", b.name);
    }
}

#[tokio::test]
async fn input_error_is_returned() {
    for b in backends() {
        let reader = Trickle {
            data: random_bytes(BSU * 3, 8),
            pos: 0,
            step: 4096,
            fail_after: Some(BSU + 10),
        };
        let err = upload_body(&b.store, reader, BS, 1, None, &|_| {})
            .await
            .expect_err("input error must fail the upload");
        assert!(
            matches!(err, Error::Io(ref m) if m.contains("disk on fire")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn range_reads_at_boundaries_and_past_eof() {
    let size = BSU * 7 / 2;
    let data = random_bytes(size, 42);
    let s = size as u64;
    let bs = BS as u64;
    let ranges = [
        (0, 1),
        (0, bs),
        (0, bs + 1),
        (bs - 1, 1),
        (bs - 1, 2),
        (bs, bs),
        (bs + 1, bs - 2),
        (bs - 1, 2 * bs + 2),
        (3 * bs, bs / 2),
        (3 * bs - 1, 10),
        (s - 1, 1),
        (s - 1, 100),
        (s, 1),
        (s + 5, 10),
        (10, 0),
        (123, u64::MAX),
        (u64::MAX, u64::MAX),
    ];
    for b in backends() {
        let out = upload(&b.store, &data, 9, None).await;
        for &(off, len) in &ranges {
            let lo = off.min(s) as usize;
            let hi = off.saturating_add(len).min(s) as usize;
            let got = read_range(&b.store, &out.body, off, len)
                .await
                .unwrap_or_else(|e| panic!("{} [{off}, +{len}): {e}", b.name));
            assert_eq!(&got[..], &data[lo..hi], "{} [{off}, +{len})", b.name);
            // The stream hands out one chunk per overlapped block.
            let chunks: Vec<Bytes> = read_stream(&b.store, &out.body, off, len)
                .map(|c| c.expect("chunk"))
                .collect()
                .await;
            let expected_chunks = if lo == hi {
                0
            } else {
                (hi - 1) / BSU - lo / BSU + 1
            };
            assert_eq!(chunks.len(), expected_chunks, "{} [{off}, +{len})", b.name);
        }
    }
}

fn flip_byte(path: &std::path::Path, at: usize) {
    let mut bytes = std::fs::read(path).expect("read object file");
    bytes[at] ^= 0x01;
    std::fs::write(path, bytes).expect("write object file");
}

#[tokio::test]
async fn corrupted_block_is_checksum_mismatch() {
    let b = local_backend();
    let root = b.root.clone().expect("local root");
    let data = random_bytes(BSU * 3, 5);
    let out = upload(&b.store, &data, 77, None).await;
    let victim = out.body.blocks[1];
    flip_byte(&root.join(victim.object_key()), 1234);

    // A fresh store: nothing about this block can be in any cache.
    let cold = BlockStore::open(
        &ObjectLocation::Local { root: root.clone() },
        &StoreCredentials::default(),
        BlockStoreOptions::default(),
    )
    .expect("open");
    for store in [&b.store, &cold] {
        let err = store.get_block(&victim).await.expect_err("corrupt block");
        assert_eq!(
            err,
            Error::ChecksumMismatch {
                key: victim.object_key()
            }
        );
        // The stream yields the intact prefix, then the error, then ends.
        let items: Vec<_> = read_stream(store, &out.body, 0, u64::MAX).collect().await;
        assert_eq!(items.len(), 2, "{items:?}");
        assert_eq!(items[0].as_ref().expect("block 0")[..], data[..BSU]);
        assert!(matches!(items[1], Err(Error::ChecksumMismatch { .. })));
        let err = read_range(store, &out.body, BSU as u64 + 10, 5)
            .await
            .expect_err("range inside the corrupt block");
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
        // Raw access still works, for fsck.
        let raw = store.get_raw(&victim.object_key()).await.expect("raw");
        assert_ne!(&raw[..], &data[BSU..2 * BSU]);
    }
    // Intact blocks (0, and 2 if its prefetch finished) may be cached;
    // the corrupt one never is: every read fetches and rejects it again.
    assert!(cold.cache_stats().bytes <= 2 * BS as u64);
    let misses = cold.cache_stats().misses;
    assert!(cold.get_block(&victim).await.is_err());
    assert_eq!(cold.cache_stats().misses, misses + 1);

    // A truncated object is caught by the length check.
    let last = out.body.blocks[2];
    let path = root.join(last.object_key());
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..bytes.len() - 1]).expect("truncate");
    // (Fresh store: the earlier prefetch may have cached the intact copy.)
    let fresh = BlockStore::open(
        &ObjectLocation::Local { root },
        &StoreCredentials::default(),
        BlockStoreOptions::default(),
    )
    .expect("open");
    let err = fresh.get_block(&last).await.expect_err("truncated");
    assert!(matches!(err, Error::ChecksumMismatch { .. }), "{err:?}");
}

#[tokio::test]
async fn deleted_block_is_missing() {
    for b in backends() {
        let data = random_bytes(BSU * 2, 6);
        let out = upload(&b.store, &data, 78, None).await;
        let victim = out.body.blocks[0];
        b.store.delete(&victim.object_key()).await.expect("delete");
        // Deleting again is not an error.
        b.store
            .delete(&victim.object_key())
            .await
            .expect("delete twice");
        let err = b.store.get_block(&victim).await.expect_err("missing");
        assert_eq!(err, Error::MissingBlock(victim.object_key()), "{}", b.name);
        let err = read_range(&b.store, &out.body, 0, u64::MAX)
            .await
            .expect_err("missing");
        assert!(matches!(err, Error::MissingBlock(_)), "{} {err:?}", b.name);
        let err = b
            .store
            .get_raw(&victim.object_key())
            .await
            .expect_err("raw");
        assert!(matches!(err, Error::MissingBlock(_)), "{} {err:?}", b.name);
    }
}

#[tokio::test]
async fn whole_body_digest_is_checked() {
    for b in backends() {
        let data = random_bytes(BSU * 2 + 3, 11);
        let mut body = upload(&b.store, &data, 79, None).await.body;
        body.digest[0] ^= 1;
        let err = read_range(&b.store, &body, 0, u64::MAX)
            .await
            .expect_err("bad digest");
        assert_eq!(err, Error::ChecksumMismatch { key: "body".into() });
        // Partial reads do not (cannot) check the whole-body digest.
        let part = read_range(&b.store, &body, 1, data.len() as u64)
            .await
            .expect("partial");
        assert_eq!(&part[..], &data[1..]);
        let mut empty = Body::empty(BS);
        empty.digest[0] ^= 1;
        assert!(read_range(&b.store, &empty, 0, 0).await.is_err());
    }
}

#[tokio::test]
async fn reupload_and_append_reuse_blocks() {
    for b in backends() {
        let data = random_bytes(BSU * 7 / 2, 12);
        let first = upload(&b.store, &data, 200, None).await;

        let same = upload(&b.store, &data, 201, Some(&first.body)).await;
        assert!(same.uploaded_keys.is_empty(), "{}", b.name);
        assert_eq!(same.reused_blocks, 4, "{}", b.name);
        assert_eq!(same.uploaded_bytes, 0, "{}", b.name);
        assert_eq!(same.body, first.body, "{}", b.name);

        let mut appended = data.clone();
        appended.extend_from_slice(&random_bytes(BSU, 13));
        let app = upload(&b.store, &appended, 202, Some(&first.body)).await;
        assert_eq!(app.reused_blocks, 3, "{}", b.name);
        assert_eq!(
            app.uploaded_keys,
            vec![
                nokv_types::block_object_key(202, 3),
                nokv_types::block_object_key(202, 4)
            ],
            "{}",
            b.name
        );
        assert_eq!(app.body.blocks[..3], first.body.blocks[..3], "{}", b.name);
        let back = read_range(&b.store, &app.body, 0, u64::MAX)
            .await
            .expect("read appended");
        assert_eq!(&back[..], &appended[..], "{}", b.name);

        // A middle change re-uploads only the changed block.
        let mut edited = data.clone();
        edited[BSU + 5] ^= 0xff;
        let ed = upload(&b.store, &edited, 203, Some(&first.body)).await;
        assert_eq!(ed.uploaded_keys, vec![nokv_types::block_object_key(203, 1)]);
        assert_eq!(ed.reused_blocks, 3);

        // Another block size: nothing is reusable.
        let other = upload_body(&b.store, &data[..], BS * 2, 204, Some(&first.body), &|_| {})
            .await
            .expect("upload");
        assert_eq!(other.reused_blocks, 0, "{}", b.name);
    }
}

#[tokio::test]
async fn second_read_is_a_cache_hit() {
    for b in backends() {
        let data = random_bytes(BSU + 100, 14);
        let out = upload(&b.store, &data, 300, None).await;
        let blk = out.body.blocks[0];
        let before = b.store.cache_stats();
        let one = b.store.get_block(&blk).await.expect("first");
        let mid = b.store.cache_stats();
        assert_eq!(mid.misses, before.misses + 1, "{}", b.name);
        assert_eq!(mid.hits, before.hits, "{}", b.name);
        assert_eq!(mid.bytes, before.bytes + BS as u64, "{}", b.name);
        let two = b.store.get_block(&blk).await.expect("second");
        let after = b.store.cache_stats();
        assert_eq!(after.hits, mid.hits + 1, "{}", b.name);
        assert_eq!(after.misses, mid.misses, "{}", b.name);
        assert_eq!(one, two);
        assert_eq!(&one[..], &data[..BSU]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_fetch_once() {
    for b in backends() {
        let data = random_bytes(BSU, 15);
        let out = upload(&b.store, &data, 301, None).await;
        let blk = out.body.blocks[0];
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let store = b.store.clone();
                tokio::spawn(async move { store.get_block(&blk).await })
            })
            .collect();
        for t in tasks {
            let got = t.await.expect("join").expect("get");
            assert_eq!(&got[..], &data[..]);
        }
        let stats = b.store.cache_stats();
        assert_eq!(stats.misses, 1, "{} {stats:?}", b.name);
        assert_eq!(stats.hits, 7, "{} {stats:?}", b.name);
    }
}

#[tokio::test]
async fn cache_is_bounded() {
    let store = BlockStore::open(
        &ObjectLocation::Memory,
        &StoreCredentials::default(),
        BlockStoreOptions {
            cache_bytes: 2 * BS as u64,
            ..Default::default()
        },
    )
    .expect("open");
    let data = random_bytes(BSU * 6, 16);
    let out = upload(&store, &data, 302, None).await;
    read_range(&store, &out.body, 0, u64::MAX)
        .await
        .expect("read");
    assert!(store.cache_stats().bytes <= 2 * BS as u64);

    let uncached = BlockStore::open(
        &ObjectLocation::Memory,
        &StoreCredentials::default(),
        BlockStoreOptions {
            cache_bytes: 0,
            ..Default::default()
        },
    )
    .expect("open");
    let out = upload(&uncached, &data, 303, None).await;
    let back = read_range(&uncached, &out.body, 0, u64::MAX)
        .await
        .expect("read");
    assert_eq!(&back[..], &data[..]);
    assert_eq!(uncached.cache_stats().bytes, 0);
}

#[tokio::test]
async fn list_delete_and_check() {
    for b in backends() {
        b.store.check().await.expect("check");
        assert!(
            b.store.list_keys("").await.expect("list all").is_empty(),
            "{}",
            b.name
        );
        assert!(b.store.list_keys("blocks/").await.expect("list").is_empty());
        let out = upload(&b.store, &random_bytes(BSU + 1, 17), 400, None).await;
        b.store
            .put_block("other/thing", Bytes::from_static(b"xyz"))
            .await
            .expect("put");
        let keys = b.store.list_keys("blocks/").await.expect("list");
        let mut expected: Vec<(String, u64)> = out
            .body
            .blocks
            .iter()
            .map(|blk| (blk.object_key(), blk.len as u64))
            .collect();
        expected.sort();
        assert_eq!(keys, expected, "{}", b.name);
        // Plain string prefixes, not only whole directories.
        let key0 = out.body.blocks[0].object_key();
        let partial = &key0[..key0.len() - 3];
        let keys = b.store.list_keys(partial).await.expect("list partial");
        assert_eq!(keys.len(), 2, "{} {partial}", b.name);
        assert_eq!(b.store.list_keys("").await.expect("all").len(), 3);
        assert_eq!(
            b.store.get_raw("other/thing").await.expect("raw"),
            Bytes::from_static(b"xyz")
        );
        for (k, _) in b.store.list_keys("").await.expect("all") {
            b.store.delete(&k).await.expect("delete");
        }
        assert!(b.store.list_keys("").await.expect("all").is_empty());
        // check() leaves nothing behind.
        b.store.check().await.expect("check");
        assert!(b.store.list_keys("").await.expect("all").is_empty());
    }
}

#[test]
fn empty_body_digest_is_blake3_of_nothing() {
    assert_eq!(*blake3::hash(b"").as_bytes(), Body::empty(BS).digest);
}

#[tokio::test]
async fn empty_upload_is_empty_body() {
    for b in backends() {
        let out = upload(&b.store, &[], 500, None).await;
        assert_eq!(out.body, Body::empty(BS), "{}", b.name);
        assert!(out.uploaded_keys.is_empty());
        let back = read_range(&b.store, &out.body, 0, u64::MAX)
            .await
            .expect("read");
        assert!(back.is_empty());
    }
}

fn s3_location(endpoint: Option<&str>) -> ObjectLocation {
    ObjectLocation::S3(S3Location {
        bucket: "nokv-test".into(),
        endpoint: endpoint.map(str::to_string),
        region: "us-east-1".into(),
        prefix: "vol/".into(),
    })
}

#[test]
fn s3_without_credentials_is_a_clear_error() {
    let err = BlockStore::open(
        &s3_location(Some("http://127.0.0.1:9")),
        &StoreCredentials::default(),
        BlockStoreOptions::default(),
    )
    .expect_err("no credentials");
    let Error::InvalidArgument(msg) = &err else {
        panic!("wrong error kind: {err:?}");
    };
    assert!(msg.contains("AWS_ACCESS_KEY_ID"), "{msg}");
    assert!(msg.contains("--s3-access-key-id"), "{msg}");

    let half = StoreCredentials {
        access_key_id: Some("AKIAEXAMPLE".into()),
        ..Default::default()
    };
    let err = BlockStore::open(&s3_location(None), &half, BlockStoreOptions::default())
        .expect_err("no secret");
    assert!(err.to_string().contains("secret"), "{err}");
}

#[tokio::test]
async fn s3_unreachable_endpoint_is_reported() {
    let creds = StoreCredentials {
        access_key_id: Some("AKIAEXAMPLE".into()),
        secret_access_key: Some("not-a-real-secret".into()),
        session_token: None,
    };
    // Port 1 on loopback: refused at once, no network needed.
    let store = BlockStore::open(
        &s3_location(Some("http://127.0.0.1:1")),
        &creds,
        BlockStoreOptions {
            retries: 0,
            timeout: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .expect("open makes no request");
    let err = store.check().await.expect_err("unreachable");
    let Error::ObjectStore(msg) = &err else {
        panic!("wrong error kind: {err:?}");
    };
    assert!(msg.contains("endpoint unreachable"), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    assert!(!msg.contains("not-a-real-secret"), "{msg}");
}

/// Callers spawn uploads and reads on the multi-threaded runtime.
#[test]
fn futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let store = BlockStore::memory();
    let body = Body::empty(BS);
    let progress = |_: u64| {};
    let up = upload_body(&store, &b""[..], BS, 1, Some(&body), &progress);
    assert_send(&up);
    let rr = read_range(&store, &body, 0, 1);
    assert_send(&rr);
    let blk = store.get_block(&nokv_types::BlockRef {
        upload: 1,
        index: 0,
        len: 1,
        checksum: [0; 32],
    });
    assert_send(&blk);
    assert_send(&store.check());
}
