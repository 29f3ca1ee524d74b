//! Snapshots: a name that pins a path of the volume at a commit version.
//!
//! Creating one writes one record (`P ‖ name`), whatever the size of the
//! subtree: the snapshot is the pair (root inode, commit version `s`),
//! and reads at it see every versioned key as it was at `s` (see
//! `history` for how the values it needs are kept and `view` for the
//! reads).
//!
//! Invariants:
//! - the set of live snapshots every command consults (`LiveSnapshots`)
//!   changes only inside the commands that create and retire them, so
//!   a command that commits after a snapshot's command always sees it;
//!   if a group fails, the set is reloaded from the engine;
//! - `ino_mark` is the first inode number not handed out before `s`:
//!   an inode numbered at or above it did not exist at `s`;
//! - the GC floor is the oldest live snapshot's version: a block queued
//!   by a command after it may still be readable at that snapshot.

mod api;
pub(crate) mod history;
pub(crate) mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use nokv_types::{Attr, Error, EventKind, FileKind, NokvPath, Result, Timestamp};
use serde::{Deserialize, Serialize};

use crate::command::Txn;
use crate::engine::Engine;
use crate::keys;
use crate::records::{decode, encode};

/// Longest snapshot name, in bytes.
pub const MAX_SNAPSHOT_NAME: usize = 255;

/// A live snapshot (the record `P ‖ name`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    pub name: String,
    /// The path pinned, as it was named at creation.
    pub path: String,
    /// Inode of that path at creation, and its kind.
    pub root: u64,
    pub kind: FileKind,
    /// Commit version the snapshot reads at.
    pub version: u64,
    /// First inode number allocated after the snapshot.
    pub ino_mark: u64,
    pub created: Timestamp,
}

/// Checks a snapshot name: 1..=255 bytes of letters, digits and `._-@+:`
/// (it appears in CLI flags, logs and mount options), not `.`/`..`.
pub fn validate_snapshot_name(name: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "._-@+:".contains(c);
    if name.is_empty()
        || name.len() > MAX_SNAPSHOT_NAME
        || name == "."
        || name == ".."
        || !name.chars().all(ok_char)
    {
        return Err(Error::InvalidArgument(format!(
            "invalid snapshot name {name:?}: use 1-{MAX_SNAPSHOT_NAME} letters, digits or ._-@+:"
        )));
    }
    Ok(())
}

/// The live snapshots, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct LiveSnapshots {
    by_name: Arc<BTreeMap<String, SnapshotInfo>>,
}

impl LiveSnapshots {
    pub fn load(engine: &Engine) -> Result<LiveSnapshots> {
        let mut by_name = BTreeMap::new();
        for (_, value) in engine.scan(&keys::snapshot_prefix(), None, usize::MAX)? {
            let info: SnapshotInfo = decode("snapshot", &value)?;
            by_name.insert(info.name.clone(), info);
        }
        Ok(LiveSnapshots {
            by_name: Arc::new(by_name),
        })
    }

    /// Version of the newest live snapshot: writes after it keep history.
    pub fn newest(&self) -> Option<u64> {
        self.by_name.values().map(|s| s.version).max()
    }

    /// Version of the oldest live snapshot: the GC floor.
    pub fn oldest(&self) -> Option<u64> {
        self.by_name.values().map(|s| s.version).min()
    }

    /// Versions of every live snapshot, ascending.
    pub fn versions(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.by_name.values().map(|s| s.version).collect();
        v.sort_unstable();
        v
    }

    pub fn list(&self) -> Vec<SnapshotInfo> {
        self.by_name.values().cloned().collect()
    }
}

/// Creates snapshot `name` of `path` at this command's version.
pub(crate) fn create(txn: &mut Txn<'_>, path: &NokvPath, name: &str) -> Result<SnapshotInfo> {
    validate_snapshot_name(name)?;
    let attr = crate::resolve::resolve(txn, path, true).map_err(|e| crate::at_path(e, path))?;
    let key = keys::snapshot(name);
    if !txn.require_absent(&key)? {
        return Err(Error::Exists(format!("snapshot {name}")));
    }
    let info = SnapshotInfo {
        name: name.to_string(),
        path: path.to_string(),
        root: attr.ino,
        kind: attr.kind,
        version: txn.version(),
        ino_mark: txn.ino_mark(),
        created: txn.now(),
    };
    txn.put_raw(key, encode(&info)?);
    Arc::make_mut(&mut txn.snapshots_mut().by_name).insert(name.to_string(), info.clone());
    txn.emit(snapshot_event(
        EventKind::SnapshotCreated,
        &info,
        Some(&attr),
    ))?;
    Ok(info)
}

/// Retires snapshot `name`: from this command on, nothing is kept for
/// it (GC and history pruning reclaim what only it needed).
pub(crate) fn retire(txn: &mut Txn<'_>, name: &str) -> Result<SnapshotInfo> {
    validate_snapshot_name(name)?;
    let key = keys::snapshot(name);
    let Some(bytes) = txn.get(&key)? else {
        return Err(Error::NotFound(format!("snapshot {name}")));
    };
    let info: SnapshotInfo = decode("snapshot", &bytes)?;
    txn.delete_raw(key);
    Arc::make_mut(&mut txn.snapshots_mut().by_name).remove(name);
    txn.emit(snapshot_event(EventKind::SnapshotRetired, &info, None))?;
    Ok(info)
}

/// The event about snapshot `info`; `root` gives the body fields of a
/// file snapshot at creation.
fn snapshot_event(
    kind: EventKind,
    info: &SnapshotInfo,
    root: Option<&Attr>,
) -> nokv_types::WatchEvent {
    nokv_types::WatchEvent {
        seq: 0,
        commit_version: 0,
        kind,
        path: info.path.clone(),
        old_path: None,
        ino: info.root,
        file_kind: info.kind,
        generation: root.map_or(0, |a| a.generation),
        size: root.map_or(0, |a| a.size),
        digest: root.and_then(|a| a.digest),
        time: 0,
        snapshot: Some(info.name.clone()),
        parent: 0,
        old_parent: None,
    }
}

/// The snapshot named `name`, read from the engine.
pub(crate) fn load(engine: &Engine, name: &str) -> Result<SnapshotInfo> {
    validate_snapshot_name(name)?;
    match engine.get(&keys::snapshot(name))? {
        Some(bytes) => decode("snapshot", &bytes),
        None => Err(Error::NotFound(format!("snapshot {name}"))),
    }
}
