//! Pushes other clients' changes out of the kernel's caches: follows the
//! volume's typed watch log and, for each event, invalidates the
//! inode's cached attributes and data and the directory entries it
//! names (old and new, for a rename).
//!
//! Invariants:
//! - invalidation is best effort on top of the TTLs: a failed or missed
//!   notification only means the kernel keeps a stale entry until its
//!   TTL ends, never a wrong answer after that;
//! - notifications are sent from their own thread, never from a request
//!   handler, so a kernel waiting on a reply cannot deadlock them;
//! - a watch stream that ends (server restart, compacted cursor)
//!   restarts from the head after a short pause.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use futures::StreamExt;
use nokv_client::{Client, EventKind, WatchEvent};

/// What a notification does; `fuser::Notifier` in a mount, a recorder
/// in tests.
pub trait Invalidate: Send + 'static {
    fn entry(&self, parent: u64, name: &[u8]);
    fn inode(&self, ino: u64);
}

impl Invalidate for fuser::Notifier {
    fn entry(&self, parent: u64, name: &[u8]) {
        // ENOENT (not cached) is the common answer and harmless.
        let _ = self.inval_entry(fuser::INodeNo(parent), OsStr::from_bytes(name));
    }

    fn inode(&self, ino: u64) {
        let _ = self.inval_inode(fuser::INodeNo(ino), 0, 0);
    }
}

enum Note {
    Entry(u64, Vec<u8>),
    Inode(u64),
}

fn split(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/')?;
    if name.is_empty() {
        return None;
    }
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

/// What to invalidate for one event. New names need nothing (the mount
/// never caches a negative lookup); names that went away or moved need
/// their entries dropped, which takes their directory's inode (one stat).
async fn notes(client: &Client, ev: &WatchEvent) -> Vec<Note> {
    let mut out = Vec::new();
    let paths: Vec<&str> = match ev.kind {
        // Snapshots change nothing the live mount shows.
        EventKind::Created | EventKind::SnapshotCreated | EventKind::SnapshotRetired => return out,
        EventKind::Published | EventKind::Replaced | EventKind::AttrChanged => Vec::new(),
        EventKind::Removed => vec![ev.path.as_str()],
        EventKind::Renamed => std::iter::once(ev.path.as_str())
            .chain(ev.old_path.as_deref())
            .collect(),
    };
    out.push(Note::Inode(ev.ino));
    for path in paths {
        let Some((dir, name)) = split(path) else {
            continue;
        };
        if let Ok(attr) = client.stat(dir).await {
            out.push(Note::Inode(attr.ino));
            out.push(Note::Entry(attr.ino, name.as_bytes().to_vec()));
        }
    }
    out
}

/// Follows the watch log of `client` forever, invalidating through
/// `target`. Run it as a task; drop it (abort) to stop.
pub async fn follow(client: Client, target: impl Invalidate) {
    let (tx, rx) = std::sync::mpsc::channel::<Note>();
    let sender = std::thread::Builder::new()
        .name("nokv-invalidate".into())
        .spawn(move || {
            while let Ok(note) = rx.recv() {
                match note {
                    Note::Entry(parent, name) => target.entry(parent, &name),
                    Note::Inode(ino) => target.inode(ino),
                }
            }
        });
    if let Err(e) = sender {
        tracing::warn!("cache invalidation is off (no thread): {e}");
        return;
    }
    loop {
        let from = match client.watch_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!("watch head: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut events = client.watch("/", from);
        while let Some(ev) = events.next().await {
            match ev {
                Ok(ev) => {
                    for note in notes(&client, &ev).await {
                        if tx.send(note).is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    tracing::debug!("watch stream ended: {e}");
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::split;

    #[test]
    fn paths_split_into_parent_and_name() {
        assert_eq!(split("/a"), Some(("/", "a")));
        assert_eq!(split("/a/b/c"), Some(("/a/b", "c")));
        assert_eq!(split("/"), None);
        assert_eq!(split(""), None);
    }
}
