//! Publish: the atomic checkpoint primitive.
//!
//! 1. `begin_upload` durably records a staging record with a deadline
//!    and hands out a never-reused upload id (block keys derive from it);
//! 2. the client uploads blocks;
//! 3. `publish` makes the new generation visible in one command, which
//!    also deletes the staging record and queues the replaced
//!    generation's unshared blocks for GC.
//!
//! Invariants:
//! - a namespace entry never points at blocks that may be deleted:
//!   publish requires the staging record (GC removes it before deleting
//!   an expired upload's blocks), and a block reused from an earlier
//!   upload must belong to the generation being replaced (a block of any
//!   older generation may already be on the GC queue);
//! - `if_generation` makes the publish conditional on the generation
//!   it replaces (0 = the name must not exist yet).

use std::collections::HashSet;

use nokv_types::{
    validate_name, Attr, Body, Error, EventKind, FileKind, Result, SetAttr, MAX_BLOCK_SIZE,
};
use serde::{Deserialize, Serialize};

use crate::bodies::{read_body, release_body, summary_of, write_manifest};
use crate::command::Txn;
use crate::keys;
use crate::namespace::create::Owner;
use crate::namespace::{
    add_new, entry_inode, load_entry, new_inode, require_dir, shown, store_inode,
};
use crate::records::{decode, encode, StagingRecord};
use crate::watch;

/// A request to make `body` the content of `parent/name`.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub parent: u64,
    pub name: Vec<u8>,
    pub body: Body,
    /// Upload id the new blocks were written under.
    pub upload: u64,
    /// Only publish if the current generation is this (0: must not exist).
    pub if_generation: Option<u64>,
    /// Permissions and owner when the file is created.
    pub owner: Owner,
}

/// What a publish did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishOutcome {
    pub attr: Attr,
    /// The body this publish replaced (its unshared blocks are queued for GC).
    pub replaced: Option<Body>,
    /// Blocks reused from the replaced generation.
    pub reused_blocks: usize,
}

pub(crate) fn begin_upload(txn: &mut Txn<'_>, deadline: i64) -> Result<u64> {
    let upload = txn.alloc_upload();
    let record = StagingRecord {
        upload,
        created: txn.now(),
        deadline,
    };
    txn.put(keys::staging(upload), encode(&record)?)?;
    Ok(upload)
}

/// Forgets a staged upload (its blocks are already gone or were never
/// written).
pub(crate) fn finish_upload(txn: &mut Txn<'_>, upload: u64) -> Result<()> {
    if txn.get(&keys::staging(upload))?.is_none() {
        return Err(Error::NotFound(format!("staged upload {upload}")));
    }
    txn.delete(keys::staging(upload))?;
    Ok(())
}

fn check_body(body: &Body) -> Result<()> {
    body.check()?;
    if body.block_size == 0 || body.block_size > MAX_BLOCK_SIZE {
        return Err(Error::InvalidArgument(format!(
            "block size {} is out of range",
            body.block_size
        )));
    }
    Ok(())
}

/// Consumes the staging record of `upload` (a publish needs it: GC drops
/// it before deleting an expired upload's blocks).
fn take_staging(txn: &mut Txn<'_>, upload: u64) -> Result<()> {
    let staging_key = keys::staging(upload);
    match txn.get(&staging_key)? {
        Some(bytes) => {
            decode::<StagingRecord>("staging", &bytes)?;
        }
        None => {
            return Err(Error::InvalidArgument(format!(
                "upload {upload} is not staged (it expired, was aborted, or was already published)"
            )))
        }
    }
    txn.delete(staging_key)?;
    Ok(())
}

pub(crate) fn publish(
    txn: &mut Txn<'_>,
    req: PublishRequest,
    block_size: u32,
) -> Result<PublishOutcome> {
    validate_name(&req.name)?;
    check_body(&req.body)?;
    require_dir(txn, req.parent)?;
    take_staging(txn, req.upload)?;

    let name = req.name.as_slice();
    let existing = match load_entry(txn, req.parent, name)? {
        Some(entry) => Some(entry_inode(txn, req.parent, name, entry)?),
        None => None,
    };
    let current_generation = existing.as_ref().map_or(0, |(_, data, _)| data.generation);
    if let Some(expected) = req.if_generation {
        if expected != current_generation || (expected == 0 && existing.is_some()) {
            return Err(Error::GenerationMismatch {
                path: shown(name),
                expected,
                actual: current_generation,
            });
        }
    }

    let new_keys: HashSet<(u64, u32)> = req
        .body
        .blocks
        .iter()
        .map(|b| (b.upload, b.index))
        .collect();
    let foreign: Vec<(u64, u32)> = req
        .body
        .blocks
        .iter()
        .filter(|b| b.upload != req.upload)
        .map(|b| (b.upload, b.index))
        .collect();

    let now = txn.now();
    match existing {
        None => {
            if !foreign.is_empty() {
                return Err(Error::InvalidArgument(
                    "a new file cannot reuse blocks of another upload".into(),
                ));
            }
            txn.require_absent(&keys::entry(req.parent, name))?;
            let ino = txn.alloc_ino();
            let mut data = new_inode(
                FileKind::File,
                req.owner.mode,
                req.owner.uid,
                req.owner.gid,
                now,
            );
            data.generation = 1;
            data.size = req.body.size;
            data.body = Some(summary_of(&req.body));
            write_manifest(txn, ino, data.generation, &req.body)?;
            add_new(txn, EventKind::Published, req.parent, name, ino, &data)?;
            Ok(PublishOutcome {
                attr: data.to_attr(ino),
                replaced: None,
                reused_blocks: 0,
            })
        }
        Some((ino, mut data, loc)) => {
            match data.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(Error::IsADirectory(shown(name))),
                FileKind::Symlink => {
                    return Err(Error::InvalidArgument(format!(
                        "{} is a symbolic link; publish to its target",
                        shown(name)
                    )))
                }
            }
            let old_body = read_body(txn, ino, &data, block_size)?;
            let old_keys: HashSet<(u64, u32)> = old_body
                .blocks
                .iter()
                .map(|b| (b.upload, b.index))
                .collect();
            if let Some(stale) = foreign.iter().find(|k| !old_keys.contains(k)) {
                return Err(Error::GenerationMismatch {
                    path: format!(
                        "{} (reused block {}/{} is not in the current generation)",
                        shown(name),
                        stale.0,
                        stale.1
                    ),
                    expected: req.if_generation.unwrap_or(current_generation),
                    actual: current_generation,
                });
            }
            let replaced = release_body(txn, ino, &data, &new_keys, block_size)?;
            data.generation += 1;
            data.size = req.body.size;
            data.body = Some(summary_of(&req.body));
            data.mtime = now;
            data.ctime = now;
            write_manifest(txn, ino, data.generation, &req.body)?;
            // A new generation changes the file, not its directory.
            store_inode(txn, ino, &loc, &data)?;
            watch::emit(txn, EventKind::Replaced, req.parent, name, None, ino, &data)?;
            Ok(PublishOutcome {
                attr: data.to_attr(ino),
                replaced: replaced.or(Some(old_body)),
                reused_blocks: foreign.len(),
            })
        }
    }
}

/// Publishes `body` as the next generation of the existing file `ino`,
/// wherever it is named now (the FUSE mount publishes open files by
/// inode: a file renamed or hard-linked while open is still the one
/// written). Same rules as [`publish`]: staging record required, reused
/// blocks must belong to the generation being replaced.
pub(crate) fn publish_ino(
    txn: &mut Txn<'_>,
    ino: u64,
    body: Body,
    upload: u64,
    if_generation: Option<u64>,
    attrs: &SetAttr,
    block_size: u32,
) -> Result<PublishOutcome> {
    check_body(&body)?;
    if attrs.size.is_some() {
        return Err(Error::InvalidArgument(
            "a publish sets the size from its body, not from its attributes".into(),
        ));
    }
    take_staging(txn, upload)?;
    let (mut data, loc) = crate::namespace::require_inode(txn, ino)?;
    match data.kind {
        FileKind::File => {}
        FileKind::Dir => return Err(Error::IsADirectory(format!("inode {ino}"))),
        FileKind::Symlink => {
            return Err(Error::InvalidArgument(format!(
                "inode {ino} is a symbolic link"
            )))
        }
    }
    if let Some(expected) = if_generation {
        if expected != data.generation {
            return Err(Error::GenerationMismatch {
                path: format!("inode {ino}"),
                expected,
                actual: data.generation,
            });
        }
    }
    let new_keys: HashSet<(u64, u32)> = body.blocks.iter().map(|b| (b.upload, b.index)).collect();
    let foreign: Vec<(u64, u32)> = body
        .blocks
        .iter()
        .filter(|b| b.upload != upload)
        .map(|b| (b.upload, b.index))
        .collect();
    let old_body = read_body(txn, ino, &data, block_size)?;
    let old_keys: HashSet<(u64, u32)> = old_body
        .blocks
        .iter()
        .map(|b| (b.upload, b.index))
        .collect();
    if let Some(stale) = foreign.iter().find(|k| !old_keys.contains(k)) {
        return Err(Error::GenerationMismatch {
            path: format!(
                "inode {ino} (reused block {}/{} is not in the current generation)",
                stale.0, stale.1
            ),
            expected: if_generation.unwrap_or(data.generation),
            actual: data.generation,
        });
    }
    let replaced = release_body(txn, ino, &data, &new_keys, block_size)?;
    let now = txn.now();
    data.generation += 1;
    data.size = body.size;
    data.body = Some(summary_of(&body));
    data.mtime = now;
    crate::namespace::attr::apply_owner_and_times(&mut data, attrs)?;
    data.ctime = now;
    write_manifest(txn, ino, data.generation, &body)?;
    store_inode(txn, ino, &loc, &data)?;
    watch::emit_at(txn, EventKind::Replaced, ino, &loc, &data)?;
    Ok(PublishOutcome {
        attr: data.to_attr(ino),
        replaced: replaced.or(Some(old_body)),
        reused_blocks: foreign.len(),
    })
}
