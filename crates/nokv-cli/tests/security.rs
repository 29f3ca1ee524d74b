//! Security checks as tests: no RPC without the right token does
//! anything, and neither tokens nor S3 secrets ever reach a log line or
//! an error message (servers and clients at trace level, over Garage).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use nokv_client::{Body, MetaOp, Owner, SetAttr};
use nokv_meta::GcId;
use nokv_proto::pb;
use nokv_testkit::S3Env;
use support::{bin, token, ServerProc};
use tonic::metadata::MetadataValue;

/// One op of every kind. The match below has no wildcard: a new
/// `MetaOp` variant does not compile until it is added here.
fn every_op() -> Vec<MetaOp> {
    let owner = Owner {
        mode: 0o644,
        uid: 0,
        gid: 0,
    };
    let body = Body {
        size: 0,
        block_size: 65536,
        digest: [0; 32],
        blocks: vec![],
    };
    let ops = vec![
        MetaOp::Info,
        MetaOp::Stat {
            path: "/".into(),
            follow: true,
        },
        MetaOp::List {
            path: "/".into(),
            after: None,
            limit: 10,
        },
        MetaOp::Mkdir {
            path: "/d".into(),
            owner,
            parents: true,
        },
        MetaOp::Create {
            path: "/f".into(),
            owner,
            exclusive: true,
        },
        MetaOp::Symlink {
            path: "/s".into(),
            target: b"/f".to_vec(),
            owner,
        },
        MetaOp::Readlink { path: "/s".into() },
        MetaOp::Link {
            existing: "/f".into(),
            new: "/g".into(),
        },
        MetaOp::Unlink { path: "/f".into() },
        MetaOp::Rmdir { path: "/d".into() },
        MetaOp::RemoveTree { path: "/d".into() },
        MetaOp::Rename {
            src: "/f".into(),
            dst: "/h".into(),
            replace: true,
        },
        MetaOp::SetAttr {
            path: "/".into(),
            change: SetAttr {
                mode: Some(0o777),
                ..SetAttr::default()
            },
        },
        MetaOp::Body { path: "/f".into() },
        MetaOp::BeginUpload { deadline: i64::MAX },
        MetaOp::FinishUpload { upload: 1 },
        MetaOp::Publish {
            path: "/p".into(),
            body: body.clone(),
            upload: 1,
            if_generation: None,
            owner,
        },
        MetaOp::ExpiredUploads {
            now: i64::MAX,
            limit: 10,
        },
        MetaOp::GcQueue { limit: 10 },
        MetaOp::ListIno {
            dir: 1,
            after: None,
            limit: 10,
        },
        MetaOp::BodyIno { ino: 2 },
        MetaOp::SwapTree {
            staged: "/a".into(),
            dst: "/b".into(),
        },
        MetaOp::Watch {
            from: 0,
            prefix: "/".into(),
            limit: 10,
        },
        MetaOp::TrimWatch { keep_versions: 0 },
        MetaOp::ManifestBlocks {
            after: None,
            limit: 10,
        },
        MetaOp::GcDone {
            ids: vec![GcId {
                commit_version: 1,
                seq: 0,
            }],
        },
        MetaOp::Checkpoint,
        MetaOp::SnapshotCreate {
            path: "/".into(),
            name: "s".into(),
        },
        MetaOp::SnapshotRetire { name: "s".into() },
        MetaOp::SnapshotList,
        MetaOp::AtSnapshot {
            snapshot: "s".into(),
            op: Box::new(MetaOp::Stat {
                path: "/".into(),
                follow: true,
            }),
        },
        MetaOp::PruneHistory {
            after: None,
            limit: 10,
        },
        MetaOp::GcQueueAll {
            after: None,
            limit: 10,
        },
        MetaOp::Lookup {
            parent: 1,
            name: b"f".to_vec(),
        },
        MetaOp::GetAttr { ino: 1 },
        MetaOp::MkdirAt {
            parent: 1,
            name: b"d".to_vec(),
            owner,
        },
        MetaOp::CreateAt {
            parent: 1,
            name: b"f".to_vec(),
            owner,
            exclusive: true,
        },
        MetaOp::SymlinkAt {
            parent: 1,
            name: b"s".to_vec(),
            target: b"f".to_vec(),
            owner,
        },
        MetaOp::LinkAt {
            ino: 2,
            new_parent: 1,
            new_name: b"g".to_vec(),
        },
        MetaOp::UnlinkAt {
            parent: 1,
            name: b"f".to_vec(),
        },
        MetaOp::RmdirAt {
            parent: 1,
            name: b"d".to_vec(),
        },
        MetaOp::RenameAt {
            parent: 1,
            name: b"f".to_vec(),
            new_parent: 1,
            new_name: b"h".to_vec(),
            replace: true,
        },
        MetaOp::SetAttrIno {
            ino: 1,
            change: SetAttr {
                mode: Some(0o777),
                ..SetAttr::default()
            },
        },
        MetaOp::ReadlinkIno { ino: 2 },
        MetaOp::HoldReaders {
            lease: 9,
            since: 0,
            ttl_ms: 1000,
        },
        MetaOp::ReleaseReaders { lease: 9 },
        MetaOp::PublishIno {
            ino: 2,
            body,
            upload: 1,
            if_generation: None,
            attrs: SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            },
        },
    ];
    for op in &ops {
        match op {
            MetaOp::Info
            | MetaOp::Stat { .. }
            | MetaOp::List { .. }
            | MetaOp::Mkdir { .. }
            | MetaOp::Create { .. }
            | MetaOp::Symlink { .. }
            | MetaOp::Readlink { .. }
            | MetaOp::Link { .. }
            | MetaOp::Unlink { .. }
            | MetaOp::Rmdir { .. }
            | MetaOp::RemoveTree { .. }
            | MetaOp::Rename { .. }
            | MetaOp::SetAttr { .. }
            | MetaOp::Body { .. }
            | MetaOp::BeginUpload { .. }
            | MetaOp::FinishUpload { .. }
            | MetaOp::Publish { .. }
            | MetaOp::ExpiredUploads { .. }
            | MetaOp::GcQueue { .. }
            | MetaOp::ListIno { .. }
            | MetaOp::BodyIno { .. }
            | MetaOp::SwapTree { .. }
            | MetaOp::Watch { .. }
            | MetaOp::TrimWatch { .. }
            | MetaOp::ManifestBlocks { .. }
            | MetaOp::GcDone { .. }
            | MetaOp::Checkpoint
            | MetaOp::SnapshotCreate { .. }
            | MetaOp::SnapshotRetire { .. }
            | MetaOp::SnapshotList
            | MetaOp::AtSnapshot { .. }
            | MetaOp::PruneHistory { .. }
            | MetaOp::GcQueueAll { .. }
            | MetaOp::Lookup { .. }
            | MetaOp::GetAttr { .. }
            | MetaOp::MkdirAt { .. }
            | MetaOp::CreateAt { .. }
            | MetaOp::SymlinkAt { .. }
            | MetaOp::LinkAt { .. }
            | MetaOp::UnlinkAt { .. }
            | MetaOp::RmdirAt { .. }
            | MetaOp::RenameAt { .. }
            | MetaOp::SetAttrIno { .. }
            | MetaOp::ReadlinkIno { .. }
            | MetaOp::HoldReaders { .. }
            | MetaOp::ReleaseReaders { .. }
            | MetaOp::PublishIno { .. } => {}
        }
    }
    ops
}

fn init_local() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let out = Command::new(bin())
        .arg("init")
        .env("NOKV_HOME", &home)
        .env_remove("NOKV_SERVER")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    (tmp, home)
}

#[test]
fn no_rpc_without_the_right_token_does_anything() {
    let (_tmp, home) = init_local();
    let server = ServerProc::start(&home, &[]);
    let tok = token(&home);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(home.join("TOKEN"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "TOKEN is readable by others: {mode:o}");
    }
    let wrong_tail = format!("{}x", &tok[..tok.len() - 1]);
    let credentials: Vec<Option<String>> = vec![
        None,
        Some("Bearer wrong-token-c4f3".into()),
        Some(format!("Bearer {tok}x")),
        Some(format!("Bearer {}", &tok[..tok.len() - 1])),
        Some(format!("Bearer {wrong_tail}")),
        Some(format!("bearer {tok}")),
        Some(format!("Basic {tok}")),
        Some(tok.clone()),
        Some(format!("Bearer  {tok}")),
        Some("Bearer ".into()),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut refusals = 0u64;
    rt.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(server.url.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut c = pb::metadata_client::MetadataClient::new(channel);
        let ok = Some(format!("Bearer {tok}"));
        let info = |reply: pb::OpReply| match nokv_proto::decode_reply(reply.reply.unwrap()) {
            Ok(nokv_client::MetaReply::Info(i)) => i.commit_version,
            other => panic!("{other:?}"),
        };
        let before = info(
            c.call(with(
                pb::OpRequest {
                    op: Some(nokv_proto::encode_op(MetaOp::Info)),
                },
                &ok,
            ))
            .await
            .unwrap()
            .into_inner(),
        );
        let ops = every_op();
        for cred in &credentials {
            for op in &ops {
                let req = pb::OpRequest {
                    op: Some(nokv_proto::encode_op(op.clone())),
                };
                let status = c.call(with(req, cred)).await.unwrap_err();
                assert_eq!(
                    status.code(),
                    tonic::Code::Unauthenticated,
                    "{op:?} with {cred:?}: {status:?}"
                );
                assert!(
                    !status.message().contains(&tok) && !status.message().contains("c4f3"),
                    "the refusal echoes a token: {status:?}"
                );
                refusals += 1;
            }
            let batch = pb::BatchRequest {
                ops: ops.iter().cloned().map(nokv_proto::encode_op).collect(),
            };
            let status = c.batch(with(batch, cred)).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "batch {cred:?}"
            );
            refusals += 1;
            let watch = pb::WatchRequest {
                from: 0,
                prefix: "/".into(),
            };
            let status = c.watch(with(watch, cred)).await.unwrap_err();
            assert_eq!(
                status.code(),
                tonic::Code::Unauthenticated,
                "watch {cred:?}"
            );
            refusals += 1;
        }
        // Nothing ran: no commit, an empty root.
        let after = info(
            c.call(with(
                pb::OpRequest {
                    op: Some(nokv_proto::encode_op(MetaOp::Info)),
                },
                &ok,
            ))
            .await
            .unwrap()
            .into_inner(),
        );
        assert_eq!(after, before, "a refused request committed something");
        let list = c
            .call(with(
                pb::OpRequest {
                    op: Some(nokv_proto::encode_op(MetaOp::List {
                        path: "/".into(),
                        after: None,
                        limit: 10,
                    })),
                },
                &ok,
            ))
            .await
            .unwrap()
            .into_inner();
        match nokv_proto::decode_reply(list.reply.unwrap()).unwrap() {
            nokv_client::MetaReply::Page(p) => assert!(p.entries.is_empty(), "{p:?}"),
            other => panic!("{other:?}"),
        }
    });
    let (_, metrics) = server.get("/metrics");
    assert!(
        metrics.contains(&format!(
            "nokv_requests_refused_total{{reason=\"unauthenticated\"}} {refusals}"
        )),
        "{refusals} refusals expected in\n{metrics}"
    );
    eprintln!(
        "{refusals} requests ({} ops x {} bad credentials, plus batch and watch) refused",
        every_op().len(),
        credentials.len()
    );
}

/// `msg` with `authorization: <cred>` (None: no header).
fn with<T>(msg: T, cred: &Option<String>) -> tonic::Request<T> {
    let mut req = tonic::Request::new(msg);
    if let Some(v) = cred {
        let v: MetadataValue<_> = v.parse().unwrap();
        req.metadata_mut().insert("authorization", v);
    }
    req
}

fn all_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn tokens_and_secrets_never_reach_logs_or_errors() {
    let env = S3Env::shared();
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let prefix = format!("security-{}/", std::process::id());
    let trace = |c: &mut Command| {
        c.env("NOKV_LOG", "trace").env("RUST_LOG", "trace");
    };
    let s3 = |c: &mut Command, secret: &str| {
        c.env("AWS_ACCESS_KEY_ID", &env.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret);
    };
    let mut init = Command::new(bin());
    init.args(["init", "--object-backend", "s3", "--s3-bucket", &env.bucket])
        .args(["--s3-endpoint", &env.endpoint, "--s3-region", &env.region])
        .args(["--s3-prefix", &prefix])
        .env("NOKV_HOME", &home)
        .env_remove("NOKV_SERVER");
    trace(&mut init);
    s3(&mut init, &env.secret_access_key);
    let mut outputs = vec![("init".to_string(), init.output().unwrap())];
    assert!(outputs[0].1.status.success(), "{:?}", outputs[0].1);
    let tok = token(&home);

    // The server, at trace level, its stderr kept.
    let log_path = tmp.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut serve = Command::new(bin());
    serve
        .args(["serve", "--listen", "127.0.0.1:0", "--no-http"])
        .args(["--gc-interval", "1"])
        .env("NOKV_HOME", &home)
        .env_remove("NOKV_SERVER")
        .env_remove("NOKV_TOKEN")
        .stdout(Stdio::piped())
        .stderr(log);
    trace(&mut serve);
    s3(&mut serve, &env.secret_access_key);
    let mut server = serve.spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line.split_whitespace().nth(2).unwrap().to_string();

    let client = |token: &str, secret: &str| {
        let mut c = Command::new(bin());
        c.env("NOKV_SERVER", &url)
            .env("NOKV_TOKEN", token)
            .env_remove("NOKV_HOME");
        trace(&mut c);
        s3(&mut c, secret);
        c
    };
    let input = tmp.path().join("input");
    std::fs::write(&input, vec![7u8; 300_000]).unwrap();
    let input = input.to_str().unwrap().to_string();
    let good: &[&[&str]] = &[
        &["mkdir", "/d"],
        &["put", "/d/f", &input],
        &["put", "/d/f", &input],
        &["cat", "/d/f"],
        &["ls", "-l", "/d"],
        &["stat", "--json", "/d/f"],
        &["mv", "/d/f", "/d/g"],
        &["watch", "--no-follow", "--from", "0", "/"],
        &["status", "--json"],
        &["fsck", "--json"],
        &["rm", "/d/g"],
        &["gc", "--json"],
    ];
    for args in good {
        let out = client(&tok, &env.secret_access_key)
            .args(*args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", all_text(&out));
        outputs.push((format!("{args:?}"), out));
    }
    // Failures: a wrong token, a wrong S3 secret, a missing file.
    let wrong_token = "not-the-token-7e57ab1e";
    let wrong_secret = "wrong-secret-d00dfeed0123456789";
    let bad: Vec<(Command, &str)> = vec![
        (
            {
                let mut c = client(wrong_token, &env.secret_access_key);
                c.args(["ls", "/"]);
                c
            },
            "wrong token",
        ),
        (
            {
                let mut c = client(&tok, wrong_secret);
                c.args(["put", "/d/h", &input]);
                c
            },
            "wrong S3 secret",
        ),
        (
            {
                let mut c = client(&tok, &env.secret_access_key);
                c.args(["cat", "/missing"]);
                c
            },
            "missing file",
        ),
    ];
    for (mut c, what) in bad {
        let out = c.output().unwrap();
        assert!(!out.status.success(), "{what} succeeded");
        assert!(!out.stderr.is_empty(), "{what}: no error message");
        outputs.push((what.to_string(), out));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500)); // a background GC pass
                                                                // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert!(server.wait().unwrap().success());

    let server_log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        server_log.lines().count() > 50,
        "trace logging was not on: {server_log}"
    );
    let mut texts: Vec<(String, String)> = outputs
        .iter()
        .map(|(what, o)| (what.clone(), all_text(o)))
        .collect();
    texts.push(("server log".into(), server_log));
    let secrets = [
        ("the token", tok.as_str()),
        ("the S3 secret key", env.secret_access_key.as_str()),
        ("the wrong token", wrong_token),
        ("the wrong S3 secret", wrong_secret),
    ];
    let mut bytes = 0;
    for (what, text) in &texts {
        bytes += text.len();
        for (name, secret) in secrets {
            assert!(
                !text.contains(secret),
                "{name} appears in the output of {what}"
            );
        }
    }
    assert_no_secret_in_files(&home, &env.secret_access_key);
    eprintln!(
        "{} outputs ({} KiB of trace logs and messages) checked: no token or secret",
        texts.len(),
        bytes / 1024
    );
}

/// The volume home holds the token (its own file) but never the S3 secret.
fn assert_no_secret_in_files(home: &Path, secret: &str) {
    let mut todo = vec![home.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
                assert!(!found, "the S3 secret is stored in {}", p.display());
            }
        }
    }
}
