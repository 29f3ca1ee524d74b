//! Which handles hold the lease, against hand-made events.

use std::time::Duration;

use nokv_types::{EventKind, FileKind, WatchEvent};

use super::ReaderLeases;

fn event(v: u64, kind: EventKind, ino: u64, generation: u64) -> WatchEvent {
    WatchEvent {
        generation,
        time: 1000 + v as i64,
        ..crate::core::test_events::event(v, kind, 1, &format!("f{ino}"), ino, FileKind::File)
    }
}

#[test]
fn handles_reading_across_a_replacement_hold_the_oldest_time() {
    let l = ReaderLeases::new(Duration::from_secs(60));
    l.opened(1, 5, 1);
    l.opened(2, 6, 1);
    l.opened(3, 5, 2); // opened after the replacement below
    assert_eq!(l.since(), None);
    // chmod (same generation) and other files change nothing.
    l.apply(&event(2, EventKind::AttrChanged, 5, 1));
    l.apply(&event(3, EventKind::Replaced, 7, 9));
    l.apply(&event(4, EventKind::Created, 5, 0));
    assert_eq!(l.since(), None);
    l.apply(&event(5, EventKind::Replaced, 5, 2));
    assert_eq!(l.since(), Some(1005));
    l.apply(&event(6, EventKind::Removed, 6, 1));
    l.apply(&event(7, EventKind::Replaced, 5, 3)); // handle 1 keeps 1005
    assert_eq!(l.since(), Some(1005));
    l.closed(1);
    assert_eq!(
        l.since(),
        Some(1006),
        "handle 2 since the removal; 3 since v7"
    );
    l.closed(2);
    assert_eq!(l.since(), Some(1007));
    l.closed(3);
    assert_eq!(l.since(), None);
}

#[test]
fn a_restarted_stream_holds_every_open_handle() {
    let l = ReaderLeases::new(Duration::from_secs(60));
    l.opened(1, 5, 1);
    l.reset();
    assert_eq!(l.since(), Some(i64::MIN), "no event seen: any time");
    l.closed(1);
    l.apply(&event(9, EventKind::AttrChanged, 8, 1));
    l.opened(2, 5, 1);
    l.reset();
    assert_eq!(l.since(), Some(1009), "the last event applied");
    l.closed(2);
    assert_eq!(l.since(), None);
}
