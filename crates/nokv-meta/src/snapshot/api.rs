//! The snapshot API of a volume: create, retire, list, and reads at a
//! snapshot by path (relative to the pinned root) and by inode.

use nokv_types::{Attr, Body, Error, FileKind, NokvPath, Result};

use super::view::SnapshotView;
use super::SnapshotInfo;
use crate::bodies::read_body;
use crate::namespace::list::{readdirplus, DirEntryPlus, DirPage};
use crate::namespace::{load_entry, require_dir, require_inode, shown, Source};
use crate::resolve::resolve_in;
use crate::volume::Volume;

impl Volume {
    /// Creates snapshot `name` of `path` (O(1): one record).
    pub fn snapshot_create(&self, path: &NokvPath, name: &str) -> Result<SnapshotInfo> {
        let (path, name) = (path.clone(), name.to_string());
        self.commit(move |txn, _| super::create(txn, &path, &name))
    }

    /// Retires snapshot `name`; GC and history pruning then reclaim what
    /// only it needed.
    pub fn snapshot_retire(&self, name: &str) -> Result<SnapshotInfo> {
        let name = name.to_string();
        self.commit(move |txn, _| super::retire(txn, &name))
    }

    /// Every live snapshot, by name.
    pub fn snapshots(&self) -> Vec<SnapshotInfo> {
        self.committer().snapshots().list()
    }

    /// Version of the oldest live snapshot: GC keeps every block queued
    /// after it.
    pub fn gc_floor(&self) -> Option<u64> {
        self.committer().snapshots().oldest()
    }

    /// Number of history records kept for snapshots (a full scan: for
    /// status and tests).
    pub fn history_records(&self) -> Result<u64> {
        let prefix = crate::keys::history_all_prefix();
        let mut count = 0u64;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let rows = self.engine().scan(&prefix, after.as_deref(), 4096)?;
            let Some((last, _)) = rows.last() else {
                return Ok(count);
            };
            after = Some(last.clone());
            count += rows.len() as u64;
        }
    }

    /// Runs `read` on the volume as it was at snapshot `name`. A
    /// snapshot retired while the read ran makes it NotFound.
    fn at_snapshot<T>(
        &self,
        name: &str,
        read: impl Fn(&SnapshotView<'_>) -> Result<T>,
    ) -> Result<T> {
        let info = super::load(self.engine(), name)?;
        let view = SnapshotView::new(self.engine(), info);
        match read(&view) {
            Ok(v) => Ok(v),
            Err(e) => match super::load(self.engine(), name) {
                Ok(_) => Err(e),
                Err(Error::NotFound(_)) => Err(Error::NotFound(format!(
                    "snapshot {name} (retired while it was read)"
                ))),
                Err(other) => Err(other),
            },
        }
    }

    /// stat/lstat of `path` at snapshot `name` (`/` is the pinned root).
    pub fn stat_at(&self, name: &str, path: &NokvPath, follow: bool) -> Result<Attr> {
        self.at_snapshot(name, |v| {
            resolve_in(v, v.info().root, path, follow).map_err(|e| crate::at_path(e, path))
        })
    }

    /// A page of the listing of `path` at snapshot `name`.
    pub fn list_at(
        &self,
        name: &str,
        path: &NokvPath,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        self.at_snapshot(name, |v| {
            let dir =
                resolve_in(v, v.info().root, path, true).map_err(|e| crate::at_path(e, path))?;
            if dir.kind != FileKind::Dir {
                return Err(Error::NotADirectory(path.to_string()));
            }
            readdirplus(v, dir.ino, after, limit)
        })
    }

    /// Target of the symlink at `path` at snapshot `name`.
    pub fn readlink_at(&self, name: &str, path: &NokvPath) -> Result<Vec<u8>> {
        self.at_snapshot(name, |v| {
            let attr =
                resolve_in(v, v.info().root, path, false).map_err(|e| crate::at_path(e, path))?;
            link_target(v, attr.ino)
        })
    }

    /// Attributes and manifest of the file at `path` at snapshot `name`.
    pub fn body_at(&self, name: &str, path: &NokvPath) -> Result<(Attr, Body)> {
        let bs = self.block_size();
        self.at_snapshot(name, |v| {
            let attr =
                resolve_in(v, v.info().root, path, true).map_err(|e| crate::at_path(e, path))?;
            file_body(v, attr.ino, bs).map_err(|e| crate::at_path(e, path))
        })
    }

    // ---- by inode (read-only mounts); the snapshot's root is `root` ----

    /// The pinned root of snapshot `name`.
    pub fn snapshot_root(&self, name: &str) -> Result<Attr> {
        self.at_snapshot(name, |v| {
            let (data, _) = require_inode(v, v.info().root)?;
            Ok(data.to_attr(v.info().root))
        })
    }

    pub fn getattr_at(&self, name: &str, ino: u64) -> Result<Attr> {
        self.at_snapshot(name, |v| {
            let (data, _) = require_inode(v, ino)?;
            Ok(data.to_attr(ino))
        })
    }

    pub fn lookup_at(&self, name: &str, parent: u64, entry: &[u8]) -> Result<Attr> {
        nokv_types::validate_name(entry)?;
        self.at_snapshot(name, |v| {
            require_dir(v, parent)?;
            let e = load_entry(v, parent, entry)?.ok_or_else(|| Error::NotFound(shown(entry)))?;
            let (ino, data, _) = crate::namespace::entry_inode(v, parent, entry, e)?;
            Ok(data.to_attr(ino))
        })
    }

    pub fn readdirplus_at(
        &self,
        name: &str,
        dir: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        self.at_snapshot(name, |v| readdirplus(v, dir, after, limit))
    }

    pub fn body_ino_at(&self, name: &str, ino: u64) -> Result<(Attr, Body)> {
        let bs = self.block_size();
        self.at_snapshot(name, |v| file_body(v, ino, bs))
    }

    pub fn readlink_ino_at(&self, name: &str, ino: u64) -> Result<Vec<u8>> {
        self.at_snapshot(name, |v| link_target(v, ino))
    }
}

fn file_body(src: &dyn Source, ino: u64, block_size: u32) -> Result<(Attr, Body)> {
    let (data, _) = require_inode(src, ino)?;
    match data.kind {
        FileKind::File => {}
        FileKind::Dir => return Err(Error::IsADirectory(format!("inode {ino}"))),
        FileKind::Symlink => {
            return Err(Error::InvalidArgument(format!("inode {ino} is a symlink")))
        }
    }
    let body = read_body(src, ino, &data, block_size)?;
    Ok((data.to_attr(ino), body))
}

fn link_target(src: &dyn Source, ino: u64) -> Result<Vec<u8>> {
    let (data, _) = require_inode(src, ino)?;
    match (data.kind, data.target) {
        (FileKind::Symlink, Some(t)) => Ok(t),
        _ => Err(Error::NotASymlink(format!("inode {ino}"))),
    }
}
