//! `MetaOp` <-> `pb::Op`.

use nokv_meta::MetaOp;
use nokv_types::{Result, SetAttr};

use crate::pb::{self, op::Op as P};
use crate::values::*;

/// The wire form of an op.
pub fn encode_op(op: MetaOp) -> pb::Op {
    let op = match op {
        MetaOp::Info => P::Info(pb::InfoOp {}),
        MetaOp::Stat { path, follow } => P::Stat(pb::StatOp { path, follow }),
        MetaOp::List { path, after, limit } => P::List(pb::ListOp { path, after, limit }),
        MetaOp::Mkdir {
            path,
            owner,
            parents,
        } => P::Mkdir(pb::MkdirOp {
            path,
            owner: Some(owner_to(owner)),
            parents,
        }),
        MetaOp::Create {
            path,
            owner,
            exclusive,
        } => P::Create(pb::CreateOp {
            path,
            owner: Some(owner_to(owner)),
            exclusive,
        }),
        MetaOp::Symlink {
            path,
            target,
            owner,
        } => P::Symlink(pb::SymlinkOp {
            path,
            target,
            owner: Some(owner_to(owner)),
        }),
        MetaOp::Readlink { path } => P::Readlink(pb::ReadlinkOp { path }),
        MetaOp::Link { existing, new } => P::Link(pb::LinkOp {
            existing,
            new_path: new,
        }),
        MetaOp::Unlink { path } => P::Unlink(pb::UnlinkOp { path }),
        MetaOp::Rmdir { path } => P::Rmdir(pb::RmdirOp { path }),
        MetaOp::RemoveTree { path } => P::RemoveTree(pb::RemoveTreeOp { path }),
        MetaOp::Rename { src, dst, replace } => P::Rename(pb::RenameOp { src, dst, replace }),
        MetaOp::SetAttr { path, change } => P::SetAttr(pb::SetAttrOp {
            path,
            change: Some(setattr_to(change)),
        }),
        MetaOp::Body { path } => P::Body(pb::BodyOp { path }),
        MetaOp::BeginUpload { deadline } => P::BeginUpload(pb::BeginUploadOp { deadline }),
        MetaOp::FinishUpload { upload } => P::FinishUpload(pb::FinishUploadOp { upload }),
        MetaOp::Publish {
            path,
            body,
            upload,
            if_generation,
            owner,
        } => P::Publish(pb::PublishOp {
            path,
            body: Some(body_to(body)),
            upload,
            if_generation,
            owner: Some(owner_to(owner)),
        }),
        MetaOp::ExpiredUploads { now, limit } => {
            P::ExpiredUploads(pb::ExpiredUploadsOp { now, limit })
        }
        MetaOp::GcQueue { limit } => P::GcQueue(pb::GcQueueOp { limit }),
        MetaOp::Watch {
            from,
            prefix,
            limit,
        } => P::Watch(pb::WatchOp {
            from,
            prefix,
            limit,
        }),
        MetaOp::TrimWatch { keep_versions } => P::TrimWatch(pb::TrimWatchOp { keep_versions }),
        MetaOp::SwapTree { staged, dst } => P::SwapTree(pb::SwapTreeOp { staged, dst }),
        MetaOp::ListIno { dir, after, limit } => P::ListIno(pb::ListInoOp { dir, after, limit }),
        MetaOp::BodyIno { ino } => P::BodyIno(pb::BodyInoOp { ino }),
        MetaOp::ManifestBlocks { after, limit } => {
            P::ManifestBlocks(pb::ManifestBlocksOp { after, limit })
        }
        MetaOp::GcDone { ids } => P::GcDone(pb::GcDoneOp {
            ids: ids.into_iter().map(gc_id_to).collect(),
        }),
        MetaOp::HoldReaders {
            lease,
            since,
            ttl_ms,
        } => P::HoldReaders(pb::HoldReadersOp {
            lease,
            since,
            ttl_ms,
        }),
        MetaOp::ReleaseReaders { lease } => P::ReleaseReaders(pb::ReleaseReadersOp { lease }),
        MetaOp::Checkpoint => P::Checkpoint(pb::CheckpointOp {}),
        MetaOp::SnapshotCreate { path, name } => {
            P::SnapshotCreate(pb::SnapshotCreateOp { path, name })
        }
        MetaOp::SnapshotRetire { name } => P::SnapshotRetire(pb::SnapshotRetireOp { name }),
        MetaOp::SnapshotList => P::SnapshotList(pb::SnapshotListOp {}),
        MetaOp::AtSnapshot { snapshot, op } => P::AtSnapshot(Box::new(pb::AtSnapshotOp {
            snapshot,
            op: Some(Box::new(encode_op(*op))),
        })),
        MetaOp::PruneHistory { after, limit } => {
            P::PruneHistory(pb::PruneHistoryOp { after, limit })
        }
        MetaOp::GcQueueAll { after, limit } => P::GcQueueAll(pb::GcQueueAllOp {
            after: after.map(gc_id_to),
            limit,
        }),
        MetaOp::Lookup { parent, name } => P::Lookup(pb::LookupOp { parent, name }),
        MetaOp::GetAttr { ino } => P::GetAttr(pb::GetAttrOp { ino }),
        MetaOp::MkdirAt {
            parent,
            name,
            owner,
        } => P::MkdirAt(pb::MkdirAtOp {
            parent,
            name,
            owner: Some(owner_to(owner)),
        }),
        MetaOp::CreateAt {
            parent,
            name,
            owner,
            exclusive,
        } => P::CreateAt(pb::CreateAtOp {
            parent,
            name,
            owner: Some(owner_to(owner)),
            exclusive,
        }),
        MetaOp::SymlinkAt {
            parent,
            name,
            target,
            owner,
        } => P::SymlinkAt(pb::SymlinkAtOp {
            parent,
            name,
            target,
            owner: Some(owner_to(owner)),
        }),
        MetaOp::LinkAt {
            ino,
            new_parent,
            new_name,
        } => P::LinkAt(pb::LinkAtOp {
            ino,
            new_parent,
            new_name,
        }),
        MetaOp::UnlinkAt { parent, name } => P::UnlinkAt(pb::UnlinkAtOp { parent, name }),
        MetaOp::RmdirAt { parent, name } => P::RmdirAt(pb::RmdirAtOp { parent, name }),
        MetaOp::RenameAt {
            parent,
            name,
            new_parent,
            new_name,
            replace,
        } => P::RenameAt(pb::RenameAtOp {
            parent,
            name,
            new_parent,
            new_name,
            replace,
        }),
        MetaOp::SetAttrIno { ino, change } => P::SetAttrIno(pb::SetAttrInoOp {
            ino,
            change: Some(setattr_to(change)),
        }),
        MetaOp::ReadlinkIno { ino } => P::ReadlinkIno(pb::ReadlinkInoOp { ino }),
        MetaOp::PublishIno {
            ino,
            body,
            upload,
            if_generation,
            attrs,
        } => P::PublishIno(pb::PublishInoOp {
            ino,
            body: Some(body_to(body)),
            upload,
            if_generation,
            attrs: (!attrs.is_empty()).then(|| setattr_to(attrs)),
        }),
    };
    pb::Op { op: Some(op) }
}

/// An op from the wire; anything missing or malformed is
/// `Error::InvalidArgument`.
pub fn decode_op(op: pb::Op) -> Result<MetaOp> {
    Ok(match need(op.op, "op")? {
        P::Info(_) => MetaOp::Info,
        P::Stat(o) => MetaOp::Stat {
            path: o.path,
            follow: o.follow,
        },
        P::List(o) => MetaOp::List {
            path: o.path,
            after: o.after,
            limit: o.limit,
        },
        P::Mkdir(o) => MetaOp::Mkdir {
            path: o.path,
            owner: owner_from(o.owner)?,
            parents: o.parents,
        },
        P::Create(o) => MetaOp::Create {
            path: o.path,
            owner: owner_from(o.owner)?,
            exclusive: o.exclusive,
        },
        P::Symlink(o) => MetaOp::Symlink {
            path: o.path,
            target: o.target,
            owner: owner_from(o.owner)?,
        },
        P::Readlink(o) => MetaOp::Readlink { path: o.path },
        P::Link(o) => MetaOp::Link {
            existing: o.existing,
            new: o.new_path,
        },
        P::Unlink(o) => MetaOp::Unlink { path: o.path },
        P::Rmdir(o) => MetaOp::Rmdir { path: o.path },
        P::RemoveTree(o) => MetaOp::RemoveTree { path: o.path },
        P::Rename(o) => MetaOp::Rename {
            src: o.src,
            dst: o.dst,
            replace: o.replace,
        },
        P::SetAttr(o) => MetaOp::SetAttr {
            path: o.path,
            change: setattr_from(o.change)?,
        },
        P::Body(o) => MetaOp::Body { path: o.path },
        P::BeginUpload(o) => MetaOp::BeginUpload {
            deadline: o.deadline,
        },
        P::FinishUpload(o) => MetaOp::FinishUpload { upload: o.upload },
        P::Publish(o) => MetaOp::Publish {
            path: o.path,
            body: body_from(o.body)?,
            upload: o.upload,
            if_generation: o.if_generation,
            owner: owner_from(o.owner)?,
        },
        P::ExpiredUploads(o) => MetaOp::ExpiredUploads {
            now: o.now,
            limit: o.limit,
        },
        P::GcQueue(o) => MetaOp::GcQueue { limit: o.limit },
        P::Watch(o) => MetaOp::Watch {
            from: o.from,
            prefix: o.prefix,
            limit: o.limit,
        },
        P::ListIno(o) => MetaOp::ListIno {
            dir: o.dir,
            after: o.after,
            limit: o.limit,
        },
        P::BodyIno(o) => MetaOp::BodyIno { ino: o.ino },
        P::SwapTree(o) => MetaOp::SwapTree {
            staged: o.staged,
            dst: o.dst,
        },
        P::TrimWatch(o) => MetaOp::TrimWatch {
            keep_versions: o.keep_versions,
        },
        P::ManifestBlocks(o) => MetaOp::ManifestBlocks {
            after: o.after,
            limit: o.limit,
        },
        P::GcDone(o) => MetaOp::GcDone {
            ids: o
                .ids
                .into_iter()
                .map(|id| gc_id_from(Some(id)))
                .collect::<Result<_>>()?,
        },
        P::HoldReaders(o) => MetaOp::HoldReaders {
            lease: o.lease,
            since: o.since,
            ttl_ms: o.ttl_ms,
        },
        P::ReleaseReaders(o) => MetaOp::ReleaseReaders { lease: o.lease },
        P::Checkpoint(_) => MetaOp::Checkpoint,
        P::SnapshotCreate(o) => MetaOp::SnapshotCreate {
            path: o.path,
            name: o.name,
        },
        P::SnapshotRetire(o) => MetaOp::SnapshotRetire { name: o.name },
        P::SnapshotList(_) => MetaOp::SnapshotList,
        P::AtSnapshot(o) => {
            let inner = decode_op(*need(o.op, "at_snapshot.op")?)?;
            if matches!(inner, MetaOp::AtSnapshot { .. }) {
                return Err(nokv_types::Error::InvalidArgument(
                    "at_snapshot cannot nest".into(),
                ));
            }
            MetaOp::AtSnapshot {
                snapshot: o.snapshot,
                op: Box::new(inner),
            }
        }
        P::PruneHistory(o) => MetaOp::PruneHistory {
            after: o.after,
            limit: o.limit,
        },
        P::GcQueueAll(o) => MetaOp::GcQueueAll {
            after: o.after.map(|id| gc_id_from(Some(id))).transpose()?,
            limit: o.limit,
        },
        P::Lookup(o) => MetaOp::Lookup {
            parent: o.parent,
            name: o.name,
        },
        P::GetAttr(o) => MetaOp::GetAttr { ino: o.ino },
        P::MkdirAt(o) => MetaOp::MkdirAt {
            parent: o.parent,
            name: o.name,
            owner: owner_from(o.owner)?,
        },
        P::CreateAt(o) => MetaOp::CreateAt {
            parent: o.parent,
            name: o.name,
            owner: owner_from(o.owner)?,
            exclusive: o.exclusive,
        },
        P::SymlinkAt(o) => MetaOp::SymlinkAt {
            parent: o.parent,
            name: o.name,
            target: o.target,
            owner: owner_from(o.owner)?,
        },
        P::LinkAt(o) => MetaOp::LinkAt {
            ino: o.ino,
            new_parent: o.new_parent,
            new_name: o.new_name,
        },
        P::UnlinkAt(o) => MetaOp::UnlinkAt {
            parent: o.parent,
            name: o.name,
        },
        P::RmdirAt(o) => MetaOp::RmdirAt {
            parent: o.parent,
            name: o.name,
        },
        P::RenameAt(o) => MetaOp::RenameAt {
            parent: o.parent,
            name: o.name,
            new_parent: o.new_parent,
            new_name: o.new_name,
            replace: o.replace,
        },
        P::SetAttrIno(o) => MetaOp::SetAttrIno {
            ino: o.ino,
            change: setattr_from(o.change)?,
        },
        P::ReadlinkIno(o) => MetaOp::ReadlinkIno { ino: o.ino },
        P::PublishIno(o) => MetaOp::PublishIno {
            ino: o.ino,
            body: body_from(o.body)?,
            upload: o.upload,
            if_generation: o.if_generation,
            attrs: match o.attrs {
                Some(a) => setattr_from(Some(a))?,
                None => SetAttr::default(),
            },
        },
    })
}
