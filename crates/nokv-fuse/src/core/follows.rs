//! The caches the watch follower keeps current (`invalidate::follow`
//! feeds every event to each, in `seq` order, and resets them all when
//! the stream ends): absent names, directory attributes, reader leases.

use nokv_types::WatchEvent;

use super::dirattrs::DirAttrs;
use super::dircache::DirCache;
use super::leases::ReaderLeases;

/// A cache the watch follower keeps current.
pub trait FollowsWatch: Send + Sync {
    /// Waits, briefly, until the cache is ready to apply `ev` (see
    /// `DirAttrs::settle`).
    fn settle<'a>(&'a self, _ev: &'a WatchEvent) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    /// Applies the next event (in `seq` order, no gaps since `reset`).
    fn apply(&self, ev: &WatchEvent);
    /// Forgets what events may have changed (the stream restarted).
    fn reset(&self);
}

impl FollowsWatch for DirCache {
    fn apply(&self, ev: &WatchEvent) {
        DirCache::apply(self, ev)
    }
    fn reset(&self) {
        DirCache::reset(self)
    }
}

impl FollowsWatch for ReaderLeases {
    fn apply(&self, ev: &WatchEvent) {
        ReaderLeases::apply(self, ev)
    }
    fn reset(&self) {
        ReaderLeases::reset(self)
    }
}

impl FollowsWatch for DirAttrs {
    fn settle<'a>(&'a self, ev: &'a WatchEvent) -> futures::future::BoxFuture<'a, ()> {
        Box::pin(DirAttrs::settle(self, ev))
    }
    fn apply(&self, ev: &WatchEvent) {
        DirAttrs::apply(self, ev)
    }
    fn reset(&self) {
        DirAttrs::reset(self)
    }
}
