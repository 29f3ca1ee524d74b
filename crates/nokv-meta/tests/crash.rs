//! Durability: a writer process in sync mode is killed with SIGKILL in
//! the middle of a stream of commands; every command it acknowledged
//! must be present when the volume reopens.
//!
//! The test binary re-executes itself as the writer (`NOKV_CRASH_CHILD`)
//! so the writer is a real separate process on the same on-disk volume.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use nokv_meta::{Durability, InitOptions, Owner, Volume};
use nokv_types::{ObjectLocation, ROOT_INO};

const CHILD_ENV: &str = "NOKV_CRASH_CHILD";

/// The writer: creates files from several threads, printing each name
/// after its create was acknowledged.
fn child(home: &str) {
    let vol = Volume::open(std::path::Path::new(home), common::opts(Durability::Sync)).unwrap();
    let dir = vol.lookup(ROOT_INO, b"d").unwrap().ino;
    let out = std::sync::Mutex::new(std::io::stdout());
    std::thread::scope(|s| {
        for t in 0..4 {
            let vol = vol.clone();
            let out = &out;
            s.spawn(move || {
                for i in 0.. {
                    let name = format!("t{t}-{i}");
                    let owner = Owner {
                        mode: 0o644,
                        uid: 0,
                        gid: 0,
                    };
                    vol.create(dir, name.as_bytes(), owner, true).unwrap();
                    let mut o = out.lock().unwrap();
                    writeln!(o, "ACK {name}").unwrap();
                    o.flush().unwrap();
                }
            });
        }
    });
}

#[test]
fn acknowledged_sync_commands_survive_sigkill() {
    if let Ok(home) = std::env::var(CHILD_ENV) {
        child(&home);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    {
        let vol = Volume::init(
            &home,
            InitOptions::new(ObjectLocation::Local {
                root: tmp.path().join("blocks"),
            }),
            common::opts(Durability::Sync),
        )
        .unwrap();
        vol.mkdir(ROOT_INO, b"d", common::dir_owner()).unwrap();
    }
    for round in 0..3 {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "acknowledged_sync_commands_survive_sigkill",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, &home)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut acked = Vec::new();
        let target = 300 + round * 250;
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            if let Some(name) = line.split("ACK ").nth(1) {
                acked.push(name.to_string());
            }
            if acked.len() >= target {
                break;
            }
        }
        // SIGKILL (std's kill on Unix) while the writer is still creating.
        child.kill().unwrap();
        let _ = child.wait();
        assert!(
            acked.len() >= target,
            "writer died early: {} acks",
            acked.len()
        );

        let vol = Volume::open(&home, common::opts(Durability::Sync)).unwrap();
        let dir = vol.lookup(ROOT_INO, b"d").unwrap().ino;
        for name in &acked {
            vol.lookup(dir, name.as_bytes())
                .unwrap_or_else(|e| panic!("round {round}: acknowledged {name} lost: {e}"));
        }
        // Next round's writer continues on the recovered volume: names of
        // this round must not collide, so rename the directory away.
        vol.rename(
            ROOT_INO,
            b"d",
            ROOT_INO,
            format!("d{round}").as_bytes(),
            nokv_meta::RenameMode::NoReplace,
        )
        .unwrap();
        vol.mkdir(ROOT_INO, b"d", common::dir_owner()).unwrap();
    }
}
