//! `MetaReply` <-> `pb::Reply`.

use nokv_meta::{DirEntryPlus, DirPage, GcEntry, MetaReply, PublishOutcome, StagingRecord};
use nokv_types::Result;

use crate::pb::{self, reply::Reply as R};
use crate::values::*;

/// The wire form of a reply.
pub fn encode_reply(reply: MetaReply) -> pb::Reply {
    let r = match reply {
        MetaReply::Info(i) => R::Info(info_to(i)),
        MetaReply::Attr(a) => R::Attr(attr_to(a)),
        MetaReply::Page(p) => R::Page(pb::DirPage {
            entries: p
                .entries
                .into_iter()
                .map(|e| pb::DirEntryPlus {
                    name: e.name,
                    attr: Some(attr_to(e.attr)),
                })
                .collect(),
            next: p.next,
        }),
        MetaReply::Target(t) => R::Target(t),
        MetaReply::Done => R::Done(pb::Done {}),
        MetaReply::Count(n) => R::Count(n),
        MetaReply::Body { attr, body } => R::Body(pb::BodyReply {
            attr: Some(attr_to(attr)),
            body: Some(body_to(body)),
        }),
        MetaReply::Upload(u) => R::Upload(u),
        MetaReply::Published(o) => R::Published(pb::PublishOutcome {
            attr: Some(attr_to(o.attr)),
            replaced: o.replaced.map(body_to),
            reused_blocks: o.reused_blocks as u64,
        }),
        MetaReply::Staged(recs) => R::Staged(pb::StagedList {
            records: recs
                .into_iter()
                .map(|r| pb::StagingRecord {
                    upload: r.upload,
                    created: r.created,
                    deadline: r.deadline,
                })
                .collect(),
        }),
        MetaReply::Gc(entries) => R::Gc(pb::GcList {
            entries: entries
                .into_iter()
                .map(|e| pb::GcEntry {
                    id: Some(gc_id_to(e.id)),
                    blocks: e.blocks.into_iter().map(block_to).collect(),
                    queued_at: e.queued_at,
                })
                .collect(),
        }),
        MetaReply::Events(page) => R::Events(pb::WatchPage {
            events: page.events.into_iter().map(event_to).collect(),
            next: page.next,
        }),
        MetaReply::Blocks { blocks, next } => R::Blocks(pb::BlockPage {
            blocks: blocks.into_iter().map(block_to).collect(),
            next,
        }),
        MetaReply::Snapshot(s) => R::Snapshot(snapshot_to(s)),
        MetaReply::Snapshots(list) => R::Snapshots(pb::SnapshotList {
            snapshots: list.into_iter().map(snapshot_to).collect(),
        }),
        MetaReply::Pruned { deleted, next } => R::Pruned(pb::Pruned { deleted, next }),
    };
    pb::Reply { reply: Some(r) }
}

/// A reply from the wire; anything missing or malformed is
/// `Error::InvalidArgument`.
pub fn decode_reply(reply: pb::Reply) -> Result<MetaReply> {
    Ok(match need(reply.reply, "reply")? {
        R::Info(i) => MetaReply::Info(info_from(i)?),
        R::Attr(a) => MetaReply::Attr(attr_from(Some(a))?),
        R::Page(p) => MetaReply::Page(DirPage {
            entries: p
                .entries
                .into_iter()
                .map(|e| {
                    Ok(DirEntryPlus {
                        name: e.name,
                        attr: attr_from(e.attr)?,
                    })
                })
                .collect::<Result<_>>()?,
            next: p.next,
        }),
        R::Target(t) => MetaReply::Target(t),
        R::Done(_) => MetaReply::Done,
        R::Count(n) => MetaReply::Count(n),
        R::Body(b) => MetaReply::Body {
            attr: attr_from(b.attr)?,
            body: body_from(b.body)?,
        },
        R::Upload(u) => MetaReply::Upload(u),
        R::Published(o) => MetaReply::Published(PublishOutcome {
            attr: attr_from(o.attr)?,
            replaced: o.replaced.map(|b| body_from(Some(b))).transpose()?,
            reused_blocks: usize::try_from(o.reused_blocks).unwrap_or(usize::MAX),
        }),
        R::Staged(s) => MetaReply::Staged(
            s.records
                .into_iter()
                .map(|r| StagingRecord {
                    upload: r.upload,
                    created: r.created,
                    deadline: r.deadline,
                })
                .collect(),
        ),
        R::Gc(g) => MetaReply::Gc(
            g.entries
                .into_iter()
                .map(|e| {
                    Ok(GcEntry {
                        id: gc_id_from(e.id)?,
                        blocks: blocks_from(e.blocks)?,
                        queued_at: e.queued_at,
                    })
                })
                .collect::<Result<_>>()?,
        ),
        R::Events(p) => MetaReply::Events(nokv_types::WatchPage {
            events: p
                .events
                .into_iter()
                .map(event_from)
                .collect::<Result<_>>()?,
            next: p.next,
        }),
        R::Blocks(b) => MetaReply::Blocks {
            blocks: blocks_from(b.blocks)?,
            next: b.next,
        },
        R::Snapshot(s) => MetaReply::Snapshot(snapshot_from(s)?),
        R::Snapshots(l) => MetaReply::Snapshots(
            l.snapshots
                .into_iter()
                .map(snapshot_from)
                .collect::<Result<_>>()?,
        ),
        R::Pruned(p) => MetaReply::Pruned {
            deleted: p.deleted,
            next: p.next,
        },
    })
}

/// A watch page on the wire (the item of the `Watch` stream).
pub fn encode_watch_page(page: nokv_types::WatchPage) -> pb::WatchPage {
    pb::WatchPage {
        events: page.events.into_iter().map(event_to).collect(),
        next: page.next,
    }
}

/// A watch page from the wire.
pub fn decode_watch_page(page: pb::WatchPage) -> Result<nokv_types::WatchPage> {
    Ok(nokv_types::WatchPage {
        events: page
            .events
            .into_iter()
            .map(event_from)
            .collect::<Result<_>>()?,
        next: page.next,
    })
}
