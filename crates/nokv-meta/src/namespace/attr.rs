//! setattr: permissions, ownership, times, and truncation to zero.
//! (Other sizes need new bytes, so the client publishes a new body.)

use std::collections::HashSet;

use nokv_types::{Attr, Error, EventKind, FileKind, Result, SetAttr};

use super::{require_inode, store_inode};
use crate::bodies::release_body;
use crate::command::Txn;
use crate::records::InodeData;
use crate::watch;

pub(crate) fn setattr(
    txn: &mut Txn<'_>,
    ino: u64,
    change: &SetAttr,
    block_size: u32,
) -> Result<Attr> {
    let (mut data, loc) = require_inode(txn, ino)?;
    apply_owner_and_times(&mut data, change)?;
    if let Some(size) = change.size {
        if data.kind != FileKind::File {
            return Err(match data.kind {
                FileKind::Dir => Error::IsADirectory(format!("inode {ino}")),
                _ => Error::InvalidArgument(format!("inode {ino} is not a regular file")),
            });
        }
        if size != data.size {
            if size != 0 {
                return Err(Error::InvalidArgument(
                    "changing a file's size to non-zero publishes a new body (use the client's truncate)".into(),
                ));
            }
            release_body(txn, ino, &data, &HashSet::new(), block_size)?;
            data.body = None;
            data.size = 0;
            data.generation += 1;
            if change.mtime.is_none() {
                data.mtime = txn.now();
            }
        }
    }
    data.ctime = txn.now();
    store_inode(txn, ino, &loc, &data)?;
    // A hard-linked inode has no single path: its event names none ("").
    watch::emit_at(txn, EventKind::AttrChanged, ino, &loc, &data)?;
    Ok(data.to_attr(ino))
}

/// Mode, owner and times of `change` (not its size), checked and set.
pub(crate) fn apply_owner_and_times(data: &mut InodeData, change: &SetAttr) -> Result<()> {
    if let Some(mode) = change.mode {
        if mode & !0o7777 != 0 {
            return Err(Error::InvalidArgument(format!(
                "mode {mode:o} has bits outside 0o7777"
            )));
        }
        data.mode = mode;
    }
    if let Some(uid) = change.uid {
        data.uid = uid;
    }
    if let Some(gid) = change.gid {
        data.gid = gid;
    }
    if let Some(atime) = change.atime {
        data.atime = atime;
    }
    if let Some(mtime) = change.mtime {
        data.mtime = mtime;
    }
    Ok(())
}
