//! Object-store faults against a real Garage server that each test
//! starts, stops, restarts and freezes itself.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nokv_client::{
    BlockStoreOptions, Client, ClientOptions, Durability, Error, InitOptions, PutOptions,
};
use nokv_object::BlockStore;
use nokv_testkit::PrivateGarage;

const BS: u32 = 64 * 1024;

struct Setup {
    _tmp: tempfile::TempDir,
    garage: PrivateGarage,
    client: Client,
    store: BlockStore,
}

async fn setup(staging_ttl: Duration) -> Setup {
    let garage = PrivateGarage::start();
    let tmp = tempfile::tempdir().unwrap();
    let location = garage.env.location("vol/");
    let mut init = InitOptions::new(location.clone());
    init.block_size = BS;
    let opts = ClientOptions {
        durability: Durability::Async,
        credentials: garage.env.credentials(),
        store: BlockStoreOptions {
            timeout: Duration::from_secs(2),
            retries: 2,
            ..BlockStoreOptions::default()
        },
        staging_ttl,
        ..ClientOptions::default()
    };
    let client = Client::init(&tmp.path().join("vol"), init, opts)
        .await
        .unwrap();
    let store = BlockStore::open(
        &location,
        &garage.env.credentials(),
        BlockStoreOptions::default(),
    )
    .unwrap();
    Setup {
        _tmp: tmp,
        garage,
        client,
        store,
    }
}

/// An endless reader that hands out one block every `pace`, and says
/// (through `sent`) how many blocks it handed out.
struct PacedReader {
    pace: Duration,
    next: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
    sent: Arc<std::sync::atomic::AtomicUsize>,
    limit: usize,
}

impl tokio::io::AsyncRead for PacedReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        if self.sent.load(Ordering::SeqCst) >= self.limit {
            return Poll::Ready(Ok(()));
        }
        let pace = self.pace;
        let sleep = self
            .next
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(pace)));
        if sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.next = None;
        let n = (BS as usize).min(buf.remaining());
        buf.put_slice(&vec![0xAB; n]);
        if n == BS as usize {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        Poll::Ready(Ok(()))
    }
}

use std::future::Future;

async fn block_keys(store: &BlockStore) -> Vec<String> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn garage_stopped_mid_publish_then_restarted() {
    let s = setup(Duration::from_secs(1)).await;
    let c = &s.client;
    c.put_bytes("/ckpt", b"generation one", PutOptions::default())
        .await
        .unwrap();
    let before = block_keys(&s.store).await;

    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reader = PacedReader {
        pace: Duration::from_millis(50),
        next: None,
        sent: sent.clone(),
        limit: 200,
    };
    let put = {
        let c = c.clone();
        tokio::spawn(async move { c.put("/ckpt", reader, PutOptions::default()).await })
    };
    // let a few blocks land, then take the object store away
    while sent.load(Ordering::SeqCst) < 5 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.garage.stop();
    let err = put.await.unwrap().unwrap_err();
    assert!(matches!(err, Error::ObjectStore(_)), "{err}");
    assert!(!err.to_string().is_empty());

    // nothing became visible: the old generation is still there
    let attr = c.stat("/ckpt").await.unwrap();
    assert_eq!(attr.generation, 1);
    // metadata keeps working while the store is down
    c.mkdir("/while-down", 0o755).await.unwrap();

    // the same client works again once Garage is back
    s.garage.restart();
    assert_eq!(c.read("/ckpt").await.unwrap().as_ref(), b"generation one");
    c.put_bytes("/after", b"back", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(c.read("/after").await.unwrap().as_ref(), b"back");

    // the failed upload's staged blocks are collected after the deadline
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let report = c.gc().await.unwrap();
    assert_eq!(report.expired_uploads, 1, "{report:?}");
    let after = block_keys(&s.store).await;
    let (_, after_body) = c.body("/after").await.unwrap();
    let mut expected = before.clone();
    expected.extend(after_body.blocks.iter().map(|b| b.object_key()));
    expected.sort();
    assert_eq!(
        after, expected,
        "the bucket holds exactly the referenced blocks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_frozen_store_does_not_stall_metadata() {
    let s = setup(Duration::from_secs(3600)).await;
    let c = s.client.clone();
    s.garage.pause();
    let done = Arc::new(AtomicBool::new(false));
    let put = {
        let (c, done) = (c.clone(), done.clone());
        tokio::spawn(async move {
            let r = c
                .put_bytes("/stuck", &[1u8; 3 * BS as usize], PutOptions::default())
                .await;
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let start = Instant::now();
    for i in 0..200 {
        c.mkdir(&format!("/d{i}"), 0o755).await.unwrap();
        c.stat(&format!("/d{i}")).await.unwrap();
    }
    let took = start.elapsed();
    assert!(
        !done.load(Ordering::SeqCst),
        "the put finished while the store was frozen; the test proves nothing"
    );
    assert_eq!(c.list("/").await.unwrap().len(), 200);
    s.garage.resume();
    // The put either rode out the freeze or failed cleanly; both are fine.
    match put.await.unwrap() {
        Ok(out) => assert_eq!(out.attr.size, 3 * BS as u64),
        Err(e) => assert!(matches!(e, Error::ObjectStore(_)), "{e}"),
    }
    eprintln!("400 metadata ops during a frozen store took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_against_a_stopped_store_fails_and_creates_nothing() {
    let garage = PrivateGarage::start();
    let location = garage.env.location("x/");
    garage.stop();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let opts = ClientOptions {
        credentials: garage.env.credentials(),
        store: BlockStoreOptions {
            timeout: Duration::from_secs(2),
            retries: 1,
            ..BlockStoreOptions::default()
        },
        ..ClientOptions::default()
    };
    let err = match Client::init(&home, InitOptions::new(location), opts).await {
        Ok(_) => panic!("init succeeded without an object store"),
        Err(e) => e,
    };
    assert!(err.to_string().contains("unreachable"), "{err}");
    assert!(!home.join("NOKV_VOLUME").exists());
}
