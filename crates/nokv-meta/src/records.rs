//! On-disk record encodings (postcard), one type per keyspace.
//!
//! Invariants:
//! - an inode's attributes live in exactly one place: inline in its
//!   directory entry while it has one name (`EntryRecord::Inline`, with
//!   `InodeRecord::At` pointing back at that entry), or in its inode
//!   record once it has several (`InodeRecord::Own`, entries are
//!   `EntryRecord::Linked`). The root lives in `InodeRecord::Own`;
//! - a lookup of a singly-linked name is one read, and a listing with
//!   attributes (readdirplus) is one prefix scan;
//! - every decoder returns `Error::Corrupt` on bad bytes, never panics.

use nokv_types::{Attr, BlockRef, Digest, Error, FileKind, Result, Timestamp};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// The format version this build reads and writes.
/// 2: snapshots (`P`, `H` keys) and the snapshot field of watch events.
/// 3: the `parent` and `old_parent` fields of watch events.
pub const FORMAT_VERSION: u32 = 3;

/// Persistent inode attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct InodeData {
    pub kind: FileKind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub atime: Timestamp,
    pub mtime: Timestamp,
    pub ctime: Timestamp,
    pub nlink: u32,
    pub generation: u64,
    /// Published body of a file (None: never published or empty-created).
    pub body: Option<BodySummary>,
    /// Target of a symlink.
    pub target: Option<Vec<u8>>,
}

/// What an inode record says about the body; the block list itself is
/// in the manifest chunks `M ‖ ino ‖ generation ‖ chunk`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BodySummary {
    pub block_size: u32,
    pub blocks: u32,
    pub digest: Digest,
}

impl InodeData {
    pub fn to_attr(&self, ino: u64) -> Attr {
        Attr {
            ino,
            kind: self.kind,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
            nlink: self.nlink,
            generation: self.generation,
            digest: self.body.as_ref().map(|b| b.digest),
        }
    }
}

/// Value of a directory entry `E ‖ parent ‖ name`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum EntryRecord {
    /// The only name of `ino`: its attributes are right here.
    Inline { ino: u64, inode: InodeData },
    /// One of several names of `ino`: attributes are in `I ‖ ino`.
    Linked { ino: u64, kind: FileKind },
}

impl EntryRecord {
    pub fn ino(&self) -> u64 {
        match self {
            EntryRecord::Inline { ino, .. } | EntryRecord::Linked { ino, .. } => *ino,
        }
    }

    pub fn kind(&self) -> FileKind {
        match self {
            EntryRecord::Inline { inode, .. } => inode.kind,
            EntryRecord::Linked { kind, .. } => *kind,
        }
    }
}

/// Value of an inode record `I ‖ ino`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum InodeRecord {
    /// Attributes are inline in the entry `E ‖ parent ‖ name`.
    At { parent: u64, name: Vec<u8> },
    /// Attributes live here (root, hard-linked inodes).
    Own(InodeData),
}

/// One chunk of a body manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ManifestChunk {
    pub blocks: Vec<BlockRef>,
}

/// Blocks per manifest chunk: keeps each chunk value near 12 KiB, far
/// below holt's 64 KiB value limit.
pub(crate) const BLOCKS_PER_CHUNK: usize = 256;

/// A durable promise that the blocks of `upload` either get published
/// or get deleted after `deadline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagingRecord {
    pub upload: u64,
    pub created: Timestamp,
    pub deadline: Timestamp,
}

/// A reader lease (see `leases`): its holder may still read generations
/// replaced at or after `since`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecord {
    pub since: Timestamp,
    pub expires: Timestamp,
}

/// Blocks no live generation references any more, queued for deletion
/// by the command that removed the last reference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcRecord {
    pub commit_version: u64,
    pub blocks: Vec<BlockRef>,
    /// Commit time of that command (ns since the epoch): collectors may
    /// keep blocks for a grace period, for readers that opened the
    /// generation before it was replaced.
    pub queued_at: i64,
}

/// The volume's identity, written once by `init`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Superblock {
    pub format_version: u32,
    pub volume_id: String,
    pub root_ino: u64,
    pub location: nokv_types::ObjectLocation,
    pub block_size: u32,
    pub created: Timestamp,
}

/// Smallest value written to holt. holt 0.9.2 splits a full blob frame
/// when it runs out of bytes, but not when it runs out of its 10240 node
/// slots: a dense run of records with values under ~16 bytes (e.g. the
/// inode back-pointers of files with short names) exhausts the slots
/// first and every further write fails ("blob slot table exhausted").
/// Padding keeps every leaf large enough that bytes run out first.
/// Decoders ignore the padding (postcard stops at the end of the value).
const MIN_VALUE_BYTES: usize = 24;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes =
        postcard::to_stdvec(value).map_err(|e| Error::Metadata(format!("encode: {e}")))?;
    if bytes.len() < MIN_VALUE_BYTES {
        bytes.resize(MIN_VALUE_BYTES, 0);
    }
    Ok(bytes)
}

pub(crate) fn decode<T: DeserializeOwned>(what: &str, bytes: &[u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt(format!("{what} record: {e}")))
}

/// Counters are a handful of keys; they need no padding.
pub(crate) fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(crate) fn decode_u64(what: &str, bytes: &[u8]) -> Result<u64> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| Error::Corrupt(format!("{what}: expected 8 bytes, got {}", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> InodeData {
        InodeData {
            kind: FileKind::File,
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            size: 123,
            atime: 1,
            mtime: 2,
            ctime: 3,
            nlink: 1,
            generation: 4,
            body: Some(BodySummary {
                block_size: 4 << 20,
                blocks: 1,
                digest: [7; 32],
            }),
            target: None,
        }
    }

    #[test]
    fn entry_round_trip_is_compact() {
        let e = EntryRecord::Inline {
            ino: 99,
            inode: sample(),
        };
        let bytes = encode(&e).unwrap();
        assert!(bytes.len() < 80, "{} bytes", bytes.len());
        assert_eq!(decode::<EntryRecord>("entry", &bytes).unwrap(), e);
    }

    #[test]
    fn short_records_are_padded_and_still_decode() {
        let r = InodeRecord::At {
            parent: 2,
            name: b"f".to_vec(),
        };
        let bytes = encode(&r).unwrap();
        assert_eq!(bytes.len(), MIN_VALUE_BYTES);
        assert_eq!(decode::<InodeRecord>("inode", &bytes).unwrap(), r);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode::<EntryRecord>("entry", &bytes);
            let _ = decode::<InodeRecord>("inode", &bytes);
            let _ = decode::<ManifestChunk>("manifest", &bytes);
            let _ = decode::<StagingRecord>("staging", &bytes);
            let _ = decode::<GcRecord>("gc", &bytes);
            let _ = decode::<Superblock>("superblock", &bytes);
            let _ = decode_u64("counter", &bytes);
        }
    }
}
