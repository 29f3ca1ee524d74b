//! Snapshots from the SDK: create, list, retire, and a read-only view of
//! the volume at a snapshot ([`SnapshotReader`]).
//!
//! Paths given to a reader are relative to the snapshot's pinned root
//! (`/` is the snapshotted directory). Bytes come from the same
//! immutable blocks the live files used: GC keeps every block a live
//! snapshot can read.

use bytes::Bytes;
use futures::stream::BoxStream;
use nokv_meta::{DirEntryPlus, DirPage, MetaOp, MetaReply, SnapshotInfo};
use nokv_object::{read_range, read_stream};
use nokv_types::{Attr, Body, Result};

use crate::client::{all_pages, expect_reply, list_ino_op, list_op, Client};

impl Client {
    /// Creates snapshot `name` of `path` (O(1) in the size of the tree).
    pub async fn snapshot_create(&self, path: &str, name: &str) -> Result<SnapshotInfo> {
        let op = MetaOp::SnapshotCreate {
            path: path.into(),
            name: name.into(),
        };
        let reply = self.call(op).await?;
        expect_reply!(reply, "snapshot_create", MetaReply::Snapshot(s) => s)
    }

    /// Retires snapshot `name`; the next GC reclaims what only it kept.
    pub async fn snapshot_retire(&self, name: &str) -> Result<SnapshotInfo> {
        let reply = self
            .call(MetaOp::SnapshotRetire { name: name.into() })
            .await?;
        expect_reply!(reply, "snapshot_retire", MetaReply::Snapshot(s) => s)
    }

    /// Every live snapshot, by name.
    pub async fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        let reply = self.call(MetaOp::SnapshotList).await?;
        expect_reply!(reply, "snapshot_list", MetaReply::Snapshots(s) => s)
    }

    /// A read-only view of the volume at snapshot `name`.
    pub fn at_snapshot(&self, name: &str) -> SnapshotReader {
        SnapshotReader {
            client: self.clone(),
            name: name.to_string(),
        }
    }
}

/// Reads at one snapshot. Cheap to clone.
#[derive(Clone)]
pub struct SnapshotReader {
    client: Client,
    name: String,
}

impl SnapshotReader {
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn call(&self, op: MetaOp) -> Result<MetaReply> {
        self.client
            .call(MetaOp::AtSnapshot {
                snapshot: self.name.clone(),
                op: Box::new(op),
            })
            .await
    }

    async fn attr(&self, path: &str, follow: bool) -> Result<Attr> {
        let reply = self
            .call(MetaOp::Stat {
                path: path.into(),
                follow,
            })
            .await?;
        expect_reply!(reply, "stat", MetaReply::Attr(a) => a)
    }

    pub async fn stat(&self, path: &str) -> Result<Attr> {
        self.attr(path, true).await
    }

    pub async fn lstat(&self, path: &str) -> Result<Attr> {
        self.attr(path, false).await
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        let reply = self.call(MetaOp::Readlink { path: path.into() }).await?;
        let target = expect_reply!(reply, "readlink", MetaReply::Target(t) => t)?;
        Ok(String::from_utf8_lossy(&target).into_owned())
    }

    pub async fn list_page(
        &self,
        path: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        let reply = self.call(list_op(path, after, limit)).await?;
        expect_reply!(reply, "list", MetaReply::Page(p) => p)
    }

    /// A whole directory listing with attributes.
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntryPlus>> {
        all_pages(|after| async move { self.list_page(path, after.as_deref(), 4096).await }).await
    }

    /// Attributes and manifest of the file at `path` in the snapshot.
    pub async fn body(&self, path: &str) -> Result<(Attr, Body)> {
        let reply = self.call(MetaOp::Body { path: path.into() }).await?;
        expect_reply!(reply, "body", MetaReply::Body { attr, body } => (attr, body))
    }

    /// The whole file as a stream of verified chunks.
    pub async fn read_stream(
        &self,
        path: &str,
    ) -> Result<(Attr, BoxStream<'static, Result<Bytes>>)> {
        let (attr, body) = self.body(path).await?;
        let size = body.size;
        Ok((attr, read_stream(self.client.store(), &body, 0, size)))
    }

    /// Bytes `[offset, offset+len)` of the file as a stream.
    pub async fn read_range_stream(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        let (_, body) = self.body(path).await?;
        Ok(read_stream(self.client.store(), &body, offset, len))
    }

    /// The whole file in memory.
    pub async fn read(&self, path: &str) -> Result<Bytes> {
        let (_, body) = self.body(path).await?;
        read_range(self.client.store(), &body, 0, body.size).await
    }

    /// Bytes `[offset, offset+len)` of the file (clamped to its size).
    pub async fn read_range(&self, path: &str, offset: u64, len: u64) -> Result<Bytes> {
        let (_, body) = self.body(path).await?;
        read_range(self.client.store(), &body, offset, len).await
    }

    /// One page of directory inode `dir` at the snapshot.
    pub async fn list_ino(
        &self,
        dir: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        let reply = self.call(list_ino_op(dir, after, limit)).await?;
        expect_reply!(reply, "list_ino", MetaReply::Page(p) => p)
    }

    /// Attributes of `name` in directory inode `parent` at the snapshot.
    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        let reply = self
            .call(MetaOp::Lookup {
                parent,
                name: name.to_vec(),
            })
            .await?;
        expect_reply!(reply, "lookup", MetaReply::Attr(a) => a)
    }

    /// Attributes of inode `ino` at the snapshot.
    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let reply = self.call(MetaOp::GetAttr { ino }).await?;
        expect_reply!(reply, "getattr", MetaReply::Attr(a) => a)
    }

    /// Target of symlink inode `ino` at the snapshot.
    pub async fn readlink_ino(&self, ino: u64) -> Result<Vec<u8>> {
        let reply = self.call(MetaOp::ReadlinkIno { ino }).await?;
        expect_reply!(reply, "readlink_ino", MetaReply::Target(t) => t)
    }

    /// Attributes and manifest of file inode `ino` at the snapshot.
    pub async fn body_ino(&self, ino: u64) -> Result<(Attr, Body)> {
        let reply = self.call(MetaOp::BodyIno { ino }).await?;
        expect_reply!(reply, "body_ino", MetaReply::Body { attr, body } => (attr, body))
    }
}
