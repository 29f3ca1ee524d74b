//! `nokv-fs snapshot create|list|retire`.

use anyhow::Result;
use nokv_client::SnapshotInfo;

use crate::cli::{Global, SnapshotCommand};
use crate::commands::{client_options, open};
use crate::output;

pub(crate) async fn run(global: &Global, cmd: SnapshotCommand) -> Result<()> {
    let client = open(global, client_options(global)).await?;
    match cmd {
        SnapshotCommand::Create { path, name, json } => {
            let name = match name {
                Some(n) => n,
                None => default_name(&path),
            };
            let info = client.snapshot_create(&path, &name).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info_json(&info))?);
            } else {
                println!(
                    "snapshot {} of {} at commit {}",
                    info.name, info.path, info.version
                );
            }
        }
        SnapshotCommand::List { json } => {
            let list = client.snapshots().await?;
            if json {
                let all: Vec<_> = list.iter().map(info_json).collect();
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for s in &list {
                    println!(
                        "{}\t{}\tcommit {}\t{} UTC",
                        s.name,
                        s.path,
                        s.version,
                        output::time_string(s.created)
                    );
                }
            }
        }
        SnapshotCommand::Retire { name } => {
            let info = client.snapshot_retire(&name).await?;
            println!("retired snapshot {} of {}", info.name, info.path);
        }
    }
    Ok(())
}

/// `<last component>-<UTC time to the millisecond>`, e.g.
/// `train-20261124T101500.123Z` (`root-…` for `/`).
fn default_name(path: &str) -> String {
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or("root");
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-@+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(200)
        .collect();
    let now = compact_utc(nokv_client::now_nanos());
    format!("{base}-{now}")
}

/// `YYYYMMDDTHHMMSS.mmmZ` from ns since the epoch.
fn compact_utc(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let ms = ns.rem_euclid(1_000_000_000) / 1_000_000;
    let t = output::time_string(secs * 1_000_000_000);
    // time_string is "YYYY-MM-DD HH:MM:SS".
    let compact: String = t.chars().filter(|c| c.is_ascii_digit()).collect();
    let (date, time) = compact.split_at(compact.len().min(8));
    format!("{date}T{time}.{ms:03}Z")
}

fn info_json(s: &SnapshotInfo) -> serde_json::Value {
    serde_json::json!({
        "name": s.name,
        "path": s.path,
        "root_ino": s.root,
        "kind": s.kind.as_str(),
        "commit_version": s.version,
        "created": s.created,
        "created_utc": output::time_string(s.created),
    })
}
