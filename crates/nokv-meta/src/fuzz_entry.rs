//! Entry points for the fuzz targets in `fuzz/` (not an API).
//!
//! One function per on-disk record decoder. Each takes arbitrary bytes
//! and must return without panicking, whatever the bytes are. When the
//! bytes do decode, the value is encoded again and must decode back to
//! itself (a decoder that accepts bytes the encoder would reject, or
//! that loses information, is a bug too).
//!
//! Adding a decoder to the fuzz campaign: one function here, plus one
//! small file in `fuzz/fuzz_targets/` that calls it.

use nokv_types::{Result, WatchEvent};
use serde::{de::DeserializeOwned, Serialize};

use crate::records::{
    decode, decode_u64, encode, EntryRecord, GcRecord, InodeRecord, ManifestChunk, StagingRecord,
    Superblock,
};

/// Decodes `bytes` as a `T`; on success checks encode/decode round-trips.
fn round_trip<T>(what: &str, bytes: &[u8]) -> Result<T>
where
    T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = decode(what, bytes)?;
    let again = encode(&value).expect("a decoded record encodes again");
    let back: T = decode(what, &again).expect("an encoded record decodes");
    assert_eq!(back, value, "{what} record does not round-trip");
    Ok(value)
}

/// Directory entry `E ‖ parent ‖ name`.
pub fn dentry(bytes: &[u8]) {
    if let Ok(e) = round_trip::<EntryRecord>("entry", bytes) {
        let _ = (e.ino(), e.kind());
        if let EntryRecord::Inline { ino, inode } = &e {
            let _ = inode.to_attr(*ino);
        }
    }
}

/// Inode record `I ‖ ino`.
pub fn inode(bytes: &[u8]) {
    if let Ok(InodeRecord::Own(data)) = round_trip::<InodeRecord>("inode", bytes) {
        let _ = data.to_attr(1);
    }
}

/// Manifest chunk `M ‖ ino ‖ generation ‖ chunk`.
pub fn manifest(bytes: &[u8]) {
    if let Ok(chunk) = round_trip::<ManifestChunk>("manifest", bytes) {
        for b in &chunk.blocks {
            let _ = b.object_key();
        }
    }
}

/// Watch event `W ‖ seq`.
pub fn watch_event(bytes: &[u8]) {
    if let Ok(event) = round_trip::<WatchEvent>("watch event", bytes) {
        let _ = event.is_under("/");
        let _ = event.is_under("/runs");
        let _ = event.kind.as_str();
    }
}

/// Staging record `S ‖ upload`.
pub fn staging(bytes: &[u8]) {
    let _ = round_trip::<StagingRecord>("staging", bytes);
}

/// GC queue entry `G ‖ version ‖ seq`.
pub fn gc(bytes: &[u8]) {
    if let Ok(rec) = round_trip::<GcRecord>("gc", bytes) {
        for b in &rec.blocks {
            let _ = b.object_key();
        }
    }
}

/// Superblock `0x00 S`.
pub fn superblock(bytes: &[u8]) {
    if let Ok(sb) = round_trip::<Superblock>("superblock", bytes) {
        let _ = sb.location.describe();
    }
}

/// Counters (commit version, high-water marks, watch floor).
pub fn counter(bytes: &[u8]) {
    if let Ok(v) = decode_u64("counter", bytes) {
        assert_eq!(crate::records::encode_u64(v).as_slice(), bytes);
    }
}

/// The `NOKV_VOLUME` JSON marker.
pub fn marker(bytes: &[u8]) {
    let _ = crate::volume::parse_marker(std::path::Path::new("NOKV_VOLUME"), bytes);
}

/// Snapshot pin `P ‖ name`.
pub fn snapshot_pin(bytes: &[u8]) {
    if let Ok(info) = round_trip::<crate::snapshot::SnapshotInfo>("snapshot", bytes) {
        let _ = crate::snapshot::validate_snapshot_name(&info.name);
    }
}

/// History record `H ‖ key ‖ version`, and the history key itself.
pub fn history(bytes: &[u8]) {
    let _ = round_trip::<crate::snapshot::history::HistoryRecord>("history", bytes);
    if let Some((key, version)) = crate::keys::split_history(bytes) {
        assert_eq!(crate::keys::history(key, version), bytes);
    }
}
