//! The watch log: typed events written by the commands that make the
//! changes (`Txn::emit`), read in `seq` order, trimmed by retention.
//!
//! Invariants:
//! - an event is in the same holt batch as its change: a consumer sees
//!   an event iff the change committed;
//! - `seq` only grows (commit version × 256 + index), so resuming from
//!   `last + 1` gives every later event exactly once;
//! - trimming records the lowest retained `seq` (the floor) before it
//!   deletes anything below, so a cursor below the floor always gets
//!   `WatchCompacted` rather than a silent gap.

use nokv_types::{EventKind, Result, WatchEvent, WatchPage, EVENTS_PER_COMMAND, ROOT_INO};

use crate::command::Txn;
use crate::engine::Engine;
use crate::keys;
use crate::namespace::{shown, Source};
use crate::records::{decode, decode_u64, encode_u64, InodeData, InodeRecord};

/// The current path of directory `dir` (through the back-pointers).
pub(crate) fn dir_path(src: &dyn Source, dir: u64) -> Result<String> {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cur = dir;
    for _ in 0..4096 {
        if cur == ROOT_INO {
            break;
        }
        let Some(bytes) = src.get(&keys::inode(cur))? else {
            break;
        };
        match decode::<InodeRecord>("inode", &bytes)? {
            InodeRecord::At { parent, name } => {
                names.push(name);
                cur = parent;
            }
            InodeRecord::Own(_) => break,
        }
    }
    let mut path = String::new();
    for name in names.iter().rev() {
        path.push('/');
        path.push_str(&shown(name));
    }
    if path.is_empty() {
        path.push('/');
    }
    Ok(path)
}

/// `dir`'s path joined with `name`.
pub(crate) fn child_path(src: &dyn Source, dir: u64, name: &[u8]) -> Result<String> {
    let base = dir_path(src, dir)?;
    Ok(if base == "/" {
        format!("/{}", shown(name))
    } else {
        format!("{base}/{}", shown(name))
    })
}

/// The event `kind` about inode `ino` (`data`) at `path`; seq, commit
/// version and time are filled in by `Txn::emit`.
pub(crate) fn event(
    kind: EventKind,
    path: String,
    old_path: Option<String>,
    ino: u64,
    data: &InodeData,
) -> WatchEvent {
    WatchEvent {
        seq: 0,
        commit_version: 0,
        kind,
        path,
        old_path,
        ino,
        file_kind: data.kind,
        generation: data.generation,
        size: data.size,
        digest: data.body.as_ref().map(|b| b.digest),
        time: 0,
        snapshot: None,
        parent: 0,
        old_parent: None,
    }
}

/// Emits the event `kind` about `dir/name` (inode `ino`, `data`);
/// `old` is the old directory and path of a rename.
pub(crate) fn emit(
    txn: &mut Txn<'_>,
    kind: EventKind,
    dir: u64,
    name: &[u8],
    old: Option<(u64, String)>,
    ino: u64,
    data: &InodeData,
) -> Result<()> {
    let path = child_path(txn, dir, name)?;
    let (old_parent, old_path) = old.unzip();
    let mut ev = event(kind, path, old_path, ino, data);
    ev.parent = dir;
    ev.old_parent = old_parent;
    txn.emit(ev)
}

/// Emits the event `kind` about inode `ino` found at `loc` (its entry
/// when its attributes live inline there; no entry for a hard-linked
/// inode or the root).
pub(crate) fn emit_at(
    txn: &mut Txn<'_>,
    kind: EventKind,
    ino: u64,
    loc: &crate::namespace::Loc,
    data: &InodeData,
) -> Result<()> {
    let path = inode_path(txn, ino, loc)?;
    let mut ev = event(kind, path, None, ino, data);
    if let crate::namespace::Loc::Entry { parent, .. } = loc {
        ev.parent = *parent;
    }
    txn.emit(ev)
}

fn floor(engine: &Engine) -> Result<u64> {
    match engine.get(keys::WATCH_FLOOR)? {
        Some(v) => decode_u64("watch floor", &v),
        None => Ok(0),
    }
}

/// Events with `seq >= from` about `prefix` (or below it), at most
/// `limit` of them, looking at no more than `scan_limit` events.
pub(crate) fn page(
    engine: &Engine,
    from: u64,
    prefix: &str,
    limit: usize,
    scan_limit: usize,
) -> Result<WatchPage> {
    let floor = floor(engine)?;
    if from < floor {
        return Err(nokv_types::Error::WatchCompacted {
            requested: from,
            oldest: floor,
        });
    }
    let after = from.checked_sub(1).map(keys::watch);
    let rows = engine.scan(&keys::watch_prefix(), after.as_deref(), scan_limit.max(1))?;
    let mut events = Vec::new();
    let mut next = from;
    for (_, value) in rows {
        let event: WatchEvent = decode("watch event", &value)?;
        next = event.seq + 1;
        if event.is_under(prefix) {
            events.push(event);
            if events.len() >= limit {
                break;
            }
        }
    }
    Ok(WatchPage { events, next })
}

/// Deletes events of commit versions older than `keep_versions` behind
/// `current_version`; returns how many went.
pub(crate) fn trim(
    txn: &mut Txn<'_>,
    engine: &Engine,
    current_version: u64,
    keep_versions: u64,
) -> Result<u64> {
    let cut = current_version.saturating_sub(keep_versions) * EVENTS_PER_COMMAND;
    if cut <= floor(engine)? {
        return Ok(0);
    }
    // The floor first: readers below it get WatchCompacted, never a gap.
    txn.put(keys::WATCH_FLOOR.to_vec(), encode_u64(cut).to_vec())?;
    let mut n = 0;
    let mut after: Option<Vec<u8>> = None;
    loop {
        let rows = engine.scan(&keys::watch_prefix(), after.as_deref(), 4096)?;
        if rows.is_empty() {
            break;
        }
        for (key, _) in &rows {
            let seq = keys::watch_seq(key).unwrap_or(u64::MAX);
            if seq >= cut {
                return Ok(n);
            }
            txn.delete(key.clone())?;
            n += 1;
        }
        after = rows.last().map(|(k, _)| k.clone());
    }
    Ok(n)
}

/// The path an event about inode `ino` names: its entry's path when its
/// attributes live inline in one entry; "" for a hard-linked inode (it
/// has no single path), "/" for the root.
pub(crate) fn inode_path(
    src: &dyn Source,
    ino: u64,
    loc: &crate::namespace::Loc,
) -> Result<String> {
    Ok(match loc {
        crate::namespace::Loc::Entry { parent, name } => child_path(src, *parent, name)?,
        crate::namespace::Loc::Own if ino == ROOT_INO => "/".to_string(),
        crate::namespace::Loc::Own => String::new(),
    })
}
