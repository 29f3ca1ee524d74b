//! Namespace semantics on the key layout of `keys` and the records of
//! `records`. Functions here run either inside a command (`Txn`, for
//! changes) or directly on the engine (reads); the `Source` trait lets
//! the same lookup code serve both.
//!
//! Invariants kept by every change in this module:
//! - a directory's `nlink` is 2 + its subdirectories; a file's is the
//!   number of entries naming it;
//! - an inode's attributes are stored in exactly one place (see
//!   `records`), and its back-pointer `I ‖ ino = At{parent,name}` always
//!   names the entry that holds them;
//! - a change that fails a check writes nothing.

pub(crate) mod attr;
pub(crate) mod create;
pub(crate) mod list;
pub(crate) mod remove;
pub(crate) mod rename;

use nokv_types::{Error, FileKind, Result, ROOT_INO};

use crate::command::Txn;
use crate::engine::Engine;
use crate::keys;
use crate::records::{decode, encode, EntryRecord, InodeData, InodeRecord};

/// Point reads, from the engine or from inside a command.
pub(crate) trait Source {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
}

impl Source for Engine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Engine::get(self, key)
    }
}

/// A page of a directory's raw entries: `(name, value)` in name order,
/// and the name to resume after (None: the listing is complete). A page
/// may hold fewer rows than asked for and still have a `next`.
pub(crate) struct EntryRows {
    pub rows: Vec<(Vec<u8>, Vec<u8>)>,
    pub next: Option<Vec<u8>>,
}

/// Sources that can also page through a directory's entries.
pub(crate) trait EntrySource: Source {
    fn entries(&self, dir: u64, after: Option<&[u8]>, limit: usize) -> Result<EntryRows>;
    /// The same source as a plain point-read source.
    fn as_source(&self) -> &dyn Source;
}

impl EntrySource for Engine {
    fn entries(&self, dir: u64, after: Option<&[u8]>, limit: usize) -> Result<EntryRows> {
        let prefix = keys::entry_prefix(dir);
        let after_key = after.map(|name| keys::entry(dir, name));
        let limit = limit.max(1);
        let mut rows = self.scan(&prefix, after_key.as_deref(), limit + 1)?;
        let more = rows.len() > limit;
        rows.truncate(limit);
        let rows: Vec<(Vec<u8>, Vec<u8>)> = rows
            .into_iter()
            .map(|(k, v)| (keys::entry_name(&k).to_vec(), v))
            .collect();
        let next = if more {
            rows.last().map(|(n, _)| n.clone())
        } else {
            None
        };
        Ok(EntryRows { rows, next })
    }

    fn as_source(&self) -> &dyn Source {
        self
    }
}

impl Source for Txn<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        Txn::get(self, key)
    }
}

/// Where an inode's attributes are stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Loc {
    /// Inline in the entry `E ‖ parent ‖ name`.
    Entry { parent: u64, name: Vec<u8> },
    /// In the inode record `I ‖ ino`.
    Own,
}

pub(crate) fn shown(name: &[u8]) -> String {
    String::from_utf8_lossy(name).into_owned()
}

pub(crate) fn load_entry(
    src: &dyn Source,
    parent: u64,
    name: &[u8],
) -> Result<Option<EntryRecord>> {
    match src.get(&keys::entry(parent, name))? {
        Some(bytes) => Ok(Some(decode("entry", &bytes)?)),
        None => Ok(None),
    }
}

/// Attributes of `ino` and where they are stored.
pub(crate) fn load_inode(src: &dyn Source, ino: u64) -> Result<Option<(InodeData, Loc)>> {
    let Some(bytes) = src.get(&keys::inode(ino))? else {
        return Ok(None);
    };
    match decode::<InodeRecord>("inode", &bytes)? {
        InodeRecord::Own(data) => Ok(Some((data, Loc::Own))),
        InodeRecord::At { parent, name } => match load_entry(src, parent, &name)? {
            Some(EntryRecord::Inline { ino: found, inode }) if found == ino => {
                Ok(Some((inode, Loc::Entry { parent, name })))
            }
            _ => Err(Error::Corrupt(format!(
                "inode {ino} points at entry {parent}/{} which does not hold it",
                shown(&name)
            ))),
        },
    }
}

/// Attributes of the inode an entry names.
pub(crate) fn entry_inode(
    src: &dyn Source,
    parent: u64,
    name: &[u8],
    entry: EntryRecord,
) -> Result<(u64, InodeData, Loc)> {
    match entry {
        EntryRecord::Inline { ino, inode } => Ok((
            ino,
            inode,
            Loc::Entry {
                parent,
                name: name.to_vec(),
            },
        )),
        EntryRecord::Linked { ino, .. } => match load_inode(src, ino)? {
            Some((inode, loc)) => Ok((ino, inode, loc)),
            None => Err(Error::Corrupt(format!(
                "entry {parent}/{} names inode {ino} which does not exist",
                shown(name)
            ))),
        },
    }
}

pub(crate) fn require_inode(src: &dyn Source, ino: u64) -> Result<(InodeData, Loc)> {
    load_inode(src, ino)?.ok_or_else(|| Error::NotFound(format!("inode {ino}")))
}

pub(crate) fn require_dir(src: &dyn Source, ino: u64) -> Result<(InodeData, Loc)> {
    let (data, loc) = require_inode(src, ino)?;
    if data.kind != FileKind::Dir {
        return Err(Error::NotADirectory(format!("inode {ino}")));
    }
    Ok((data, loc))
}

/// Writes `data` back to where `ino`'s attributes live.
pub(crate) fn store_inode(txn: &mut Txn<'_>, ino: u64, loc: &Loc, data: &InodeData) -> Result<()> {
    match loc {
        Loc::Entry { parent, name } => txn.put(
            keys::entry(*parent, name),
            encode(&EntryRecord::Inline {
                ino,
                inode: data.clone(),
            })?,
        )?,
        Loc::Own => txn.put(keys::inode(ino), encode(&InodeRecord::Own(data.clone()))?)?,
    }
    Ok(())
}

/// Bumps a directory's mtime/ctime (and nlink by `dirs_delta`) because
/// its entries changed.
pub(crate) fn touch_dir(txn: &mut Txn<'_>, dir: u64, dirs_delta: i32) -> Result<()> {
    let loaded = require_dir(txn, dir)?;
    touch_loaded_dir(txn, dir, loaded, dirs_delta)
}

/// `touch_dir` with the directory's current attributes already read.
fn touch_loaded_dir(
    txn: &mut Txn<'_>,
    dir: u64,
    (mut data, loc): (InodeData, Loc),
    dirs_delta: i32,
) -> Result<()> {
    data.mtime = txn.now();
    data.ctime = txn.now();
    data.nlink = data.nlink.saturating_add_signed(dirs_delta);
    store_inode(txn, dir, &loc, &data)
}

/// Fresh attributes for a new inode.
pub(crate) fn new_inode(kind: FileKind, mode: u32, uid: u32, gid: u32, now: i64) -> InodeData {
    InodeData {
        kind,
        mode: mode & 0o7777,
        uid,
        gid,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
        nlink: if kind == FileKind::Dir { 2 } else { 1 },
        generation: 0,
        body: None,
        target: None,
    }
}

/// Adds a new singly-linked inode under `parent/name`. `ino` was
/// allocated by this command, so no snapshot can have seen these keys:
/// they are written without history (see `snapshot::history`).
pub(crate) fn insert_new(
    txn: &mut Txn<'_>,
    parent: u64,
    name: &[u8],
    ino: u64,
    data: &InodeData,
) -> Result<()> {
    txn.put_fresh(
        keys::entry(parent, name),
        encode(&EntryRecord::Inline {
            ino,
            inode: data.clone(),
        })?,
    )?;
    txn.put_fresh(
        keys::inode(ino),
        encode(&InodeRecord::At {
            parent,
            name: name.to_vec(),
        })?,
    )?;
    Ok(())
}

/// Adds a new singly-linked inode under `parent/name` with everything a
/// new name implies: the parent's times (and link count for a
/// directory) and the watch event `kind`.
pub(crate) fn add_new(
    txn: &mut Txn<'_>,
    kind: nokv_types::EventKind,
    parent: u64,
    name: &[u8],
    ino: u64,
    data: &InodeData,
) -> Result<()> {
    insert_new(txn, parent, name, ino, data)?;
    touch_dir(txn, parent, i32::from(data.kind == FileKind::Dir))?;
    crate::watch::emit(txn, kind, parent, name, None, ino, data)
}

/// `add_new` with `parent`'s attributes (`parent_dir`) already read by
/// this command; adding the name does not change them, so they are not
/// read again.
pub(crate) fn add_new_under(
    txn: &mut Txn<'_>,
    kind: nokv_types::EventKind,
    parent: u64,
    parent_dir: (InodeData, Loc),
    name: &[u8],
    ino: u64,
    data: &InodeData,
) -> Result<()> {
    insert_new(txn, parent, name, ino, data)?;
    touch_loaded_dir(
        txn,
        parent,
        parent_dir,
        i32::from(data.kind == FileKind::Dir),
    )?;
    crate::watch::emit(txn, kind, parent, name, None, ino, data)
}

/// True when directory `dir` is `ancestor` or lies below it.
pub(crate) fn is_within(src: &dyn Source, dir: u64, ancestor: u64) -> Result<bool> {
    let mut cur = dir;
    // Depth is bounded by the number of inodes; the guard stops a
    // corrupt back-pointer cycle from looping forever.
    for _ in 0..1_000_000 {
        if cur == ancestor {
            return Ok(true);
        }
        if cur == ROOT_INO {
            return Ok(false);
        }
        let Some(bytes) = src.get(&keys::inode(cur))? else {
            return Err(Error::Corrupt(format!("directory inode {cur} is missing")));
        };
        match decode::<InodeRecord>("inode", &bytes)? {
            InodeRecord::At { parent, .. } => cur = parent,
            InodeRecord::Own(_) => {
                return Err(Error::Corrupt(format!(
                    "directory inode {cur} has no parent"
                )))
            }
        }
    }
    Err(Error::Corrupt("directory parent chain does not end".into()))
}
