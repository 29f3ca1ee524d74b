//! Uploads begun ahead: a client that publishes many small files (a
//! mount under `tar x`) begins their uploads in batches, one round trip
//! (one group commit) for many staging records, instead of one per file.
//!
//! Invariants:
//! - every id in the pool has its staging record (so a crash leaves its
//!   objects to GC) and was begun by this client for nobody else: an id
//!   is handed out once;
//! - an id is handed out only while more than `FRESH_NUM / FRESH_DEN`
//!   (7/8) of the staging TTL is left, so a publish from the pool has
//!   nearly the margin of one that began its own upload; older ids are
//!   given back;
//! - the batch grows only while uploads are taken in quick succession
//!   (doubling up to `MAX_BATCH` when the pool runs dry within
//!   `BURST_GAP` of the last refill) and starts again at 1 otherwise: a
//!   single publish begins exactly one upload, as without the pool;
//! - off until [`crate::Client::begin_uploads_ahead`]; each caller that
//!   turns it on turns it off again with
//!   [`crate::Client::release_uploads_ahead`], and the last one to do so
//!   gives the rest back (what is not given back expires and GC drops
//!   it), so a mount and a `put_tree` on one client do not undo each
//!   other.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Most uploads begun in one round trip.
pub(crate) const MAX_BATCH: usize = 64;
/// A refill this soon after the last one means a burst: double the batch.
const BURST_GAP: Duration = Duration::from_secs(1);
/// An id is handed out while more than this part of the TTL is left
/// (7/8: with the default hour, for 7.5 minutes after it was begun).
const FRESH_NUM: i64 = 7;
const FRESH_DEN: i64 = 8;

/// One begun upload: its id and its staging record's deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Begun {
    pub id: u64,
    pub deadline: i64,
}

#[derive(Default)]
pub(crate) struct UploadPool {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Callers that turned the pool on and have not released it.
    holders: usize,
    ready: VecDeque<Begun>,
    batch: usize,
    last_refill: Option<Instant>,
}

/// What [`UploadPool::take`] found.
pub(crate) struct Taken {
    /// A fresh upload, if the pool had one.
    pub begun: Option<Begun>,
    /// Ids too old to hand out: the caller gives them back.
    pub stale: Vec<u64>,
    /// How many to begin if `begun` is None (1 when the pool is off).
    pub refill: usize,
}

impl UploadPool {
    pub(crate) fn enable(&self) {
        self.state.lock().holders += 1;
    }

    /// One caller is done with the pool. When it was the last, the pool
    /// is off and this returns the ids it still held (else none).
    pub(crate) fn drain(&self) -> Vec<u64> {
        let mut s = self.state.lock();
        s.holders = s.holders.saturating_sub(1);
        if s.holders > 0 {
            return Vec::new();
        }
        s.ready.drain(..).map(|b| b.id).collect()
    }

    pub(crate) fn take(&self, now: i64, ttl: i64) -> Taken {
        let mut s = self.state.lock();
        let mut stale = Vec::new();
        while let Some(b) = s.ready.pop_front() {
            if fresh(b.deadline, now, ttl) {
                return Taken {
                    begun: Some(b),
                    stale,
                    refill: 0,
                };
            }
            stale.push(b.id);
        }
        if s.holders == 0 {
            return Taken {
                begun: None,
                stale,
                refill: 1,
            };
        }
        let burst = s.last_refill.is_some_and(|t| t.elapsed() < BURST_GAP);
        s.batch = if burst {
            (s.batch * 2).clamp(1, MAX_BATCH)
        } else {
            1
        };
        s.last_refill = Some(Instant::now());
        Taken {
            begun: None,
            stale,
            refill: s.batch,
        }
    }

    /// Keeps uploads begun beyond the one the caller uses. False (and
    /// nothing kept) when the pool was turned off meanwhile: the caller
    /// gives them back.
    pub(crate) fn put(&self, extra: impl IntoIterator<Item = Begun>) -> bool {
        let mut s = self.state.lock();
        if s.holders == 0 {
            return false;
        }
        s.ready.extend(extra);
        true
    }
}

fn fresh(deadline: i64, now: i64, ttl: i64) -> bool {
    deadline.saturating_sub(now) > ttl / FRESH_DEN * FRESH_NUM
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: i64 = 8_000;

    fn begun(id: u64, deadline: i64) -> Begun {
        Begun { id, deadline }
    }

    #[test]
    fn off_it_begins_one_at_a_time() {
        let p = UploadPool::default();
        for _ in 0..3 {
            let t = p.take(0, TTL);
            assert_eq!((t.begun, t.refill), (None, 1));
        }
        assert!(!p.put([begun(1, TTL)]));
    }

    #[test]
    fn a_burst_doubles_the_batch_and_a_pause_starts_again_at_one() {
        let p = UploadPool::default();
        p.enable();
        let mut sizes = Vec::new();
        for _ in 0..9 {
            let t = p.take(0, TTL);
            assert!(t.begun.is_none());
            sizes.push(t.refill);
        }
        assert_eq!(sizes, [1, 2, 4, 8, 16, 32, 64, 64, 64]);
        p.state.lock().last_refill = Some(Instant::now() - 2 * BURST_GAP);
        assert_eq!(p.take(0, TTL).refill, 1);
    }

    #[test]
    fn ids_are_handed_out_once_while_fresh_and_stale_ones_given_back() {
        let p = UploadPool::default();
        p.enable();
        // At now = 0 with a TTL of 8000, fresh means more than 7000 left.
        assert!(p.put([begun(1, 7000), begun(2, 7500), begun(3, 8000)]));
        let t = p.take(0, TTL);
        assert_eq!(
            (t.begun, t.stale, t.refill),
            (Some(begun(2, 7500)), vec![1], 0)
        );
        let t = p.take(1100, TTL);
        assert_eq!((t.begun, t.stale), (None, vec![3]));
        assert_eq!(t.refill, 1);
        assert!(p.put([begun(4, 9000)]));
        // Two holders: the first release keeps the pool, the last drains.
        p.enable();
        assert_eq!(p.drain(), Vec::<u64>::new());
        assert!(p.put([begun(5, 9000)]));
        assert_eq!(p.drain(), vec![4, 5]);
        assert!(!p.put([begun(6, 9000)]), "off after the last drain");
        assert_eq!(p.take(0, TTL).refill, 1);
    }
}
