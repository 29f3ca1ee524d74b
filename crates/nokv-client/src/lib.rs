//! The NoKV Rust SDK: one async API over a volume.
//!
//! Metadata goes through `nokv-meta`, embedded in this process
//! ([`Client::open`]) or in a metadata server ([`Client::connect`]);
//! bytes go directly between this process and the object store through
//! `nokv-object` either way. The client adds no filesystem semantics of its own: it
//! sequences the publish protocol (stage, upload, publish) and streams
//! bytes.
//!
//! ```
//! use nokv_client::{Client, ClientOptions, InitOptions, ObjectLocation, PutOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> nokv_client::Result<()> {
//! # let tmp = tempfile::tempdir()?;
//! # let home = tmp.path().join("volume");
//! let blocks = ObjectLocation::Local { root: home.join("blocks") };
//! let client = Client::init(&home, InitOptions::new(blocks), ClientOptions::default()).await?;
//! client.mkdir_all("/runs/exp1", 0o755).await?;
//! let out = client
//!     .put_bytes("/runs/exp1/ckpt", b"weights", PutOptions::default())
//!     .await?;
//! assert_eq!(out.attr.generation, 1);
//! assert_eq!(client.read("/runs/exp1/ckpt").await?.as_ref(), b"weights");
//! let names: Vec<_> = client
//!     .list("/runs/exp1")
//!     .await?
//!     .into_iter()
//!     .map(|e| String::from_utf8_lossy(&e.name).into_owned())
//!     .collect();
//! assert_eq!(names, ["ckpt"]);
//! client.rename("/runs/exp1", "/runs/best", false).await?;
//! client.remove_all("/runs").await?;
//! # Ok(()) }
//! ```

mod blocking;
mod client;
mod fsck;
mod gc;
mod inode;
mod meta;
mod put;
mod put_tree;
mod read;
mod remote;
mod snapshot;
mod staged;
mod upload_pool;
mod watch;

pub use client::{Client, ClientOptions};
pub use fsck::FsckReport;
pub use gc::GcReport;
pub use put::{PutOptions, PutOutcome};
pub use put_tree::{PutTreeOutcome, STAGING_DIR};
pub use snapshot::SnapshotReader;
pub use staged::StagedUpload;

pub use nokv_meta::{
    validate_snapshot_name, DirEntry, DirEntryPlus, DirPage, Durability, InitOptions, MetaOp,
    MetaReply, Owner, RenameMode, SnapshotInfo, VolumeInfo,
};
pub use nokv_object::{hash_in_order, BlockStoreOptions, Prefix, StoreCredentials};
pub use nokv_types::{
    now_nanos, Attr, BlockRef, Body, Error, EventKind, FileKind, NokvPath, ObjectLocation, Result,
    S3Location, SetAttr, Timestamp, WatchEvent, WatchPage, DEFAULT_BLOCK_SIZE,
};
