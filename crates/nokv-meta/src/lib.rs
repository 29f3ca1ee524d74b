//! The NoKV metadata engine: a volume's namespace, file manifests,
//! staging records and GC queue, kept in one holt tree.
//!
//! Every change is one `MetadataCommand` (predicates + mutations) that
//! commits atomically with a monotonically increasing commit version;
//! see `command` and `committer`. Filesystem semantics live here and
//! nowhere else; holt types never leave this crate.

mod alloc;
mod bodies;
mod command;
mod committer;
mod engine;
mod follow;
#[doc(hidden)]
pub mod fuzz_entry;
mod gcq;
mod keys;
mod leases;
mod lock;
mod namespace;
mod ops;
mod paths;
mod publish;
mod records;
mod resolve;
mod snapshot;
mod volume;
mod watch;

pub use engine::Durability;
pub use follow::{FollowPace, WATCH_PAGE_GAP};
pub use gcq::{GcEntry, GcId};
pub use namespace::create::{Owner, MAX_SYMLINK_TARGET};
pub use namespace::list::{DirEntry, DirEntryPlus, DirPage};
pub use namespace::rename::RenameMode;
pub use ops::{execute, execute_batch, runs_inline, unexpected, MetaOp, MetaReply, MAX_PAGE};
pub use paths::{at_path, root_is_fixed, TRASH_DIR};
pub use publish::{PublishOutcome, PublishRequest};
pub use records::{StagingRecord, FORMAT_VERSION};
pub use resolve::MAX_SYMLINK_HOPS;
pub use snapshot::{validate_snapshot_name, SnapshotInfo, MAX_SNAPSHOT_NAME};
pub use volume::{volume_exists, volume_token, InitOptions, OpenOptions, Volume, VolumeInfo};
