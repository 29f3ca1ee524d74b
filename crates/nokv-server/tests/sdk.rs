//! The SDK against an in-process server: `Client::connect`, batches,
//! error variants, and the lock naming the server.

use std::net::SocketAddr;

use nokv_client::{
    Client, ClientOptions, Error, InitOptions, MetaOp, MetaReply, ObjectLocation, Owner, PutOptions,
};
use nokv_meta::{OpenOptions, Volume};
use nokv_server::{ServeOptions, Server};

struct Running {
    url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<nokv_types::Result<()>>,
}

async fn start(home: &std::path::Path, max_batch_ops: usize) -> Running {
    let h = home.to_path_buf();
    let vol = tokio::task::spawn_blocking(move || Volume::open(&h, OpenOptions::default()))
        .await
        .unwrap()
        .unwrap();
    let opts = ServeOptions {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        http_listen: None,
        token: Some("sekrit".into()),
        max_batch_ops,
        ..ServeOptions::default()
    };
    let server = Server::bind(vol, opts).await.unwrap();
    let url = server.url().to_string();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server.run(async {
        let _ = rx.await;
    }));
    Running {
        url,
        stop: Some(tx),
        task,
    }
}

impl Running {
    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().unwrap();
    }
}

async fn volume() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let loc = ObjectLocation::Local {
        root: tmp.path().join("blocks"),
    };
    let c = Client::init(&home, InitOptions::new(loc), ClientOptions::default())
        .await
        .unwrap();
    drop(c);
    (tmp, home)
}

fn create(path: &str) -> MetaOp {
    MetaOp::Create {
        path: path.into(),
        owner: Owner {
            mode: 0o644,
            uid: 1,
            gid: 1,
        },
        exclusive: true,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_batch_and_errors_round_trip() {
    let (_tmp, home) = volume().await;
    let server = start(&home, 100).await;
    let c = Client::connect(&server.url, Some("sekrit"), ClientOptions::default())
        .await
        .unwrap();
    assert_eq!(c.info().await.unwrap().home, home);

    // one round trip, each op with its own result, in order
    c.mkdir("/d", 0o755).await.unwrap();
    let mut ops: Vec<MetaOp> = (0..50).map(|i| create(&format!("/d/f{i}"))).collect();
    ops.insert(10, create("/d/f3"));
    ops.push(MetaOp::Stat {
        path: "/d/f49".into(),
        follow: true,
    });
    let results = c.batch(ops).await;
    assert_eq!(results.len(), 52);
    assert!(matches!(&results[10], Err(Error::Exists(p)) if p.contains("f3")));
    assert_eq!(results.iter().filter(|r| r.is_err()).count(), 1);
    assert!(matches!(&results[51], Ok(MetaReply::Attr(a)) if a.uid == 1));
    assert_eq!(c.list("/d").await.unwrap().len(), 50);

    // a batch over the server's limit is refused as a whole
    let too_many: Vec<MetaOp> = (0..101).map(|i| create(&format!("/x{i}"))).collect();
    let results = c.batch(too_many).await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::InvalidArgument(_)))));
    assert!(matches!(c.stat("/x0").await, Err(Error::NotFound(_))));

    // errors come back as the same variants as embedded
    assert!(matches!(c.mkdir("/d", 0o755).await, Err(Error::Exists(_))));
    assert!(matches!(
        c.rename("/d", "/d/in", false).await,
        Err(Error::IntoOwnSubtree { .. })
    ));
    assert!(matches!(
        c.mkdir("/..", 0o755).await,
        Err(Error::InvalidName { .. } | Error::InvalidPath { .. })
    ));
    // "/d/.." is the root, which exists (mkdir(2) says EEXIST)
    assert!(matches!(
        c.mkdir("/d/..", 0o755).await,
        Err(Error::Exists(_))
    ));

    // bytes go to the store directly, metadata through the server
    let out = c
        .put_bytes("/d/blob", b"remote bytes", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(out.attr.generation, 1);
    assert_eq!(c.read("/d/blob").await.unwrap().as_ref(), b"remote bytes");

    // a reader lease through the server holds GC back until released
    let since = nokv_types::now_nanos();
    c.hold_readers(7, since, std::time::Duration::from_secs(60))
        .await
        .unwrap();
    c.put_bytes("/d/blob", b"newer bytes", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(c.gc().await.unwrap().queued_blocks_deleted, 0);
    assert_eq!(c.info().await.unwrap().reader_leases_since, Some(since));
    c.release_readers(7).await.unwrap();
    assert_eq!(c.info().await.unwrap().reader_leases, 0);
    assert_eq!(c.gc().await.unwrap().queued_blocks_deleted, 1);
    assert!(matches!(
        c.hold_readers(0, since, std::time::Duration::from_secs(1))
            .await,
        Err(Error::InvalidArgument(_))
    ));

    // tokens
    let err = Client::connect(&server.url, None, ClientOptions::default()).await;
    assert!(matches!(err, Err(Error::Unauthenticated(_))));
    let err = Client::connect(&server.url, Some("nope"), ClientOptions::default()).await;
    assert!(matches!(err, Err(Error::Unauthenticated(_))));

    // the volume is held by the server, and the lock says where it is
    let h = home.clone();
    let busy = tokio::task::spawn_blocking(move || Volume::open(&h, OpenOptions::default()))
        .await
        .unwrap();
    match busy {
        Err(Error::Busy(m)) => assert!(m.contains(&server.url), "{m}"),
        Err(e) => panic!("expected Busy, got {e}"),
        Ok(_) => panic!("expected Busy, got an open volume"),
    }

    drop(c);
    server.stop().await;
    let c = Client::open(&home, ClientOptions::default()).await.unwrap();
    assert_eq!(c.read("/d/blob").await.unwrap().as_ref(), b"newer bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_server_is_an_io_error() {
    let err = Client::connect("http://127.0.0.1:1", None, ClientOptions::default()).await;
    match err {
        Err(Error::Io(m)) => assert!(m.contains("cannot reach"), "{m}"),
        Err(e) => panic!("expected Io, got {e}"),
        Ok(_) => panic!("connected to port 1"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_bind_off_loopback_is_refused() {
    let (_tmp, home) = volume().await;
    let vol = Volume::open(&home, OpenOptions::default()).unwrap();
    let opts = ServeOptions {
        listen: SocketAddr::from(([0, 0, 0, 0], 0)),
        http_listen: None,
        token: None,
        ..ServeOptions::default()
    };
    assert!(matches!(
        Server::bind(vol, opts).await,
        Err(Error::InvalidArgument(_))
    ));
}
