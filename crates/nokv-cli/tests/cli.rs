//! The `nokv-fs` binary end to end: real processes on a real volume,
//! embedded and through a real `nokv-fs serve` process (`Mode`).

mod support;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use nokv_object::{BlockStore, BlockStoreOptions, StoreCredentials};
use nokv_testkit::{backend_tests_blocking, Backend};
use nokv_types::ObjectLocation;

/// How the commands of a test reach the volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Each command opens the volume in its own process.
    Embedded,
    /// A `nokv-fs serve` process holds the volume; commands use --server.
    Server,
}

struct Env {
    home: PathBuf,
    work: PathBuf,
    location: ObjectLocation,
    credentials: StoreCredentials,
    mode: Mode,
    server: Option<support::ServerProc>,
    // Last: the server stops before its volume's directory goes.
    _tmp: tempfile::TempDir,
}

/// One test per backend and mode from `fn(Backend, Mode)`.
macro_rules! mode_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                use super::{Backend, Mode};
                #[test]
                fn local_embedded() {
                    super::$name(Backend::Local, Mode::Embedded)
                }
                #[test]
                fn local_server() {
                    super::$name(Backend::Local, Mode::Server)
                }
                #[test]
                fn garage_embedded() {
                    super::$name(Backend::Garage, Mode::Embedded)
                }
                #[test]
                fn garage_server() {
                    super::$name(Backend::Garage, Mode::Server)
                }
            }
        )*
    };
}

impl Env {
    fn new() -> Env {
        Env::on(Backend::Local)
    }

    fn on(backend: Backend) -> Env {
        Env::with(backend, Mode::Embedded)
    }

    fn with(backend: Backend, mode: Mode) -> Env {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("vol");
        let work = tmp.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        let (location, credentials) = match backend {
            // The CLI's default: blocks under the volume home.
            Backend::Local => (
                ObjectLocation::Local {
                    root: home.join("blocks"),
                },
                StoreCredentials::default(),
            ),
            Backend::Garage => backend.location(tmp.path()),
        };
        Env {
            _tmp: tmp,
            home,
            work,
            location,
            credentials,
            mode,
            server: None,
        }
    }

    /// A command on this volume: embedded, or through the server once
    /// `init` has started it.
    fn cmd(&self) -> Command {
        let mut c = self.embedded_cmd();
        if let Some(s) = &self.server {
            c.env("NOKV_SERVER", &s.url)
                .env("NOKV_TOKEN", support::token(&self.home));
        }
        c
    }

    fn embedded_cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_nokv-fs"));
        c.env("NOKV_HOME", &self.home)
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("NOKV_SERVER")
            .env_remove("NOKV_TOKEN")
            .current_dir(&self.work);
        if let (Some(k), Some(s)) = (
            &self.credentials.access_key_id,
            &self.credentials.secret_access_key,
        ) {
            c.env("AWS_ACCESS_KEY_ID", k)
                .env("AWS_SECRET_ACCESS_KEY", s);
        }
        c
    }

    /// `init` for this env's backend, with extra arguments; in server
    /// mode, then starts the server on the new volume.
    fn init(&mut self, extra: &[&str]) {
        let mut args: Vec<String> = vec!["init".into()];
        if let ObjectLocation::S3(s3) = &self.location {
            args.extend(
                [
                    "--object-backend",
                    "s3",
                    "--s3-bucket",
                    &s3.bucket,
                    "--s3-endpoint",
                    s3.endpoint.as_deref().unwrap_or_default(),
                    "--s3-region",
                    &s3.region,
                    "--s3-prefix",
                    &s3.prefix,
                ]
                .map(String::from),
            );
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        self.ok(&refs);
        if self.mode == Mode::Server {
            self.server = Some(support::ServerProc::start(&self.home, &[]));
        }
    }

    fn remote(&self) -> bool {
        self.server.is_some()
    }

    /// Every block object of the volume (a bucket listing on S3).
    fn objects(&self) -> Vec<String> {
        let store = BlockStore::open(
            &self.location,
            &self.credentials,
            BlockStoreOptions::default(),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut keys: Vec<String> = rt
            .block_on(store.list_keys("blocks/"))
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs and requires failure with `code`; returns stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one-line message: {err}");
        err
    }

    fn put_stdin(&self, path: &str, data: &[u8]) -> String {
        let mut child = self
            .cmd()
            .args(["put", path, "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(data).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn commit_version(&self) -> u64 {
        let v: serde_json::Value = serde_json::from_str(&self.ok(&["status", "--json"])).unwrap();
        v["commit_version"].as_u64().unwrap()
    }
}

mode_tests!(
    the_whole_job,
    a_put_killed_mid_upload_is_collected_after_its_deadline,
    bad_input_is_refused_and_changes_nothing,
    fsck_finds_missing_and_leaked_objects,
    put_r_publishes_and_replaces_a_whole_tree,
    snapshots_pin_a_dataset_version,
);
backend_tests_blocking!(broken_pipe_on_cat_is_not_an_error);

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn missing_volume_says_run_init() {
    let env = Env::new();
    let err = env.fails(&["ls", "/"], 3);
    assert!(err.contains("nokv-fs init"), "{err}");
    assert!(
        !env.home.exists(),
        "a read on a missing volume creates nothing"
    );
}

fn the_whole_job(backend: Backend, mode: Mode) {
    let mut env = Env::with(backend, mode);
    env.init(&["--block-size", "65536"]);
    // init never goes through a server (it refuses --server: bad input)
    env.fails(&["init"], if env.remote() { 2 } else { 1 });

    // put from a file and from stdin, read back with cat and get
    let data = pseudo_random(300_000);
    std::fs::write(env.work.join("ckpt.bin"), &data).unwrap();
    // parents are created only when asked
    let err = env.fails(&["put", "/runs/a/ckpt.bin", "ckpt.bin"], 1);
    assert!(err.contains("/runs: no such file or directory"), "{err}");
    let out = env.ok(&["put", "-p", "/runs/a/ckpt.bin", "ckpt.bin"]);
    assert!(out.contains("generation 1"), "{out}");
    env.ok(&["mkdir", "-p", "/runs/a"]);
    env.fails(&["mkdir", "/runs/a"], 1);
    env.put_stdin("/runs/a/note.txt", b"hello nokv\n");
    assert_eq!(env.ok(&["cat", "/runs/a/note.txt"]), "hello nokv\n");
    let cat = env
        .cmd()
        .args(["cat", "/runs/a/ckpt.bin"])
        .output()
        .unwrap();
    assert_eq!(cat.stdout, data);
    assert_eq!(
        env.ok(&["cat", "/runs/a/note.txt", "--offset", "6", "--length", "4"]),
        "nokv"
    );
    env.ok(&["get", "/runs/a/ckpt.bin", "back.bin"]);
    assert_eq!(std::fs::read(env.work.join("back.bin")).unwrap(), data);

    // put-artifact alias, replace with reuse and --if-generation
    let mut appended = data.clone();
    appended.extend_from_slice(b"tail");
    std::fs::write(env.work.join("ckpt2.bin"), &appended).unwrap();
    let out = env.ok(&[
        "put-artifact",
        "/runs/a/ckpt.bin",
        "ckpt2.bin",
        "--json",
        "--if-generation",
        "1",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["generation"], 2);
    assert_eq!(
        v["reused_blocks"], 4,
        "300000 bytes = 4 full 64 KiB blocks unchanged"
    );
    assert_eq!(v["size"], appended.len());
    let err = env.fails(
        &[
            "put",
            "/runs/a/ckpt.bin",
            "ckpt.bin",
            "--if-generation",
            "1",
        ],
        1,
    );
    assert!(err.contains("generation is 2, expected 1"), "{err}");

    // ls, ls -l, ls --json, stat --json
    assert_eq!(env.ok(&["ls", "/runs/a"]), "ckpt.bin\nnote.txt\n");
    let long = env.ok(&["ls", "-l", "/runs/a"]);
    assert!(
        long.lines().next().unwrap().starts_with("-rw-r--r--"),
        "{long}"
    );
    assert!(long.contains(&appended.len().to_string()));
    let listing: serde_json::Value =
        serde_json::from_str(&env.ok(&["ls", "--json", "/runs/a"])).unwrap();
    assert_eq!(listing.as_array().unwrap().len(), 2);
    assert_eq!(listing[1]["name"], "note.txt");
    let st: serde_json::Value =
        serde_json::from_str(&env.ok(&["stat", "--json", "/runs/a/ckpt.bin"])).unwrap();
    assert_eq!(st["kind"], "file");
    assert_eq!(st["digest"], blake3::hash(&appended).to_hex().as_str());

    // mv, mv --replace, ln -s, readlink, hard links
    env.ok(&["mv", "/runs/a", "/runs/b"]);
    env.fails(&["ls", "/runs/a"], 1);
    env.put_stdin("/runs/b/other", b"other");
    env.fails(&["mv", "/runs/b/other", "/runs/b/note.txt"], 1);
    env.ok(&["mv", "--replace", "/runs/b/other", "/runs/b/note.txt"]);
    assert_eq!(env.ok(&["cat", "/runs/b/note.txt"]), "other");
    env.fails(&["mv", "/runs", "/runs/b/inside"], 2);
    env.ok(&["ln", "-s", "/runs/b/note.txt", "/latest"]);
    assert_eq!(env.ok(&["readlink", "/latest"]), "/runs/b/note.txt\n");
    assert_eq!(env.ok(&["cat", "/latest"]), "other");
    let st: serde_json::Value =
        serde_json::from_str(&env.ok(&["stat", "--json", "/latest"])).unwrap();
    assert_eq!(st["kind"], "symlink");
    env.ok(&["ln", "/runs/b/note.txt", "/hard"]);
    let st: serde_json::Value =
        serde_json::from_str(&env.ok(&["stat", "--json", "/hard"])).unwrap();
    assert_eq!(st["nlink"], 2);

    // truncate and chmod
    env.ok(&["truncate", "/hard", "2"]);
    assert_eq!(env.ok(&["cat", "/runs/b/note.txt"]), "ot");
    env.ok(&["chmod", "600", "/hard"]);
    let st: serde_json::Value =
        serde_json::from_str(&env.ok(&["stat", "--json", "/runs/b/note.txt"])).unwrap();
    assert_eq!(st["mode"], "600");

    // rm, rmdir, rm -r
    env.fails(&["rm", "/runs"], 1);
    env.fails(&["rmdir", "/runs"], 1);
    env.ok(&["rm", "/hard"]);
    env.ok(&["rm", "-r", "/runs"]);
    env.fails(&["cat", "/latest"], 1);
    env.ok(&["rm", "/latest"]);
    assert_eq!(env.ok(&["ls", "/"]), "");

    // everything removed is collected: no block is left
    let gc = env.ok(&["gc"]);
    assert!(gc.contains("queued blocks deleted"), "{gc}");
    assert!(env.objects().is_empty(), "{:?}", env.objects());
}

fn bad_input_is_refused_and_changes_nothing(backend: Backend, mode: Mode) {
    let mut env = Env::with(backend, mode);
    env.init(&[]);
    env.ok(&["mkdir", "/d"]);
    let before = env.commit_version();
    let long_name = format!("/d/{}", "x".repeat(256));
    let local = env.work.join("local.bin");
    std::fs::write(&local, b"bytes").unwrap();
    let local = local.to_str().unwrap();
    for (args, code) in [
        (vec!["mkdir", "/.."], 2),
        (vec!["mkdir", "/d/../../x"], 2),
        (vec!["mkdir", long_name.as_str()], 2),
        (vec!["mkdir", ""], 2),
        (vec!["rmdir", "/"], 2),
        (vec!["rm", "-r", "/"], 2),
        (vec!["mv", "/d", "/d/inner"], 2),
        (vec!["mv", "/d", "/"], 2),
        (vec!["mv", "/", "/e"], 2),
        (vec!["chmod", "99", "/d"], 2),
        (vec!["ln", "-s", "", "/l"], 2),
        (vec!["mkdir", "/"], 1),
        (vec!["mkdir", "/d"], 1),
        (vec!["ln", "-s", "x", "/"], 1),
        (vec!["ln", "/d", "/"], 1),
        (vec!["rm", "/"], 1),
        (vec!["put", "/", local], 1),
        (vec!["cat", "/d"], 1),
        (vec!["rm", "/nope"], 1),
        (vec!["put", "/d", "/nonexistent-local-file"], 1),
    ] {
        env.fails(&args, code);
    }
    assert_eq!(
        env.commit_version(),
        before,
        "refused commands commit nothing"
    );
    // clap usage errors exit 2 too
    let out = env.run(&["frobnicate"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_format_version_is_refused() {
    let env = Env::new();
    env.ok(&["init"]);
    let marker = env.home.join("NOKV_VOLUME");
    let text = std::fs::read_to_string(&marker).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut v = v.as_object().unwrap().clone();
    v.insert("format_version".into(), 99.into());
    std::fs::write(&marker, serde_json::to_string(&v).unwrap()).unwrap();
    let err = env.fails(&["ls", "/"], 3);
    assert!(err.contains("format version 99 is not supported"), "{err}");
}

#[test]
fn a_second_process_gets_a_clear_busy_error() {
    let env = Env::new();
    env.ok(&["init"]);
    let mut holder = env
        .cmd()
        .args(["put", "/slow", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // wait until the holder has the volume open
    let lock = env.home.join("LOCK");
    for _ in 0..200 {
        if std::fs::read_to_string(&lock)
            .map(|s| s.contains("put"))
            .unwrap_or(false)
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let err = env.fails(&["ls", "/"], 3);
    assert!(
        err.contains("open in another process") && err.contains("put /slow"),
        "{err}"
    );
    drop(holder.stdin.take());
    assert!(holder.wait().unwrap().success());
    env.ok(&["ls", "/"]);
}

fn a_put_killed_mid_upload_is_collected_after_its_deadline(backend: Backend, mode: Mode) {
    let mut env = Env::with(backend, mode);
    env.init(&["--block-size", "65536"]);
    env.put_stdin("/kept", &pseudo_random(100_000));
    let kept = env.objects();
    assert_eq!(kept.len(), 2);

    let mut writer = env
        .cmd()
        .args(["put", "/partial", "-"])
        .env("NOKV_STAGING_TTL", "0")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    stdin.write_all(&pseudo_random(5 * 65536)).unwrap();
    stdin.flush().unwrap();
    // wait for some of its blocks to land, then SIGKILL it mid-upload
    for _ in 0..500 {
        if env.objects().len() >= kept.len() + 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(env.objects().len() >= kept.len() + 3, "uploads started");
    writer.kill().unwrap();
    let _ = writer.wait();
    drop(stdin);

    env.fails(&["cat", "/partial"], 1);
    let report: serde_json::Value = serde_json::from_str(&env.ok(&["gc", "--json"])).unwrap();
    assert_eq!(report["expired_uploads"], 1, "{report}");
    assert!(report["staged_blocks_deleted"].as_u64().unwrap() >= 3);
    assert_eq!(env.objects(), kept, "only the published blocks remain");
    assert_eq!(
        env.cmd()
            .args(["cat", "/kept"])
            .output()
            .unwrap()
            .stdout
            .len(),
        100_000
    );
}

fn broken_pipe_on_cat_is_not_an_error(backend: Backend) {
    let mut env = Env::on(backend);
    env.init(&["--block-size", "65536"]);
    env.put_stdin("/big", &pseudo_random(2_000_000));
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' cat /big | head -c 10 >/dev/null",
            env!("CARGO_BIN_EXE_nokv-fs")
        ))
        .env("NOKV_HOME", &env.home)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn init_with_a_wrong_endpoint_bucket_or_key_fails_clearly() {
    let s3 = nokv_testkit::S3Env::shared();
    let cases = [
        (
            "no-such-bucket",
            s3.endpoint.as_str(),
            s3.secret_access_key.as_str(),
            "bucket",
        ),
        (
            s3.bucket.as_str(),
            "http://127.0.0.1:1",
            s3.secret_access_key.as_str(),
            "unreachable",
        ),
        (
            s3.bucket.as_str(),
            s3.endpoint.as_str(),
            "not-the-secret",
            "denied",
        ),
    ];
    for (bucket, endpoint, secret, expect) in cases {
        let env = Env::new();
        let out = env
            .cmd()
            .args([
                "init",
                "--object-backend",
                "s3",
                "--s3-bucket",
                bucket,
                "--s3-endpoint",
                endpoint,
                "--s3-region",
                &s3.region,
            ])
            .env("AWS_ACCESS_KEY_ID", &s3.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert_eq!(out.status.code(), Some(5), "{bucket} {endpoint}: {err}");
        assert!(
            err.contains(expect),
            "{bucket} {endpoint}: expected {expect:?} in {err}"
        );
        assert!(
            !err.contains(&s3.secret_access_key.to_lowercase()),
            "secret leaked: {err}"
        );
        assert!(!err.contains("not-the-secret"), "secret leaked: {err}");
        assert!(
            !env.home.join("NOKV_VOLUME").exists(),
            "no volume after a failed init"
        );
    }
}

#[test]
fn s3_init_without_credentials_says_which_are_missing() {
    let env = Env::new();
    let err = env.fails(
        &[
            "init",
            "--object-backend",
            "s3",
            "--s3-bucket",
            "b",
            "--s3-endpoint",
            "http://127.0.0.1:1",
        ],
        2,
    );
    assert!(err.contains("AWS_ACCESS_KEY_ID"), "{err}");
}

#[test]
fn rustfs_preset_points_at_the_local_rustfs_defaults() {
    let env = Env::new();
    let out = env.run(&["init", "--object-backend", "rustfs"]);
    let err = String::from_utf8_lossy(&out.stderr);
    // No RustFS runs here: the probe must fail, naming the preset endpoint.
    assert_eq!(out.status.code(), Some(5), "{err}");
    assert!(
        err.contains("127.0.0.1:9000") && err.contains("nokv"),
        "{err}"
    );
}

#[test]
fn volumes_sharing_a_bucket_under_prefixes_stay_apart() {
    let mut a = Env::on(Backend::Garage);
    let mut b = Env::on(Backend::Garage);
    a.init(&["--block-size", "65536"]);
    b.init(&["--block-size", "65536"]);
    a.put_stdin("/f", &pseudo_random(200_000));
    b.put_stdin("/f", &pseudo_random(100_000));
    let b_objects = b.objects();
    a.ok(&["rm", "/f"]);
    a.ok(&["gc"]);
    assert!(a.objects().is_empty());
    assert_eq!(
        b.objects(),
        b_objects,
        "GC of one volume never touches another's prefix"
    );
    assert_eq!(
        b.cmd().args(["cat", "/f"]).output().unwrap().stdout.len(),
        100_000
    );
}

fn fsck_finds_missing_and_leaked_objects(backend: Backend, mode: Mode) {
    let mut env = Env::with(backend, mode);
    env.init(&["--block-size", "65536"]);
    env.ok(&["mkdir", "/d"]);
    env.put_stdin("/d/a", &pseudo_random(150_000));
    env.put_stdin("/d/b", &pseudo_random(70_000));
    let referenced = env.objects();
    assert_eq!(referenced.len(), 5);
    let out = env.ok(&["fsck"]);
    assert!(
        out.contains("0 missing") && out.contains("0 leaked"),
        "{out}"
    );

    // An upload in flight (a put killed after its first blocks) is
    // staged, not leaked: fsck must never offer to delete it.
    let mut writer = env
        .cmd()
        .args(["put", "/d/partial", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = writer.stdin.take().unwrap();
    stdin.write_all(&pseudo_random(4 * 65536)).unwrap();
    stdin.flush().unwrap();
    for _ in 0..500 {
        if env.objects().len() >= referenced.len() + 2 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    writer.kill().unwrap();
    let _ = writer.wait();
    drop(stdin);

    // Plant a stray object: leaked, exit 1.
    let stray = "blocks/ff/00000000deadbeef/00000000";
    let store = BlockStore::open(
        &env.location,
        &env.credentials,
        BlockStoreOptions::default(),
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(store.put_block(stray, bytes::Bytes::from_static(b"stray")))
        .unwrap();
    let out = env.run(&["fsck", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["leaked"], serde_json::json!([stray]), "{report}");
    assert!(report["staged_objects"].as_u64().unwrap() >= 2, "{report}");
    assert_eq!(report["referenced_blocks"], 5, "{report}");

    // Delete a referenced block: missing, exit 4, named in the output.
    let missing = referenced[0].clone();
    rt.block_on(store.delete(&missing)).unwrap();
    let out = env.run(&["fsck"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(4), "{stdout}");
    assert!(stdout.contains(&format!("missing {missing}")), "{stdout}");
    assert!(stdout.contains(&format!("leaked {stray}")), "{stdout}");

    // --delete-leaked removes exactly the stray object (still exit 4:
    // the missing block is not something deletion can fix).
    let before = env.objects();
    let out = env.run(&["fsck", "--delete-leaked", "--json"]);
    assert_eq!(out.status.code(), Some(4));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["deleted"], serde_json::json!([stray]), "{report}");
    let expected: Vec<String> = before.into_iter().filter(|k| k != stray).collect();
    assert_eq!(env.objects(), expected, "only the stray object went");
}

#[test]
fn watch_no_follow_lists_typed_events() {
    let mut env = Env::with(Backend::Local, Mode::Embedded);
    env.init(&["--block-size", "65536"]);
    env.ok(&["mkdir", "-p", "/runs/a"]);
    env.put_stdin("/runs/a/ckpt", &pseudo_random(100_000));
    env.put_stdin("/runs/a/ckpt", &pseudo_random(100_001));
    env.ok(&["mv", "/runs/a", "/runs/b"]);
    env.ok(&["rm", "/runs/b/ckpt"]);
    let out = env.ok(&["watch", "/runs", "--from", "0", "--no-follow"]);
    let kinds: Vec<String> = out
        .lines()
        .map(|l| {
            l.split_whitespace()
                .take(3)
                .skip(1)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "created /runs",
            "created /runs/a",
            "published /runs/a/ckpt",
            "replaced /runs/a/ckpt",
            "renamed /runs/b",
            "removed /runs/b/ckpt",
        ],
        "{out}"
    );
    assert!(out.contains("generation=2 size=100001"), "{out}");
    let json = env.ok(&["watch", "/runs/b", "--from", "0", "--no-follow", "--json"]);
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "removed");
    assert_eq!(last["path"], "/runs/b/ckpt");
    env.fails(&["watch", "/..", "--no-follow"], 2);
}

/// A follower killed and restarted from its last seq + 1, several
/// times, sees every event exactly once, in order.
#[test]
fn a_resumed_follower_sees_each_event_exactly_once() {
    use std::io::BufRead;
    let mut env = Env::with(Backend::Local, Mode::Server);
    env.init(&[]);
    let head: serde_json::Value = serde_json::from_str(&env.ok(&["status", "--json"])).unwrap();
    let mut from = (head["commit_version"].as_u64().unwrap() + 1) * 256;
    let mut seen: Vec<(u64, String)> = Vec::new();
    for round in 0..4 {
        let mut follower = env
            .cmd()
            .args(["watch", "/", "--json", "--from", &from.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = follower.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        for i in 0..5 {
            env.ok(&["mkdir", &format!("/r{round}-{i}")]);
        }
        // Take three of this round's five events, then kill the follower.
        for _ in 0..3 {
            let line = lines.next().unwrap().unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            let seq = v["seq"].as_u64().unwrap();
            seen.push((seq, v["path"].as_str().unwrap().to_string()));
            from = seq + 1;
        }
        follower.kill().unwrap();
        let _ = follower.wait();
    }
    // Drain the rest without following.
    let out = env.ok(&[
        "watch",
        "/",
        "--json",
        "--from",
        &from.to_string(),
        "--no-follow",
    ]);
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        seen.push((
            v["seq"].as_u64().unwrap(),
            v["path"].as_str().unwrap().to_string(),
        ));
    }
    let paths: Vec<String> = seen.iter().map(|(_, p)| p.clone()).collect();
    let expected: Vec<String> = (0..4)
        .flat_map(|r| (0..5).map(move |i| format!("/r{r}-{i}")))
        .collect();
    assert_eq!(paths, expected, "every event exactly once, in order");
    assert!(seen.windows(2).all(|w| w[0].0 < w[1].0));
}

fn put_r_publishes_and_replaces_a_whole_tree(backend: Backend, mode: Mode) {
    let mut env = Env::with(backend, mode);
    env.init(&["--block-size", "65536"]);
    let old = env.work.join("old");
    let new = env.work.join("new");
    for (dir, n, tag) in [(&old, 3, "old"), (&new, 5, "new")] {
        std::fs::create_dir_all(dir.join("shards")).unwrap();
        for i in 0..n {
            std::fs::write(dir.join(format!("shards/{i}.pt")), format!("{tag}-{i}")).unwrap();
        }
    }
    let out = env.ok(&["put", "-r", "-p", "old", "/runs/exp/ckpt"]);
    assert!(out.contains("3 files"), "{out}");
    assert_eq!(env.ok(&["cat", "/runs/exp/ckpt/shards/2.pt"]), "old-2");
    // Either order: the argument that is a local directory is the source
    // (`put -r <path> <local-dir>`, like `put <path> <file>`).
    let out = env.ok(&["put", "-r", "/runs/exp/ckpt", "new", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["files"], 5);
    let trash = v["replaced_tree"].as_str().unwrap().to_string();
    assert!(trash.starts_with("/.nokv-trash/"), "{trash}");
    assert_eq!(
        env.ok(&["ls", "/runs/exp/ckpt/shards"]),
        "0.pt\n1.pt\n2.pt\n3.pt\n4.pt\n"
    );
    assert_eq!(env.ok(&["cat", "/runs/exp/ckpt/shards/4.pt"]), "new-4");
    // The old tree is whole in the trash until gc's grace period ends.
    assert_eq!(env.ok(&["cat", &format!("{trash}/shards/2.pt")]), "old-2");
    // put -r of a missing local directory or onto a file is refused.
    env.fails(&["put", "-r", "nope", "/x"], 5);
    env.fails(&["put", "-r", "/x", "nope"], 5);
    env.put_stdin("/file", b"x");
    env.fails(&["put", "-r", "new", "/file"], 1);
    // Both local directories: refused, nothing published.
    let err = env.fails(&["put", "-r", "new", "old"], 2);
    assert!(err.contains("both"), "{err}");
}

/// `serve` runs GC in the background: blocks of a removed file go away
/// without anyone running `nokv-fs gc`.
#[test]
fn the_server_collects_garbage_in_the_background() {
    let mut env = Env::with(Backend::Local, Mode::Embedded);
    env.init(&["--block-size", "65536"]);
    let server = support::ServerProc::start(&env.home, &["--gc-interval", "1", "--gc-grace", "0"]);
    let remote = |args: &[&str]| {
        let out = env
            .embedded_cmd()
            .env("NOKV_SERVER", &server.url)
            .env("NOKV_TOKEN", support::token(&env.home))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mut child = env
        .embedded_cmd()
        .env("NOKV_SERVER", &server.url)
        .env("NOKV_TOKEN", support::token(&env.home))
        .args(["put", "/f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&pseudo_random(200_000))
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(env.objects().len(), 4);
    remote(&["rm", "/f"]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !env.objects().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "background gc never ran"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(server);
}

/// Over a server, watch events are pushed; a follower's open stream
/// neither delays the server's graceful shutdown nor outlives it.
#[test]
fn a_streaming_follower_does_not_hold_up_shutdown() {
    use std::io::BufRead;
    let mut env = Env::with(Backend::Local, Mode::Embedded);
    env.init(&[]);
    let mut server = support::ServerProc::start(&env.home, &[]);
    let mut follower = env
        .embedded_cmd()
        .env("NOKV_SERVER", &server.url)
        .env("NOKV_TOKEN", support::token(&env.home))
        .args(["watch", "/", "--from", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = env
        .embedded_cmd()
        .env("NOKV_SERVER", &server.url)
        .env("NOKV_TOKEN", support::token(&env.home))
        .args(["mkdir", "/pushed"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    assert!(line.contains("created /pushed"), "{line}");
    let start = std::time::Instant::now();
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        start.elapsed() < std::time::Duration::from_secs(10),
        "shutdown waited {:?}",
        start.elapsed()
    );
    // The follower's stream ended with the server.
    let _ = follower.wait();
}

/// A researcher pins a dataset version while the live directory keeps
/// changing, reads it with `--snapshot`, then retires it and GC reclaims
/// what only it kept.
fn snapshots_pin_a_dataset_version(backend: Backend, mode: Mode) {
    let mut env = Env::with(backend, mode);
    env.init(&["--block-size", "65536"]);
    let v1 = pseudo_random(150_000);
    env.ok(&["mkdir", "-p", "/datasets/imagenet/train"]);
    let local = env.work.join("shard");
    std::fs::write(&local, &v1).unwrap();
    env.ok(&["put", "/datasets/imagenet/train/shard-0", "shard"]);
    env.put_stdin("/datasets/imagenet/labels.txt", b"cat\ndog\n");
    let head = env.commit_version();

    let out = env.ok(&[
        "snapshot",
        "create",
        "/datasets/imagenet",
        "--name",
        "v1",
        "--json",
    ]);
    let info: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(info["name"], "v1");
    assert_eq!(info["path"], "/datasets/imagenet");
    assert_eq!(info["commit_version"].as_u64(), Some(head + 1));
    let out = env.ok(&["snapshot", "create", "/datasets/imagenet"]);
    assert!(out.starts_with("snapshot imagenet-"), "default name: {out}");
    env.fails(
        &["snapshot", "create", "/datasets/imagenet", "--name", "v1"],
        1,
    );
    env.fails(&["snapshot", "create", "/nope", "--name", "v9"], 1);
    env.fails(&["snapshot", "create", "/", "--name", "a/b"], 2);

    // The live dataset changes in every way.
    let v2 = pseudo_random(90_000);
    std::fs::write(&local, &v2).unwrap();
    env.ok(&["put", "/datasets/imagenet/train/shard-0", "shard"]);
    env.ok(&["rm", "/datasets/imagenet/labels.txt"]);
    env.ok(&["mv", "/datasets/imagenet", "/datasets/old"]);
    env.ok(&["chmod", "600", "/datasets/old/train/shard-0"]);
    let gc = env.ok(&["gc"]);
    assert!(gc.contains("live snapshot"), "{gc}");

    // Reads at the snapshot: exactly v1, paths relative to its root.
    assert_eq!(
        env.ok(&["ls", "--snapshot", "v1", "/"]),
        "labels.txt\ntrain\n"
    );
    assert_eq!(
        env.ok(&["cat", "--snapshot", "v1", "/labels.txt"]),
        "cat\ndog\n"
    );
    let got = env.work.join("got");
    env.ok(&["get", "--snapshot", "v1", "/train/shard-0", "got"]);
    assert_eq!(std::fs::read(&got).unwrap(), v1);
    let st: serde_json::Value =
        serde_json::from_str(&env.ok(&["stat", "--snapshot", "v1", "--json", "/train/shard-0"]))
            .unwrap();
    assert_eq!(st["size"].as_u64(), Some(v1.len() as u64));
    assert!(env
        .ok(&["ls", "-l", "--snapshot", "v1", "/train"])
        .contains("-rw-r--r--"));
    env.fails(&["cat", "--snapshot", "nope", "/labels.txt"], 1);
    env.fails(
        &["cat", "--snapshot", "v1", "/datasets/imagenet/labels.txt"],
        1,
    );
    // The live tree is the new one.
    assert_eq!(env.ok(&["ls", "/datasets"]), "old\n");

    let list = env.ok(&["snapshot", "list"]);
    assert!(
        list.starts_with("imagenet-") && list.contains("\nv1\t/datasets/imagenet\t"),
        "{list}"
    );
    let events = env.ok(&["watch", "--from", "0", "--no-follow"]);
    assert!(
        events.contains("snapshot_created /datasets/imagenet snapshot=v1"),
        "{events}"
    );

    // Retire both; GC deletes the blocks only the snapshots kept and
    // the bucket holds exactly what the live tree references.
    let default_name = list.split('\t').next().unwrap().to_string();
    env.ok(&["snapshot", "retire", "v1"]);
    env.ok(&["snapshot", "retire", &default_name]);
    env.fails(&["snapshot", "retire", "v1"], 1);
    env.fails(&["cat", "--snapshot", "v1", "/labels.txt"], 1);
    assert!(env
        .ok(&["watch", "--from", "0", "--no-follow"])
        .contains("snapshot_retired /datasets/imagenet snapshot=v1"));
    let gc = env.ok(&["gc", "--json"]);
    let gc: serde_json::Value = serde_json::from_str(&gc).unwrap();
    // v1 blocks 1 and 2 (block 0 is shared with v2) and the labels.
    assert_eq!(gc["queued_blocks_deleted"].as_u64(), Some(3), "{gc}");
    assert!(gc["history_pruned"].as_u64().unwrap() > 0, "{gc}");
    let fsck: serde_json::Value = serde_json::from_str(&env.ok(&["fsck", "--json"])).unwrap();
    assert_eq!(fsck["referenced_blocks"], fsck["stored_objects"], "{fsck}");
    assert_eq!(
        env.objects().len() as u64,
        fsck["referenced_blocks"].as_u64().unwrap()
    );
    assert_eq!(env.ok(&["snapshot", "list", "--json"]).trim(), "[]");
}
