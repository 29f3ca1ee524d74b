//! Inode attributes as every front door sees them.
//!
//! Times are nanoseconds since the Unix epoch in an `i64` (good until
//! 2262). `mode` holds only permission bits (`0o7777`); the file type
//! is `kind`, so the two can never disagree.

use serde::{Deserialize, Serialize};

use crate::body::Digest;

/// Inode number of the root directory of every volume.
pub const ROOT_INO: u64 = 1;

/// Nanoseconds since the Unix epoch.
pub type Timestamp = i64;

/// The wall-clock time now (0 if the clock is before the epoch).
pub fn now_nanos() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(duration_nanos)
        .unwrap_or(0)
}

/// `d` in nanoseconds, saturating at `i64::MAX` (~292 years).
pub fn duration_nanos(d: std::time::Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// What an inode is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FileKind {
    /// A regular file whose bytes are a published body.
    File,
    /// A directory.
    Dir,
    /// A symbolic link; its target is stored in metadata.
    Symlink,
}

impl FileKind {
    /// The `S_IF*` bits of this kind.
    pub fn type_bits(self) -> u32 {
        match self {
            FileKind::File => 0o100000,
            FileKind::Dir => 0o040000,
            FileKind::Symlink => 0o120000,
        }
    }

    /// One word for listings: `file`, `dir`, `symlink`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::File => "file",
            FileKind::Dir => "dir",
            FileKind::Symlink => "symlink",
        }
    }
}

/// Attributes of one inode, as returned by getattr / stat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attr {
    pub ino: u64,
    pub kind: FileKind,
    /// Permission bits only (`0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Bytes for files, target length for symlinks, entry count for
    /// directories is not tracked (0).
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub nlink: u32,
    /// Body generation for files: 0 = never published, then +1 per
    /// publish. Other kinds keep 0.
    pub generation: u64,
    /// Whole-body BLAKE3 digest of the current generation (files with a
    /// published body only).
    pub digest: Option<Digest>,
}

impl Attr {
    /// `st_mode`: type bits plus permission bits.
    pub fn st_mode(&self) -> u32 {
        self.kind.type_bits() | (self.mode & 0o7777)
    }
}

/// A partial attribute update (setattr). `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Truncate or extend a file to this size (a new generation).
    pub size: Option<u64>,
    pub atime: Option<Timestamp>,
    pub mtime: Option<Timestamp>,
}

impl SetAttr {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        *self == SetAttr::default()
    }
}
