//! Body descriptors: a file's bytes are a manifest of immutable blocks.
//!
//! Invariants kept here:
//! - a block is identified by `(upload, index)`; `upload` ids are
//!   allocated by the metadata layer from a durable counter and never
//!   reused, so an object key names exactly one byte string forever;
//! - `checksum` is the BLAKE3 of the block's bytes and `len` its length;
//!   readers verify both, so a corrupted object is an error, not data;
//! - blocks of one body are contiguous: block `i` covers bytes
//!   `[sum(len[..i]), sum(len[..=i]))`, and every block but the last is
//!   exactly `block_size` long.

use serde::{Deserialize, Serialize};

/// A 32-byte BLAKE3 digest.
pub type Digest = [u8; 32];

/// Default block size: 4 MiB.
pub const DEFAULT_BLOCK_SIZE: u32 = 4 * 1024 * 1024;
/// Smallest block size a volume accepts (64 KiB).
pub const MIN_BLOCK_SIZE: u32 = 64 * 1024;
/// Largest block size a volume accepts (64 MiB).
pub const MAX_BLOCK_SIZE: u32 = 64 * 1024 * 1024;

/// One immutable block of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BlockRef {
    /// Upload id: allocated once by the metadata layer, never reused.
    pub upload: u64,
    /// Position of the block within the upload that wrote it.
    pub index: u32,
    /// Length in bytes.
    pub len: u32,
    /// BLAKE3 of the block bytes.
    pub checksum: Digest,
}

impl BlockRef {
    /// The object key of this block (without the volume's key prefix).
    pub fn object_key(&self) -> String {
        block_object_key(self.upload, self.index)
    }
}

/// Object key of block `index` of upload `upload`.
///
/// The first component spreads uploads over 256 directories (and S3
/// key-space partitions); it is a pure function of `upload`, so the key
/// is derived, never stored.
pub fn block_object_key(upload: u64, index: u32) -> String {
    let spread = (upload.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    format!("blocks/{spread:02x}/{upload:016x}/{index:08x}")
}

/// Prefix under which every block of upload `upload` lives (used to
/// collect an upload that was never published).
pub fn upload_object_prefix(upload: u64) -> String {
    let key = block_object_key(upload, 0);
    match key.rfind('/') {
        Some(i) => key[..=i].to_string(),
        None => key,
    }
}

/// The published bytes of a file: its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Body {
    pub size: u64,
    pub block_size: u32,
    /// BLAKE3 of the whole body.
    pub digest: Digest,
    pub blocks: Vec<BlockRef>,
}

impl Body {
    /// The body of an empty file.
    pub fn empty(block_size: u32) -> Body {
        Body {
            size: 0,
            block_size,
            digest: *blake3_empty(),
            blocks: Vec::new(),
        }
    }

    /// Checks the manifest invariants listed in the module comment.
    pub fn check(&self) -> crate::Result<()> {
        let total: u64 = self.blocks.iter().map(|b| b.len as u64).sum();
        if total != self.size {
            return Err(crate::Error::Corrupt(format!(
                "manifest blocks sum to {total} bytes but the body size is {}",
                self.size
            )));
        }
        let last = self.blocks.len().saturating_sub(1);
        for (i, b) in self.blocks.iter().enumerate() {
            if (i < last && b.len != self.block_size) || b.len == 0 || b.len > self.block_size {
                return Err(crate::Error::Corrupt(format!(
                    "manifest block {i} has length {} (block size {})",
                    b.len, self.block_size
                )));
            }
        }
        Ok(())
    }

    /// Byte offset at which block `i` starts.
    pub fn block_offset(&self, i: usize) -> u64 {
        i as u64 * self.block_size as u64
    }

    /// Hex form of the whole-body digest.
    pub fn digest_hex(&self) -> String {
        hex::encode(self.digest)
    }
}

/// BLAKE3 of the empty string, precomputed (avoids a blake3 dependency
/// in this crate).
fn blake3_empty() -> &'static Digest {
    const EMPTY: Digest = [
        0xaf, 0x13, 0x49, 0xb9, 0xf5, 0xf9, 0xa1, 0xa6, 0xa0, 0x40, 0x4d, 0xea, 0x36, 0xdc, 0xc9,
        0x49, 0x9b, 0xcb, 0x25, 0xc9, 0xad, 0xc1, 0x12, 0xb7, 0xcc, 0x9a, 0x93, 0xca, 0xe4, 0x1f,
        0x32, 0x62,
    ];
    &EMPTY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_per_upload_and_index() {
        assert_ne!(block_object_key(1, 0), block_object_key(1, 1));
        assert_ne!(block_object_key(1, 0), block_object_key(2, 0));
        assert!(block_object_key(7, 3).starts_with("blocks/"));
        assert!(block_object_key(7, 3).starts_with(&upload_object_prefix(7)));
        assert!(!block_object_key(70, 3).starts_with(&upload_object_prefix(7)));
    }

    #[test]
    fn check_rejects_bad_manifests() {
        let b = BlockRef {
            upload: 1,
            index: 0,
            len: 10,
            checksum: [0; 32],
        };
        let mut body = Body {
            size: 10,
            block_size: 10,
            digest: [0; 32],
            blocks: vec![b],
        };
        assert!(body.check().is_ok());
        body.size = 11;
        assert!(body.check().is_err());
        body.size = 15;
        body.blocks.push(BlockRef { len: 5, ..b });
        assert!(body.check().is_ok());
        body.blocks[0].len = 9;
        body.size = 14;
        assert!(body.check().is_err());
    }
}
