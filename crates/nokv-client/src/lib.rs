//! The NoKV Rust SDK: one async API over a volume.
//!
//! Metadata goes through `nokv-meta` (embedded: in this process); bytes
//! go directly between this process and the object store through
//! `nokv-object`. The client adds no filesystem semantics of its own: it
//! sequences the publish protocol (stage, upload, publish) and streams
//! bytes.

mod blocking;
mod client;
mod gc;
mod put;
mod read;

pub use client::{Client, ClientOptions};
pub use gc::GcReport;
pub use put::{PutOptions, PutOutcome};

pub use nokv_meta::{
    DirEntry, DirEntryPlus, DirPage, Durability, InitOptions, RenameMode, VolumeInfo,
};
pub use nokv_object::{BlockStoreOptions, StoreCredentials};
pub use nokv_types::{
    Attr, Body, Error, FileKind, NokvPath, ObjectLocation, Result, S3Location, SetAttr,
    DEFAULT_BLOCK_SIZE,
};
