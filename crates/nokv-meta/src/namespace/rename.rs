//! rename: moves one entry key, whatever the size of the subtree below
//! it (children are keyed by the directory's inode, not its path).

use nokv_types::{validate_name, Error, EventKind, FileKind, Result};

use super::{entry_inode, is_within, load_entry, require_dir, shown, store_inode, touch_dir, Loc};
use crate::command::Txn;
use crate::keys;
use crate::namespace::remove::drop_link;
use crate::records::{encode, EntryRecord, InodeRecord};
use crate::watch;

/// What rename does when the destination exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameMode {
    /// Fail with `Exists` (RENAME_NOREPLACE).
    NoReplace,
    /// Replace it, POSIX style: a file replaces a file or symlink, a
    /// directory replaces an empty directory.
    Replace,
}

pub(crate) fn rename(
    txn: &mut Txn<'_>,
    src_parent: u64,
    src_name: &[u8],
    dst_parent: u64,
    dst_name: &[u8],
    mode: RenameMode,
    block_size: u32,
) -> Result<()> {
    validate_name(src_name)?;
    validate_name(dst_name)?;
    require_dir(txn, src_parent)?;
    require_dir(txn, dst_parent)?;
    let src_entry =
        load_entry(txn, src_parent, src_name)?.ok_or_else(|| Error::NotFound(shown(src_name)))?;
    if src_parent == dst_parent && src_name == dst_name {
        return Ok(());
    }
    let (src_ino, mut src_data, src_loc) =
        entry_inode(txn, src_parent, src_name, src_entry.clone())?;
    let src_is_dir = src_data.kind == FileKind::Dir;
    if src_is_dir && is_within(txn, dst_parent, src_ino)? {
        return Err(Error::IntoOwnSubtree {
            src: shown(src_name),
            dst: shown(dst_name),
        });
    }

    let dst_key = keys::entry(dst_parent, dst_name);
    let old_path = watch::child_path(txn, src_parent, src_name)?;
    let mut replaced_dir = false;
    match load_entry(txn, dst_parent, dst_name)? {
        None => {
            txn.require_absent(&dst_key)?;
        }
        Some(_) if mode == RenameMode::NoReplace => return Err(Error::Exists(shown(dst_name))),
        Some(dst_entry) => {
            let (dst_ino, dst_data, dst_loc) = entry_inode(txn, dst_parent, dst_name, dst_entry)?;
            if dst_ino == src_ino {
                // Two names of one inode: POSIX says do nothing.
                return Ok(());
            }
            watch::emit(
                txn,
                EventKind::Removed,
                dst_parent,
                dst_name,
                None,
                dst_ino,
                &dst_data,
            )?;
            match (src_is_dir, dst_data.kind == FileKind::Dir) {
                (true, false) => return Err(Error::NotADirectory(shown(dst_name))),
                (false, true) => return Err(Error::IsADirectory(shown(dst_name))),
                (true, true) => {
                    if !txn.require_prefix_empty(&keys::entry_prefix(dst_ino))? {
                        return Err(Error::NotEmpty(shown(dst_name)));
                    }
                    txn.delete(keys::inode(dst_ino))?;
                    replaced_dir = true;
                }
                (false, false) => drop_link(txn, dst_ino, dst_data, &dst_loc, block_size)?,
            }
        }
    }

    src_data.ctime = txn.now();
    let moved = src_data.clone();
    txn.delete(keys::entry(src_parent, src_name))?;
    match src_entry {
        EntryRecord::Inline { .. } => {
            txn.put(
                dst_key,
                encode(&EntryRecord::Inline {
                    ino: src_ino,
                    inode: src_data,
                })?,
            )?;
            txn.put(
                keys::inode(src_ino),
                encode(&InodeRecord::At {
                    parent: dst_parent,
                    name: dst_name.to_vec(),
                })?,
            )?;
        }
        linked @ EntryRecord::Linked { .. } => {
            txn.put(dst_key, encode(&linked)?)?;
            debug_assert_eq!(src_loc, Loc::Own);
            store_inode(txn, src_ino, &Loc::Own, &src_data)?;
        }
    }

    watch::emit(
        txn,
        EventKind::Renamed,
        dst_parent,
        dst_name,
        Some((src_parent, old_path)),
        src_ino,
        &moved,
    )?;

    let moved_dir = i32::from(src_is_dir && src_parent != dst_parent);
    let dst_delta = moved_dir - i32::from(replaced_dir);
    if src_parent == dst_parent {
        touch_dir(txn, dst_parent, dst_delta)
    } else {
        touch_dir(txn, src_parent, -moved_dir)?;
        touch_dir(txn, dst_parent, dst_delta)
    }
}
