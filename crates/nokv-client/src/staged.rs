//! Uploading blocks while a file is still being written: a writer that
//! knows a block is complete (a FUSE write handle whose sequential
//! writes crossed a block boundary) stages it now, so the publish at
//! close only uploads what is left and what changed.
//!
//! Invariants:
//! - a staged upload is an ordinary upload with a staging record: until
//!   it is published, GC collects its objects after the deadline, so a
//!   writer that crashes or gives up leaks nothing for long;
//! - a staged block is only a candidate: the publish re-reads and
//!   re-hashes the input and keeps a staged block only where the bytes
//!   still match (`nokv_object::upload_body_staged`);
//! - except for a [`Prefix`] the writer set: its blocks are taken as
//!   they are and its hasher continued, so the writer must set one only
//!   for leading full blocks it hashed in order and did not change
//!   since; the publish then reads only what follows;
//! - a staged upload is published at most once (the publish consumes
//!   it), so an object a published generation names is never written
//!   again;
//! - staging stops being worth it, and is refused by
//!   [`StagedUpload::is_fresh`], once less than half of the staging TTL
//!   is left: a publish must commit before GC may collect the upload.

use bytes::Bytes;
use nokv_object::Prefix;
use nokv_types::{BlockRef, Result};

use crate::client::Client;
use crate::put::discard_upload;

/// Blocks written ahead under one upload id, by block index.
#[derive(Debug)]
pub struct StagedUpload {
    upload: u64,
    deadline: i64,
    ttl: i64,
    blocks: Vec<Option<BlockRef>>,
    /// Boxed: a hasher is ~2 KiB and a staged upload lives in every
    /// write handle.
    prefix: Option<Box<Prefix>>,
}

impl StagedUpload {
    /// The upload id blocks are staged under.
    pub fn upload(&self) -> u64 {
        self.upload
    }

    /// True while at least half of the staging TTL is left.
    pub fn is_fresh(&self) -> bool {
        nokv_types::now_nanos() < self.deadline.saturating_sub(self.ttl / 2)
    }

    /// The block staged at `index`, if any.
    pub fn block(&self, index: usize) -> Option<BlockRef> {
        self.blocks.get(index).copied().flatten()
    }

    /// Notes `block` (returned by [`Client::stage_block`] for this
    /// upload) as the candidate for its index; a block of another upload
    /// (the base's, when the bytes were equal) is not staged here.
    pub fn record(&mut self, block: BlockRef) {
        if block.upload != self.upload {
            return;
        }
        let index = block.index as usize;
        if self.blocks.len() <= index {
            self.blocks.resize(index + 1, None);
        }
        self.blocks[index] = Some(block);
    }

    /// Number of blocks staged so far.
    pub fn staged(&self) -> usize {
        self.blocks.iter().flatten().count()
    }

    /// Sets the leading blocks the publish takes without reading them
    /// (see the module invariants); the publish's reader then starts
    /// right after them.
    pub fn set_prefix(&mut self, prefix: Prefix) {
        self.prefix = Some(Box::new(prefix));
    }

    /// Blocks the publish will not read (the prefix).
    pub fn prefix_blocks(&self) -> usize {
        self.prefix.as_ref().map_or(0, |p| p.blocks.len())
    }

    pub(crate) fn into_parts(self) -> (Vec<Option<BlockRef>>, Option<Prefix>) {
        (self.blocks, self.prefix.map(|p| *p))
    }
}

impl Client {
    /// Starts an upload whose blocks are written before the body is known.
    pub async fn begin_staged_upload(&self) -> Result<StagedUpload> {
        let begun = self.begin_upload_begun().await?;
        Ok(StagedUpload {
            upload: begun.id,
            deadline: begun.deadline,
            ttl: self.staging_ttl_nanos(),
            blocks: Vec::new(),
            prefix: None,
        })
    }

    /// Writes `data` as block `index` of staged upload `upload`, unless
    /// it equals `unless` (the previous generation's block at that index,
    /// which the publish would reuse anyway). Returns the block a body
    /// can name for these bytes: the one written, or `unless`. Only one
    /// staging of a given index may be in flight at a time, and none
    /// during the publish.
    pub async fn stage_block(
        &self,
        upload: u64,
        index: u32,
        data: Bytes,
        unless: Option<BlockRef>,
    ) -> Result<BlockRef> {
        nokv_object::stage_block(self.store(), upload, index, data, unless).await
    }

    /// Deletes a staged upload's objects and staging record (a writer
    /// that will not publish it).
    pub async fn discard_staged(&self, staged: StagedUpload) {
        discard_upload(self, staged.upload).await;
    }
}
