//! NoKV block store: immutable, checksummed blocks in a local directory,
//! an S3-compatible bucket, or process memory (tests).
//!
//! Invariants this crate keeps for its callers:
//! - bytes handed out by [`BlockStore::get_block`], [`read_stream`] and
//!   [`read_range`] have been verified against the manifest (length and
//!   BLAKE3); a corrupt or missing object is an error, never data;
//! - [`upload_body`] never buffers a whole body: memory is bounded by
//!   the upload concurrency, whatever the input size;
//! - this crate never decides object keys: it writes where
//!   [`nokv_types::block_object_key`] says, so key reuse is impossible
//!   as long as the metadata layer never reuses upload ids.

mod cache;
mod config;
mod errors;
mod hash;
mod read;
mod store;
mod upload;

pub use cache::CacheStats;
pub use config::{BlockStoreOptions, StoreCredentials};
pub use read::{read_range, read_stream};
pub use store::BlockStore;
pub use upload::{
    hash_in_order, stage_block, upload_body, upload_body_staged, Prefix, UploadOutcome,
};
