//! Where the core's reads go: the live volume, or one snapshot of it
//! (a read-only mount of `--snapshot NAME`).
//!
//! A snapshot mount shows the snapshot's pinned directory as its root:
//! the mount's root inode (`ROOT_INO`) stands for the pinned inode on
//! the way in, and the pinned inode is shown as `ROOT_INO` on the way
//! out. Every other inode number is the volume's own (the pinned root
//! never appears below itself).

use nokv_client::{Attr, Body, Client, DirEntryPlus, DirPage, Result, SnapshotReader};
use nokv_types::ROOT_INO;

pub(crate) enum Reads {
    Live(Client),
    Snapshot { reader: SnapshotReader, root: u64 },
}

impl Reads {
    fn to_volume(&self, ino: u64) -> u64 {
        match self {
            Reads::Snapshot { root, .. } if ino == ROOT_INO => *root,
            _ => ino,
        }
    }

    fn shown(&self, mut attr: Attr) -> Attr {
        if let Reads::Snapshot { root, .. } = self {
            if attr.ino == *root {
                attr.ino = ROOT_INO;
            }
        }
        attr
    }

    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        let parent = self.to_volume(parent);
        let attr = match self {
            Reads::Live(c) => c.lookup(parent, name).await?,
            Reads::Snapshot { reader, .. } => reader.lookup(parent, name).await?,
        };
        Ok(self.shown(attr))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        let ino = self.to_volume(ino);
        let attr = match self {
            Reads::Live(c) => c.getattr(ino).await?,
            Reads::Snapshot { reader, .. } => reader.getattr(ino).await?,
        };
        Ok(self.shown(attr))
    }

    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let ino = self.to_volume(ino);
        match self {
            Reads::Live(c) => c.readlink_ino(ino).await,
            Reads::Snapshot { reader, .. } => reader.readlink_ino(ino).await,
        }
    }

    pub async fn body(&self, ino: u64) -> Result<(Attr, Body)> {
        let ino = self.to_volume(ino);
        let (attr, body) = match self {
            Reads::Live(c) => c.body_ino(ino).await?,
            Reads::Snapshot { reader, .. } => reader.body_ino(ino).await?,
        };
        Ok((self.shown(attr), body))
    }

    pub async fn list(
        &self,
        dir: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        let dir = self.to_volume(dir);
        let mut page = match self {
            Reads::Live(c) => c.list_ino(dir, after, limit).await?,
            Reads::Snapshot { reader, .. } => reader.list_ino(dir, after, limit).await?,
        };
        for e in &mut page.entries {
            e.attr = self.shown(e.attr.clone());
        }
        Ok(page)
    }
}
