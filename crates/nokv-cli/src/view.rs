//! What the read commands (ls, stat, cat, get) read: the live volume or
//! one snapshot of it (`--snapshot NAME`). Dispatch only; both sides are
//! SDK calls.

use bytes::Bytes;
use futures::stream::BoxStream;
use nokv_client::{Attr, Client, DirEntryPlus, DirPage, Result, SnapshotReader};

pub(crate) enum View {
    Live(Client),
    Snapshot(SnapshotReader),
}

impl View {
    pub fn new(client: Client, snapshot: Option<&str>) -> View {
        match snapshot {
            Some(name) => View::Snapshot(client.at_snapshot(name)),
            None => View::Live(client),
        }
    }

    pub async fn stat(&self, path: &str) -> Result<Attr> {
        match self {
            View::Live(c) => c.stat(path).await,
            View::Snapshot(s) => s.stat(path).await,
        }
    }

    pub async fn lstat(&self, path: &str) -> Result<Attr> {
        match self {
            View::Live(c) => c.lstat(path).await,
            View::Snapshot(s) => s.lstat(path).await,
        }
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        match self {
            View::Live(c) => c.readlink(path).await,
            View::Snapshot(s) => s.readlink(path).await,
        }
    }

    pub async fn list_page(
        &self,
        path: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        match self {
            View::Live(c) => c.list_page(path, after, limit).await,
            View::Snapshot(s) => s.list_page(path, after, limit).await,
        }
    }

    pub async fn read_stream(
        &self,
        path: &str,
    ) -> Result<(Attr, BoxStream<'static, Result<Bytes>>)> {
        match self {
            View::Live(c) => c.read_stream(path).await,
            View::Snapshot(s) => s.read_stream(path).await,
        }
    }

    pub async fn read_range_stream(
        &self,
        path: &str,
        offset: u64,
        len: u64,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        match self {
            View::Live(c) => c.read_range_stream(path, offset, len).await,
            View::Snapshot(s) => s.read_range_stream(path, offset, len).await,
        }
    }
}
