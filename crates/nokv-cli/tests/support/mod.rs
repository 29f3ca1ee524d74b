//! A real `nokv-fs serve` process for tests: started on port 0 on
//! 127.0.0.1, its URLs parsed from the one line it prints, stopped with
//! SIGTERM (or killed when the test drops it).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};

pub struct ServerProc {
    child: Child,
    /// gRPC URL for --server.
    pub url: String,
    /// Base URL of /healthz, /readyz, /metrics.
    pub http: String,
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_nokv-fs")
}

impl ServerProc {
    /// Serves the volume at `home` with extra `serve` arguments.
    pub fn start(home: &Path, extra: &[&str]) -> ServerProc {
        let mut child = Command::new(bin())
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--http-listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("NOKV_HOME", home)
            .env_remove("NOKV_SERVER")
            .env_remove("NOKV_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "listening on http://A (health and metrics on http://B)"
        let words: Vec<&str> = line.split_whitespace().collect();
        assert!(
            line.starts_with("listening on http://"),
            "serve printed {line:?}"
        );
        let url = words[2].to_string();
        let http = words.last().unwrap().trim_end_matches(')').to_string();
        ServerProc { child, url, http }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    /// GET on the HTTP port (a tiny HTTP/1.0 client): (status, body).
    pub fn get(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self.http.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The token `init` wrote.
pub fn token(home: &Path) -> String {
    std::fs::read_to_string(home.join("TOKEN"))
        .unwrap()
        .trim()
        .to_string()
}
