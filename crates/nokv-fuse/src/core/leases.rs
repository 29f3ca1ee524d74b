//! The mount's reader lease: files open for reading across a
//! replacement keep the blocks they read.
//!
//! A handle pins the generation it opened (a read handle reads it; a
//! write handle reads the parts it has not overwritten and may reuse its
//! blocks at publish). When a writer (this
//! mount or another client) replaces, truncates or removes the file,
//! that generation's blocks go on the GC queue, queued at the replacing
//! command's commit time, and GC deletes them once the grace has passed.
//! The watch follower shows this tracker every such event; while a
//! handle here still reads a replaced generation, the mount holds one
//! reader lease on the volume (`Client::hold_readers`) whose `since` is
//! the oldest such commit time, so GC keeps those blocks (and any queued
//! after them) until the handle closes.
//!
//! Invariants:
//! - `held` has every open handle known to read across a
//!   replacement, with the commit time of the first one it saw; the
//!   lease on the volume (once the holder task caught up) has `since` <=
//!   every value in `held`, and exists iff `held` is not empty;
//! - a replacement reaches the lease one watch lag plus one round trip
//!   after it commits; the GC grace (`--gc-grace`) covers that window;
//! - after a restarted watch stream (events may have been missed) every
//!   open handle counts as reading across a replacement made at the
//!   last event applied (none applied: any time);
//! - the lease expires `ttl` after its last renewal (renewed every
//!   `ttl / 4`), so a mount that dies stops holding GC back.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nokv_client::Client;
use nokv_types::{EventKind, WatchEvent};
use parking_lot::Mutex;

#[derive(Default)]
struct Inner {
    /// Open handles over a published generation: fh -> (inode, generation opened).
    open: HashMap<u64, (u64, u64)>,
    /// Handles reading across a replacement: fh -> its commit time.
    held: HashMap<u64, i64>,
    /// Commit time of the last event applied.
    last_time: Option<i64>,
}

impl Inner {
    fn since(&self) -> Option<i64> {
        self.held.values().copied().min()
    }
}

/// The tracker; shared by the core (opens, closes), the watch follower
/// (`apply`, `reset`) and the task that keeps the lease (`keep`).
pub struct ReaderLeases {
    id: u64,
    ttl: Duration,
    inner: Mutex<Inner>,
    changed: tokio::sync::Notify,
    /// The `since` the volume's lease has (None: no lease), as of the
    /// keeper's last successful call.
    sent: Mutex<Option<i64>>,
}

impl ReaderLeases {
    pub fn new(ttl: Duration) -> ReaderLeases {
        ReaderLeases {
            // Random and non-zero: one lease per mount process.
            id: uuid::Uuid::new_v4().as_u64_pair().0 | 1,
            ttl,
            inner: Mutex::new(Inner::default()),
            changed: tokio::sync::Notify::new(),
            sent: Mutex::new(None),
        }
    }

    /// The oldest replacement an open handle reads across (None: no
    /// lease needed).
    pub fn since(&self) -> Option<i64> {
        self.inner.lock().since()
    }

    /// The `since` of the lease the volume holds for this mount.
    pub fn held(&self) -> Option<i64> {
        *self.sent.lock()
    }

    pub fn opened(&self, fh: u64, ino: u64, generation: u64) {
        self.inner.lock().open.insert(fh, (ino, generation));
    }

    pub fn closed(&self, fh: u64) {
        let mut inner = self.inner.lock();
        inner.open.remove(&fh);
        if inner.held.remove(&fh).is_some() {
            drop(inner);
            self.changed.notify_one();
        }
    }

    /// Applies the next watch event.
    pub fn apply(&self, ev: &WatchEvent) {
        let mut inner = self.inner.lock();
        inner.last_time = Some(ev.time);
        let gone = match ev.kind {
            EventKind::Removed => true,
            // A new generation (publish, truncate) queues the old one.
            EventKind::Replaced | EventKind::AttrChanged => false,
            _ => return,
        };
        let Inner { open, held, .. } = &mut *inner;
        let mut newly = false;
        for (&fh, &(ino, generation)) in open.iter() {
            if ino == ev.ino && (gone || ev.generation > generation) && !held.contains_key(&fh) {
                held.insert(fh, ev.time);
                newly = true;
            }
        }
        drop(inner);
        if newly {
            self.changed.notify_one();
        }
    }

    /// The watch stream restarted: events may have been missed.
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        let at = inner.last_time.unwrap_or(i64::MIN);
        let Inner { open, held, .. } = &mut *inner;
        let mut newly = false;
        for &fh in open.keys() {
            if let std::collections::hash_map::Entry::Vacant(e) = held.entry(fh) {
                e.insert(at);
                newly = true;
            }
        }
        drop(inner);
        if newly {
            self.changed.notify_one();
        }
    }

    /// Keeps the volume's lease in step with `held`, forever (run it as a
    /// task; abort it, then call [`ReaderLeases::release`]).
    pub async fn keep(self: Arc<Self>, client: Client) {
        let renew = self.ttl / 4;
        loop {
            let changed = self.changed.notified();
            let want = self.since();
            let result = match want {
                Some(since) => client.hold_readers(self.id, since, self.ttl).await,
                None if self.held().is_some() => client.release_readers(self.id).await,
                None => Ok(()),
            };
            let sent = match result {
                Ok(()) => {
                    *self.sent.lock() = want;
                    want
                }
                Err(e) => {
                    tracing::warn!("reader lease: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let wait = if sent.is_some() {
                renew
            } else {
                Duration::from_secs(3600)
            };
            let _ = tokio::time::timeout(wait, changed).await;
        }
    }

    /// Ends the lease (at unmount).
    pub async fn release(&self, client: &Client) {
        match client.release_readers(self.id).await {
            Ok(()) => *self.sent.lock() = None,
            Err(e) => tracing::warn!("releasing the reader lease: {e}"),
        }
    }
}

#[cfg(test)]
mod tests;
