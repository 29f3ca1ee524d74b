//! `nokv-fs serve` under concurrent and hostile clients: a real server
//! process on 127.0.0.1 and real client processes.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::{bin, token, ServerProc};

struct Vol {
    _tmp: tempfile::TempDir,
    home: PathBuf,
}

fn volume() -> Vol {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let out = Command::new(bin())
        .arg("init")
        .env("NOKV_HOME", &home)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    Vol { _tmp: tmp, home }
}

/// A client command through `server` with `token` (None: no token).
fn client(server: &ServerProc, token: Option<&str>) -> Command {
    let mut c = Command::new(bin());
    c.env("NOKV_SERVER", &server.url)
        .env_remove("NOKV_HOME")
        .env("HOME", "/nonexistent")
        .env_remove("NOKV_TOKEN");
    if let Some(t) = token {
        c.env("NOKV_TOKEN", t);
    }
    c
}

fn run(mut c: Command, args: &[&str]) -> Output {
    c.args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `args_of(i)` in `n` client processes at once.
fn race(
    server: &ServerProc,
    tok: &str,
    n: usize,
    args_of: impl Fn(usize) -> Vec<String>,
) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            client(server, Some(tok))
                .args(args_of(i))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            // Each racer publishes content of its own when it reads stdin.
            static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let seq = SEQ.fetch_add(1, Ordering::SeqCst);
            if let Some(mut stdin) = c.stdin.take() {
                let _ = stdin.write_all(format!("writer {i} #{seq}\n").as_bytes());
            }
            c.wait_with_output().unwrap()
        })
        .collect()
}

fn names(server: &ServerProc, tok: &str, dir: &str) -> Vec<String> {
    let out = run(client(server, Some(tok)), &["ls", dir]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn concurrent_creates_renames_and_publishes_match_the_model() {
    const N: usize = 8;
    const ROUNDS: usize = 4;
    let vol = volume();
    let server = ServerProc::start(&vol.home, &[]);
    let tok = token(&vol.home);
    for d in ["/mk", "/mv", "/pub"] {
        assert!(run(client(&server, Some(&tok)), &["mkdir", d])
            .status
            .success());
    }
    let mut published = 0;
    for round in 0..ROUNDS {
        // N processes create the same directory: exactly one wins, the
        // others are told it exists.
        let outs = race(&server, &tok, N, |_| {
            vec!["mkdir".into(), format!("/mk/d{round}")]
        });
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {won} creators won");
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert_eq!(o.status.code(), Some(1));
            assert!(stderr(o).contains("already exists"), "{}", stderr(o));
        }

        // N processes rename the same source to different names:
        // exactly one rename happens; the entry is neither lost nor
        // duplicated.
        let src = format!("/mv/src{round}");
        assert!(run(client(&server, Some(&tok)), &["mkdir", &src])
            .status
            .success());
        let outs = race(&server, &tok, N, |i| {
            vec!["mv".into(), src.clone(), format!("/mv/r{round}-{i}")]
        });
        let winners: Vec<usize> = (0..N).filter(|i| outs[*i].status.success()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        for o in outs.iter().filter(|o| !o.status.success()) {
            assert!(stderr(o).contains("no such file"), "{}", stderr(o));
        }

        // N processes publish the same path (replace allowed): every
        // acknowledged publish is one generation, the final content is
        // one writer's whole content. (A publish that reuses blocks of a
        // generation another writer has just replaced is refused with a
        // generation mismatch and changes nothing: allowed, counted.)
        let outs = race(&server, &tok, N, |_| {
            vec!["put".into(), "/pub/f".into(), "-".into()]
        });
        for o in &outs {
            if o.status.success() {
                published += 1;
            } else {
                assert!(stderr(o).contains("generation is"), "{}", stderr(o));
            }
        }

        // and N creates of the same new file with --if-generation 0:
        // exactly one.
        let outs = race(&server, &tok, N, |_| {
            vec![
                "put".into(),
                format!("/pub/once{round}"),
                "-".into(),
                "--if-generation".into(),
                "0".into(),
            ]
        });
        let won = outs.iter().filter(|o| o.status.success()).count();
        assert_eq!(won, 1, "round {round}: {won} exclusive publishers won");
    }
    let mk = names(&server, &tok, "/mk");
    assert_eq!(mk.len(), ROUNDS, "{mk:?}");
    let mv = names(&server, &tok, "/mv");
    assert_eq!(mv.len(), ROUNDS, "one entry per round, no src left: {mv:?}");
    assert!(mv.iter().all(|n| n.starts_with('r')), "{mv:?}");
    let st = run(client(&server, Some(&tok)), &["stat", "--json", "/pub/f"]);
    let st: serde_json::Value = serde_json::from_slice(&st.stdout).unwrap();
    assert_eq!(st["generation"], published as u64, "no publish lost");
    let cat = run(client(&server, Some(&tok)), &["cat", "/pub/f"]);
    let text = String::from_utf8(cat.stdout).unwrap();
    assert!(
        text.starts_with("writer ") && text.lines().count() == 1,
        "{text:?}"
    );
    assert_eq!(names(&server, &tok, "/pub").len(), 1 + ROUNDS);
}

#[test]
fn missing_and_wrong_tokens_are_refused() {
    let vol = volume();
    let server = ServerProc::start(&vol.home, &[]);
    let out = run(client(&server, None), &["mkdir", "/x"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("requires a token"),
        "{}",
        stderr(&out)
    );
    let out = run(client(&server, Some("not-the-token")), &["ls", "/"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("wrong token"), "{}", stderr(&out));
    // nothing was done; the right token works
    let tok = token(&vol.home);
    assert_eq!(names(&server, &tok, "/"), Vec::<String>::new());
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains("nokv_requests_refused_total{reason=\"unauthenticated\"} 2"),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&tok),
        "the token never appears in metrics"
    );
}

#[test]
fn auth_can_only_be_disabled_on_loopback() {
    let vol = volume();
    let out = Command::new(bin())
        .args(["serve", "--no-auth", "--listen", "0.0.0.0:0", "--no-http"])
        .env("NOKV_HOME", &vol.home)
        .env_remove("NOKV_TOKEN")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("without a token"), "{}", stderr(&out));
    // on loopback, --no-auth serves clients without a token
    let server = ServerProc::start(&vol.home, &["--no-auth"]);
    let out = run(client(&server, None), &["mkdir", "/open"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn malformed_and_oversize_messages_are_refused_while_others_are_served() {
    let vol = volume();
    let server = ServerProc::start(&vol.home, &["--max-message-bytes", "4096"]);
    let tok = token(&vol.home);
    let addr = server.url.trim_start_matches("http://").to_string();

    // garbage bytes on the gRPC port: the connection is dropped
    for garbage in [
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        vec![0xffu8; 10_000],
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x04\x01\x00\x00\x00\x00\x01garbage".to_vec(),
    ] {
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = s.write_all(&garbage);
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
    }

    // well-framed gRPC with malformed protobuf, and ops with missing
    // fields: INVALID_ARGUMENT (or a decode error), nothing runs
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use nokv_proto::pb;
        use tonic::codegen::http::uri::PathAndQuery;
        let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {tok}").parse().unwrap();
        // An Attr sent as an OpRequest: field 1 has the wrong wire type.
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        grpc.ready().await.unwrap();
        let mut req = tonic::Request::new(pb::Attr {
            ino: 7,
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", bearer.clone());
        let r: Result<tonic::Response<pb::OpReply>, _> = grpc
            .unary(
                req,
                PathAndQuery::from_static("/nokv.v1.Metadata/Call"),
                tonic_prost::ProstCodec::default(),
            )
            .await;
        let status = r.unwrap_err();
        assert_ne!(status.code(), tonic::Code::Ok);

        let mut c = pb::metadata_client::MetadataClient::new(channel);
        for op in [
            pb::Op { op: None },
            pb::Op {
                op: Some(pb::op::Op::Mkdir(pb::MkdirOp {
                    path: "/no-owner".into(),
                    owner: None,
                    parents: false,
                })),
            },
        ] {
            let mut req = tonic::Request::new(pb::OpRequest { op: Some(op) });
            req.metadata_mut().insert("authorization", bearer.clone());
            let status = c.call(req).await.unwrap_err();
            assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        }
        // a batch with one malformed op is refused as a whole
        let mut req = tonic::Request::new(pb::BatchRequest {
            ops: vec![
                nokv_proto::encode_op(nokv_meta_mkdir("/batch-ok")),
                pb::Op { op: None },
            ],
        });
        req.metadata_mut().insert("authorization", bearer.clone());
        assert_eq!(
            c.batch(req).await.unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    });

    // an oversize request (a path longer than the 4096-byte limit)
    let long = format!("/{}", "d/".repeat(3000));
    let out = run(client(&server, Some(&tok)), &["mkdir", "-p", &long]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("refused"), "{}", stderr(&out));

    // meanwhile the server serves everyone else, and nothing ran
    let out = run(client(&server, Some(&tok)), &["mkdir", "/still-fine"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(names(&server, &tok, "/"), ["still-fine"]);
    assert_eq!(server.get("/healthz").0, 200);
    let (_, metrics) = server.get("/metrics");
    assert!(metrics.contains("reason=\"malformed\"} 3"), "{metrics}");
}

fn nokv_meta_mkdir(path: &str) -> nokv_proto_meta::MetaOp {
    nokv_proto_meta::MetaOp::Mkdir {
        path: path.into(),
        owner: nokv_proto_meta::Owner {
            mode: 0o755,
            uid: 0,
            gid: 0,
        },
        parents: false,
    }
}

/// The metadata types the proto converts (re-exported by the SDK).
use nokv_client as nokv_proto_meta;

#[test]
fn sigterm_during_load_loses_no_acknowledged_op() {
    const CLIENTS: usize = 4;
    let vol = volume();
    let mut server = ServerProc::start(&vol.home, &[]);
    let tok = token(&vol.home);
    assert!(run(client(&server, Some(&tok)), &["mkdir", "/load"])
        .status
        .success());
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (acked, stop) = (acked.clone(), stop.clone());
            let url = server.url.clone();
            let tok = tok.clone();
            std::thread::spawn(move || {
                for j in 0.. {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let name = format!("t{t}-{j}");
                    let out = Command::new(bin())
                        .args(["mkdir", &format!("/load/{name}")])
                        .env("NOKV_SERVER", &url)
                        .env("NOKV_TOKEN", &tok)
                        .output()
                        .unwrap();
                    if out.status.success() {
                        acked.lock().unwrap().insert(name);
                    } else if j > 0 {
                        break; // the server is gone
                    }
                }
            })
        })
        .collect();
    // let the load run, then SIGTERM mid-load
    for _ in 0..200 {
        if acked.lock().unwrap().len() >= 40 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = server.terminate();
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(status.code(), Some(0), "graceful exit");
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= 40, "{} acknowledged", acked.len());

    // reopen embedded: every acknowledged op is there
    let out = Command::new(bin())
        .args(["ls", "/load"])
        .env("NOKV_HOME", &vol.home)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let present: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let lost: Vec<_> = acked.difference(&present).collect();
    assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
}

#[test]
fn embedded_open_while_serving_names_the_server() {
    let vol = volume();
    let mut server = ServerProc::start(&vol.home, &[]);
    let start = std::time::Instant::now();
    let out = Command::new(bin())
        .args(["ls", "/"])
        .env("NOKV_HOME", &vol.home)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(5), "no hang");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("in use") && err.contains(&format!("--server {}", server.url)),
        "{err}"
    );
    // serve and init refuse --server
    let out = run(client(&server, None), &["serve"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(server.terminate().code(), Some(0));
    let out = Command::new(bin())
        .args(["ls", "/"])
        .env("NOKV_HOME", &vol.home)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn health_readiness_and_metrics() {
    let vol = volume();
    let server = ServerProc::start(&vol.home, &[]);
    let tok = token(&vol.home);
    assert_eq!(server.get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(server.get("/readyz").0, 200);
    assert!(run(client(&server, Some(&tok)), &["mkdir", "/m"])
        .status
        .success());
    assert!(!run(client(&server, Some(&tok)), &["mkdir", "/m"])
        .status
        .success());
    let (status, m) = server.get("/metrics");
    assert_eq!(status, 200);
    for needle in [
        "nokv_ops_total{op=\"mkdir\",outcome=\"ok\"} 1",
        "nokv_ops_total{op=\"mkdir\",outcome=\"exists\"} 1",
        "nokv_op_duration_seconds_bucket{op=\"mkdir\"",
        "nokv_commit_version",
        "nokv_holt_",
    ] {
        assert!(m.contains(needle), "{needle} missing in\n{m}");
    }
}

/// The value of the counter line `name` in a Prometheus exposition (0
/// when the series does not exist yet).
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn an_idle_watch_stream_costs_no_log_reads_and_a_change_reaches_it() {
    use std::io::BufRead;
    let vol = volume();
    let server = ServerProc::start(&vol.home, &[]);
    let tok = token(&vol.home);
    let mut follower = client(&server, Some(&tok))
        .args(["watch", "/"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            if lines_tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    // The stream is open once the server has read the log for it.
    let reads = "nokv_watch_stream_total{what=\"read\"}";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while counter(&server.get("/metrics").1, reads) == 0 {
        assert!(std::time::Instant::now() < deadline, "no watch stream");
        std::thread::sleep(Duration::from_millis(20));
    }
    // Idle for a second: a stream that polled the log every 2 ms would
    // read it ~500 times; one that waits for commits, not at all.
    let before = counter(&server.get("/metrics").1, reads);
    std::thread::sleep(Duration::from_secs(1));
    let idle_reads = counter(&server.get("/metrics").1, reads) - before;
    assert!(idle_reads <= 2, "{idle_reads} log reads by an idle stream");
    // A change wakes it and is delivered.
    assert!(run(client(&server, Some(&tok)), &["mkdir", "/woke"])
        .status
        .success());
    let line = lines
        .recv_timeout(Duration::from_secs(30))
        .expect("the change reached the follower");
    assert!(line.ends_with("created /woke"), "{line}");
    let m = server.get("/metrics").1;
    assert!(
        counter(&m, "nokv_watch_stream_total{what=\"page\"}") >= 1,
        "{m}"
    );
    let _ = follower.kill();
    let _ = follower.wait();
}
