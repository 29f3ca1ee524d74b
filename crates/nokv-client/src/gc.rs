//! Collecting unreferenced blocks: the GC queue filled by remove and
//! replace, and staged uploads whose deadline passed unpublished.
//!
//! Invariants:
//! - a queued block is deleted only after the command that made it
//!   unreachable committed (that command wrote the queue entry), and
//!   the entry is removed only after its blocks are gone, so a crash
//!   mid-pass repeats work but loses none;
//! - an expired upload's staging record is dropped before its blocks
//!   are deleted: publish requires the record, so once it is gone no
//!   publish can reference those blocks. (A crash between the two
//!   leaves objects nothing references; fsck lists them.)

use nokv_types::{duration_nanos, upload_object_prefix, Error, Result};
use serde::Serialize;

use nokv_meta::{MetaOp, MetaReply};

use crate::client::{expect_reply, Client};

/// What one GC pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    pub queued_blocks_deleted: u64,
    pub expired_uploads: u64,
    pub staged_blocks_deleted: u64,
    pub deleted_keys: Vec<String>,
    /// Replaced trees (trash) and abandoned staging trees removed.
    pub trees_removed: u64,
    pub tree_names_removed: u64,
    /// Watch events dropped by retention.
    pub watch_events_trimmed: u64,
    /// History records no live snapshot needs any more.
    pub history_pruned: u64,
    /// Live snapshots: blocks queued after the oldest one were kept.
    pub live_snapshots: u64,
    /// Blocks queued less than `gc_grace` ago were kept for a later pass.
    pub grace_pending: bool,
}

impl Client {
    /// Creates or renews reader lease `lease` (an id the caller picks,
    /// not 0; random ids do not collide in practice): until `ttl` from
    /// now, GC keeps every block queued at or after `since` (ns since
    /// the epoch; the commit time of the oldest replacement or removal
    /// the caller still reads across, e.g. a watch event's `time`).
    /// Hold again before `ttl` ends to keep it.
    pub async fn hold_readers(
        &self,
        lease: u64,
        since: i64,
        ttl: std::time::Duration,
    ) -> Result<()> {
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.done(MetaOp::HoldReaders {
            lease,
            since,
            ttl_ms,
        })
        .await
    }

    /// Ends reader lease `lease` (one that expired or never existed is
    /// fine).
    pub async fn release_readers(&self, lease: u64) -> Result<()> {
        self.done(MetaOp::ReleaseReaders { lease }).await
    }

    /// Runs a GC pass every `every`, forever (a background worker: the
    /// server spawns one). A failed pass is logged and retried at the
    /// next tick; GC is crash-safe, so stopping it at any point is fine.
    pub async fn gc_worker(self, every: std::time::Duration) {
        // The first pass after one period, not at start-up.
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.gc().await {
                Ok(r) => {
                    if r.queued_blocks_deleted + r.staged_blocks_deleted + r.trees_removed > 0 {
                        tracing::info!(
                            queued = r.queued_blocks_deleted,
                            staged = r.staged_blocks_deleted,
                            trees = r.trees_removed,
                            "background gc pass"
                        );
                    }
                }
                Err(e) => tracing::warn!("background gc pass failed: {e}"),
            }
        }
    }

    /// Runs one GC pass: drains the GC queue up to the oldest live
    /// snapshot (blocks queued after it stay until it retires), collects
    /// expired uploads, prunes snapshot history no live snapshot needs
    /// and trims the watch log.
    pub async fn gc(&self) -> Result<GcReport> {
        let mut report = GcReport::default();
        // Old trees first, so their blocks reach the queue drained below.
        let now = nokv_types::now_nanos();
        let grace = duration_nanos(self.inner.opts.trash_grace);
        let ttl = duration_nanos(self.inner.opts.staging_ttl);
        for (dir, keep_for) in [(nokv_meta::TRASH_DIR, grace), (crate::STAGING_DIR, ttl)] {
            let entries = match self.list(dir).await {
                Ok(e) => e,
                Err(Error::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            for e in entries {
                if e.attr.ctime.saturating_add(keep_for) <= now {
                    let path = format!("{dir}/{}", String::from_utf8_lossy(&e.name));
                    report.trees_removed += 1;
                    report.tree_names_removed += self.remove_all(&path).await?;
                }
            }
        }
        let store = self.store().clone();
        // The queue is in commit order: the first entry younger than the
        // grace ends the pass (its successors are younger still).
        let queued_before =
            nokv_types::now_nanos().saturating_sub(duration_nanos(self.inner.opts.gc_grace));
        loop {
            let reply = self.call(MetaOp::GcQueue { limit: 256 }).await?;
            let entries = expect_reply!(reply, "gc_queue", MetaReply::Gc(e) => e)?;
            let total = entries.len();
            let ripe: Vec<_> = entries
                .into_iter()
                .take_while(|e| e.queued_at <= queued_before)
                .collect();
            let more = ripe.len() == total;
            report.grace_pending |= !more;
            if ripe.is_empty() {
                break;
            }
            let mut ids = Vec::with_capacity(ripe.len());
            for entry in ripe {
                for block in &entry.blocks {
                    let key = block.object_key();
                    store.delete(&key).await?;
                    report.queued_blocks_deleted += 1;
                    report.deleted_keys.push(key);
                }
                ids.push(entry.id);
            }
            self.done(MetaOp::GcDone { ids }).await?;
            if !more {
                break;
            }
        }

        let reply = self
            .call(MetaOp::ExpiredUploads {
                now: nokv_types::now_nanos(),
                limit: u32::MAX,
            })
            .await?;
        let expired = expect_reply!(reply, "expired_uploads", MetaReply::Staged(s) => s)?;
        for record in expired {
            // Drop the staging record first: from then on no publish can
            // reference this upload, so deleting its blocks is safe.
            match self
                .done(MetaOp::FinishUpload {
                    upload: record.upload,
                })
                .await
            {
                Ok(()) => {}
                Err(Error::NotFound(_)) => continue, // published or collected meanwhile
                Err(e) => return Err(e),
            }
            report.expired_uploads += 1;
            for (key, _) in store
                .list_keys(&upload_object_prefix(record.upload))
                .await?
            {
                store.delete(&key).await?;
                report.staged_blocks_deleted += 1;
                report.deleted_keys.push(key);
            }
        }
        let mut after = None;
        loop {
            let reply = self
                .call(MetaOp::PruneHistory { after, limit: 4096 })
                .await?;
            let (deleted, next) = expect_reply!(
                reply, "prune_history", MetaReply::Pruned { deleted, next } => (deleted, next)
            )?;
            report.history_pruned += deleted;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        report.live_snapshots = self.snapshots().await?.len() as u64;
        let keep_versions = self.inner.opts.watch_retention_versions;
        let reply = self.call(MetaOp::TrimWatch { keep_versions }).await?;
        report.watch_events_trimmed = expect_reply!(reply, "trim_watch", MetaReply::Count(n) => n)?;
        Ok(report)
    }
}
