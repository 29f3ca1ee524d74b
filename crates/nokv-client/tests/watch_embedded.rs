//! An embedded follower (`Client::watch` on a volume opened in this
//! process) is woken by commits: every change reaches it, in order, and
//! nothing arrives while nothing changes.

use std::time::Duration;

use futures::StreamExt;
use nokv_client::{Client, ClientOptions, EventKind, InitOptions, ObjectLocation};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_embedded_follower_is_woken_by_each_commit() {
    let dir = tempfile::tempdir().unwrap();
    let location = ObjectLocation::Local {
        root: dir.path().join("blocks"),
    };
    let c = Client::init(
        &dir.path().join("v"),
        InitOptions::new(location),
        ClientOptions::default(),
    )
    .await
    .unwrap();
    let head = c.watch_head().await.unwrap();
    let mut events = c.watch("/", head);

    // Caught up and nothing changes: the stream waits, yielding nothing.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.next())
            .await
            .is_err(),
        "an event arrived although nothing changed"
    );

    // Each change, made while the follower waits, reaches it in order.
    for i in 0..20 {
        let path = format!("/d{i}");
        c.mkdir(&path, 0o755).await.unwrap();
        let e = tokio::time::timeout(Duration::from_secs(30), events.next())
            .await
            .expect("the change reached the follower")
            .expect("the stream goes on")
            .unwrap();
        assert_eq!(e.kind, EventKind::Created, "{e:?}");
        assert_eq!(e.path, path);
    }
}
