//! Commands that add names: mkdir, create, symlink, link.

use nokv_types::{validate_name, Attr, Error, EventKind, FileKind, Result};

use super::{
    add_new_under, entry_inode, load_entry, new_inode, require_dir, require_inode, shown,
    touch_dir, Loc,
};
use crate::command::Txn;
use crate::keys;
use crate::records::{encode, EntryRecord, InodeData, InodeRecord};
use crate::watch;

/// Ownership and permissions of a new inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Owner {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Checks `name` can be added to `parent` (and guards it); returns the
/// parent's attributes, which adding the name does not change, so the
/// caller can update them without reading them again.
fn claim_name(txn: &mut Txn<'_>, parent: u64, name: &[u8]) -> Result<(InodeData, Loc)> {
    validate_name(name)?;
    let dir = require_dir(txn, parent)?;
    if !txn.require_absent(&keys::entry(parent, name))? {
        return Err(Error::Exists(shown(name)));
    }
    Ok(dir)
}

pub(crate) fn mkdir(txn: &mut Txn<'_>, parent: u64, name: &[u8], owner: Owner) -> Result<Attr> {
    let dir = claim_name(txn, parent, name)?;
    let ino = txn.alloc_ino();
    let data = new_inode(FileKind::Dir, owner.mode, owner.uid, owner.gid, txn.now());
    add_new_under(txn, EventKind::Created, parent, dir, name, ino, &data)?;
    Ok(data.to_attr(ino))
}

/// Creates an empty file. With `exclusive == false` an existing file is
/// returned unchanged (O_CREAT without O_EXCL).
pub(crate) fn create(
    txn: &mut Txn<'_>,
    parent: u64,
    name: &[u8],
    owner: Owner,
    exclusive: bool,
) -> Result<Attr> {
    if !exclusive {
        // (An exclusive create gets these checks, in this order, from
        // `claim_name`.)
        validate_name(name)?;
        require_dir(txn, parent)?;
        if let Some(entry) = load_entry(txn, parent, name)? {
            let (ino, data, _) = entry_inode(txn, parent, name, entry)?;
            return match data.kind {
                FileKind::Dir => Err(Error::IsADirectory(shown(name))),
                _ => Ok(data.to_attr(ino)),
            };
        }
    }
    let dir = claim_name(txn, parent, name)?;
    let ino = txn.alloc_ino();
    let data = new_inode(FileKind::File, owner.mode, owner.uid, owner.gid, txn.now());
    add_new_under(txn, EventKind::Created, parent, dir, name, ino, &data)?;
    Ok(data.to_attr(ino))
}

/// Longest symlink target accepted (PATH_MAX).
pub const MAX_SYMLINK_TARGET: usize = 4096;

pub(crate) fn symlink(
    txn: &mut Txn<'_>,
    parent: u64,
    name: &[u8],
    target: &[u8],
    owner: Owner,
) -> Result<Attr> {
    if target.is_empty() || target.len() > MAX_SYMLINK_TARGET || target.contains(&0) {
        return Err(Error::InvalidArgument(format!(
            "symlink target must be 1..={MAX_SYMLINK_TARGET} bytes without NUL"
        )));
    }
    let dir = claim_name(txn, parent, name)?;
    let ino = txn.alloc_ino();
    let mut data = new_inode(FileKind::Symlink, 0o777, owner.uid, owner.gid, txn.now());
    data.size = target.len() as u64;
    data.target = Some(target.to_vec());
    add_new_under(txn, EventKind::Created, parent, dir, name, ino, &data)?;
    Ok(data.to_attr(ino))
}

/// Adds `new_parent/new_name` as another name of `ino`.
pub(crate) fn link(txn: &mut Txn<'_>, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Attr> {
    let (mut data, loc) = require_inode(txn, ino)?;
    if data.kind == FileKind::Dir {
        return Err(Error::IsADirectory(format!(
            "inode {ino}: hard links to directories are not allowed"
        )));
    }
    claim_name(txn, new_parent, new_name)?;
    data.nlink = data.nlink.saturating_add(1);
    data.ctime = txn.now();
    // A second name moves the attributes out of the first entry into the
    // inode record, which both entries then reference.
    if let Loc::Entry { parent, name } = &loc {
        txn.put(
            keys::entry(*parent, name),
            encode(&EntryRecord::Linked {
                ino,
                kind: data.kind,
            })?,
        )?;
    }
    txn.put(keys::inode(ino), encode(&InodeRecord::Own(data.clone()))?)?;
    txn.put(
        keys::entry(new_parent, new_name),
        encode(&EntryRecord::Linked {
            ino,
            kind: data.kind,
        })?,
    )?;
    touch_dir(txn, new_parent, 0)?;
    watch::emit(
        txn,
        EventKind::Created,
        new_parent,
        new_name,
        None,
        ino,
        &data,
    )?;
    Ok(data.to_attr(ino))
}
