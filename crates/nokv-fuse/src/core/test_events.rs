//! Hand-made watch events for the caches' tests.

use nokv_types::{EventKind, FileKind, WatchEvent, EVENTS_PER_COMMAND};

/// The (first) event of command `v`, committed at time `v`, about
/// `parent/name`.
pub(crate) fn event(
    v: u64,
    kind: EventKind,
    parent: u64,
    name: &str,
    ino: u64,
    fk: FileKind,
) -> WatchEvent {
    WatchEvent {
        seq: v * EVENTS_PER_COMMAND,
        commit_version: v,
        kind,
        path: format!("/p{parent}/{name}"),
        old_path: None,
        ino,
        file_kind: fk,
        generation: 0,
        size: 0,
        digest: None,
        time: v as i64,
        snapshot: None,
        parent,
        old_parent: None,
    }
}
