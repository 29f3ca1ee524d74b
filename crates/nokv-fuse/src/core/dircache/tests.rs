//! The cache's logic against hand-made event sequences, and a property
//! test against a model volume whose events reach the cache late.

use std::collections::BTreeMap;

use nokv_types::{EventKind, FileKind, WatchEvent};
use proptest::prelude::*;

use super::{DirCache, Limits};

const ROOT: u64 = 1;
const D: u64 = 10;

use crate::core::test_events::event as ev;

fn created(seq: u64, parent: u64, name: &str, ino: u64) -> WatchEvent {
    ev(seq, EventKind::Created, parent, name, ino, FileKind::File)
}

fn removed(seq: u64, parent: u64, name: &str, ino: u64) -> WatchEvent {
    ev(seq, EventKind::Removed, parent, name, ino, FileKind::File)
}

fn renamed(seq: u64, from: (u64, &str), to: (u64, &str), ino: u64) -> WatchEvent {
    let mut e = ev(seq, EventKind::Renamed, to.0, to.1, ino, FileKind::File);
    e.old_parent = Some(from.0);
    e.old_path = Some(format!("/p{}/{}", from.0, from.1));
    e
}

/// An event of a later command `v` that moves no names: removals of
/// earlier commands are applied when it arrives.
fn settle(c: &DirCache, v: u64) {
    c.apply(&ev(v, EventKind::AttrChanged, D, "zz", 999, FileKind::File));
}

/// A cache with directory `D` made by this mount and live at seq 1.
fn with_d() -> DirCache {
    let c = DirCache::default();
    let t = c.begin_mkdir(ROOT, b"d");
    t.made_dir(b"d", D, 1);
    drop(t);
    assert!(!c.is_cached(D), "not before its creation event");
    assert!(!c.absent(D, b"x"));
    c.apply(&ev(1, EventKind::Created, ROOT, "d", D, FileKind::Dir));
    assert!(c.is_cached(D));
    c
}

#[test]
fn own_mkdir_caches_the_new_directory_only() {
    let c = with_d();
    assert!(c.absent(D, b"x"));
    // The root was not made here; a directory another client made isn't
    // ours either.
    assert!(!c.absent(ROOT, b"x"));
    c.apply(&ev(2, EventKind::Created, ROOT, "e", 11, FileKind::Dir));
    assert!(!c.is_cached(11));
    assert!(!c.absent(ROOT, b"d"));
}

#[test]
fn a_creation_event_that_beats_the_mkdir_reply_still_starts_the_cache() {
    let c = DirCache::default();
    let t = c.begin_mkdir(ROOT, b"d");
    c.apply(&ev(5, EventKind::Created, ROOT, "d", D, FileKind::Dir));
    t.made_dir(b"d", D, 5);
    drop(t);
    assert!(c.absent(D, b"x"));
    // Another mount's mkdir of the same name would have failed; the one
    // that won is exact from its creation event too.
}

#[test]
fn names_added_before_the_directory_is_live_wait_in_pending() {
    let c = DirCache::default();
    let t = c.begin_mkdir(ROOT, b"d");
    t.made_dir(b"d", D, 10);
    drop(t);
    let t = c.begin(D);
    t.added(b"f", 20, 11);
    drop(t);
    c.apply(&ev(10, EventKind::Created, ROOT, "d", D, FileKind::Dir));
    assert!(!c.absent(D, b"f"), "own create is visible before its event");
    assert!(c.absent(D, b"g"));
    c.apply(&created(11, D, "f", 20));
    assert!(!c.absent(D, b"f"));
    c.apply(&removed(12, D, "f", 20));
    assert!(!c.absent(D, b"f"), "removals wait for the command's end");
    settle(&c, 13);
    assert!(c.absent(D, b"f"));
}

#[test]
fn other_clients_names_come_with_their_events() {
    let c = with_d();
    c.apply(&created(2, D, "x", 20));
    assert!(!c.absent(D, b"x"));
    c.apply(&removed(3, D, "x", 20));
    settle(&c, 4);
    assert!(c.absent(D, b"x"));
}

#[test]
fn own_ops_in_flight_answer_nothing_in_their_directory() {
    let c = with_d();
    let t = c.begin(D);
    assert!(!c.absent(D, b"y"));
    drop(t);
    assert!(c.absent(D, b"y"));
    // A failed op (dropped ticket, nothing added) leaves nothing behind.
    let t = c.begin_mkdir(D, b"sub");
    drop(t);
    c.apply(&ev(2, EventKind::Created, D, "sub", 30, FileKind::Dir));
    assert!(!c.is_cached(30), "another mount's mkdir won the name");
}

#[test]
fn create_unlink_recreate_with_events_late() {
    let c = with_d();
    let t = c.begin(D);
    t.added(b"x", 20, 2);
    drop(t);
    // unlink x (own, no cache change), then create x again: new inode.
    let t = c.begin(D);
    t.added(b"x", 21, 4);
    drop(t);
    assert!(!c.absent(D, b"x"));
    c.apply(&created(2, D, "x", 20));
    assert!(!c.absent(D, b"x"));
    c.apply(&removed(3, D, "x", 20));
    assert!(!c.absent(D, b"x"), "the re-created x is still pending");
    c.apply(&created(4, D, "x", 21));
    assert!(!c.absent(D, b"x"));
    c.apply(&removed(5, D, "x", 21));
    settle(&c, 6);
    assert!(c.absent(D, b"x"));
}

#[test]
fn an_event_that_beats_the_reply_leaves_nothing_pending() {
    let c = with_d();
    let t = c.begin(D);
    c.apply(&created(2, D, "x", 20));
    t.added(b"x", 20, 2);
    drop(t);
    c.apply(&removed(3, D, "x", 20));
    settle(&c, 4);
    assert!(c.absent(D, b"x"));
}

#[test]
fn a_removal_of_another_inode_keeps_the_name() {
    let c = with_d();
    c.apply(&created(2, D, "x", 20));
    c.apply(&removed(3, D, "x", 99));
    assert!(!c.absent(D, b"x"));
}

#[test]
fn rename_away_and_back_before_the_events() {
    let c = with_d();
    c.apply(&created(2, D, "x", 20));
    // Own rename x -> y, then y -> x; the events come later.
    let t = c.begin(D);
    t.moved_in(b"y");
    drop(t);
    let t = c.begin(D);
    t.moved_in(b"x");
    drop(t);
    assert!(!c.absent(D, b"x") && !c.absent(D, b"y"));
    c.apply(&renamed(3, (D, "x"), (D, "y"), 20));
    settle(&c, 4);
    assert!(!c.absent(D, b"x"), "x is back (own rename, event to come)");
    c.apply(&renamed(5, (D, "y"), (D, "x"), 20));
    settle(&c, 6);
    assert!(!c.absent(D, b"x"));
    // Names renamed in stay pending (a rename's reply has nothing to
    // match its event with): y goes to the server, which says absent.
    assert!(!c.absent(D, b"y"));
    c.apply(&created(7, D, "z", 21));
    c.apply(&renamed(8, (D, "z"), (D, "w"), 21));
    settle(&c, 9);
    assert!(c.absent(D, b"z"), "other clients' renames apply");
}

#[test]
fn rename_between_cached_directories() {
    let c = with_d();
    let t = c.begin_mkdir(ROOT, b"e");
    t.made_dir(b"e", 11, 2);
    drop(t);
    c.apply(&ev(2, EventKind::Created, ROOT, "e", 11, FileKind::Dir));
    c.apply(&created(3, D, "x", 20));
    c.apply(&renamed(4, (D, "x"), (11, "z"), 20));
    settle(&c, 5);
    assert!(c.absent(D, b"x"));
    assert!(!c.absent(11, b"z"));
}

#[test]
fn rename_over_an_existing_name() {
    let c = with_d();
    c.apply(&created(2, D, "a", 20));
    c.apply(&created(3, D, "b", 21));
    // One command: the replaced target's removal, then the rename; no
    // lookup between the two may miss b.
    c.apply(&removed(4, D, "b", 21));
    assert!(!c.absent(D, b"b"));
    let mut r = renamed(4, (D, "a"), (D, "b"), 20);
    r.seq += 1;
    c.apply(&r);
    assert!(!c.absent(D, b"b"));
    settle(&c, 5);
    assert!(c.absent(D, b"a"));
    assert!(!c.absent(D, b"b"));
    c.apply(&removed(6, D, "b", 20));
    settle(&c, 7);
    assert!(c.absent(D, b"b"));
}

#[test]
fn hard_links() {
    let c = with_d();
    c.apply(&created(2, D, "x", 20));
    // Own link x -> h (committed at 5); another client removes x
    // meanwhile.
    let t = c.begin(D);
    t.added(b"h", 20, 5);
    drop(t);
    c.apply(&removed(3, D, "x", 20));
    settle(&c, 4);
    assert!(c.absent(D, b"x"));
    assert!(!c.absent(D, b"h"));
    c.apply(&created(5, D, "h", 20));
    assert!(!c.absent(D, b"h"));
    c.apply(&removed(6, D, "h", 20));
    settle(&c, 7);
    assert!(c.absent(D, b"h"));
}

#[test]
fn an_older_binding_of_the_same_inode_and_name_does_not_clear_an_own_link() {
    let c = with_d();
    c.apply(&created(2, D, "x", 20));
    // Not applied yet: another client links x as h (3) and unlinks h
    // (4); then this mount links x as h (committed at 6).
    let t = c.begin(D);
    t.added(b"h", 20, 6);
    drop(t);
    c.apply(&created(3, D, "h", 20));
    c.apply(&removed(4, D, "h", 20));
    c.apply(&created(5, D, "other", 30));
    assert!(!c.absent(D, b"h"), "the own link's event is still to come");
    c.apply(&created(6, D, "h", 20));
    assert!(!c.absent(D, b"h"));
    c.apply(&removed(7, D, "h", 20));
    settle(&c, 8);
    assert!(c.absent(D, b"h"), "matched by its own event, then removed");
}

#[test]
fn removing_the_directory_drops_it() {
    let c = with_d();
    c.apply(&ev(2, EventKind::Removed, ROOT, "d", D, FileKind::Dir));
    assert!(!c.is_cached(D));
}

#[test]
fn a_restart_or_an_unplaceable_event_drops_everything() {
    let c = with_d();
    c.reset();
    assert!(!c.is_cached(D));
    let c = with_d();
    // An event from a server without parent inodes.
    c.apply(&created(2, 0, "x", 20));
    assert!(!c.is_cached(D));
    let c = with_d();
    let mut r = renamed(2, (D, "x"), (D, "y"), 20);
    r.old_parent = None;
    c.apply(&r);
    assert!(!c.is_cached(D));
    // Changes that move no names keep the cache.
    let c = with_d();
    c.apply(&ev(2, EventKind::Replaced, 0, "", 20, FileKind::File));
    c.apply(&ev(3, EventKind::AttrChanged, D, "x", 20, FileKind::File));
    assert!(c.is_cached(D));
}

#[test]
fn names_that_are_not_plain_utf8_are_never_answered() {
    let c = with_d();
    assert!(!c.absent(D, b"\xff"));
    assert!(!c.absent(D, "a\u{fffd}".as_bytes()));
    // An event whose name may have been made lossy drops the directory.
    c.apply(&created(2, D, "b\u{fffd}", 20));
    assert!(!c.is_cached(D));
}

#[test]
fn bounds_drop_directories() {
    let c = DirCache::new(Limits {
        max_dirs: 2,
        max_names: 3,
        max_total: 100,
    });
    let mk = |seq: u64, ino: u64| {
        let t = c.begin_mkdir(ROOT, format!("d{ino}").as_bytes());
        t.made_dir(format!("d{ino}").as_bytes(), ino, seq as i64);
        drop(t);
        c.apply(&ev(
            seq,
            EventKind::Created,
            ROOT,
            &format!("d{ino}"),
            ino,
            FileKind::Dir,
        ));
    };
    mk(1, 10);
    mk(2, 11);
    assert!(c.absent(10, b"x")); // 10 is now the most recently used
    mk(3, 12);
    assert!(c.is_cached(10) && c.is_cached(12) && !c.is_cached(11));
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        c.apply(&created(10 + i as u64, 10, n, 100 + i as u64));
    }
    assert!(c.is_cached(10));
    c.apply(&created(20, 10, "d", 200));
    assert!(!c.is_cached(10), "over max_names");
    assert_eq!(c.stats().names, 0);
}

// ---- property test: a model volume with late events ----

#[derive(Debug, Clone)]
enum Op {
    OwnCreate(u8),
    OtherCreate(u8),
    Unlink(u8),
    OwnRename(u8, u8),
    OtherRename(u8, u8),
    OwnLink(u8, u8),
    Deliver(u8),
}

fn op() -> impl Strategy<Value = Op> {
    let n = 0u8..4;
    prop_oneof![
        n.clone().prop_map(Op::OwnCreate),
        n.clone().prop_map(Op::OtherCreate),
        n.clone().prop_map(Op::Unlink),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::OwnRename(a, b)),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::OtherRename(a, b)),
        (n.clone(), n.clone()).prop_map(|(a, b)| Op::OwnLink(a, b)),
        (0u8..4).prop_map(Op::Deliver),
        (0u8..4).prop_map(Op::Deliver),
    ]
}

fn name(i: u8) -> String {
    format!("n{i}")
}

/// The server side of the model: `D`'s entries and its event log.
struct Model {
    state: BTreeMap<String, u64>,
    /// State after each event: `states[k]` = after the first k events.
    states: Vec<BTreeMap<String, u64>>,
    log: Vec<WatchEvent>,
    /// Names whose current binding an own op made, with the index of
    /// that op's last event.
    own: BTreeMap<String, usize>,
    next_ino: u64,
    version: u64,
}

impl Model {
    /// Records one command's events; `self.state` is already the state
    /// after it, `before` the state before it. A cache that has applied
    /// only part of a command may answer for `before` at most.
    fn commit(
        &mut self,
        before: BTreeMap<String, u64>,
        events: Vec<(EventKind, String, Option<String>, u64)>,
    ) {
        self.version += 1;
        let last = events.len() - 1;
        for (i, (kind, n, old, ino)) in events.into_iter().enumerate() {
            let mut e = ev(self.version, kind, D, &n, ino, FileKind::File);
            e.seq += i as u64;
            if let Some(o) = old {
                e.old_parent = Some(D);
                e.old_path = Some(format!("/d/{o}"));
            }
            self.log.push(e);
            self.states.push(if i == last {
                self.state.clone()
            } else {
                before.clone()
            });
        }
    }

    fn rename(&mut self, a: &str, b: &str, own: bool) -> Option<u64> {
        let ino = *self.state.get(a)?;
        if a == b {
            return Some(ino);
        }
        let before = self.state.clone();
        let mut evs = Vec::new();
        if let Some(old) = self.state.get(b).copied() {
            if old == ino {
                return Some(ino);
            }
            evs.push((EventKind::Removed, b.to_string(), None, old));
        }
        self.state.remove(a);
        self.state.insert(b.to_string(), ino);
        self.own.remove(a);
        evs.push((EventKind::Renamed, b.to_string(), Some(a.to_string()), ino));
        self.commit(before, evs);
        if own {
            self.own.insert(b.to_string(), self.log.len() - 1);
        } else {
            self.own.remove(b);
        }
        Some(ino)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// An "absent" answer is true of the state at the applied position,
    /// and never hides a name an own op made whose event is still to
    /// come.
    #[test]
    fn absent_answers_are_true_at_the_applied_position(ops in prop::collection::vec(op(), 1..60)) {
        let c = with_d();
        let mut m = Model {
            state: BTreeMap::new(),
            states: vec![BTreeMap::new()],
            log: Vec::new(),
            own: BTreeMap::new(),
            next_ino: 100,
            version: 1,
        };
        let mut applied = 0usize;
        for op in ops {
            match op {
                Op::OwnCreate(n) | Op::OtherCreate(n) => {
                    let n = name(n);
                    let own = matches!(op, Op::OwnCreate(_));
                    let t = own.then(|| c.begin(D));
                    if !m.state.contains_key(&n) {
                        m.next_ino += 1;
                        let ino = m.next_ino;
                        let before = m.state.clone();
                        m.state.insert(n.clone(), ino);
                        m.commit(before, vec![(EventKind::Created, n.clone(), None, ino)]);
                        if let Some(t) = &t {
                            t.added(n.as_bytes(), ino, m.version as i64);
                            m.own.insert(n.clone(), m.log.len() - 1);
                        } else {
                            m.own.remove(&n);
                        }
                    }
                }
                Op::Unlink(n) => {
                    let n = name(n);
                    let before = m.state.clone();
                    if let Some(ino) = m.state.remove(&n) {
                        m.own.remove(&n);
                        m.commit(before, vec![(EventKind::Removed, n, None, ino)]);
                    }
                }
                Op::OwnRename(a, b) => {
                    let (a, b) = (name(a), name(b));
                    let t = c.begin(D);
                    if m.rename(&a, &b, true).is_some() {
                        t.moved_in(b.as_bytes());
                    }
                }
                Op::OtherRename(a, b) => {
                    m.rename(&name(a), &name(b), false);
                }
                Op::OwnLink(a, b) => {
                    let (a, b) = (name(a), name(b));
                    let t = c.begin(D);
                    if let Some(&ino) = m.state.get(&a) {
                        if !m.state.contains_key(&b) {
                            let before = m.state.clone();
                            m.state.insert(b.clone(), ino);
                            m.commit(before, vec![(EventKind::Created, b.clone(), None, ino)]);
                            t.added(b.as_bytes(), ino, m.version as i64);
                            m.own.insert(b.clone(), m.log.len() - 1);
                        }
                    }
                }
                Op::Deliver(k) => {
                    for _ in 0..k {
                        if let Some(e) = m.log.get(applied) {
                            c.apply(e);
                            applied += 1;
                        }
                    }
                }
            }
            for i in 0..4 {
                let n = name(i);
                if c.absent(D, n.as_bytes()) {
                    prop_assert!(
                        !m.states[applied].contains_key(&n),
                        "{n} answered absent but present after {applied} events"
                    );
                    if let Some(&at) = m.own.get(&n) {
                        prop_assert!(
                            at < applied,
                            "{n} answered absent, but an own op bound it (event {at} not applied, {applied} are)"
                        );
                    }
                }
            }
        }
    }
}
