//! Publishing after close (`--async-close`): `close` returns before the
//! handle's writes are published, and the publish runs in the background,
//! so a tool writing many small files (`tar x`, `cp -r`) does not wait
//! for one object-store PUT per file.
//!
//! What this trades: until its publish ends, a closed file's new bytes
//! are visible in this mount only, and a crash of the mount process
//! loses them (as a crash loses unflushed writes on a local disk).
//! `fsync` still publishes before it returns.
//!
//! Invariants (kept together with `FsCore`):
//! - a released dirty handle stays in the core's open files until its
//!   publish ends, so `getattr` and `readdir` here show the closed
//!   file's size and mtime (the overlay), and an unmount publishes it;
//! - `pending` counts the background publishes of each inode; opening
//!   or truncating an inode waits until it has none, so within this
//!   mount a file reads back as it was closed (close-to-open) and a new
//!   writer starts from the closed file's bytes;
//! - at most `limit` publishes are pending: a close beyond that waits,
//!   which bounds the spool space held by closed files;
//! - each publish has a sequence number in start order, so a barrier
//!   (fsync of a directory) waits for those started before it only and
//!   cannot be starved by later closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// Background publishes a mount keeps in flight by default.
pub const DEFAULT_PENDING_LIMIT: usize = 32;

pub(crate) struct AfterClose {
    limit: usize,
    pending: Mutex<Pending>,
    changed: Notify,
    /// Background publishes that failed since the last `take_failed`.
    failed: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    by_ino: HashMap<u64, usize>,
    /// Sequence numbers of the publishes in flight.
    in_flight: std::collections::BTreeSet<u64>,
    next: u64,
}

/// One background publish, from [`AfterClose::begin`] to its `end`.
pub(crate) struct Ticket {
    ino: u64,
    seq: u64,
}

impl AfterClose {
    pub(crate) fn new(limit: usize) -> AfterClose {
        AfterClose {
            limit: limit.max(1),
            pending: Mutex::new(Pending::default()),
            changed: Notify::new(),
            failed: AtomicUsize::new(0),
        }
    }

    /// A background publish of `ino` starts.
    pub(crate) fn begin(&self, ino: u64) -> Ticket {
        let mut p = self.pending.lock();
        *p.by_ino.entry(ino).or_default() += 1;
        let seq = p.next;
        p.next += 1;
        p.in_flight.insert(seq);
        Ticket { ino, seq }
    }

    /// A background publish ended (published, or failed).
    pub(crate) fn end(&self, ticket: Ticket) {
        {
            let mut p = self.pending.lock();
            if let Some(n) = p.by_ino.get_mut(&ticket.ino) {
                *n -= 1;
                if *n == 0 {
                    p.by_ino.remove(&ticket.ino);
                }
            }
            p.in_flight.remove(&ticket.seq);
        }
        self.changed.notify_waiters();
    }

    /// Waits until every publish begun before this call has ended.
    pub(crate) async fn wait_begun_so_far(&self) {
        let upto = self.pending.lock().next;
        self.wait_until(|p| p.in_flight.first().is_none_or(|&s| s >= upto))
            .await
    }

    /// A background publish failed: its writes are lost.
    pub(crate) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
    }

    /// Failed background publishes since the last call.
    pub(crate) fn take_failed(&self) -> usize {
        self.failed.swap(0, Ordering::Relaxed)
    }

    /// True when `ino` has a background publish in flight.
    pub(crate) fn is_pending(&self, ino: u64) -> bool {
        self.pending.lock().by_ino.contains_key(&ino)
    }

    /// Waits until `ino` has no background publish in flight.
    pub(crate) async fn wait_ino(&self, ino: u64) {
        self.wait_until(|p| !p.by_ino.contains_key(&ino)).await
    }

    /// Waits until fewer than the limit are in flight (before a close).
    pub(crate) async fn wait_room(&self) {
        let limit = self.limit;
        self.wait_until(|p| p.in_flight.len() < limit).await
    }

    /// Waits until nothing is in flight.
    pub(crate) async fn wait_idle(&self) {
        self.wait_until(|p| p.in_flight.is_empty()).await
    }

    async fn wait_until(&self, done: impl Fn(&Pending) -> bool) {
        loop {
            // Registered before the check, so an `end` between the check
            // and the await still wakes this waiter.
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if done(&self.pending.lock()) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn waiters_wake_when_their_condition_holds() {
        let a = Arc::new(AfterClose::new(2));
        let t7a = a.begin(7);
        let t7b = a.begin(7);
        let t8 = a.begin(8);
        assert!(a.is_pending(7));
        let idle = tokio::spawn({
            let a = a.clone();
            async move { a.wait_idle().await }
        });
        let seven = tokio::spawn({
            let a = a.clone();
            async move { a.wait_ino(7).await }
        });
        let room = tokio::spawn({
            let a = a.clone();
            async move { a.wait_room().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!room.is_finished() && !seven.is_finished() && !idle.is_finished());
        a.end(t8);
        // 2 left (both 7): still no room under a limit of 2.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!room.is_finished() && !seven.is_finished());
        a.end(t7a);
        room.await.unwrap();
        assert!(!seven.is_finished());
        a.end(t7b);
        seven.await.unwrap();
        idle.await.unwrap();
        assert!(!a.is_pending(7));
    }

    #[tokio::test]
    async fn a_barrier_waits_for_earlier_publishes_only() {
        let a = Arc::new(AfterClose::new(8));
        let first = a.begin(1);
        let barrier = tokio::spawn({
            let a = a.clone();
            async move { a.wait_begun_so_far().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // A later publish that never ends does not hold the barrier.
        let _later = a.begin(2);
        assert!(!barrier.is_finished());
        a.end(first);
        barrier.await.unwrap();
    }
}
