//! The FUSE mount on a real kernel mount, driven by real tools: every
//! test starts the real `nokv-fs mount` process and uses `cp`, `diff`,
//! `tar`, `rsync`, `git` and Python on the mountpoint.
//!
//! These tests run whenever `/dev/fuse` exists; without it each prints a
//! loud `SKIPPED: fuse` line (scripts/test.sh prints one too).

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use nokv_client::ObjectLocation;
use nokv_testkit::Backend;

fn fuse_missing() -> bool {
    if Path::new("/dev/fuse").exists() {
        return false;
    }
    eprintln!("SKIPPED: fuse (/dev/fuse does not exist on this machine)");
    true
}

/// A test volume (and its metadata server, for `--server` mounts).
struct Vol {
    home: PathBuf,
    tmp: PathBuf,
    env: Vec<(String, String)>,
    server: Option<support::ServerProc>,
    _dir: tempfile::TempDir,
}

impl Vol {
    fn new(backend: Backend, server: bool) -> Vol {
        Vol::with_server_args(backend, server.then_some(&[]))
    }

    /// A volume; with `server`, served by `nokv-fs serve` with these
    /// extra arguments.
    fn with_server_args(backend: Backend, server: Option<&[&str]>) -> Vol {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("vol");
        let mut env = Vec::new();
        let mut init: Vec<String> = vec!["init".into(), "--block-size".into(), "262144".into()];
        if backend == Backend::Garage {
            let (location, creds) = backend.location(dir.path());
            let ObjectLocation::S3(s3) = location else {
                panic!("garage is S3")
            };
            init.extend(
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
            env.push((
                "AWS_ACCESS_KEY_ID".into(),
                creds.access_key_id.unwrap_or_default(),
            ));
            env.push((
                "AWS_SECRET_ACCESS_KEY".into(),
                creds.secret_access_key.unwrap_or_default(),
            ));
        }
        let mut v = Vol {
            home,
            tmp: dir.path().to_path_buf(),
            env,
            server: None,
            _dir: dir,
        };
        let args: Vec<&str> = init.iter().map(String::as_str).collect();
        v.ok(&args);
        if let Some(extra) = server {
            v.server = Some(support::ServerProc::start(&v.home, extra));
        }
        v
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(support::bin());
        c.env("NOKV_HOME", &self.home)
            .env("NOKV_SPOOL_DIR", self.tmp.join("spool"))
            .env_remove("NOKV_SERVER")
            .env_remove("NOKV_TOKEN")
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(s) = &self.server {
            c.env("NOKV_SERVER", &s.url)
                .env("NOKV_TOKEN", support::token(&self.home));
        }
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "nokv-fs {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A fresh empty directory to mount on.
    fn mountpoint(&self, name: &str) -> PathBuf {
        let p = self.tmp.join(name);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    fn mount(&self, name: &str, extra: &[&str]) -> Mount {
        let dir = self.mountpoint(name);
        let mut child = self
            .cmd()
            .arg("mount")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        if !line.starts_with("mounted volume") {
            let out = child.wait_with_output().unwrap();
            panic!(
                "mount printed {line:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Mount { child, dir }
    }
}

/// A running `nokv-fs mount`.
struct Mount {
    child: Child,
    dir: PathBuf,
}

impl Mount {
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM; the process must publish, unmount and exit 0.
    fn stop(mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let status = self.child.wait().unwrap();
        assert!(status.success(), "mount exited with {status}");
        assert!(!mounted(&self.dir), "still mounted after SIGTERM");
    }

    /// [`Mount::stop`], returning what the process logged.
    fn stop_with_log(mut self) -> String {
        let mut stderr = self.child.stderr.take().unwrap();
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let mut log = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut log).unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "mount exited with {status}: {log}");
        assert!(!mounted(&self.dir), "still mounted after SIGTERM");
        log
    }

    /// SIGKILL: the process dies with the kernel mount left dead.
    fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        force_unmount(&self.dir);
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        force_unmount(&self.dir);
    }
}

fn mounted(dir: &Path) -> bool {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(dir.to_str().unwrap_or("")))
}

fn force_unmount(dir: &Path) {
    if mounted(dir) {
        let _ = Command::new("fusermount3")
            .args(["-u", "-z"])
            .arg(dir)
            .output();
        if mounted(dir) {
            let _ = Command::new("umount").arg("-l").arg(dir).output();
        }
    }
}

/// Runs a shell command; requires success; returns stdout.
fn sh(script: &str) -> String {
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `sh` with `$src`, `$mnt` and `$out` set, then the mount stopped.
fn sh_then_stop(script: &str, src: &Path, m: Mount, out: &Path) {
    sh(&format!(
        "src={} mnt={} out={}\n{script}",
        src.display(),
        m.dir.display(),
        out.display()
    ));
    m.stop();
}

fn python(script: &str) -> String {
    let out = Command::new("python3")
        .args(["-c", script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A real source tree to copy: this workspace's crates (no target/).
fn source_tree() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn eventually(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn fsck_clean(v: &Vol) {
    let out = v.run(&["fsck"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "fsck: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- the tests ----

fn copy_tar_rsync_round_trips(backend: Backend) {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(backend, false);
    let m = v.mount("mnt", &[]);
    let src = source_tree();
    let out = v.tmp.join("out");
    sh_then_stop(
        r#"
        mkdir -p $out
        cp -r $src/nokv-meta $mnt/cp
        diff -r $src/nokv-meta $mnt/cp
        tar -C $src -cf $out/src.tar nokv-types nokv-proto
        mkdir $mnt/tarx && tar -C $mnt/tarx -xf $out/src.tar
        diff -r $src/nokv-types $mnt/tarx/nokv-types
        diff -r $src/nokv-proto $mnt/tarx/nokv-proto
        mkdir $out/back && tar -C $mnt -cf - tarx | tar -C $out/back -xf -
        diff -r $src/nokv-proto $out/back/tarx/nokv-proto
        # tar x and cp -p set each file's time on the open file before
        # closing it: the close keeps it (same listing as on local disk)
        times() { (cd $1 && find . -type f -printf '%P %m %u:%g %T@\n' | sort); }
        mkdir $out/tarx && tar -C $out/tarx -xf $out/src.tar
        [ "$(times $out/tarx)" = "$(times $mnt/tarx)" ]
        # owners and setuid bits too (tar chowns, then chmods the open file)
        mkdir $out/own && echo a > $out/own/a && echo b > $out/own/b
        chown 1234:56 $out/own/a && chmod 4750 $out/own/a && chown 7:8 $out/own/b
        tar -C $out/own -cf $out/own.tar . && mkdir $out/ownx $mnt/ownx
        tar -C $out/ownx -xpf $out/own.tar && tar -C $mnt/ownx -xpf $out/own.tar
        [ "$(times $out/ownx)" = "$(times $mnt/ownx)" ]
        [ "$(stat -c %a:%u:%g $mnt/ownx/a)" = 4750:1234:56 ]
        cp -rp $src/nokv-types $mnt/cpp
        [ "$(times $src/nokv-types)" = "$(times $mnt/cpp)" ]
        rsync -a $src/nokv-client/ $mnt/rs/
        diff -r $src/nokv-client $mnt/rs
        [ "$(times $src/nokv-client)" = "$(times $mnt/rs)" ]
        # rsync again: nothing changed, so no file is sent, still equal
        sent=$(rsync -a --itemize-changes $src/nokv-client/ $mnt/rs/ | grep -c '^>f' || true)
        [ "$sent" = 0 ]
        diff -r $src/nokv-client $mnt/rs
        "#,
        &src,
        m,
        &out,
    );
    // Published through the mount, read back through the CLI.
    let want = std::fs::read(src.join("nokv-meta/src/ops.rs")).unwrap();
    let got = v.cmd().args(["cat", "/cp/src/ops.rs"]).output().unwrap();
    assert_eq!(got.stdout, want);
    // The owner and mode tar set on the open file were published with it.
    let a: serde_json::Value = serde_json::from_str(&v.ok(&["stat", "--json", "/ownx/a"])).unwrap();
    assert_eq!(
        (&a["mode"], &a["uid"], &a["gid"], &a["generation"]),
        (&"4750".into(), &1234.into(), &56.into(), &1.into()),
        "{a}"
    );
    fsck_clean(&v);
}

#[test]
fn copy_tar_rsync_round_trips_local() {
    copy_tar_rsync_round_trips(Backend::Local)
}

#[test]
fn copy_tar_rsync_round_trips_garage() {
    copy_tar_rsync_round_trips(Backend::Garage)
}

/// `--async-close`: close returns before the publish. The mount itself
/// reads every file back as closed at once; an unmount (by signal or by
/// `fusermount3 -u`) publishes everything before the process exits.
fn async_close_round_trips(backend: Backend) {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(backend, false);
    let src = source_tree();
    let out = v.tmp.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let m = v.mount("mnt", &["--async-close"]);
    sh_then_stop(
        r#"
        tar -C $src -cf $out/src.tar nokv-types nokv-proto nokv-meta
        mkdir $mnt/tarx && tar -C $mnt/tarx -xf $out/src.tar
        diff -r $src/nokv-meta $mnt/tarx/nokv-meta
        diff -r $src/nokv-proto $mnt/tarx/nokv-proto
        # rewrite a closed file at once: the new writer starts from it
        echo more >> $mnt/tarx/nokv-types/Cargo.toml
        cat $src/nokv-types/Cargo.toml - <<< more | cmp - $mnt/tarx/nokv-types/Cargo.toml
        cp -r $src/nokv-client $mnt/cp
        "#,
        &src,
        m,
        &out,
    );
    // A second mount, closing right away, ended by an external unmount.
    let m = v.mount("mnt2", &["--async-close"]);
    sh(&format!(
        "cp -r {src}/nokv-fuse {mnt}/fuse && fusermount3 -u {mnt}",
        src = src.display(),
        mnt = m.dir.display()
    ));
    let mut m = m;
    let status = m.child.wait().unwrap();
    assert!(status.success(), "mount exited with {status}");
    assert!(!mounted(&m.dir));
    drop(m);
    // Everything was published: a plain mount sees the same trees.
    let check = v.mount("check", &[]);
    sh(&format!(
        r#"
        diff -r {src}/nokv-meta {mnt}/tarx/nokv-meta
        diff -r {src}/nokv-client {mnt}/cp
        diff -r {src}/nokv-fuse {mnt}/fuse
        "#,
        src = src.display(),
        mnt = check.dir.display()
    ));
    check.stop();
    fsck_clean(&v);
}

/// With `--async-close`, `sync DIR` returns once every file closed
/// before it is published: another client then sees all of them.
#[test]
fn async_close_sync_of_a_directory_is_a_barrier() {
    if fuse_missing() {
        return;
    }
    const N: u64 = 300;
    let v = Vol::new(Backend::Garage, true);
    let m = v.mount("m", &["--async-close"]);
    let before = op_count(&v, "publish_ino", "ok");
    sh(&format!(
        "mkdir {d} && for i in $(seq 1 {N}); do echo file-$i > {d}/f$i; done && sync {d}",
        d = m.path("d").display()
    ));
    // Counted by the server the moment `sync` returned: all published.
    let published = op_count(&v, "publish_ino", "ok") - before;
    assert_eq!(published, N);
    let listed: serde_json::Value = serde_json::from_str(&v.ok(&["ls", "--json", "/d"])).unwrap();
    let entries = listed.as_array().expect("ls --json: an array");
    assert_eq!(entries.len() as u64, N);
    assert_eq!(v.ok(&["cat", "/d/f300"]), "file-300\n");
    m.stop();
}

#[test]
fn async_close_round_trips_local() {
    async_close_round_trips(Backend::Local)
}

#[test]
fn async_close_round_trips_garage() {
    async_close_round_trips(Backend::Garage)
}

#[test]
fn git_init_add_commit_log() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    let m = v.mount("mnt", &[]);
    let log = sh(&format!(
        r#"
        cd {mnt} && mkdir repo && cd repo
        export GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@x GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@x
        git init -q .
        cp -r {src}/nokv-types .
        git add . && git commit -qm first
        echo more >> nokv-types/Cargo.toml
        git mv nokv-types/src/name.rs nokv-types/src/names.rs
        git commit -qam second
        git gc -q
        git fsck --strict
        test -z "$(git status --porcelain)"
        git log --format=%s
        "#,
        mnt = m.dir.display(),
        src = source_tree().display()
    ));
    assert_eq!(log.lines().collect::<Vec<_>>(), ["second", "first"]);
    m.stop();
    fsck_clean(&v);
}

#[test]
fn python_writes_seeks_appends_and_reads_back() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    let m = v.mount("mnt", &[]);
    let out = python(&format!(
        r#"
import os
p = "{f}"
with open(p, "wb") as f:
    f.write(b"hello world")
    f.seek(3 * 262144 + 7)          # sparse: past the end, across blocks
    f.write(b"tail")
with open(p, "r+b") as f:
    f.seek(6)
    f.write(b"WORLD")
    f.seek(0)
    assert f.read(11) == b"hello WORLD"
with open(p, "ab") as f:
    f.write(b"+appended")
data = open(p, "rb").read()
assert len(data) == 3 * 262144 + 7 + 4 + 9, len(data)
assert data[:11] == b"hello WORLD"
assert data[11:3 * 262144 + 7] == bytes(3 * 262144 + 7 - 11)
assert data.endswith(b"tail+appended")
assert os.stat(p).st_size == len(data)
os.truncate(p, 5)
assert open(p, "rb").read() == b"hello"
with open(p, "w") as f:            # O_TRUNC
    f.write("new")
assert open(p).read() == "new"
# mknod of a regular file, exclusive create, rename noreplace via link
os.mknod("{d}/node")
assert os.path.isfile("{d}/node")
try:
    open("{d}/node", "x")
    raise SystemExit("O_EXCL on an existing file succeeded")
except FileExistsError:
    pass
os.chmod(p, 0o600)
assert oct(os.stat(p).st_mode & 0o777) == "0o600"
os.utime(p, (1_000_000_000, 1_500_000_000))
assert os.stat(p).st_mtime == 1_500_000_000
# no ioctl applies (isatty: not a terminal), no extended attributes
with open(p) as f:
    assert not f.isatty()
import errno
for call in (lambda: os.getxattr(p, "user.x"), lambda: os.setxattr(p, "user.x", b"1")):
    try:
        call()
        raise SystemExit("an extended attribute call succeeded")
    except OSError as e:
        assert e.errno == errno.EOPNOTSUPP, e
# calls the mount does not offer fall back as on any such filesystem
q = "{d}/fallbacks"
fd = os.open(q, os.O_CREAT | os.O_RDWR)
os.posix_fallocate(fd, 0, 10000)
assert os.fstat(fd).st_size == 10000
assert os.lseek(fd, 0, os.SEEK_DATA) == 0
import select
poller = select.poll()
poller.register(fd, select.POLLIN)
assert poller.poll(0)
src = os.open(p, os.O_RDONLY)
assert os.copy_file_range(src, fd, 3, 0, 0) == 3
os.close(src)
os.close(fd)
assert open(q, "rb").read(4) == b"new\0"
print("ok")
"#,
        f = m.path("py.bin").display(),
        d = m.dir.display()
    ));
    assert_eq!(out.trim(), "ok");
    // None of that (each open's isatty is an ioctl) filled the log.
    let log = m.stop_with_log();
    assert!(!log.contains("Not Implemented"), "{log}");
    assert_eq!(v.ok(&["cat", "/py.bin"]), "new");
}

/// A file of many blocks written front to back is uploaded while it is
/// written (staged blocks, hashed in order); rewrites after staging,
/// a truncation and an append still publish exactly the bytes written,
/// and nothing staged is left behind in the bucket.
#[test]
fn a_big_file_written_through_the_mount_on_garage() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Garage, false);
    let m = v.mount("mnt", &[]);
    let out = python(&format!(
        r#"
import hashlib, os
p = "{f}"
bs = 262144
data = bytearray(os.urandom(40 * bs + 1234))
with open(p, "wb") as f:
    for i in range(0, len(data), 100_000):
        f.write(data[i:i + 100_000])
assert open(p, "rb").read() == data
with open(p, "r+b") as f:
    data[:20 * bs] = os.urandom(20 * bs)
    for i in range(0, 20 * bs, 65536):   # new bytes front to back ...
        f.write(data[i:i + 65536])
    f.seek(3 * bs + 5)                   # ... then back into a staged block
    f.write(b"XYZ")
    data[3 * bs + 5:3 * bs + 8] = b"XYZ"
    f.truncate(10 * bs + 7)              # cut staged blocks off
    del data[10 * bs + 7:]
with open(p, "ab") as f:
    f.write(b"tail")
    data += b"tail"
assert open(p, "rb").read() == data
print(hashlib.sha256(data).hexdigest())
"#,
        f = m.path("big.bin").display(),
    ));
    m.stop();
    let want = out.trim().to_string();
    let got = v.cmd().args(["cat", "/big.bin"]).output().unwrap();
    assert!(got.status.success());
    let digest = {
        use std::io::Write;
        let mut child = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&got.stdout).unwrap();
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(digest, want);
    // Every object in the bucket is referenced or queued for GC; after
    // a GC, fsck finds nothing leaked either.
    fsck_clean(&v);
    v.ok(&["gc"]);
    fsck_clean(&v);
}

#[test]
fn rename_over_an_open_file() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    let m = v.mount("mnt", &[]);
    let out = python(&format!(
        r#"
import os
d = "{d}"
old = b"old generation " * 50000
new = b"NEW" * 1000
open(d + "/target", "wb").write(old)
r = open(d + "/target", "rb")
first = r.read(100)
with open(d + "/tmp", "wb") as w:
    w.write(new)
os.rename(d + "/tmp", d + "/target")
rest = r.read()
assert first + rest == old, "the open reader kept its generation"
assert open(d + "/target", "rb").read() == new
r.close()
# a writer whose file is renamed away keeps writing to the same file
w = open(d + "/target", "r+b")
os.rename(d + "/target", d + "/moved")
w.write(b"xyz")
w.close()
assert open(d + "/moved", "rb").read()[:6] == b"xyzNEW"
print("ok")
"#,
        d = m.dir.display()
    ));
    assert_eq!(out.trim(), "ok");
    m.stop();
}

#[test]
fn sigterm_publishes_open_files_then_unmounts() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    let m = v.mount("mnt", &[]);
    let f = m.path("open.txt");
    let mut holder = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sys,time\nf=open('{}','w')\nf.write('written but not closed')\nf.flush()\nprint('ready',flush=True)\ntime.sleep(30)",
                f.display()
            ),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    m.stop();
    let _ = holder.kill();
    let _ = holder.wait();
    assert_eq!(v.ok(&["cat", "/open.txt"]), "written but not closed");
}

#[test]
fn a_killed_mount_leaves_the_volume_consistent() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    let gen_a = vec![b'a'; 600_000];
    let gen_b = vec![b'b'; 900_000];
    let m = v.mount("mnt", &[]);
    for i in 0..20 {
        std::fs::write(m.path(&format!("f{i}")), &gen_a).unwrap();
    }
    // Overwrite them all in a loop and SIGKILL the mount mid-stream.
    let mut writer = Command::new("python3")
        .args([
            "-c",
            &format!(
                "import sys\nfor r in range(50):\n    for i in range(20):\n        open('{d}/f%d' % i, 'wb').write(b'b' * 900000)\n        if r == 0 and i == 0: print('first', flush=True)",
                d = m.dir.display()
            ),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(writer.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "first");
    std::thread::sleep(Duration::from_millis(300));
    m.kill();
    let _ = writer.kill();
    let _ = writer.wait();
    let mut overwritten = 0;
    // The volume opens again (lock released) and every file is whole:
    // one of its generations, never a torn or missing body.
    for i in 0..20 {
        let out = v.cmd().args(["cat", &format!("/f{i}")]).output().unwrap();
        assert!(
            out.status.success(),
            "f{i}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stdout == gen_a || out.stdout == gen_b,
            "f{i} is neither generation ({} bytes)",
            out.stdout.len()
        );
        overwritten += usize::from(out.stdout == gen_b);
    }
    assert!(overwritten >= 1, "the kill came before any overwrite");
    fsck_clean(&v);
}

fn two_server_mounts_see_each_other(backend: Backend) {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(backend, true);
    // A long TTL: only the watch invalidation can make changes show up
    // within the few seconds the checks below allow.
    let a = v.mount("a", &["--attr-ttl", "60"]);
    let b = v.mount("b", &["--attr-ttl", "60"]);
    let fa = a.path("shared.txt");
    let fb = b.path("shared.txt");
    std::fs::write(&fa, "one").unwrap();
    eventually("b sees a's new file", Duration::from_secs(5), || {
        std::fs::read_to_string(&fb).ok().as_deref() == Some("one")
    });
    // b caches the file's attributes and name; a replaces and renames.
    assert_eq!(std::fs::metadata(&fb).unwrap().len(), 3);
    std::fs::write(&fa, "second version").unwrap();
    eventually("b sees a's new generation", Duration::from_secs(5), || {
        std::fs::read_to_string(&fb).ok().as_deref() == Some("second version")
    });
    std::fs::create_dir(b.path("dir")).unwrap();
    std::fs::write(b.path("dir/x"), "from b").unwrap();
    eventually("a sees b's directory", Duration::from_secs(5), || {
        std::fs::read_to_string(a.path("dir/x")).ok().as_deref() == Some("from b")
    });
    std::fs::rename(a.path("dir/x"), a.path("dir/y")).unwrap();
    eventually("b sees a's rename", Duration::from_secs(5), || {
        !b.path("dir/x").exists() && b.path("dir/y").exists()
    });
    std::fs::remove_file(&fb).unwrap();
    eventually("a sees b's removal", Duration::from_secs(5), || {
        !fa.exists()
    });
    a.stop();
    b.stop();
    fsck_clean(&v);
}

#[test]
fn two_server_mounts_see_each_other_local() {
    two_server_mounts_see_each_other(Backend::Local)
}

#[test]
fn two_server_mounts_see_each_other_garage() {
    two_server_mounts_see_each_other(Backend::Garage)
}

#[test]
fn mount_errors_and_read_only() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    // Missing mountpoint: a clear one-line error, nothing mounted.
    let out = v.run(&["mount", v.tmp.join("nope").to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not exist"), "{err}");

    let m = v.mount("mnt", &[]);
    std::fs::write(m.path("f"), "data").unwrap();
    // A busy mountpoint: already mounted.
    let out = v
        .cmd()
        .env("NOKV_HOME", v.tmp.join("other"))
        .args(["mount", m.dir.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("busy"), "{err}");
    m.stop();

    let ro = v.mount("ro", &["--read-only"]);
    assert_eq!(std::fs::read_to_string(ro.path("f")).unwrap(), "data");
    let e = std::fs::write(ro.path("g"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let e = std::fs::remove_file(ro.path("f")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    ro.stop();
}

/// `mount --snapshot NAME` shows the snapshot's tree exactly, read-only,
/// while a live mount of the same server changes everything.
#[test]
fn a_snapshot_mount_is_a_frozen_read_only_tree() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, true);
    let live = v.mount("live", &[]);
    let want = v.tmp.join("want");
    sh(&format!(
        "set -e; mkdir -p {w}/sub; head -c 700000 /dev/urandom > {w}/sub/big; \
         echo hello > {w}/a; ln -s sub/big {w}/link; cp -a {w} {l}",
        w = want.display(),
        l = live.path("ds").display()
    ));
    v.ok(&["snapshot", "create", "/ds", "--name", "v1"]);
    sh(&format!(
        "set -e; echo changed > {l}/a; rm {l}/sub/big; mv {l}/sub {l}/moved; echo new > {l}/new",
        l = live.path("ds").display()
    ));

    let snap = v.mount("snap", &["--snapshot", "v1"]);
    // The whole tree, bytes and symlink included, is the one snapshotted.
    sh(&format!(
        "diff -r {} {}",
        want.display(),
        snap.dir.display()
    ));
    assert_eq!(
        std::fs::read_link(snap.path("link")).unwrap(),
        Path::new("sub/big")
    );
    assert!(!snap.path("new").exists());
    let e = std::fs::write(snap.path("x"), "x").unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    let e = std::fs::remove_file(snap.path("a")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    // The live mount shows the changes.
    assert_eq!(
        std::fs::read_to_string(live.path("ds/a")).unwrap(),
        "changed\n"
    );
    assert!(live.path("ds/moved").is_dir());
    snap.stop();
    live.stop();

    // An unknown snapshot is a clear error and mounts nothing.
    let dir = v.mountpoint("none");
    let out = v.run(&["mount", dir.to_str().unwrap(), "--snapshot", "nope"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("snapshot nope"), "{err}");
    assert!(!mounted(&dir));
}

/// An embedded mount collects garbage itself: the blocks of a file
/// removed through the mount go away without anyone running `gc`.
#[test]
fn an_embedded_mount_collects_garbage_in_the_background() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, false);
    let blocks = |v: &Vol| {
        sh(&format!(
            "find {} -type f | wc -l",
            v.home.join("blocks").display()
        ))
        .trim()
        .parse::<usize>()
        .unwrap()
    };
    let m = v.mount("mnt", &["--gc-interval", "1", "--gc-grace", "0"]);
    sh(&format!(
        "head -c 600000 /dev/urandom > {}",
        m.path("f").display()
    ));
    eventually(
        "the file's blocks are stored",
        Duration::from_secs(10),
        || blocks(&v) == 3,
    );
    std::fs::remove_file(m.path("f")).unwrap();
    eventually(
        "the mount's GC deletes them",
        Duration::from_secs(20),
        || blocks(&v) == 0,
    );
    m.stop();
}

/// A file open for reading keeps its generation after a rename over it,
/// also once background GC has run: the mount keeps replaced blocks for
/// `--gc-grace`. With no grace the same reader loses the blocks it had
/// not fetched yet (which shows the grace is what keeps them).
#[test]
fn an_open_reader_outlives_background_gc_for_the_grace() {
    if fuse_missing() {
        return;
    }
    // The grace alone; a reader lease long past the grace, on an
    // embedded and a --server mount; neither.
    for (grace, leases, server, survives) in [
        ("600", "--no-reader-leases", false, true),
        ("1", "", false, true),
        ("1", "", true, true),
        ("1", "--no-reader-leases", false, false),
    ] {
        // With --server, the server collects garbage.
        let gc = ["--gc-interval", "1", "--gc-grace", grace];
        let v = Vol::with_server_args(Backend::Local, server.then_some(&gc));
        // 40 blocks: far more than the readahead window of the first
        // read. Written by another mount, so that no page of it is in
        // the kernel's cache for the mount below.
        let w = v.mount("writer", &[]);
        sh(&format!(
            "head -c {} /dev/urandom > {f} && sha256sum < {f} | cut -c1-64 > {sum}",
            40 * 262144,
            f = w.path("f").display(),
            sum = v.tmp.join("sum").display()
        ));
        w.stop();
        let mut args = vec!["--gc-interval", "1", "--gc-grace", grace];
        if !leases.is_empty() {
            args.push(leases);
        }
        let m = v.mount("mnt", &args);
        let want = std::fs::read_to_string(v.tmp.join("sum")).unwrap();
        let mut reader = Command::new("python3")
            .args([
                "-c",
                &format!(
                    "import hashlib, sys\n\
                     f = open('{f}', 'rb')\n\
                     h = hashlib.sha256(f.read(4096))\n\
                     print('ready', flush=True)\n\
                     sys.stdin.readline()\n\
                     try:\n    h.update(f.read())\n    print(h.hexdigest())\n\
                     except OSError as e:\n    print('error', e.errno)\n",
                    f = m.path("f").display()
                ),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(reader.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready");
        // Replace the file under the reader, then let GC passes run.
        sh(&format!(
            "head -c 1000 /dev/urandom > {n} && mv {n} {f}",
            n = m.path("new").display(),
            f = m.path("f").display()
        ));
        std::thread::sleep(Duration::from_secs(4));
        {
            use std::io::Write;
            reader.stdin.take().unwrap().write_all(b"go\n").unwrap();
        }
        line.clear();
        out.read_line(&mut line).unwrap();
        let _ = reader.wait();
        if survives {
            assert_eq!(
                line.trim(),
                want.trim(),
                "grace {grace} {leases} server {server}"
            );
        } else {
            assert_eq!(
                line.trim(),
                format!("error {}", libc::EIO),
                "grace {grace} {leases}"
            );
        }
        if grace == "1" && leases.is_empty() {
            // The reader closed: the lease ends and GC collects the old
            // generation (only the new file's one block stays).
            eventually("the old blocks collected", Duration::from_secs(20), || {
                files_under(&v.home.join("blocks")) == 1
            });
        }
        m.stop();
    }
}

fn files_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            Ok(_) => 1,
            Err(_) => 0,
        })
        .sum()
}

/// The server's count of `op` answered with `outcome` (Prometheus text).
fn op_count(v: &Vol, op: &str, outcome: &str) -> u64 {
    let (status, body) = v.server.as_ref().unwrap().get("/metrics");
    assert_eq!(status, 200);
    let key = format!("nokv_ops_total{{op=\"{op}\",outcome=\"{outcome}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Batch requests the server has answered.
fn batch_requests(v: &Vol) -> u64 {
    let (status, body) = v.server.as_ref().unwrap().get("/metrics");
    assert_eq!(status, 200);
    body.lines()
        .find_map(|l| l.strip_prefix("nokv_batch_ops_count "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// Waits until lookups of absent names in `dir` (a directory the mount
/// made) no longer reach the server: the mount's watch follower has
/// applied the directory's creation event.
fn wait_dir_cached(v: &Vol, dir: &Path) {
    let start = Instant::now();
    for i in 0.. {
        let before = op_count(v, "lookup", "not_found");
        assert!(!dir.join(format!(".probe-{i}")).exists());
        if op_count(v, "lookup", "not_found") == before {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never got cached",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Writing files the way `tar x -p` does (write, chown, chmod, the
/// original mtime, close) costs a `--server` mount no setattr and no
/// getattr round trip per file: the attribute changes go with the
/// publish, and the kernel's getattr between them is answered from the
/// write handle. Counted by the server's metrics, not timed.
#[test]
fn server_mount_sends_attribute_changes_of_written_files_with_their_bytes() {
    if fuse_missing() {
        return;
    }
    const N: u64 = 100;
    let v = Vol::new(Backend::Local, true);
    let m = v.mount("m", &[]);
    std::fs::create_dir(m.path("d")).unwrap();
    wait_dir_cached(&v, &m.path("d"));
    let (sa, ga, bu, batches) = (
        op_count(&v, "setattr_ino", "ok"),
        op_count(&v, "getattr", "ok"),
        op_count(&v, "begin_upload", "ok"),
        batch_requests(&v),
    );
    python(&format!(
        r#"
import os
for i in range({N}):
    fd = os.open("{d}/f%03d" % i, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    os.write(fd, b"bytes of %d" % i)
    os.fchown(fd, 1000 + i, 100)
    os.fchmod(fd, 0o4750)
    os.utime(fd, ns=(1_000_000_000_000_000_000, 1_153_704_088_000_000_000))
    os.close(fd)
st = os.stat("{d}/f007")
assert (st.st_uid, st.st_gid, st.st_mode & 0o7777, st.st_mtime_ns, st.st_size) == (1007, 100, 0o4750, 1_153_704_088_000_000_000, 10), st
"#,
        d = m.path("d").display()
    ));
    let sa_n = op_count(&v, "setattr_ino", "ok") - sa;
    let ga_n = op_count(&v, "getattr", "ok") - ga;
    eprintln!("{N} written files: {sa_n} setattrs, {ga_n} getattrs at the server");
    assert_eq!(sa_n, 0, "attribute changes reached the server on their own");
    assert!(ga_n <= N / 10, "{ga_n} getattrs for {N} written files");
    // Their uploads were begun ahead, many per round trip.
    let bu_n = op_count(&v, "begin_upload", "ok") - bu;
    let batches_n = batch_requests(&v) - batches;
    eprintln!("{bu_n} uploads begun in {batches_n} batch requests");
    assert!(bu_n >= N, "{bu_n} uploads begun for {N} files");
    assert!(
        batches_n <= N / 4,
        "{batches_n} batch requests for {N} files"
    );
    let finished = op_count(&v, "finish_upload", "ok");
    m.stop();
    // The unused ones were given back at the unmount: every upload begun
    // was either published (one per file) or finished unused.
    let given_back = op_count(&v, "finish_upload", "ok") - finished;
    assert_eq!(
        bu_n,
        N + given_back,
        "{bu_n} begun, {given_back} given back"
    );
    // Published with the bytes: the server has them.
    let a: serde_json::Value = serde_json::from_str(&v.ok(&["stat", "--json", "/d/f042"])).unwrap();
    assert_eq!(
        (&a["mode"], &a["uid"], &a["gid"], &a["size"], &a["mtime_ns"]),
        (
            &"4750".into(),
            &1042.into(),
            &100.into(),
            &11.into(),
            &1_153_704_088_000_000_000_i64.into()
        ),
        "{a}"
    );
}

/// Creating files in a directory a `--server` mount made asks the
/// server no LOOKUP of the new names (the mount knows the directory's
/// whole contents from the watch log), and no GETATTR of the directory
/// (which each create makes the kernel drop and ask for again: the
/// mount knows what its own creates changed); `--no-dir-cache` asks
/// both per file. Counted by the server's metrics, not timed.
#[test]
fn server_mount_creates_skip_the_lookup_of_the_new_name() {
    if fuse_missing() {
        return;
    }
    const N: u64 = 200;
    let v = Vol::new(Backend::Local, true);
    let a = v.mount("a", &[]);
    let b = v.mount("b", &["--no-dir-cache"]);

    std::fs::create_dir(a.path("d")).unwrap();
    wait_dir_cached(&v, &a.path("d"));
    let (nf, ok, ga) = (
        op_count(&v, "lookup", "not_found"),
        op_count(&v, "lookup", "ok"),
        op_count(&v, "getattr", "ok"),
    );
    for i in 0..N {
        std::fs::File::create(a.path(&format!("d/f{i:04}"))).unwrap();
    }
    let nf_a = op_count(&v, "lookup", "not_found") - nf;
    let ok_a = op_count(&v, "lookup", "ok") - ok;
    let ga_a = op_count(&v, "getattr", "ok") - ga;
    eprintln!("{N} creates: {nf_a} absent lookups, {ok_a} lookups, {ga_a} getattrs at the server");
    assert!(nf_a <= 2, "{nf_a} lookups of new names reached the server");
    assert!(ok_a <= N / 10, "{ok_a} positive lookups for {N} creates");
    // (Without the cache: one per create. Some own events may still
    // beat their replies by more than the follower waits on a loaded
    // machine.)
    assert!(
        ga_a <= N / 2,
        "{ga_a} getattrs reached the server for {N} creates"
    );
    // The directory's attributes the mount answers are the server's,
    // with the last create's mtime.
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::create_dir(a.path("d/sub")).unwrap();
        let shown = std::fs::metadata(a.path("d")).unwrap();
        let direct: serde_json::Value =
            serde_json::from_str(&v.ok(&["stat", "--json", "/d"])).unwrap();
        let ns = shown.mtime() * 1_000_000_000 + shown.mtime_nsec();
        assert_eq!(Some(ns), direct["mtime_ns"].as_i64());
        assert_eq!(Some(shown.nlink()), direct["nlink"].as_u64());
        let sub = std::fs::metadata(a.path("d/sub")).unwrap();
        assert_eq!(sub.ctime() * 1_000_000_000 + sub.ctime_nsec(), ns);
    }
    // The mount still sees its files, and so does the other mount.
    assert!(a.path("d/f0007").exists());
    assert_eq!(
        std::fs::read_dir(a.path("d")).unwrap().count() as u64,
        N + 1
    );
    assert_eq!(
        std::fs::read_dir(b.path("d")).unwrap().count() as u64,
        N + 1
    );

    // Without the cache: one server LOOKUP per new name.
    std::fs::create_dir(b.path("e")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let nf = op_count(&v, "lookup", "not_found");
    for i in 0..N {
        std::fs::File::create(b.path(&format!("e/f{i:04}"))).unwrap();
    }
    let nf_b = op_count(&v, "lookup", "not_found") - nf;
    assert!(
        nf_b >= N,
        "only {nf_b} lookups for {N} creates without the cache"
    );
    a.stop();
    b.stop();
    fsck_clean(&v);
}

/// Mount a makes d; mount b creates names in it: a sees them (the watch
/// log adds them to a's cache), and an O_CREAT open without O_EXCL in a
/// of a name b just created opens b's file, also when a's cache has not
/// heard of it yet.
#[test]
fn a_directory_cache_sees_other_mounts_names() {
    if fuse_missing() {
        return;
    }
    let v = Vol::new(Backend::Local, true);
    let a = v.mount("a", &[]);
    let b = v.mount("b", &[]);
    std::fs::create_dir(a.path("d")).unwrap();
    wait_dir_cached(&v, &a.path("d"));
    std::fs::write(b.path("d/x"), "from b").unwrap();
    eventually("a sees b's file", Duration::from_secs(10), || {
        std::fs::read_to_string(a.path("d/x")).ok().as_deref() == Some("from b")
    });
    for i in 0..20 {
        let want = format!("b wrote {i}");
        std::fs::write(b.path(&format!("d/y{i}")), &want).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(a.path(&format!("d/y{i}")))
            .unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut f, &mut got).unwrap();
        assert_eq!(got, want, "a's O_CREAT open of y{i} did not open b's file");
    }
    // O_EXCL of a name b made fails, whatever a's cache knew.
    std::fs::write(b.path("d/z"), "z").unwrap();
    let e = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(a.path("d/z"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EEXIST), "{e}");
    // Removals and renames by b show in a.
    std::fs::remove_file(b.path("d/x")).unwrap();
    std::fs::rename(b.path("d/y0"), b.path("d/moved")).unwrap();
    eventually(
        "a sees b's removal and rename",
        Duration::from_secs(10),
        || !a.path("d/x").exists() && !a.path("d/y0").exists() && a.path("d/moved").exists(),
    );
    a.stop();
    b.stop();
    fsck_clean(&v);
}
