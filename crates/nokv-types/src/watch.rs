//! Typed watch events: one per namespace change, appended to the watch
//! log by the same command as the change itself.
//!
//! `seq` orders events totally and is stable across restarts: it is
//! `commit_version * 256 + i` for the i-th event of a command, so a
//! consumer that resumes from its last `seq + 1` misses nothing and sees
//! nothing twice.

use serde::{Deserialize, Serialize};

use crate::attr::FileKind;
use crate::body::Digest;

/// Events one command may emit at most.
pub const EVENTS_PER_COMMAND: u64 = 256;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A name appeared (mkdir, create, symlink, link).
    Created,
    /// A file's first body was published at a new name.
    Published,
    /// A file's body was replaced by a new generation.
    Replaced,
    /// A name went away (unlink, rmdir, replaced by a rename).
    Removed,
    /// A name moved (`old_path` -> `path`).
    Renamed,
    /// Attributes changed (chmod, chown, times, truncate to zero).
    AttrChanged,
    /// A snapshot of `path` was created (`snapshot` names it).
    SnapshotCreated,
    /// The snapshot named `snapshot` was retired.
    SnapshotRetired,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Created => "created",
            EventKind::Published => "published",
            EventKind::Replaced => "replaced",
            EventKind::Removed => "removed",
            EventKind::Renamed => "renamed",
            EventKind::AttrChanged => "attr_changed",
            EventKind::SnapshotCreated => "snapshot_created",
            EventKind::SnapshotRetired => "snapshot_retired",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchEvent {
    pub seq: u64,
    pub commit_version: u64,
    pub kind: EventKind,
    /// The path the change is about (the new path of a rename).
    pub path: String,
    /// The old path of a rename.
    pub old_path: Option<String>,
    pub ino: u64,
    pub file_kind: FileKind,
    /// Body generation, size and digest for files.
    pub generation: u64,
    pub size: u64,
    pub digest: Option<Digest>,
    /// Commit time, ns since the epoch.
    pub time: i64,
    /// The snapshot a snapshot event is about.
    pub snapshot: Option<String>,
    /// The inode of the directory holding the name the event is about
    /// (the new name of a rename); 0 when the event names no entry (the
    /// root, a hard-linked inode changed by inode, snapshot events).
    pub parent: u64,
    /// The directory the old name of a rename was in.
    pub old_parent: Option<u64>,
}

impl WatchEvent {
    /// The last component of `path` (the entry name in `parent`).
    pub fn name(&self) -> Option<&str> {
        last_name(&self.path)
    }

    /// The last component of `old_path` (the old name in `old_parent`).
    pub fn old_name(&self) -> Option<&str> {
        self.old_path.as_deref().and_then(last_name)
    }

    /// True when the event concerns `prefix` or something below it (a
    /// rename counts if either side does).
    pub fn is_under(&self, prefix: &str) -> bool {
        let under = |p: &str| {
            prefix == "/"
                || p == prefix
                || (p.starts_with(prefix) && p.as_bytes().get(prefix.len()) == Some(&b'/'))
        };
        under(&self.path) || self.old_path.as_deref().is_some_and(under)
    }
}

fn last_name(path: &str) -> Option<&str> {
    let (_, name) = path.rsplit_once('/')?;
    (!name.is_empty()).then_some(name)
}

/// A page of the watch log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchPage {
    pub events: Vec<WatchEvent>,
    /// The `from` to ask for next (one past the last event looked at,
    /// whether it matched the prefix or not).
    pub next: u64,
}
