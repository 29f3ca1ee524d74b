//! The inode-level API: what a FUSE mount needs. The kernel names files
//! by inode and (parent inode, name), never by path, so these methods
//! send the inode-level `MetaOp`s (`Lookup`, `CreateAt`, `RenameAt`,
//! `PublishIno` …) and read bodies a handle already resolved.
//!
//! Invariants:
//! - same semantics as the path API: every change is one metadata
//!   command run by `nokv_meta::execute`, embedded or on the server;
//! - `publish_ino` publishes a new generation of an existing inode,
//!   wherever it is named now, through the same publish protocol as
//!   `put` (stage, upload with block reuse, one command);
//! - reads of a `Body` go through the verified block cache, so bytes a
//!   handle reads always belong to the generation it resolved.

use std::sync::Arc;

use bytes::Bytes;
use nokv_meta::{MetaOp, MetaReply, Owner, RenameMode};
use nokv_object::read_range;
use nokv_types::{Attr, BlockRef, Body, Result, SetAttr};
use tokio::io::AsyncRead;

use crate::client::{expect_reply, Client};
use crate::put::PutOutcome;

impl Client {
    /// The volume's block size (fixed at `init`).
    pub fn block_size(&self) -> u32 {
        self.inner.block_size
    }

    async fn ino_attr(&self, op: MetaOp) -> Result<Attr> {
        let name = op.name();
        match self.call(op).await? {
            MetaReply::Attr(a) => Ok(a),
            other => Err(nokv_meta::unexpected(name, &other)),
        }
    }

    /// Attributes of `name` in directory `parent`.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        self.ino_attr(MetaOp::Lookup {
            parent,
            name: name.to_vec(),
        })
        .await
    }

    /// Attributes of inode `ino`.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        self.ino_attr(MetaOp::GetAttr { ino }).await
    }

    /// mkdir; `owner` is who the new directory belongs to (a mount
    /// passes the calling process's uid/gid).
    pub async fn mkdir_at(&self, parent: u64, name: &[u8], owner: Owner) -> Result<Attr> {
        self.ino_attr(MetaOp::MkdirAt {
            parent,
            name: name.to_vec(),
            owner,
        })
        .await
    }

    /// Creates an empty file (`exclusive`: fail if the name exists;
    /// otherwise an existing file is returned unchanged).
    pub async fn create_at(
        &self,
        parent: u64,
        name: &[u8],
        owner: Owner,
        exclusive: bool,
    ) -> Result<Attr> {
        self.ino_attr(MetaOp::CreateAt {
            parent,
            name: name.to_vec(),
            owner,
            exclusive,
        })
        .await
    }

    pub async fn symlink_at(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        owner: Owner,
    ) -> Result<Attr> {
        self.ino_attr(MetaOp::SymlinkAt {
            parent,
            name: name.to_vec(),
            target: target.to_vec(),
            owner,
        })
        .await
    }

    /// Hard link: `new_parent/new_name` becomes another name of `ino`.
    pub async fn link_at(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Attr> {
        self.ino_attr(MetaOp::LinkAt {
            ino,
            new_parent,
            new_name: new_name.to_vec(),
        })
        .await
    }

    pub async fn unlink_at(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.done(MetaOp::UnlinkAt {
            parent,
            name: name.to_vec(),
        })
        .await
    }

    pub async fn rmdir_at(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.done(MetaOp::RmdirAt {
            parent,
            name: name.to_vec(),
        })
        .await
    }

    /// rename(2) by inode: `NoReplace` is RENAME_NOREPLACE.
    pub async fn rename_at(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        mode: RenameMode,
    ) -> Result<()> {
        self.done(MetaOp::RenameAt {
            parent,
            name: name.to_vec(),
            new_parent,
            new_name: new_name.to_vec(),
            replace: mode == RenameMode::Replace,
        })
        .await
    }

    /// chmod / chown / utimens of `ino`; `size: Some(0)` empties a file
    /// (other sizes need new bytes: publish them with `publish_ino`).
    pub async fn setattr_ino(&self, ino: u64, change: SetAttr) -> Result<Attr> {
        self.ino_attr(MetaOp::SetAttrIno { ino, change }).await
    }

    pub async fn readlink_ino(&self, ino: u64) -> Result<Vec<u8>> {
        let reply = self.call(MetaOp::ReadlinkIno { ino }).await?;
        expect_reply!(reply, "readlink_ino", MetaReply::Target(t) => t)
    }

    /// Attributes and manifest of the current generation of file `ino`.
    pub async fn body_ino(&self, ino: u64) -> Result<(Attr, Body)> {
        let reply = self.call(MetaOp::BodyIno { ino }).await?;
        expect_reply!(reply, "body_ino", MetaReply::Body { attr, body } => (attr, body))
    }

    /// Bytes `[offset, offset+len)` of `body` (clamped to its size),
    /// verified, through the block cache.
    pub async fn read_body(&self, body: &Body, offset: u64, len: u64) -> Result<Bytes> {
        read_range(self.store(), body, offset, len).await
    }

    /// One whole verified block, through the block cache. Owned, so a
    /// caller can spawn it (a readahead keeps the bytes it fetched
    /// itself: the cache may evict a block before it is read).
    pub fn fetch_block(&self, block: BlockRef) -> impl std::future::Future<Output = Result<Bytes>> {
        let store = self.store().clone();
        async move { store.get_block(&block).await }
    }

    /// Publishes the bytes of `reader` as the next generation of the
    /// existing file `ino`. Blocks equal (same index, length and BLAKE3)
    /// to `previous` — the generation the writer started from — are
    /// reused, not uploaded. With `if_generation` the publish happens
    /// only if the file is still at that generation.
    pub async fn publish_ino<R>(
        &self,
        ino: u64,
        reader: R,
        previous: Option<&Body>,
        if_generation: Option<u64>,
        progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
    ) -> Result<PutOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.upload_and_publish(
            reader,
            previous,
            None,
            if_generation,
            progress,
            publish_ino_op(ino, if_generation, SetAttr::default()),
        )
        .await
    }

    /// [`Client::publish_ino`] as the publish of `staged` (when given):
    /// blocks staged ahead that still match the input are kept instead
    /// of uploaded.
    /// The staged upload is consumed either way (published, or its
    /// objects discarded when the publish is refused). When it has a
    /// prefix ([`crate::StagedUpload::set_prefix`]), `reader` yields only
    /// the bytes after the prefix's blocks. `attrs` (mode, owner, times;
    /// no size) are set with the new generation: what a writer did to the
    /// open file (its last write's mtime, a chmod, `tar x`'s utimens).
    /// Without an mtime in them, the new generation's mtime is the commit
    /// time.
    pub async fn publish_ino_staged<R>(
        &self,
        ino: u64,
        reader: R,
        previous: Option<&Body>,
        staged: Option<crate::StagedUpload>,
        if_generation: Option<u64>,
        attrs: SetAttr,
    ) -> Result<PutOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        self.upload_and_publish(
            reader,
            previous,
            staged,
            if_generation,
            None,
            publish_ino_op(ino, if_generation, attrs),
        )
        .await
    }
}

/// The command that publishes an uploaded body as the next generation
/// of `ino`.
fn publish_ino_op(
    ino: u64,
    if_generation: Option<u64>,
    attrs: SetAttr,
) -> impl Fn(Body, u64) -> MetaOp {
    move |body, upload| MetaOp::PublishIno {
        ino,
        body,
        upload,
        if_generation,
        attrs: attrs.clone(),
    }
}
