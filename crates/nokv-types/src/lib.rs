//! Types shared by every NoKV layer: inode ids and attributes, body
//! descriptors (manifests of immutable blocks), name and path rules,
//! the object-store location of a volume, and the one error type that
//! the metadata and object layers report.
//!
//! This crate has no I/O. Everything here is plain data with
//! validation; encodings on disk belong to `nokv-meta`.

mod attr;
mod body;
mod error;
mod location;
mod name;
mod watch;

pub use attr::{duration_nanos, now_nanos, Attr, FileKind, SetAttr, Timestamp, ROOT_INO};
pub use body::{
    block_object_key, upload_object_prefix, BlockRef, Body, Digest, DEFAULT_BLOCK_SIZE,
    MAX_BLOCK_SIZE, MIN_BLOCK_SIZE,
};
pub use error::{Error, Result};
pub use location::{ObjectLocation, S3Location};
pub use name::{validate_name, NokvPath, MAX_NAME_LEN};
pub use watch::{EventKind, WatchEvent, WatchPage, EVENTS_PER_COMMAND};
