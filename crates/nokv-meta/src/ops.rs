//! Every metadata operation a front door can ask for, as data.
//!
//! `MetaOp` is what travels: the embedded client hands it to
//! [`execute`] in-process, the server receives it over RPC and hands it
//! to the same [`execute`]. So the embedded and remote paths run the
//! same semantic code, and the transport only moves ops and replies.
//! Path-level ops resolve their paths here, server-side: one round trip.

use nokv_types::{Attr, BlockRef, Body, Error, NokvPath, Result, SetAttr, WatchPage};
use serde::{Deserialize, Serialize};

use crate::command::Txn;
use crate::gcq::{GcEntry, GcId};
use crate::namespace::create::{self, Owner};
use crate::namespace::list::{DirEntryPlus, DirPage};
use crate::namespace::rename::RenameMode;
use crate::paths;
use crate::publish::PublishOutcome;
use crate::records::StagingRecord;
use crate::snapshot::SnapshotInfo;
use crate::volume::{Volume, VolumeInfo};

/// One metadata operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaOp {
    Info,
    /// stat (`follow`) or lstat.
    Stat {
        path: String,
        follow: bool,
    },
    /// One page of a listing with attributes.
    List {
        path: String,
        after: Option<Vec<u8>>,
        limit: u32,
    },
    Mkdir {
        path: String,
        owner: Owner,
        parents: bool,
    },
    Create {
        path: String,
        owner: Owner,
        exclusive: bool,
    },
    Symlink {
        path: String,
        target: Vec<u8>,
        owner: Owner,
    },
    Readlink {
        path: String,
    },
    Link {
        existing: String,
        new: String,
    },
    Unlink {
        path: String,
    },
    Rmdir {
        path: String,
    },
    RemoveTree {
        path: String,
    },
    Rename {
        src: String,
        dst: String,
        replace: bool,
    },
    SetAttr {
        path: String,
        change: SetAttr,
    },
    /// Attributes and manifest of a file's current generation.
    Body {
        path: String,
    },
    BeginUpload {
        deadline: i64,
    },
    FinishUpload {
        upload: u64,
    },
    Publish {
        path: String,
        body: Body,
        upload: u64,
        if_generation: Option<u64>,
        owner: Owner,
    },
    ExpiredUploads {
        now: i64,
        limit: u32,
    },
    GcQueue {
        limit: u32,
    },
    /// A page of directory `dir` by inode (a handle that survives renames
    /// and swaps of the paths above it).
    ListIno {
        dir: u64,
        after: Option<Vec<u8>>,
        limit: u32,
    },
    /// Attributes and manifest of file `ino`.
    BodyIno {
        ino: u64,
    },
    /// Swaps the staged directory into place at `dst`, moving an existing
    /// `dst` tree to the trash (atomic directory publish).
    SwapTree {
        staged: String,
        dst: String,
    },
    /// Watch events from `from` about `prefix`.
    Watch {
        from: u64,
        prefix: String,
        limit: u32,
    },
    /// Drops watch events older than `keep_versions` commit versions.
    TrimWatch {
        keep_versions: u64,
    },
    /// A page of the blocks every manifest references (fsck).
    ManifestBlocks {
        after: Option<Vec<u8>>,
        limit: u32,
    },
    GcDone {
        ids: Vec<GcId>,
    },
    /// Creates or renews reader lease `lease` (see `leases`): GC keeps
    /// blocks queued at or after `since` until `ttl_ms` from now.
    HoldReaders {
        lease: u64,
        since: i64,
        ttl_ms: u64,
    },
    /// Ends reader lease `lease`.
    ReleaseReaders {
        lease: u64,
    },
    Checkpoint,
    /// Creates snapshot `name` of `path`.
    SnapshotCreate {
        path: String,
        name: String,
    },
    SnapshotRetire {
        name: String,
    },
    SnapshotList,
    /// A read op (stat, list, readlink, body, and their inode forms) at
    /// snapshot `snapshot`: paths are relative to the pinned root.
    AtSnapshot {
        snapshot: String,
        op: Box<MetaOp>,
    },
    /// Deletes a page of history no live snapshot can read.
    PruneHistory {
        after: Option<Vec<u8>>,
        limit: u32,
    },
    /// A page of the whole GC queue after `after`, entries kept for live
    /// snapshots included (`GcQueue` stops at the oldest snapshot).
    GcQueueAll {
        after: Option<GcId>,
        limit: u32,
    },
    // ---- inode-level ops (the FUSE mount works by inode, not path) ----
    /// Attributes of `name` in directory `parent`.
    Lookup {
        parent: u64,
        name: Vec<u8>,
    },
    /// Attributes of inode `ino`.
    GetAttr {
        ino: u64,
    },
    MkdirAt {
        parent: u64,
        name: Vec<u8>,
        owner: Owner,
    },
    CreateAt {
        parent: u64,
        name: Vec<u8>,
        owner: Owner,
        exclusive: bool,
    },
    SymlinkAt {
        parent: u64,
        name: Vec<u8>,
        target: Vec<u8>,
        owner: Owner,
    },
    /// Hard link: `new_parent/new_name` becomes another name of `ino`.
    LinkAt {
        ino: u64,
        new_parent: u64,
        new_name: Vec<u8>,
    },
    UnlinkAt {
        parent: u64,
        name: Vec<u8>,
    },
    RmdirAt {
        parent: u64,
        name: Vec<u8>,
    },
    RenameAt {
        parent: u64,
        name: Vec<u8>,
        new_parent: u64,
        new_name: Vec<u8>,
        replace: bool,
    },
    /// chmod / chown / utimens / truncate to 0 of inode `ino`.
    SetAttrIno {
        ino: u64,
        change: SetAttr,
    },
    ReadlinkIno {
        ino: u64,
    },
    /// Publishes `body` as the new generation of existing file `ino`
    /// (whatever names it has now: a file renamed while open is still
    /// the one published). `attrs` (mode, owner, times; no size) are
    /// set in the same command: a writer's chmod, chown or utimens of the
    /// open file. Without an mtime in them, the new generation's mtime is
    /// the commit time.
    PublishIno {
        ino: u64,
        body: Body,
        upload: u64,
        if_generation: Option<u64>,
        attrs: SetAttr,
    },
}

/// The successful result of a [`MetaOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaReply {
    Info(VolumeInfo),
    Attr(Attr),
    Page(DirPage<DirEntryPlus>),
    Target(Vec<u8>),
    Done,
    Count(u64),
    Body {
        attr: Attr,
        body: Body,
    },
    Upload(u64),
    Published(PublishOutcome),
    Staged(Vec<StagingRecord>),
    Gc(Vec<GcEntry>),
    Blocks {
        blocks: Vec<BlockRef>,
        next: Option<Vec<u8>>,
    },
    Events(WatchPage),
    Snapshot(SnapshotInfo),
    Snapshots(Vec<SnapshotInfo>),
    /// Records deleted and the cursor of the next page.
    Pruned {
        deleted: u64,
        next: Option<Vec<u8>>,
    },
}

impl MetaOp {
    /// True for ops that change nothing (they never wait for a commit).
    pub fn is_read(&self) -> bool {
        matches!(
            self,
            MetaOp::Info
                | MetaOp::Stat { .. }
                | MetaOp::List { .. }
                | MetaOp::Readlink { .. }
                | MetaOp::Body { .. }
                | MetaOp::ExpiredUploads { .. }
                | MetaOp::GcQueue { .. }
                | MetaOp::ManifestBlocks { .. }
                | MetaOp::Watch { .. }
                | MetaOp::ListIno { .. }
                | MetaOp::BodyIno { .. }
                | MetaOp::SnapshotList
                | MetaOp::AtSnapshot { .. }
                | MetaOp::GcQueueAll { .. }
                | MetaOp::Lookup { .. }
                | MetaOp::GetAttr { .. }
                | MetaOp::ReadlinkIno { .. }
        )
    }

    /// A short name for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            MetaOp::Info => "info",
            MetaOp::Stat { .. } => "stat",
            MetaOp::List { .. } => "list",
            MetaOp::Mkdir { .. } => "mkdir",
            MetaOp::Create { .. } => "create",
            MetaOp::Symlink { .. } => "symlink",
            MetaOp::Readlink { .. } => "readlink",
            MetaOp::Link { .. } => "link",
            MetaOp::Unlink { .. } => "unlink",
            MetaOp::Rmdir { .. } => "rmdir",
            MetaOp::RemoveTree { .. } => "remove_tree",
            MetaOp::Rename { .. } => "rename",
            MetaOp::SetAttr { .. } => "setattr",
            MetaOp::Body { .. } => "body",
            MetaOp::BeginUpload { .. } => "begin_upload",
            MetaOp::FinishUpload { .. } => "finish_upload",
            MetaOp::Publish { .. } => "publish",
            MetaOp::ExpiredUploads { .. } => "expired_uploads",
            MetaOp::GcQueue { .. } => "gc_queue",
            MetaOp::ManifestBlocks { .. } => "manifest_blocks",
            MetaOp::Watch { .. } => "watch",
            MetaOp::SwapTree { .. } => "swap_tree",
            MetaOp::ListIno { .. } => "list_ino",
            MetaOp::BodyIno { .. } => "body_ino",
            MetaOp::TrimWatch { .. } => "trim_watch",
            MetaOp::GcDone { .. } => "gc_done",
            MetaOp::HoldReaders { .. } => "hold_readers",
            MetaOp::ReleaseReaders { .. } => "release_readers",
            MetaOp::Checkpoint => "checkpoint",
            MetaOp::SnapshotCreate { .. } => "snapshot_create",
            MetaOp::SnapshotRetire { .. } => "snapshot_retire",
            MetaOp::SnapshotList => "snapshot_list",
            MetaOp::AtSnapshot { .. } => "at_snapshot",
            MetaOp::PruneHistory { .. } => "prune_history",
            MetaOp::GcQueueAll { .. } => "gc_queue_all",
            MetaOp::Lookup { .. } => "lookup",
            MetaOp::GetAttr { .. } => "getattr",
            MetaOp::MkdirAt { .. } => "mkdir_at",
            MetaOp::CreateAt { .. } => "create_at",
            MetaOp::SymlinkAt { .. } => "symlink_at",
            MetaOp::LinkAt { .. } => "link_at",
            MetaOp::UnlinkAt { .. } => "unlink_at",
            MetaOp::RmdirAt { .. } => "rmdir_at",
            MetaOp::RenameAt { .. } => "rename_at",
            MetaOp::SetAttrIno { .. } => "setattr_ino",
            MetaOp::ReadlinkIno { .. } => "readlink_ino",
            MetaOp::PublishIno { .. } => "publish_ino",
        }
    }
}

/// Largest listing page one op may ask for.
pub const MAX_PAGE: u32 = 16_384;

fn path(p: &str) -> Result<NokvPath> {
    NokvPath::parse(p)
}

/// Runs one op against the volume. Blocking: changes may wait for an
/// fsync (run it off async executors).
pub fn execute(vol: &Volume, op: MetaOp) -> Result<MetaReply> {
    match op {
        MetaOp::RemoveTree { path: p } => {
            let p = path(&p)?;
            if p.is_root() {
                return Err(Error::InvalidArgument(
                    "refusing to remove the volume root".into(),
                ));
            }
            Ok(MetaReply::Count(vol.remove_tree(&p)?))
        }
        MetaOp::Checkpoint => {
            vol.checkpoint()?;
            Ok(MetaReply::Done)
        }
        op if op.is_read() => read(vol, op),
        op => vol.commit(move |txn, bs| write_in(txn, op, bs)),
    }
}

/// True when `op` may run on an async runtime's worker thread instead of
/// a blocking thread: reads never wait for a commit or an fsync, and on
/// an `async` volume neither does a single change (its group commit is
/// CPU work of tens of microseconds, less than a hop to a blocking
/// thread and back). Changes of a `sync` volume wait for an fsync, tree
/// removals can be long, and checkpoints write the tree.
pub fn runs_inline(vol: &Volume, op: &MetaOp) -> bool {
    if op.is_read() {
        return true;
    }
    vol.durability() == crate::Durability::Async
        && !matches!(op, MetaOp::RemoveTree { .. } | MetaOp::Checkpoint)
}

/// Runs `ops` in order, each with its own result (not atomic: a failed
/// op does not undo or stop the others). Consecutive changes are queued
/// together so they share group commits: a batch of N creates costs a
/// few fsyncs, not N. Each op sees the effects of the ops before it.
pub fn execute_batch(vol: &Volume, ops: Vec<MetaOp>) -> Vec<Result<MetaReply>> {
    let mut out = Vec::with_capacity(ops.len());
    let mut pending: Vec<MetaOp> = Vec::new();
    let flush = |pending: &mut Vec<MetaOp>, out: &mut Vec<Result<MetaReply>>| {
        if pending.is_empty() {
            return;
        }
        let fs: Vec<_> = pending
            .drain(..)
            .map(|op| move |txn: &mut Txn<'_>, bs: u32| write_in(txn, op, bs))
            .collect();
        out.extend(vol.commit_many(fs));
    };
    for op in ops {
        let single = op.is_read() || matches!(op, MetaOp::RemoveTree { .. } | MetaOp::Checkpoint);
        if single {
            flush(&mut pending, &mut out);
            out.push(execute(vol, op));
        } else {
            pending.push(op);
        }
    }
    flush(&mut pending, &mut out);
    out
}

fn read(vol: &Volume, op: MetaOp) -> Result<MetaReply> {
    Ok(match op {
        MetaOp::Info => MetaReply::Info(vol.status()?),
        MetaOp::Stat { path: p, follow } => MetaReply::Attr(vol.stat_path(&path(&p)?, follow)?),
        MetaOp::List {
            path: p,
            after,
            limit,
        } => {
            if limit == 0 || limit > MAX_PAGE {
                return Err(Error::InvalidArgument(format!(
                    "page size {limit} is outside 1..={MAX_PAGE}"
                )));
            }
            MetaReply::Page(vol.list_path(&path(&p)?, after.as_deref(), limit as usize)?)
        }
        MetaOp::Readlink { path: p } => MetaReply::Target(vol.readlink_path(&path(&p)?)?),
        MetaOp::Body { path: p } => {
            let p = path(&p)?;
            let attr = vol.resolve(&p, true)?;
            let (attr, body) = vol.body(attr.ino).map_err(|e| crate::at_path(e, &p))?;
            MetaReply::Body { attr, body }
        }
        MetaOp::ExpiredUploads { now, limit } => {
            MetaReply::Staged(vol.expired_uploads(now, limit as usize)?)
        }
        MetaOp::GcQueue { limit } => MetaReply::Gc(vol.gc_queue(limit.min(MAX_PAGE) as usize)?),
        MetaOp::ListIno { dir, after, limit } => {
            if limit == 0 || limit > MAX_PAGE {
                return Err(Error::InvalidArgument(format!(
                    "page size {limit} is outside 1..={MAX_PAGE}"
                )));
            }
            MetaReply::Page(vol.readdirplus(dir, after.as_deref(), limit as usize)?)
        }
        MetaOp::BodyIno { ino } => {
            let (attr, body) = vol.body(ino)?;
            MetaReply::Body { attr, body }
        }
        MetaOp::Watch {
            from,
            prefix,
            limit,
        } => MetaReply::Events(vol.watch_page(from, &path(&prefix)?, limit as usize)?),
        MetaOp::ManifestBlocks { after, limit } => {
            let (blocks, next) =
                vol.manifest_blocks(after.as_deref(), limit.clamp(1, MAX_PAGE) as usize)?;
            MetaReply::Blocks { blocks, next }
        }
        MetaOp::SnapshotList => MetaReply::Snapshots(vol.snapshots()),
        MetaOp::GcQueueAll { after, limit } => {
            MetaReply::Gc(vol.gc_queue_all(after, limit.clamp(1, MAX_PAGE) as usize)?)
        }
        MetaOp::AtSnapshot { snapshot, op } => read_at(vol, &snapshot, *op)?,
        MetaOp::Lookup { parent, name } => MetaReply::Attr(vol.lookup(parent, &name)?),
        MetaOp::GetAttr { ino } => MetaReply::Attr(vol.getattr(ino)?),
        MetaOp::ReadlinkIno { ino } => MetaReply::Target(vol.readlink(ino)?),
        other => return Err(Error::Metadata(format!("{} is not a read", other.name()))),
    })
}

fn page_limit(limit: u32) -> Result<usize> {
    if limit == 0 || limit > MAX_PAGE {
        return Err(Error::InvalidArgument(format!(
            "page size {limit} is outside 1..={MAX_PAGE}"
        )));
    }
    Ok(limit as usize)
}

/// A read op at a snapshot.
fn read_at(vol: &Volume, snap: &str, op: MetaOp) -> Result<MetaReply> {
    Ok(match op {
        MetaOp::Stat { path: p, follow } => {
            MetaReply::Attr(vol.stat_at(snap, &path(&p)?, follow)?)
        }
        MetaOp::List {
            path: p,
            after,
            limit,
        } => {
            MetaReply::Page(vol.list_at(snap, &path(&p)?, after.as_deref(), page_limit(limit)?)?)
        }
        MetaOp::Readlink { path: p } => MetaReply::Target(vol.readlink_at(snap, &path(&p)?)?),
        MetaOp::Body { path: p } => {
            let (attr, body) = vol.body_at(snap, &path(&p)?)?;
            MetaReply::Body { attr, body }
        }
        MetaOp::ListIno { dir, after, limit } => {
            MetaReply::Page(vol.readdirplus_at(snap, dir, after.as_deref(), page_limit(limit)?)?)
        }
        MetaOp::BodyIno { ino } => {
            let (attr, body) = vol.body_ino_at(snap, ino)?;
            MetaReply::Body { attr, body }
        }
        MetaOp::Lookup { parent, name } => MetaReply::Attr(vol.lookup_at(snap, parent, &name)?),
        MetaOp::GetAttr { ino } => MetaReply::Attr(vol.getattr_at(snap, ino)?),
        MetaOp::ReadlinkIno { ino } => MetaReply::Target(vol.readlink_ino_at(snap, ino)?),
        other => {
            return Err(Error::InvalidArgument(format!(
                "{} cannot run at a snapshot (snapshots are read-only)",
                other.name()
            )))
        }
    })
}

/// One changing op as the body of one command.
fn write_in(txn: &mut Txn<'_>, op: MetaOp, bs: u32) -> Result<MetaReply> {
    Ok(match op {
        MetaOp::Mkdir {
            path: p,
            owner,
            parents,
        } => MetaReply::Attr(paths::mkdir_in(txn, &path(&p)?, owner, parents)?),
        MetaOp::Create {
            path: p,
            owner,
            exclusive,
        } => MetaReply::Attr(paths::create_in(txn, &path(&p)?, owner, exclusive)?),
        MetaOp::Symlink {
            path: p,
            target,
            owner,
        } => MetaReply::Attr(paths::symlink_in(txn, &path(&p)?, &target, owner)?),
        MetaOp::Link { existing, new } => {
            MetaReply::Attr(paths::link_in(txn, &path(&existing)?, &path(&new)?)?)
        }
        MetaOp::Unlink { path: p } => {
            paths::unlink_in(txn, &path(&p)?, bs)?;
            MetaReply::Done
        }
        MetaOp::Rmdir { path: p } => {
            paths::rmdir_in(txn, &path(&p)?)?;
            MetaReply::Done
        }
        MetaOp::Rename { src, dst, replace } => {
            let mode = if replace {
                RenameMode::Replace
            } else {
                RenameMode::NoReplace
            };
            paths::rename_in(txn, &path(&src)?, &path(&dst)?, mode, bs)?;
            MetaReply::Done
        }
        MetaOp::SetAttr { path: p, change } => {
            MetaReply::Attr(paths::setattr_in(txn, &path(&p)?, &change, bs)?)
        }
        MetaOp::BeginUpload { deadline } => {
            MetaReply::Upload(crate::publish::begin_upload(txn, deadline)?)
        }
        MetaOp::FinishUpload { upload } => {
            crate::publish::finish_upload(txn, upload)?;
            MetaReply::Done
        }
        MetaOp::Publish {
            path: p,
            body,
            upload,
            if_generation,
            owner,
        } => MetaReply::Published(paths::publish_in(
            txn,
            &path(&p)?,
            body,
            upload,
            if_generation,
            owner,
            bs,
        )?),
        MetaOp::SwapTree { staged, dst } => {
            let old = paths::swap_tree_in(txn, &path(&staged)?, &path(&dst)?, bs)?;
            MetaReply::Target(old.unwrap_or_default().into_bytes())
        }
        MetaOp::TrimWatch { keep_versions } => {
            let engine = txn.engine();
            let current = txn.version();
            MetaReply::Count(crate::watch::trim(txn, engine, current, keep_versions)?)
        }
        MetaOp::GcDone { ids } => {
            for id in &ids {
                txn.delete(crate::keys::gc(id.commit_version, id.seq))?;
            }
            MetaReply::Done
        }
        MetaOp::HoldReaders {
            lease,
            since,
            ttl_ms,
        } => {
            crate::leases::hold(txn, lease, since, ttl_ms)?;
            MetaReply::Done
        }
        MetaOp::ReleaseReaders { lease } => {
            crate::leases::release(txn, lease)?;
            MetaReply::Done
        }
        MetaOp::SnapshotCreate { path: p, name } => {
            MetaReply::Snapshot(crate::snapshot::create(txn, &path(&p)?, &name)?)
        }
        MetaOp::SnapshotRetire { name } => {
            MetaReply::Snapshot(crate::snapshot::retire(txn, &name)?)
        }
        MetaOp::PruneHistory { after, limit } => {
            let live = txn.snapshots().versions();
            let (deleted, next) = crate::snapshot::history::prune_page(
                txn,
                &live,
                after.as_deref(),
                limit.clamp(1, MAX_PAGE) as usize,
            )?;
            MetaReply::Pruned { deleted, next }
        }
        MetaOp::MkdirAt {
            parent,
            name,
            owner,
        } => MetaReply::Attr(create::mkdir(txn, parent, &name, owner)?),
        MetaOp::CreateAt {
            parent,
            name,
            owner,
            exclusive,
        } => MetaReply::Attr(create::create(txn, parent, &name, owner, exclusive)?),
        MetaOp::SymlinkAt {
            parent,
            name,
            target,
            owner,
        } => MetaReply::Attr(create::symlink(txn, parent, &name, &target, owner)?),
        MetaOp::LinkAt {
            ino,
            new_parent,
            new_name,
        } => MetaReply::Attr(create::link(txn, ino, new_parent, &new_name)?),
        MetaOp::UnlinkAt { parent, name } => {
            crate::namespace::remove::unlink(txn, parent, &name, bs)?;
            MetaReply::Done
        }
        MetaOp::RmdirAt { parent, name } => {
            crate::namespace::remove::rmdir(txn, parent, &name)?;
            MetaReply::Done
        }
        MetaOp::RenameAt {
            parent,
            name,
            new_parent,
            new_name,
            replace,
        } => {
            let mode = if replace {
                RenameMode::Replace
            } else {
                RenameMode::NoReplace
            };
            crate::namespace::rename::rename(txn, parent, &name, new_parent, &new_name, mode, bs)?;
            MetaReply::Done
        }
        MetaOp::SetAttrIno { ino, change } => {
            MetaReply::Attr(crate::namespace::attr::setattr(txn, ino, &change, bs)?)
        }
        MetaOp::PublishIno {
            ino,
            body,
            upload,
            if_generation,
            attrs,
        } => MetaReply::Published(crate::publish::publish_ino(
            txn,
            ino,
            body,
            upload,
            if_generation,
            &attrs,
            bs,
        )?),
        other => return Err(Error::Metadata(format!("{} is not a change", other.name()))),
    })
}

/// A reply of the wrong kind for its op: a bug or a confused peer.
pub fn unexpected(op: &str, reply: &MetaReply) -> Error {
    Error::Metadata(format!("unexpected reply to {op}: {reply:?}"))
}
