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
//!   re-hashes the whole input and keeps a staged block only where the
//!   bytes still match (`nokv_object::upload_body_staged`);
//! - a staged upload is published at most once (the publish consumes
//!   it), so an object a published generation names is never written
//!   again;
//! - staging stops being worth it, and is refused by
//!   [`StagedUpload::is_fresh`], once less than half of the staging TTL
//!   is left: a publish must commit before GC may collect the upload.

use bytes::Bytes;
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

    /// Notes `block` (written by [`Client::stage_block`] under this
    /// upload) as the candidate for its index.
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

    pub(crate) fn into_blocks(self) -> Vec<Option<BlockRef>> {
        self.blocks
    }
}

impl Client {
    /// Starts an upload whose blocks are written before the body is known.
    pub async fn begin_staged_upload(&self) -> Result<StagedUpload> {
        Ok(StagedUpload {
            upload: self.begin_upload().await?,
            deadline: nokv_types::now_nanos().saturating_add(self.staging_ttl_nanos()),
            ttl: self.staging_ttl_nanos(),
            blocks: Vec::new(),
        })
    }

    /// Writes `data` as block `index` of staged upload `upload`, unless
    /// it equals `unless` (the previous generation's block at that index,
    /// which the publish would reuse anyway). Only one staging of a given
    /// index may be in flight at a time, and none during the publish.
    pub async fn stage_block(
        &self,
        upload: u64,
        index: u32,
        data: Bytes,
        unless: Option<BlockRef>,
    ) -> Result<Option<BlockRef>> {
        nokv_object::stage_block(self.store(), upload, index, data, unless).await
    }

    /// Deletes a staged upload's objects and staging record (a writer
    /// that will not publish it).
    pub async fn discard_staged(&self, staged: StagedUpload) {
        discard_upload(self, staged.upload).await;
    }
}
