//! Local answers to lookups of absent names on a `--server` mount.
//!
//! Creating a file costs the kernel a LOOKUP of the new name before the
//! CREATE; through a server both are round trips. For a directory whose
//! complete contents this mount knows, the LOOKUP of an absent name is
//! answered here instead.
//!
//! Per cached directory `d` the cache holds:
//! - `S(d)`: name -> (inode, commit version, commit time) of the event
//!   that bound it, as of the last watch event applied (position `P`);
//! - `pending(d)`: names this mount itself added whose events have not
//!   been applied yet. An entry from a create, mkdir, symlink or link
//!   holds the inode, the commit version of the last event applied when
//!   the op began (`floor`: the op commits later) and the op's commit
//!   time (the ctime it returned, which is also its event's `time`). An
//!   entry from a rename holds nothing to match (the reply carries
//!   neither inode nor time) and stays while the directory is cached.
//!
//! Invariants:
//! - `S(d)` equals `d`'s entries in the volume state at `P`. It starts
//!   empty when the follower applies `d`'s own creation event (a new
//!   directory is empty) and every later event that adds or removes a
//!   name of `d` carries `parent` / `old_parent` = `d` and is applied in
//!   `seq` order. Only directories whose creation event the follower
//!   sees are cached: ones this mount is making (registered by
//!   (parent, name) before the mkdir is sent, and by inode after it
//!   returns). A listing (readdir) never fills `S`: it has no commit
//!   version, so it cannot be placed in the event order.
//! - A removal applies only when the stored inode equals the event's
//!   inode (a name re-created meanwhile stays), and only once an event
//!   of a later command arrives: one command can remove a name and add
//!   it back (a rename over an existing name emits the target's removal,
//!   then the rename; an atomic directory swap moves the old tree away,
//!   then the new one in), and no lookup may see the state in between.
//!   `P` is therefore the last command whose events are all in, plus
//!   the names the next one adds (a late removal only keeps a name
//!   longer).
//! - Absent is answered iff `d` is cached, no own name-adding op in `d`
//!   is in flight, and the name is in neither `S(d)` nor `pending(d)`.
//!   So an "absent" answer is true of the state at `P`, which is no
//!   older than the watch stream's delivery lag.
//! - The mount sees its own new names: a pending entry leaves only when
//!   the follower applies an event adding the same (d, name, inode) with
//!   a commit version above the floor and the same commit time, which
//!   is the op's own event (an earlier binding of the same inode and
//!   name that the follower had not applied yet has an older time), and
//!   `S` then has the name. Entries whose event was applied before the
//!   op returned are not added. Stale entries only make a lookup go to
//!   the server.
//! - Anything the cache cannot place drops state instead of guessing: a
//!   restarted or failed watch stream drops everything; an event that
//!   changes names without a parent inode (a server without the field)
//!   drops everything; a name that is not valid UTF-8 (events carry
//!   lossy text) drops its directory and is never answered locally; a
//!   removed directory, one over `max_names`, or the least recently used
//!   one when over `max_dirs` / `max_total` is dropped. A dropped
//!   directory is never cached again (its creation event is past).

use std::collections::HashMap;

use nokv_types::{EventKind, FileKind, WatchEvent};
use parking_lot::Mutex;

/// Memory bounds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Directories cached at most (least recently used goes first).
    pub max_dirs: usize,
    /// Names (S and pending) per directory; over it the directory goes.
    pub max_names: usize,
    /// Names over all directories.
    pub max_total: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dirs: 4096,
            max_names: 100_000,
            max_total: 1_000_000,
        }
    }
}

/// A binding of a name: inode, commit version and time of its event
/// (in `pending`: the version is the floor, below the op's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bound {
    ino: u64,
    version: u64,
    time: i64,
}

#[derive(Default)]
struct Dir {
    /// False while the directory's creation event is still to come (an
    /// own mkdir returned first): it holds `pending` only and answers
    /// nothing.
    live: bool,
    /// S: name -> the event that bound it.
    names: HashMap<Box<[u8]>, Bound>,
    pending: HashMap<Box<[u8]>, Option<Bound>>,
    used: u64,
}

impl Dir {
    fn len(&self) -> usize {
        self.names.len() + self.pending.len()
    }
}

#[derive(Default)]
struct Inner {
    dirs: HashMap<u64, Dir>,
    total: usize,
    /// Own ops that add a name, in flight, by directory.
    busy: HashMap<u64, usize>,
    /// Own mkdirs in flight, by (parent, name).
    making: HashMap<(u64, Box<[u8]>), usize>,
    /// Commit version of the last event applied (0 before the first).
    /// An own op that begins now commits at a later version.
    applied: u64,
    /// Removals of the command being applied: one command's events
    /// (a rename over a name: the target's removal, then the rename)
    /// are applied only once a later command's event shows they are
    /// all in, so no lookup sees a state between them.
    deferred: Vec<(u64, Box<[u8]>, u64)>,
    deferred_version: u64,
    tick: u64,
}

/// Counters (for tests and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub dirs: usize,
    pub names: usize,
    pub absent_answers: u64,
    pub resets: u64,
}

/// The cache; shared by the core (lookups, own ops) and the watch
/// follower (`apply`, `reset`).
pub struct DirCache {
    inner: Mutex<Inner>,
    limits: Limits,
    absent_answers: std::sync::atomic::AtomicU64,
    resets: std::sync::atomic::AtomicU64,
}

impl Default for DirCache {
    fn default() -> Self {
        DirCache::new(Limits::default())
    }
}

fn key(name: &[u8]) -> Box<[u8]> {
    name.into()
}

impl Inner {
    fn drop_dir(&mut self, dir: u64) {
        if let Some(d) = self.dirs.remove(&dir) {
            self.total -= d.len();
        }
    }

    fn tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    fn evict_lru(&mut self) {
        if let Some((&lru, _)) = self.dirs.iter().min_by_key(|(_, d)| d.used) {
            self.drop_dir(lru);
        }
    }

    /// Drops `dir` if it, or the whole cache, is over its bounds.
    fn enforce(&mut self, dir: u64, limits: &Limits) {
        if self
            .dirs
            .get(&dir)
            .is_some_and(|d| d.len() > limits.max_names)
        {
            self.drop_dir(dir);
        }
        while self.total > limits.max_total {
            self.evict_lru();
        }
    }

    /// The entry of `dir`, made (not live) if missing.
    fn entry(&mut self, dir: u64, limits: &Limits) -> &mut Dir {
        if !self.dirs.contains_key(&dir) {
            while self.dirs.len() >= limits.max_dirs.max(1) {
                self.evict_lru();
            }
        }
        let used = self.tick();
        let d = self.dirs.entry(dir).or_default();
        d.used = used;
        d
    }

    /// Starts answering for the new, empty directory `dir`.
    fn start(&mut self, dir: u64, limits: &Limits) {
        self.entry(dir, limits).live = true;
    }

    fn add(&mut self, dir: u64, name: &[u8], bound: Bound, limits: &Limits) {
        let Some(d) = self.dirs.get_mut(&dir) else {
            return;
        };
        let before = d.len();
        d.names.insert(key(name), bound);
        if let Some(Some(p)) = d.pending.get(name) {
            if p.ino == bound.ino && bound.version > p.version && p.time == bound.time {
                d.pending.remove(name);
            }
        }
        let after = d.len();
        self.total = self.total + after - before;
        self.enforce(dir, limits);
    }

    fn remove(&mut self, dir: u64, name: &[u8], ino: u64) {
        let Some(d) = self.dirs.get_mut(&dir) else {
            return;
        };
        if d.names.get(name).is_some_and(|b| b.ino == ino) {
            d.names.remove(name);
            self.total -= 1;
        }
    }
}

/// A name usable as a cache key: the exact bytes of a valid UTF-8 name
/// without U+FFFD (which lossy event text could have made up).
fn faithful(name: &str) -> bool {
    !name.contains(char::REPLACEMENT_CHARACTER)
}

impl DirCache {
    pub fn new(limits: Limits) -> DirCache {
        DirCache {
            inner: Mutex::new(Inner::default()),
            limits,
            absent_answers: Default::default(),
            resets: Default::default(),
        }
    }

    pub fn stats(&self) -> Stats {
        let inner = self.inner.lock();
        Stats {
            dirs: inner.dirs.len(),
            names: inner.total,
            absent_answers: self
                .absent_answers
                .load(std::sync::atomic::Ordering::Relaxed),
            resets: self.resets.load(std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// True when `dir` is cached (answers lookups).
    pub fn is_cached(&self, dir: u64) -> bool {
        self.inner.lock().dirs.get(&dir).is_some_and(|d| d.live)
    }

    /// True when `dir/name` is known to be absent (see the module
    /// comment for what that guarantees).
    pub fn absent(&self, dir: u64, name: &[u8]) -> bool {
        match std::str::from_utf8(name) {
            Ok(s) if faithful(s) => {}
            _ => return false,
        }
        let mut inner = self.inner.lock();
        if inner.busy.contains_key(&dir) {
            return false;
        }
        let tick = inner.tick();
        let Some(d) = inner.dirs.get_mut(&dir).filter(|d| d.live) else {
            return false;
        };
        d.used = tick;
        let absent = !d.names.contains_key(name) && !d.pending.contains_key(name);
        if absent {
            self.absent_answers
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        absent
    }

    /// Starts an own op that may add a name to `dir`: until the ticket is
    /// dropped, no lookup in `dir` is answered locally.
    pub fn begin(&self, dir: u64) -> Ticket<'_> {
        let mut inner = self.inner.lock();
        *inner.busy.entry(dir).or_insert(0) += 1;
        Ticket {
            cache: self,
            dir,
            floor: inner.applied,
            making: None,
        }
    }

    /// Starts an own mkdir of `parent/name`: its creation event starts
    /// the new directory's cache, whenever it comes.
    pub fn begin_mkdir(&self, parent: u64, name: &[u8]) -> Ticket<'_> {
        let mut t = self.begin(parent);
        let mut inner = self.inner.lock();
        *inner.making.entry((parent, key(name))).or_insert(0) += 1;
        t.making = Some(key(name));
        t
    }

    /// Forgets everything (watch stream restarted: events were missed).
    pub fn reset(&self) {
        let mut inner = self.inner.lock();
        inner.dirs.clear();
        inner.total = 0;
        inner.deferred.clear();
        self.resets
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// Applies the next watch event (events must come in `seq` order,
    /// with no gaps since the last `reset`).
    pub fn apply(&self, ev: &WatchEvent) {
        let mut inner = self.inner.lock();
        inner.applied = inner.applied.max(ev.commit_version);
        if ev.commit_version > inner.deferred_version {
            for (dir, name, ino) in std::mem::take(&mut inner.deferred) {
                inner.remove(dir, &name, ino);
            }
            inner.deferred_version = ev.commit_version;
        }
        let limits = &self.limits;
        let adds = matches!(
            ev.kind,
            EventKind::Created | EventKind::Published | EventKind::Renamed
        );
        let removes = matches!(ev.kind, EventKind::Removed | EventKind::Renamed);
        if !adds && !removes {
            // Replaced, AttrChanged, snapshots: no name comes or goes.
            return;
        }
        // Where the event's names are; anything unplaceable drops all.
        let new = (ev.parent != 0).then_some(ev.parent).zip(ev.name());
        let old = if ev.kind == EventKind::Renamed {
            match ev.old_parent.filter(|&p| p != 0).zip(ev.old_name()) {
                Some(o) => Some(o),
                None => {
                    drop(inner);
                    return self.reset();
                }
            }
        } else {
            None
        };
        let Some((parent, name)) = new else {
            drop(inner);
            return self.reset();
        };
        if let Some((old_parent, old_name)) = old {
            if faithful(old_name) {
                inner
                    .deferred
                    .push((old_parent, key(old_name.as_bytes()), ev.ino));
            } else {
                inner.drop_dir(old_parent);
            }
        }
        if !faithful(name) {
            inner.drop_dir(parent);
        } else if ev.kind == EventKind::Removed {
            inner.deferred.push((parent, key(name.as_bytes()), ev.ino));
        } else {
            let bound = Bound {
                ino: ev.ino,
                version: ev.commit_version,
                time: ev.time,
            };
            inner.add(parent, name.as_bytes(), bound, limits);
        }
        if ev.file_kind == FileKind::Dir {
            match ev.kind {
                EventKind::Removed => inner.drop_dir(ev.ino),
                EventKind::Created => {
                    // Ours: a mkdir in flight, or one that returned first.
                    let ours = inner.dirs.contains_key(&ev.ino)
                        || inner.making.contains_key(&(parent, key(name.as_bytes())));
                    if ours {
                        inner.start(ev.ino, limits);
                    }
                }
                _ => {}
            }
        }
    }
}

/// An own op in flight (see [`DirCache::begin`]).
pub struct Ticket<'a> {
    cache: &'a DirCache,
    dir: u64,
    floor: u64,
    making: Option<Box<[u8]>>,
}

impl Ticket<'_> {
    /// The op succeeded: `name` in the ticket's directory is `ino`,
    /// bound by the op's own command at `ctime` (the inode's ctime in
    /// the reply: create, mkdir, symlink, link set it to the commit
    /// time).
    pub fn added(&self, name: &[u8], ino: u64, ctime: i64) {
        let own = Bound {
            ino,
            version: self.floor,
            time: ctime,
        };
        self.pend(name, Some(own));
    }

    /// The op succeeded and moved some inode to `name` (a rename: the
    /// reply names neither inode nor time). The name stays pending while
    /// the directory is cached.
    pub fn moved_in(&self, name: &[u8]) {
        self.pend(name, None);
    }

    fn pend(&self, name: &[u8], own: Option<Bound>) {
        let mut inner = self.cache.inner.lock();
        let tick = inner.tick();
        let Some(d) = inner.dirs.get_mut(&self.dir) else {
            return;
        };
        d.used = tick;
        if let (Some(own), Some(b)) = (own, d.names.get(name)) {
            if b.ino == own.ino && b.version > own.version && b.time == own.time {
                // The op's own event beat the reply: nothing pending.
                return;
            }
        }
        let before = d.len();
        d.pending.insert(key(name), own);
        let after = d.len();
        inner.total = inner.total + after - before;
        inner.enforce(self.dir, &self.cache.limits);
    }

    /// The op succeeded and made directory `ino` (see
    /// [`Ticket::added`]): cache it once its creation event is applied
    /// (unless that already happened); own names added to it meanwhile
    /// wait in its `pending`.
    pub fn made_dir(&self, name: &[u8], ino: u64, ctime: i64) {
        self.added(name, ino, ctime);
        let mut inner = self.cache.inner.lock();
        inner.entry(ino, &self.cache.limits);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        let mut inner = self.cache.inner.lock();
        if let Some(n) = inner.busy.get_mut(&self.dir) {
            *n -= 1;
            if *n == 0 {
                inner.busy.remove(&self.dir);
            }
        }
        if let Some(name) = self.making.take() {
            let k = (self.dir, name);
            if let Some(n) = inner.making.get_mut(&k) {
                *n -= 1;
                if *n == 0 {
                    inner.making.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
