//! Garage servers for tests, driven through `scripts/garage-env.sh` so
//! the set-up steps exist once.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// An S3 endpoint with a bucket and a key that may use it.
#[derive(Debug, Clone)]
pub struct S3Env {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

const HOW: &str = "S3 tests run against Garage: use ./scripts/test.sh, which installs and starts it \
                   (or export the NOKV_TEST_S3_* variables printed by `scripts/garage-env.sh start DIR`)";

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set. {HOW}"),
    }
}

impl S3Env {
    /// The shared Garage of this test run (from `NOKV_TEST_S3_*`).
    pub fn shared() -> S3Env {
        static SHARED: OnceLock<S3Env> = OnceLock::new();
        SHARED
            .get_or_init(|| S3Env {
                endpoint: var("NOKV_TEST_S3_ENDPOINT"),
                region: var("NOKV_TEST_S3_REGION"),
                bucket: var("NOKV_TEST_S3_BUCKET"),
                access_key_id: var("NOKV_TEST_S3_ACCESS_KEY_ID"),
                secret_access_key: var("NOKV_TEST_S3_SECRET_ACCESS_KEY"),
            })
            .clone()
    }

    fn from_env_file(path: &Path) -> S3Env {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let get = |name: &str| -> String {
            text.lines()
                .filter_map(|l| l.strip_prefix("export "))
                .filter_map(|l| l.split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.trim_matches('\'').trim_matches('"').to_string())
                .unwrap_or_else(|| panic!("{name} missing from {}", path.display()))
        };
        S3Env {
            endpoint: get("NOKV_TEST_S3_ENDPOINT"),
            region: get("NOKV_TEST_S3_REGION"),
            bucket: get("NOKV_TEST_S3_BUCKET"),
            access_key_id: get("NOKV_TEST_S3_ACCESS_KEY_ID"),
            secret_access_key: get("NOKV_TEST_S3_SECRET_ACCESS_KEY"),
        }
    }
}

/// A Garage server of one test, which the test may stop, restart, pause
/// and resume. Stopped and removed on drop.
pub struct PrivateGarage {
    dir: PathBuf,
    script: PathBuf,
    pub env: S3Env,
}

fn script_path() -> PathBuf {
    if let Ok(p) = std::env::var("NOKV_TEST_GARAGE_SCRIPT") {
        return PathBuf::from(p);
    }
    // crates/nokv-testkit -> repository root
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/garage-env.sh")
}

impl PrivateGarage {
    pub fn start() -> PrivateGarage {
        let dir = std::env::temp_dir().join(format!("nokv-garage-{}", uuid::Uuid::new_v4()));
        let script = script_path();
        let g = PrivateGarage {
            dir,
            script,
            env: S3Env {
                endpoint: String::new(),
                region: String::new(),
                bucket: String::new(),
                access_key_id: String::new(),
                secret_access_key: String::new(),
            },
        };
        let mut g = g;
        g.run("start");
        g.env = S3Env::from_env_file(&g.dir.join("env"));
        g
    }

    fn run(&self, action: &str) {
        let out = Command::new("bash")
            .arg(&self.script)
            .arg(action)
            .arg(&self.dir)
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", self.script.display()));
        assert!(
            out.status.success(),
            "garage-env.sh {action} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Stops the server process (SIGTERM, then waits).
    pub fn stop(&self) {
        self.run("stop");
    }

    /// Starts the stopped server again with the same data.
    pub fn restart(&self) {
        self.run("restart");
    }

    /// Signals the running server; false when it is not running.
    fn signal(&self, sig: i32) -> bool {
        let pid: Option<i32> = std::fs::read_to_string(self.dir.join("garage.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        match pid {
            // SAFETY: sending a signal to the server this test started.
            Some(pid) => unsafe { libc::kill(pid, sig) == 0 },
            None => false,
        }
    }

    /// Freezes the server (SIGSTOP): connections hang, nothing answers.
    pub fn pause(&self) {
        assert!(self.signal(libc::SIGSTOP), "garage is not running");
    }

    pub fn resume(&self) {
        assert!(self.signal(libc::SIGCONT), "garage is not running");
    }
}

impl Drop for PrivateGarage {
    fn drop(&mut self) {
        self.signal(libc::SIGCONT);
        let _ = Command::new("bash")
            .arg(&self.script)
            .arg("cleanup")
            .arg(&self.dir)
            .output();
    }
}
