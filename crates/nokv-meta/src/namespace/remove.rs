//! Commands that remove names: unlink and rmdir.

use std::collections::HashSet;

use nokv_types::{validate_name, Error, EventKind, FileKind, Result};

use super::{entry_inode, load_entry, require_dir, shown, store_inode, touch_dir, Loc};
use crate::bodies::release_body;
use crate::command::Txn;
use crate::keys;
use crate::records::InodeData;
use crate::watch;

/// Drops one name of a non-directory inode: the inode (and its body, to
/// the GC queue) goes when its last name goes.
pub(crate) fn drop_link(
    txn: &mut Txn<'_>,
    ino: u64,
    mut data: InodeData,
    loc: &Loc,
    block_size: u32,
) -> Result<()> {
    data.nlink = data.nlink.saturating_sub(1);
    if data.nlink == 0 {
        txn.delete(keys::inode(ino))?;
        release_body(txn, ino, &data, &HashSet::new(), block_size)?;
    } else {
        data.ctime = txn.now();
        store_inode(txn, ino, loc, &data)?;
    }
    Ok(())
}

pub(crate) fn unlink(txn: &mut Txn<'_>, parent: u64, name: &[u8], block_size: u32) -> Result<()> {
    validate_name(name)?;
    require_dir(txn, parent)?;
    let entry = load_entry(txn, parent, name)?.ok_or_else(|| Error::NotFound(shown(name)))?;
    let (ino, data, loc) = entry_inode(txn, parent, name, entry)?;
    if data.kind == FileKind::Dir {
        return Err(Error::IsADirectory(shown(name)));
    }
    watch::emit(txn, EventKind::Removed, parent, name, None, ino, &data)?;
    txn.delete(keys::entry(parent, name))?;
    // An inline inode dies with its only entry.
    drop_link(txn, ino, data, &loc, block_size)?;
    touch_dir(txn, parent, 0)
}

pub(crate) fn rmdir(txn: &mut Txn<'_>, parent: u64, name: &[u8]) -> Result<()> {
    validate_name(name)?;
    require_dir(txn, parent)?;
    let entry = load_entry(txn, parent, name)?.ok_or_else(|| Error::NotFound(shown(name)))?;
    let (ino, data, _) = entry_inode(txn, parent, name, entry)?;
    if data.kind != FileKind::Dir {
        return Err(Error::NotADirectory(shown(name)));
    }
    if !txn.require_prefix_empty(&keys::entry_prefix(ino))? {
        return Err(Error::NotEmpty(shown(name)));
    }
    watch::emit(txn, EventKind::Removed, parent, name, None, ino, &data)?;
    txn.delete(keys::entry(parent, name))?;
    txn.delete(keys::inode(ino))?;
    touch_dir(txn, parent, -1)
}
