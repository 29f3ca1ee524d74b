//! The cache against hand-made sequences, and a property test against a
//! model server whose replies and events reach the cache late and in
//! any interleaving.

use std::collections::VecDeque;
use std::time::Duration;

use nokv_client::Attr;
use nokv_types::{EventKind, FileKind, WatchEvent};
use proptest::prelude::*;

use super::DirAttrs;

const ROOT: u64 = 1;
const D: u64 = 10;
const E: u64 = 11;

fn dir(ino: u64, time: i64) -> Attr {
    Attr {
        ino,
        kind: FileKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        atime: time,
        mtime: time,
        ctime: time,
        nlink: 2,
        generation: 0,
        digest: None,
    }
}

fn child(ino: u64, kind: FileKind, time: i64) -> Attr {
    Attr {
        kind,
        ..dir(ino, time)
    }
}

fn event(v: u64, kind: EventKind, parent: u64, ino: u64, fk: FileKind) -> WatchEvent {
    crate::core::test_events::event(v, kind, parent, &format!("n{ino}"), ino, fk)
}

fn cache() -> DirAttrs {
    DirAttrs::new(Duration::from_secs(3600))
}

#[test]
fn own_creates_advance_the_directory_and_their_events_are_skipped() {
    let c = cache();
    c.fill(&dir(D, 1), c.mark());
    c.begin(D).added(&child(20, FileKind::File, 5));
    let a = c.get(D).expect("kept");
    assert_eq!((a.mtime, a.ctime, a.nlink), (5, 5, 2));
    c.begin(D).added(&child(21, FileKind::Dir, 6));
    let a = c.get(D).expect("kept");
    assert_eq!((a.mtime, a.nlink), (6, 3));
    assert_eq!(c.get(21).map(|a| a.ino), Some(21), "the new directory");
    // Their own events change nothing.
    c.apply(&event(5, EventKind::Created, D, 20, FileKind::File));
    c.apply(&event(6, EventKind::Created, D, 21, FileKind::Dir));
    assert_eq!(c.get(D).map(|a| a.mtime), Some(6));
    assert_eq!(c.hits(), 4);
}

#[test]
fn foreign_events_drop_what_they_touch() {
    let c = cache();
    for (ev, gone) in [
        (event(7, EventKind::Created, D, 30, FileKind::File), D),
        (event(7, EventKind::Published, D, 30, FileKind::File), D),
        (event(7, EventKind::Removed, D, 30, FileKind::File), D),
        (event(7, EventKind::AttrChanged, ROOT, D, FileKind::Dir), D),
        (event(7, EventKind::Removed, ROOT, D, FileKind::Dir), D),
    ] {
        c.fill(&dir(D, 1), c.mark());
        c.fill(&dir(E, 1), c.mark());
        c.apply(&ev);
        assert!(c.get(gone).is_none(), "{:?} drops {gone}", ev.kind);
        assert!(
            c.get(E).is_some(),
            "{:?} keeps the other directory",
            ev.kind
        );
    }
    // A rename drops both directories; one with no old parent drops all.
    c.fill(&dir(D, 1), c.mark());
    c.fill(&dir(E, 1), c.mark());
    let mut r = event(8, EventKind::Renamed, D, 30, FileKind::File);
    r.old_parent = Some(E);
    c.apply(&r);
    assert!(c.get(D).is_none() && c.get(E).is_none());
    c.fill(&dir(D, 1), c.mark());
    r.old_parent = None;
    c.apply(&r);
    assert!(c.get(D).is_none());
    // Replaced and snapshot events keep everything.
    c.fill(&dir(D, 1), c.mark());
    c.apply(&event(9, EventKind::Replaced, D, 30, FileKind::File));
    c.apply(&event(9, EventKind::SnapshotCreated, 0, 0, FileKind::Dir));
    assert!(c.get(D).is_some());
}

#[test]
fn a_reply_that_raced_a_change_is_not_stored() {
    let c = cache();
    let m = c.mark();
    c.apply(&event(3, EventKind::AttrChanged, ROOT, E, FileKind::Dir));
    c.fill(&dir(D, 1), m);
    assert!(c.get(D).is_none(), "the fill began before the event");
    c.fill(&dir(D, 1), c.mark());
    let change = c.begin(D);
    c.fill(&dir(E, 1), c.mark());
    change.added(&child(20, FileKind::File, 5));
    assert!(c.get(D).is_none(), "the create began before another store");
    // And its event, not awaited, drops again whatever came since.
    c.fill(&dir(D, 1), c.mark());
    c.apply(&event(5, EventKind::Created, D, 20, FileKind::File));
    assert!(c.get(D).is_none());
}

#[test]
fn own_changes_and_resets_drop() {
    let c = cache();
    c.fill(&dir(D, 1), c.mark());
    c.fill(&dir(E, 1), c.mark());
    c.changed(&[D]);
    assert!(c.get(D).is_none() && c.get(E).is_some());
    c.reset();
    assert!(c.get(E).is_none());
    // Files are never kept.
    c.fill(&child(20, FileKind::File, 1), c.mark());
    assert!(c.get(20).is_none());
}

#[tokio::test]
async fn the_follower_waits_for_a_reply_its_event_beat() {
    let c = std::sync::Arc::new(cache());
    c.fill(&dir(D, 1), c.mark());
    let ev = event(5, EventKind::Created, D, 20, FileKind::File);
    // Nothing in flight: no wait.
    let t = std::time::Instant::now();
    c.settle(&ev).await;
    assert!(t.elapsed() < super::SETTLE);
    // The event arrives while its command's reply is on the way.
    let change = c.begin(D);
    let follower = {
        let c = c.clone();
        let ev = ev.clone();
        tokio::spawn(async move {
            c.settle(&ev).await;
            c.apply(&ev);
        })
    };
    tokio::task::yield_now().await;
    change.added(&child(20, FileKind::File, 5));
    follower.await.unwrap();
    assert_eq!(c.get(D).map(|a| a.mtime), Some(5), "recognised as own");
    // A reply that never comes holds the follower up for SETTLE at most,
    // and the event is then another client's.
    let stuck = c.begin(D);
    let t = std::time::Instant::now();
    let ev = event(6, EventKind::Created, D, 21, FileKind::File);
    c.settle(&ev).await;
    c.apply(&ev);
    assert!(t.elapsed() >= super::SETTLE);
    assert!(c.get(D).is_none());
    drop(stuck);
}

#[test]
fn entries_expire() {
    let c = DirAttrs::new(Duration::ZERO);
    c.fill(&dir(D, 1), c.mark());
    assert!(c.get(D).is_none());
}

// ---- model ----

/// What an own or foreign command does.
#[derive(Debug, Clone, Copy)]
enum Cmd {
    Create(u64),
    Mkdir(u64),
    Chmod(u64),
}

/// The server: every directory's attributes after each version.
struct Server {
    version: u64,
    next_ino: u64,
    /// (version, D's attrs, E's attrs) after each command.
    history: Vec<(u64, Attr, Attr)>,
    events: VecDeque<WatchEvent>,
}

impl Server {
    fn now(&self, d: u64) -> Attr {
        let (_, a, b) = self.history.last().expect("history");
        if d == D {
            a.clone()
        } else {
            b.clone()
        }
    }

    /// Commits `cmd`; returns what its reply carries.
    fn commit(&mut self, cmd: Cmd) -> (u64, Option<Attr>) {
        self.version += 1;
        let v = self.version;
        let t = v as i64;
        let (_, mut a, mut b) = self.history.last().expect("history").clone();
        let (target, reply) = match cmd {
            Cmd::Create(d) | Cmd::Mkdir(d) => {
                let kind = if matches!(cmd, Cmd::Mkdir(_)) {
                    FileKind::Dir
                } else {
                    FileKind::File
                };
                let ino = self.next_ino;
                self.next_ino += 1;
                let t_attr = if d == D { &mut a } else { &mut b };
                t_attr.mtime = t;
                t_attr.ctime = t;
                if kind == FileKind::Dir {
                    t_attr.nlink += 1;
                }
                self.events
                    .push_back(event(v, EventKind::Created, d, ino, kind));
                (d, Some(child(ino, kind, t)))
            }
            Cmd::Chmod(d) => {
                let t_attr = if d == D { &mut a } else { &mut b };
                t_attr.mode ^= 0o022;
                t_attr.ctime = t;
                self.events
                    .push_back(event(v, EventKind::AttrChanged, ROOT, d, FileKind::Dir));
                (d, None)
            }
        };
        self.history.push((v, a, b));
        (target, reply)
    }

    /// True when `d` had attributes `same` calls equal to `attr` at
    /// some version at or after `from`.
    fn had(&self, d: u64, attr: &Attr, from: u64, same: impl Fn(&Attr, &Attr) -> bool) -> bool {
        self.history.iter().enumerate().any(|(i, (_, a, b))| {
            let until = self.history.get(i + 1).map_or(u64::MAX, |n| n.0);
            let x = if d == D { a } else { b };
            until > from && same(x, attr)
        })
    }
}

enum Flight<'a> {
    Own {
        cmd: Cmd,
        change: Option<super::Change<'a>>,
        done: Option<(u64, Option<Attr>, u64)>,
    },
    Fill {
        d: u64,
        mark: super::Mark,
        read: Option<(Attr, u64)>,
    },
}

fn run(steps: &[(u8, u8)]) {
    let c = cache();
    let mut s = Server {
        version: 1,
        next_ino: 100,
        history: vec![(1, dir(D, 1), dir(E, 1))],
        events: VecDeque::new(),
    };
    let mut applied = 1u64;
    // Per directory: the version of the latest own command that
    // returned, the latest commit time of an own create that did, and
    // the version of the latest own chmod that did.
    let mut returned = [(D, 1u64, 0i64, 1u64), (E, 1, 0, 1)];
    // Per directory: the ctime of the last answer (answers never go back).
    let mut last = [(D, 0i64), (E, 0)];
    // Own commands committed: (directory, version).
    let mut committed: Vec<(u64, u64)> = Vec::new();
    let mut flights: Vec<Flight> = Vec::new();
    for &(op, arg) in steps {
        let d = if arg & 1 == 0 { D } else { E };
        let pick = usize::from(arg >> 1);
        match op % 9 {
            0 => flights.push(Flight::Own {
                cmd: Cmd::Create(d),
                change: Some(c.begin(d)),
                done: None,
            }),
            1 => flights.push(Flight::Own {
                cmd: Cmd::Mkdir(d),
                change: Some(c.begin(d)),
                done: None,
            }),
            2 => flights.push(Flight::Own {
                cmd: Cmd::Chmod(d),
                change: None,
                done: None,
            }),
            3 => flights.push(Flight::Fill {
                d,
                mark: c.mark(),
                read: None,
            }),
            4 => {
                // Another client's command.
                let cmd = [Cmd::Create(d), Cmd::Mkdir(d), Cmd::Chmod(d)][pick % 3];
                s.commit(cmd);
            }
            5 => {
                // The server handles a request in flight.
                let n = flights.len();
                if n > 0 {
                    match &mut flights[pick % n] {
                        Flight::Own {
                            cmd,
                            done: done @ None,
                            ..
                        } => {
                            let (target, reply) = s.commit(*cmd);
                            committed.push((target, s.version));
                            *done = Some((target, reply, s.version));
                        }
                        Flight::Fill {
                            d,
                            read: read @ None,
                            ..
                        } => {
                            *read = Some((s.now(*d), s.version));
                        }
                        _ => {}
                    }
                }
            }
            6 => {
                // A handled request's reply arrives.
                let n = flights.len();
                if n > 0 {
                    let i = pick % n;
                    let ready = match &flights[i] {
                        Flight::Own { done, .. } => done.is_some(),
                        Flight::Fill { read, .. } => read.is_some(),
                    };
                    if ready {
                        match flights.remove(i) {
                            Flight::Own {
                                change,
                                done: Some((target, reply, v)),
                                ..
                            } => {
                                let r = returned.iter_mut().find(|r| r.0 == target).expect("dir");
                                r.1 = r.1.max(v);
                                match (reply, change) {
                                    (Some(child), Some(change)) => {
                                        r.2 = r.2.max(child.ctime);
                                        change.added(&child);
                                    }
                                    _ => {
                                        r.3 = r.3.max(v);
                                        c.changed(&[target]);
                                    }
                                }
                            }
                            Flight::Fill {
                                mark,
                                read: Some((a, _)),
                                ..
                            } => c.fill(&a, mark),
                            _ => unreachable!(),
                        }
                    }
                }
            }
            7 => {
                // The follower applies the next event.
                if let Some(ev) = s.events.pop_front() {
                    applied = ev.commit_version;
                    c.apply(&ev);
                }
            }
            _ => {
                if let Some(a) = c.get(d) {
                    let &(_, own_version, own_time, own_chmod) =
                        returned.iter().find(|r| r.0 == d).expect("dir");
                    // Permission bits: never older than the stream or an
                    // own chmod that returned (an own create advances
                    // an entry as of the stream: a foreign chmod before
                    // it may still be on its way).
                    let perms_from = applied.max(own_chmod);
                    let perms =
                        |x: &Attr, y: &Attr| (x.mode, x.uid, x.gid) == (y.mode, y.uid, y.gid);
                    assert!(
                        s.had(d, &a, perms_from, perms),
                        "{a:?} for {d}: permissions older than {perms_from}"
                    );
                    let from = applied.max(own_version);
                    // Monotonic reads.
                    let l = last.iter_mut().find(|l| l.0 == d).expect("dir");
                    assert!(
                        a.ctime >= l.1,
                        "{a:?} for {d}: older than an earlier answer"
                    );
                    l.1 = a.ctime;
                    // Read your writes.
                    assert!(
                        a.mtime >= own_time,
                        "{a:?} for {d}: misses an own create at {own_time}"
                    );
                    // Once the stream is past every own command in the
                    // directory: exactly a state, no older than both.
                    let settled = !committed.iter().any(|&(x, v)| x == d && v > applied);
                    if settled {
                        assert!(
                            s.had(d, &a, from, |x, y| x == y),
                            "{a:?} for {d} is no state at or after version {from}"
                        );
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]
    #[test]
    fn answers_are_states_no_older_than_the_stream_and_own_replies(
        steps in proptest::collection::vec((0u8..9, any::<u8>()), 1..200)
    ) {
        run(&steps);
    }
}
