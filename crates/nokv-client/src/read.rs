//! Reading files: resolve to the current generation's manifest, then
//! stream verified blocks from the object store (parallel, prefetching,
//! through the block cache).
//!
//! A read works on the manifest it resolved first: a publish that lands
//! meanwhile does not tear the read (its blocks stay until GC), so a
//! reader sees one whole generation.

use bytes::Bytes;
use futures::stream::BoxStream;
use nokv_object::{read_range, read_stream};
use nokv_types::{Attr, Body, Result};

use nokv_meta::{MetaOp, MetaReply};

use crate::client::{expect_reply, Client};

impl Client {
    /// Attributes and manifest of the current generation of `path`.
    pub async fn body(&self, path: &str) -> Result<(Attr, Body)> {
        let reply = self.call(MetaOp::Body { path: path.into() }).await?;
        expect_reply!(reply, "body", MetaReply::Body { attr, body } => (attr, body))
    }

    /// The whole file as a stream of verified chunks (the whole-body
    /// digest is checked at the end).
    pub async fn read_stream(
        &self,
        path: &str,
    ) -> Result<(Attr, BoxStream<'static, Result<Bytes>>)> {
        let (attr, body) = self.body(path).await?;
        let size = body.size;
        Ok((attr, read_stream(self.store(), &body, 0, size)))
    }

    /// Bytes `[offset, offset+len)` of `path` as a stream (clamped to the
    /// file size).
    pub async fn read_range_stream(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let (_, body) = self.body(path).await?;
        Ok(read_stream(self.store(), &body, offset, len))
    }

    /// Bytes `[offset, offset+len)` of `path` (clamped to the file size).
    pub async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let (_, body) = self.body(path).await?;
        read_range(self.store(), &body, offset, len).await
    }

    /// One page of directory inode `dir` (a handle: it keeps naming the
    /// same directory when paths above it are renamed or swapped, so a
    /// reader that walks a tree by inode sees one tree, old or new).
    pub async fn list_ino(
        &self,
        dir: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<nokv_meta::DirPage<nokv_meta::DirEntryPlus>> {
        let reply = self
            .call(crate::client::list_ino_op(dir, after, limit))
            .await?;
        expect_reply!(reply, "list_ino", MetaReply::Page(p) => p)
    }

    /// The whole content of file inode `ino`.
    pub async fn read_ino(&self, ino: u64) -> Result<Bytes> {
        let reply = self.call(MetaOp::BodyIno { ino }).await?;
        let (_, body) =
            expect_reply!(reply, "body_ino", MetaReply::Body { attr, body } => (attr, body))?;
        read_range(self.store(), &body, 0, body.size).await
    }

    /// The whole file in memory (for small files; use `read_stream` for
    /// big ones).
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        let (_, body) = self.body(path).await?;
        read_range(self.store(), &body, 0, body.size).await
    }
}
