//! Directory attributes a `--server` mount answers itself.
//!
//! A create changes its directory's mtime, so the kernel drops the
//! directory's cached attributes, and with `default_permissions` it asks
//! for them again (GETATTR) before the permission check of the next
//! create there. Through a server that is a second round trip per
//! create. This cache answers that GETATTR from what the mount knows.
//!
//! Invariants:
//! - an entry is a directory's attributes as a server reply gave them (a
//!   getattr or lookup of the directory, the mkdir that made it),
//!   advanced only by this mount's own create-type commands in it, whose
//!   effect on the directory is known exactly: mtime = ctime = the
//!   command's commit time (the new inode's ctime in the reply, also its
//!   event's `time`), nlink + 1 for a new subdirectory;
//! - a store happens only if nothing in the cache changed since the
//!   request behind it was sent (`gen` unchanged), and every store and
//!   drop moves `gen` on. A reply that raced an event, a drop or another
//!   store is thrown away instead of stored over newer knowledge;
//! - the watch follower drops, for every event, each directory the event
//!   may have changed (its inode, `parent`, `old_parent`); only the event
//!   of an own create whose effect was applied here is recognised (by
//!   parent, inode and commit time) and skipped. A restarted stream or an
//!   event without its parent drops everything;
//! - own removals and setattrs drop what they touch when they return, and
//!   an own rename drops everything (its reply names no inode);
//! - an own event can reach the follower before the reply reaches the
//!   mount; the follower then waits (briefly, `SETTLE`) for the own
//!   create-type commands in flight in that directory to return, so it
//!   can recognise the event. The wait only affects how often an answer
//!   is local, never which answer;
//! - so an answer is the directory's state as of the watch stream's
//!   position plus this mount's own commands: no older than the stream's
//!   delivery lag, and at most `max_age` after the server last confirmed
//!   it (a follower that stalls without failing cannot keep an entry
//!   longer than the kernel's own attribute TTL would).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nokv_client::Attr;
use nokv_types::{EventKind, FileKind, WatchEvent};
use parking_lot::Mutex;

/// Entries (and own events awaited) kept at most; past it all go.
const MAX_ENTRIES: usize = 65_536;

/// Longest the follower waits for own commands in flight in the
/// directory of a creation event before applying it anyway.
pub const SETTLE: Duration = Duration::from_millis(5);

struct Entry {
    attr: Attr,
    /// When a server reply last confirmed the entry.
    confirmed: Instant,
}

#[derive(Default)]
struct Inner {
    dirs: HashMap<u64, Entry>,
    /// Moves on with every store and drop.
    gen: u64,
    /// Own creates applied here whose events are still to come:
    /// (directory, new inode, commit time).
    own: HashSet<(u64, u64, i64)>,
    /// Own create-type commands in flight, by directory.
    in_flight: HashMap<u64, usize>,
}

impl Inner {
    fn drop_dir(&mut self, ino: u64) {
        self.dirs.remove(&ino);
        self.gen += 1;
    }

    fn clear(&mut self) {
        self.dirs.clear();
        self.own.clear();
        self.gen += 1;
    }

    fn store(&mut self, attr: &Attr, confirmed: Instant) {
        if self.dirs.len() >= MAX_ENTRIES && !self.dirs.contains_key(&attr.ino) {
            self.dirs.clear();
        }
        self.dirs.insert(
            attr.ino,
            Entry {
                attr: attr.clone(),
                confirmed,
            },
        );
        self.gen += 1;
    }
}

/// The cache; shared by the core (replies, own ops) and the watch
/// follower (`apply`, `reset`).
pub struct DirAttrs {
    inner: Mutex<Inner>,
    max_age: Duration,
    hits: AtomicU64,
    /// Woken whenever an own command in flight returns.
    returned: tokio::sync::Notify,
}

/// Where the cache stood when a request was sent (see [`DirAttrs::mark`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark(u64);

/// An own create-type command in flight in `dir` (see
/// [`DirAttrs::begin`]); dropping it without [`Change::added`] means
/// the command failed.
pub struct Change<'a> {
    cache: &'a DirAttrs,
    dir: u64,
    mark: Mark,
}

impl Change<'_> {
    /// The command made `child` in the directory (`child.ctime` is the
    /// commit time). Advances the directory's entry, or drops it if the
    /// cache moved on meanwhile.
    pub fn added(self, child: &Attr) {
        self.cache.added(self.dir, child, self.mark);
    }
}

impl Drop for Change<'_> {
    fn drop(&mut self) {
        let mut inner = self.cache.inner.lock();
        if let Some(n) = inner.in_flight.get_mut(&self.dir) {
            *n -= 1;
            if *n == 0 {
                inner.in_flight.remove(&self.dir);
            }
        }
        drop(inner);
        self.cache.returned.notify_waiters();
    }
}

impl DirAttrs {
    pub fn new(max_age: Duration) -> DirAttrs {
        DirAttrs {
            inner: Mutex::new(Inner::default()),
            max_age,
            hits: AtomicU64::new(0),
            returned: tokio::sync::Notify::new(),
        }
    }

    /// Starts an own command that makes a name in `dir` (create, mknod,
    /// symlink, link, mkdir).
    pub fn begin(&self, dir: u64) -> Change<'_> {
        let mut inner = self.inner.lock();
        *inner.in_flight.entry(dir).or_insert(0) += 1;
        Change {
            cache: self,
            dir,
            mark: Mark(inner.gen),
        }
    }

    /// Waits (at most [`SETTLE`]) until no own command that makes a name
    /// is in flight in the directory `ev` adds a name to, so that an own
    /// event that beat its reply is recognised.
    pub async fn settle(&self, ev: &WatchEvent) {
        if ev.kind != EventKind::Created {
            return;
        }
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if !self.inner.lock().in_flight.contains_key(&ev.parent) {
                return;
            }
            if tokio::time::timeout_at(deadline, returned).await.is_err() {
                return;
            }
        }
    }

    /// GETATTRs answered here so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Take before sending a request whose reply may be stored.
    pub fn mark(&self) -> Mark {
        Mark(self.inner.lock().gen)
    }

    /// The attributes of directory `ino`, if known and confirmed within
    /// `max_age`.
    pub fn get(&self, ino: u64) -> Option<Attr> {
        let inner = self.inner.lock();
        let e = inner.dirs.get(&ino)?;
        if e.confirmed.elapsed() >= self.max_age {
            return None;
        }
        self.hits.fetch_add(1, Ordering::Relaxed);
        Some(e.attr.clone())
    }

    /// A reply (getattr, lookup) showed `attr`; kept if it is a
    /// directory and nothing changed since `since`.
    pub fn fill(&self, attr: &Attr, since: Mark) {
        if attr.kind != FileKind::Dir {
            return;
        }
        let mut inner = self.inner.lock();
        if inner.gen == since.0 {
            inner.store(attr, Instant::now());
        }
    }

    /// See [`Change::added`].
    fn added(&self, parent: u64, child: &Attr, since: Mark) {
        let mut inner = self.inner.lock();
        if inner.gen != since.0 {
            return inner.drop_dir(parent);
        }
        let Some(e) = inner.dirs.get(&parent) else {
            // Still moves `gen` on: a reply in flight from before this
            // command must not be stored.
            return inner.drop_dir(parent);
        };
        let mut attr = e.attr.clone();
        let confirmed = e.confirmed;
        attr.mtime = child.ctime;
        attr.ctime = child.ctime;
        if child.kind == FileKind::Dir {
            attr.nlink = attr.nlink.saturating_add(1);
        }
        inner.store(&attr, confirmed);
        if child.kind == FileKind::Dir {
            // The reply is the new directory's state at its commit.
            inner.store(child, Instant::now());
        }
        if inner.own.len() >= MAX_ENTRIES {
            // Forgetting only makes the own events drop entries.
            inner.own.clear();
        }
        inner.own.insert((parent, child.ino, child.ctime));
    }

    /// An own command changed these inodes (in an unknown way).
    pub fn changed(&self, inos: &[u64]) {
        let mut inner = self.inner.lock();
        for &ino in inos {
            inner.drop_dir(ino);
        }
    }

    /// Forgets every entry (an own rename, or the watch stream restarted).
    pub fn reset(&self) {
        self.inner.lock().clear();
    }

    /// Applies the next watch event.
    pub fn apply(&self, ev: &WatchEvent) {
        let mut inner = self.inner.lock();
        match ev.kind {
            // A snapshot changes nothing live; a new generation changes
            // the file, not its directory.
            EventKind::SnapshotCreated | EventKind::SnapshotRetired | EventKind::Replaced => {}
            EventKind::AttrChanged => inner.drop_dir(ev.ino),
            EventKind::Created if inner.own.remove(&(ev.parent, ev.ino, ev.time)) => {}
            EventKind::Created | EventKind::Published | EventKind::Removed => {
                if ev.parent == 0 {
                    return inner.clear();
                }
                inner.drop_dir(ev.parent);
                inner.drop_dir(ev.ino);
            }
            EventKind::Renamed => match ev.old_parent.filter(|&p| p != 0) {
                Some(old) if ev.parent != 0 => {
                    inner.drop_dir(ev.parent);
                    inner.drop_dir(old);
                    inner.drop_dir(ev.ino);
                }
                _ => inner.clear(),
            },
        }
    }
}

#[cfg(test)]
mod tests;
