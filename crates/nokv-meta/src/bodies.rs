//! Body manifests in metadata, and handing unreferenced blocks to GC.
//!
//! Invariants:
//! - generation `g` of inode `i` has its block list in the chunks
//!   `M ‖ i ‖ g ‖ 0..n`, written in the same command that makes `g`
//!   visible and deleted in the same command that makes it unreachable;
//! - a block leaves every manifest only by a command that also puts it
//!   on the GC queue, so no block is forgotten (leaked) and none is
//!   queued while a manifest still names it.

use std::collections::HashSet;

use nokv_types::{BlockRef, Body, Error, Result};

use crate::command::Txn;
use crate::keys;
use crate::namespace::Source;
use crate::records::{
    decode, encode, BodySummary, GcRecord, InodeData, ManifestChunk, BLOCKS_PER_CHUNK,
};

pub(crate) fn write_manifest(
    txn: &mut Txn<'_>,
    ino: u64,
    generation: u64,
    body: &Body,
) -> Result<()> {
    for (i, chunk) in body.blocks.chunks(BLOCKS_PER_CHUNK).enumerate() {
        let value = encode(&ManifestChunk {
            blocks: chunk.to_vec(),
        })?;
        txn.put(keys::manifest_chunk(ino, generation, i as u32), value)?;
    }
    Ok(())
}

fn chunk_count(blocks: u32) -> u32 {
    (blocks as usize).div_ceil(BLOCKS_PER_CHUNK) as u32
}

/// The current body of a file inode (an empty body if never published).
pub(crate) fn read_body(
    src: &dyn Source,
    ino: u64,
    data: &InodeData,
    default_block_size: u32,
) -> Result<Body> {
    let Some(summary) = &data.body else {
        return Ok(Body::empty(default_block_size));
    };
    let mut blocks = Vec::with_capacity(summary.blocks as usize);
    for chunk in 0..chunk_count(summary.blocks) {
        let key = keys::manifest_chunk(ino, data.generation, chunk);
        let bytes = src.get(&key)?.ok_or_else(|| {
            Error::Corrupt(format!(
                "manifest chunk {chunk} of inode {ino} generation {} is missing",
                data.generation
            ))
        })?;
        blocks.extend(decode::<ManifestChunk>("manifest", &bytes)?.blocks);
    }
    let body = Body {
        size: data.size,
        block_size: summary.block_size,
        digest: summary.digest,
        blocks,
    };
    if body.blocks.len() != summary.blocks as usize {
        return Err(Error::Corrupt(format!(
            "inode {ino} lists {} blocks but its manifest has {}",
            summary.blocks,
            body.blocks.len()
        )));
    }
    body.check()?;
    Ok(body)
}

pub(crate) fn summary_of(body: &Body) -> BodySummary {
    BodySummary {
        block_size: body.block_size,
        blocks: body.blocks.len() as u32,
        digest: body.digest,
    }
}

/// Makes the current generation of `ino` unreachable: deletes its
/// manifest and queues every block not in `keep` for GC. Returns the
/// released body.
pub(crate) fn release_body(
    txn: &mut Txn<'_>,
    ino: u64,
    data: &InodeData,
    keep: &HashSet<(u64, u32)>,
    default_block_size: u32,
) -> Result<Option<Body>> {
    let Some(summary) = &data.body else {
        return Ok(None);
    };
    let body = read_body(txn, ino, data, default_block_size)?;
    for chunk in 0..chunk_count(summary.blocks) {
        txn.delete(keys::manifest_chunk(ino, data.generation, chunk))?;
    }
    let dead: Vec<BlockRef> = body
        .blocks
        .iter()
        .filter(|b| !keep.contains(&(b.upload, b.index)))
        .copied()
        .collect();
    queue_gc(txn, &dead)?;
    Ok(Some(body))
}

/// Puts `blocks` on the durable GC queue.
pub(crate) fn queue_gc(txn: &mut Txn<'_>, blocks: &[BlockRef]) -> Result<()> {
    for chunk in blocks.chunks(BLOCKS_PER_CHUNK) {
        let seq = txn.next_gc_seq();
        let record = GcRecord {
            commit_version: txn.version(),
            blocks: chunk.to_vec(),
            queued_at: txn.now(),
        };
        txn.put(keys::gc(txn.version(), seq), encode(&record)?)?;
    }
    Ok(())
}
