//! A publish whose reply is lost: the server committed it, the client
//! only sees a broken connection. The client must not delete the blocks
//! the namespace now references (found by the crash campaign: a server
//! SIGKILLed right after committing a publish left a file whose blocks
//! the writer had deleted as "failed").

use std::net::SocketAddr;
use std::sync::Arc;

use nokv_client::{Client, ClientOptions, InitOptions, ObjectLocation, PutOptions};
use nokv_meta::{OpenOptions, Volume};
use nokv_server::{ServeOptions, Server};
use nokv_testkit::TcpFaultProxy;

const BS: u32 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_whose_reply_is_lost_keeps_its_blocks() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let loc = ObjectLocation::Local {
        root: tmp.path().join("blocks"),
    };
    let mut init = InitOptions::new(loc);
    init.block_size = BS;
    drop(
        Client::init(&home, init, ClientOptions::default())
            .await
            .unwrap(),
    );
    let h = home.clone();
    let vol = tokio::task::spawn_blocking(move || Volume::open(&h, OpenOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let opts = ServeOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_listen: None,
        token: Some("tok".into()),
        ..ServeOptions::default()
    };
    let server = Server::bind(vol, opts).await.unwrap();
    let url = server.url().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));

    let proxy = TcpFaultProxy::start(&url);
    let through_proxy = Client::connect(&proxy.url(), Some("tok"), ClientOptions::default())
        .await
        .unwrap();
    let direct = Client::connect(&url, Some("tok"), ClientOptions::default())
        .await
        .unwrap();

    let data: Vec<u8> = (0..3 * BS as usize + 100)
        .map(|i| (i % 251) as u8)
        .collect();
    // Once the whole input has been read (every block is uploaded or
    // uploading; the next request is the publish), swallow replies.
    let swallow = {
        let proxy = Arc::new(proxy);
        let p = proxy.clone();
        let len = data.len() as u64;
        let progress: Arc<dyn Fn(u64) + Send + Sync> = Arc::new(move |n| {
            if n >= len {
                p.swallow_replies(true);
            }
        });
        (proxy, progress)
    };
    let put = through_proxy
        .put_bytes(
            "/ckpt",
            &data,
            PutOptions {
                progress: Some(swallow.1.clone()),
                ..PutOptions::default()
            },
        )
        .await;
    let err = put.expect_err("the reply was swallowed: the writer cannot know");
    assert!(swallow.0.swallowed() >= 1, "no reply was swallowed: {err}");

    // The publish did commit, and the file reads back whole.
    let attr = direct.stat("/ckpt").await.unwrap();
    assert_eq!(attr.generation, 1);
    let read = direct.read("/ckpt").await.unwrap();
    assert_eq!(read.as_ref(), data.as_slice(), "published bytes intact");
    let report = direct.fsck(false).await.unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.missing.is_empty(), "{report:?}");

    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
