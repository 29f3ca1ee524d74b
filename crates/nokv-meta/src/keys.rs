//! Key layout of the one holt tree that holds a volume's metadata.
//!
//! Invariants:
//! - every key starts with a one-byte tag naming its keyspace, so the
//!   keyspaces never interleave and each is one prefix scan;
//! - inode numbers and other ids are big-endian, so keys sort by id;
//! - all entries of one directory share the prefix `E ‖ parent`, so a
//!   listing is one prefix scan and renaming a directory moves exactly
//!   one key, whatever the size of its subtree.

/// System records: superblock, counters.
const TAG_SYSTEM: u8 = 0x00;
/// Directory entries: `E ‖ parent:u64be ‖ name`.
const TAG_ENTRY: u8 = b'E';
/// Inode records: `I ‖ ino:u64be`.
const TAG_INODE: u8 = b'I';
/// Manifest chunks: `M ‖ ino:u64be ‖ generation:u64be ‖ chunk:u32be`.
const TAG_MANIFEST: u8 = b'M';
/// Staging records of uploads not yet published: `S ‖ upload:u64be`.
const TAG_STAGING: u8 = b'S';
/// GC queue: `G ‖ commit_version:u64be ‖ seq:u32be`.
const TAG_GC: u8 = b'G';
/// Watch log: `W ‖ seq:u64be`.
const TAG_WATCH: u8 = b'W';
/// Snapshots: `P ‖ name`.
const TAG_SNAPSHOT: u8 = b'P';
/// Reader leases: `L ‖ lease:u64be` (see `leases`).
const TAG_LEASE: u8 = b'L';
/// History of versioned keys while a snapshot lives:
/// `H ‖ key ‖ superseded_at:u64be` (see `snapshot::history`).
const TAG_HISTORY: u8 = b'H';

pub(crate) const SUPERBLOCK: &[u8] = &[TAG_SYSTEM, b'S'];
pub(crate) const COMMIT_VERSION: &[u8] = &[TAG_SYSTEM, b'C'];
pub(crate) const INO_HIGH_WATER: &[u8] = &[TAG_SYSTEM, b'I'];
pub(crate) const UPLOAD_HIGH_WATER: &[u8] = &[TAG_SYSTEM, b'U'];
/// Watch events below this seq were trimmed (retention).
pub(crate) const WATCH_FLOOR: &[u8] = &[TAG_SYSTEM, b'T'];

pub(crate) fn entry(parent: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.push(TAG_ENTRY);
    k.extend_from_slice(&parent.to_be_bytes());
    k.extend_from_slice(name);
    k
}

/// Prefix shared by every entry of directory `parent`.
pub(crate) fn entry_prefix(parent: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_ENTRY);
    k.extend_from_slice(&parent.to_be_bytes());
    k
}

/// Name part of an entry key produced by [`entry`].
pub(crate) fn entry_name(key: &[u8]) -> &[u8] {
    key.get(9..).unwrap_or_default()
}

pub(crate) fn inode(ino: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_INODE);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

pub(crate) fn manifest_chunk(ino: u64, generation: u64, chunk: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(21);
    k.push(TAG_MANIFEST);
    k.extend_from_slice(&ino.to_be_bytes());
    k.extend_from_slice(&generation.to_be_bytes());
    k.extend_from_slice(&chunk.to_be_bytes());
    k
}

/// Prefix of every manifest chunk.
pub(crate) fn manifest_prefix() -> Vec<u8> {
    vec![TAG_MANIFEST]
}

pub(crate) fn staging(upload: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_STAGING);
    k.extend_from_slice(&upload.to_be_bytes());
    k
}

pub(crate) fn lease(id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_LEASE);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

pub(crate) fn lease_prefix() -> Vec<u8> {
    vec![TAG_LEASE]
}

pub(crate) fn staging_prefix() -> Vec<u8> {
    vec![TAG_STAGING]
}

/// Upload id of a staging key.
pub(crate) fn staging_upload(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

pub(crate) fn gc(commit_version: u64, seq: u32) -> Vec<u8> {
    let mut k = Vec::with_capacity(13);
    k.push(TAG_GC);
    k.extend_from_slice(&commit_version.to_be_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

pub(crate) fn watch(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(TAG_WATCH);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Seq of a watch key.
pub(crate) fn watch_seq(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.get(1..9)?.try_into().ok()?))
}

pub(crate) fn watch_prefix() -> Vec<u8> {
    vec![TAG_WATCH]
}

pub(crate) fn gc_prefix() -> Vec<u8> {
    vec![TAG_GC]
}

pub(crate) fn snapshot(name: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + name.len());
    k.push(TAG_SNAPSHOT);
    k.extend_from_slice(name.as_bytes());
    k
}

pub(crate) fn snapshot_prefix() -> Vec<u8> {
    vec![TAG_SNAPSHOT]
}

/// Whether a read at a snapshot must see `key` as it was then: the
/// namespace (entries, inodes) and the manifests. Queues, logs and
/// counters are not versioned.
pub(crate) fn is_versioned(key: &[u8]) -> bool {
    matches!(key.first(), Some(&(TAG_ENTRY | TAG_INODE | TAG_MANIFEST)))
}

/// Prefix of every history record of `key`.
///
/// Unambiguous although keys vary in length: entry names never contain
/// NUL, inode and manifest keys have a fixed length, and the version
/// that follows starts with a zero byte (versions stay below 2^56), so
/// the records of `key` sort together, before those of any longer key
/// that starts with `key`.
pub(crate) fn history_prefix(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + key.len() + 8);
    k.push(TAG_HISTORY);
    k.extend_from_slice(key);
    k
}

/// History record of `key`: the value it had before the command with
/// commit version `superseded_at` changed it.
pub(crate) fn history(key: &[u8], superseded_at: u64) -> Vec<u8> {
    let mut k = history_prefix(key);
    k.extend_from_slice(&superseded_at.to_be_bytes());
    k
}

/// Splits a history key into the versioned key and the version; None
/// for a malformed key.
pub(crate) fn split_history(key: &[u8]) -> Option<(&[u8], u64)> {
    let body = key.strip_prefix(&[TAG_HISTORY])?;
    let at = body.len().checked_sub(8)?;
    let version = u64::from_be_bytes(body.get(at..)?.try_into().ok()?);
    Some((body.get(..at)?, version))
}

pub(crate) fn history_all_prefix() -> Vec<u8> {
    vec![TAG_HISTORY]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_of_one_dir_share_a_prefix_and_sort_by_name() {
        let p = entry_prefix(42);
        assert!(entry(42, b"a").starts_with(&p));
        assert!(!entry(43, b"a").starts_with(&p));
        assert!(entry(42, b"a") < entry(42, b"b"));
        assert_eq!(entry_name(&entry(42, b"name")), b"name");
        // A directory's entries never collide with a child directory's.
        assert!(!entry(0x4200, b"x").starts_with(&entry_prefix(0x42)));
    }

    #[test]
    fn history_records_of_one_key_sort_together() {
        let short = entry(7, b"a");
        let long = entry(7, b"ab");
        // Every record of `a` sorts before any record of `ab`.
        assert!(history(&short, u64::MAX >> 8) < history(&long, 0));
        assert!(history(&short, 5) < history(&short, 6));
        assert!(history(&short, 5).starts_with(&history_prefix(&short)));
        assert_eq!(split_history(&history(&long, 9)), Some((&long[..], 9)));
        assert_eq!(split_history(b"H"), None);
        assert!(is_versioned(&long) && is_versioned(&inode(3)));
        assert!(!is_versioned(&watch(3)) && !is_versioned(&gc(1, 1)));
    }

    #[test]
    fn staging_keys_round_trip() {
        assert_eq!(staging_upload(&staging(77)), Some(77));
        assert_eq!(staging_upload(b"S"), None);
    }
}
