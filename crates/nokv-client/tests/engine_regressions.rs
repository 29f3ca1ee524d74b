//! Regressions found in the metadata engine (holt) under NoKV's own
//! workloads; see vendor/holt/NOKV-PATCH.md.

use nokv_client::{Client, ClientOptions, Durability, InitOptions, ObjectLocation, PutOptions};

/// Replacing a few hundred small files over and over, with snapshots
/// coming and going, used to fail after ~1,200 publishes with "blob data
/// area exhausted" (a nearly full frame that compaction could not shrink
/// was not spilled over). Every publish must succeed and read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_replaces_never_exhaust_an_engine_frame() {
    let dir = tempfile::tempdir().unwrap();
    let location = ObjectLocation::Local {
        root: dir.path().join("blocks"),
    };
    let opts = ClientOptions {
        durability: Durability::Async,
        ..ClientOptions::default()
    };
    let c = Client::init(&dir.path().join("v"), InitOptions::new(location), opts)
        .await
        .unwrap();
    let body = vec![7u8; 4096];
    for round in 0..2 {
        for live in [false, true] {
            let tag = format!("p{round}-{live}");
            c.mkdir(&format!("/{tag}"), 0o755).await.unwrap();
            if live {
                c.snapshot_create("/", &tag).await.unwrap();
            }
            for pass in 0..2u8 {
                let mut tasks = Vec::new();
                for w in 0..8 {
                    let (c, mut body, tag) = (c.clone(), body.clone(), tag.clone());
                    tasks.push(tokio::spawn(async move {
                        for j in 0..50 {
                            body[0] = pass;
                            let path = format!("/{tag}/w{w}-{j}");
                            c.put_bytes(&path, &body, PutOptions::default())
                                .await
                                .unwrap_or_else(|e| panic!("put {path} pass {pass}: {e}"));
                            assert_eq!(c.read(&path).await.unwrap()[0], pass);
                        }
                    }));
                }
                for t in tasks {
                    t.await.unwrap();
                }
            }
            if live {
                c.snapshot_retire(&tag).await.unwrap();
                c.gc().await.unwrap();
            }
        }
    }
    let report = c.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}
