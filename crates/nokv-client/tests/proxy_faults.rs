//! Object-store faults injected by a proxy between NoKV and Garage
//! (`nokv_testkit::S3FaultProxy`): delays, 500/503 answers, dropped
//! connections, truncated and corrupted bodies. NoKV must lose nothing,
//! never return wrong bytes, fail with clear errors while faults
//! persist, and recover by itself when they stop.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nokv_client::{
    BlockStoreOptions, Client, ClientOptions, Durability, Error, InitOptions, PutOptions,
};
use nokv_object::BlockStore;
use nokv_testkit::{FaultPlan, S3Env, S3FaultProxy};

const BS: u32 = 64 * 1024;

struct Setup {
    _tmp: tempfile::TempDir,
    proxy: S3FaultProxy,
    client: Client,
    /// The same prefix, straight to Garage (no faults): the truth.
    direct: BlockStore,
}

async fn setup(seed: u64, retries: usize, staging_ttl: Duration) -> Setup {
    let env = S3Env::shared();
    let proxy = S3FaultProxy::start(&env.endpoint, seed);
    let prefix = format!("proxy-{}/", uuid_like());
    let mut via = env.clone();
    via.endpoint = proxy.endpoint();
    let tmp = tempfile::tempdir().unwrap();
    let mut init = InitOptions::new(via.location(&prefix));
    init.block_size = BS;
    let opts = ClientOptions {
        durability: Durability::Async,
        credentials: env.credentials(),
        store: BlockStoreOptions {
            timeout: Duration::from_secs(3),
            retries,
            // every read goes to the store (through the faults)
            cache_bytes: 0,
            ..BlockStoreOptions::default()
        },
        staging_ttl,
        ..ClientOptions::default()
    };
    let client = Client::init(&tmp.path().join("vol"), init, opts)
        .await
        .unwrap();
    let direct = BlockStore::open(
        &env.location(&prefix),
        &env.credentials(),
        BlockStoreOptions::default(),
    )
    .unwrap();
    Setup {
        _tmp: tmp,
        proxy,
        client,
        direct,
    }
}

fn uuid_like() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{t:x}-{}", std::process::id())
}

/// Deterministic content of version `v` of file `i`: 0.5 to 3.5 blocks.
fn content(i: usize, v: usize) -> Vec<u8> {
    let len = BS as usize / 2 + (i * 7919 + v * 104_729) % (3 * BS as usize);
    let seed = (i * 31 + v * 17) as u8;
    (0..len)
        .map(|k| seed.wrapping_add((k % 253) as u8))
        .collect()
}

fn is_clear_store_error(e: &Error) -> bool {
    matches!(
        e,
        Error::ObjectStore(_) | Error::MissingBlock(_) | Error::ChecksumMismatch { .. }
    ) && !e.to_string().is_empty()
}

async fn bucket_keys(store: &BlockStore) -> Vec<String> {
    let mut k: Vec<String> = store
        .list_keys("blocks/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_faults_lose_nothing_and_never_return_wrong_bytes() {
    let s = setup(0x5eed_0001, 8, Duration::from_secs(2)).await;
    let c = &s.client;
    // What each path must hold: the last acknowledged content.
    let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    s.proxy.set(FaultPlan {
        corrupt_rate: 0.05,
        ..FaultPlan::mixed(0.06)
    });
    let (mut put_ok, mut put_err, mut read_ok, mut read_err) = (0, 0, 0, 0);
    for round in 0..6 {
        for i in 0..8 {
            let path = format!("/f{i}");
            let data = content(i, round);
            match c.put_bytes(&path, &data, PutOptions::default()).await {
                Ok(out) => {
                    put_ok += 1;
                    assert_eq!(out.attr.size, data.len() as u64);
                    model.insert(path.clone(), data);
                }
                Err(e) => {
                    put_err += 1;
                    assert!(is_clear_store_error(&e), "unclear put error: {e:?}");
                }
            }
            // Reads under faults: the right bytes or a clear error.
            if let Some(expected) = model.get(&path) {
                match c.read(&path).await {
                    Ok(bytes) => {
                        read_ok += 1;
                        assert_eq!(bytes.as_ref(), expected.as_slice(), "{path}: wrong bytes");
                    }
                    Err(e) => {
                        read_err += 1;
                        assert!(is_clear_store_error(&e), "unclear read error: {e:?}");
                    }
                }
            }
        }
    }
    let counts = s.proxy.counts();
    eprintln!(
        "faults: {counts:?}; puts ok {put_ok} failed {put_err}; reads ok {read_ok} failed {read_err}"
    );
    assert!(
        counts.failures() >= 10,
        "too few faults injected: {counts:?}"
    );
    assert!(put_ok > 0, "nothing got through: the test proves nothing");

    // Faults stop: the same client recovers, and every acknowledged
    // publish is there with exactly its bytes.
    s.proxy.set(FaultPlan::none());
    for (path, expected) in &model {
        let bytes = c.read(path).await.unwrap();
        assert_eq!(bytes.as_ref(), expected.as_slice(), "{path} after recovery");
    }
    // Failed puts leave nothing behind once their staging deadline has
    // passed and GC ran: the bucket holds exactly the referenced blocks.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    c.gc().await.unwrap();
    let report = c.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.leaked.is_empty(), "{report:?}");
    assert_eq!(report.staged_objects, 0, "{report:?}");
    let mut referenced = Vec::new();
    for path in model.keys() {
        let (_, body) = c.body(path).await.unwrap();
        referenced.extend(body.blocks.iter().map(|b| b.object_key()));
    }
    referenced.sort();
    assert_eq!(bucket_keys(&s.direct).await, referenced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_bodies_are_refused_never_returned() {
    let s = setup(0x5eed_0002, 2, Duration::from_secs(3600)).await;
    let c = &s.client;
    let data = content(1, 1);
    c.put_bytes("/x", &data, PutOptions::default())
        .await
        .unwrap();
    s.proxy.set(FaultPlan {
        corrupt_rate: 1.0,
        ..FaultPlan::none()
    });
    for _ in 0..3 {
        let err = c.read("/x").await.unwrap_err();
        assert!(
            matches!(err, Error::ChecksumMismatch { .. }),
            "a corrupted body must be refused: {err:?}"
        );
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
        let range = c.read_range("/x", 10, 100).await;
        assert!(
            matches!(range, Err(Error::ChecksumMismatch { .. })),
            "{range:?}"
        );
    }
    assert!(s.proxy.counts().corrupted >= 6, "{:?}", s.proxy.counts());
    // Nothing bad was cached: clean bytes once the store behaves.
    s.proxy.set(FaultPlan::none());
    assert_eq!(c.read("/x").await.unwrap().as_ref(), data.as_slice());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_faults_fail_clearly_and_recovery_is_automatic() {
    let s = setup(0x5eed_0003, 2, Duration::from_secs(1)).await;
    let c = &s.client;
    let old = content(2, 0);
    c.put_bytes("/ckpt", &old, PutOptions::default())
        .await
        .unwrap();
    for (name, plan) in [
        ("500/503", FaultPlan::always_error()),
        (
            "dropped connections",
            FaultPlan {
                drop_rate: 1.0,
                ..FaultPlan::none()
            },
        ),
    ] {
        s.proxy.set(plan);
        let start = Instant::now();
        let err = c
            .put_bytes("/ckpt", &content(2, 1), PutOptions::default())
            .await
            .unwrap_err();
        let took = start.elapsed();
        assert!(
            matches!(err, Error::ObjectStore(_)),
            "{name}: put must fail with an object-store error: {err:?}"
        );
        assert!(took < Duration::from_secs(60), "{name}: took {took:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("writing blocks/") && msg.contains("after 2 retries"),
            "{name}: the error names the failing request and the retries: {msg}"
        );
        let read = c.read("/ckpt").await.unwrap_err();
        assert!(is_clear_store_error(&read), "{name}: {read:?}");
        // The old generation is still the visible one.
        assert_eq!(c.stat("/ckpt").await.unwrap().generation, 1, "{name}");
        eprintln!("{name}: put failed in {took:?}: {err}");
    }
    // Truncated bodies hit reads (PUT answers have no body).
    s.proxy.set(FaultPlan {
        truncate_rate: 1.0,
        ..FaultPlan::none()
    });
    let err = c.read("/ckpt").await.unwrap_err();
    assert!(is_clear_store_error(&err), "truncated: {err:?}");
    eprintln!("truncated bodies: read failed: {err}");
    // Faults stop: the same client works again, nothing to restart.
    s.proxy.set(FaultPlan::none());
    assert_eq!(c.read("/ckpt").await.unwrap().as_ref(), old.as_slice());
    let new = content(2, 9);
    c.put_bytes("/ckpt", &new, PutOptions::default())
        .await
        .unwrap();
    assert_eq!(c.read("/ckpt").await.unwrap().as_ref(), new.as_slice());
    tokio::time::sleep(Duration::from_millis(1100)).await;
    c.gc().await.unwrap();
    let report = c.fsck(false).await.unwrap();
    assert!(
        report.is_clean() && report.leaked.is_empty() && report.staged_objects == 0,
        "{report:?}"
    );
    eprintln!("faults injected: {:?}", s.proxy.counts());
}
