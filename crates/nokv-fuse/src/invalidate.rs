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
//!   restarts from the head after a short pause;
//! - the follower also keeps the mount's local-answer caches current
//!   (absent names, `core/dircache.rs`; directory attributes,
//!   `core/dirattrs.rs`): it applies every event to them in `seq` order
//!   before acting on it, and resets them whenever the stream ends or
//!   fails (events may have been missed).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use std::sync::Arc;

use futures::StreamExt;
use nokv_client::{Client, EventKind, WatchEvent};

use crate::core::FollowsWatch;

/// What a notification does; `fuser::Notifier` in a mount, a recorder
/// in tests.
pub trait Invalidate: Send + 'static {
    fn entry(&self, parent: u64, name: &[u8]);
    fn inode(&self, ino: u64);
    /// False when notifications go nowhere (the follower then only keeps
    /// the caches).
    fn enabled(&self) -> bool {
        true
    }
}

/// No kernel to notify: an embedded mount follows the watch log for its
/// reader lease only (no other client changes the volume), and tests.
pub struct NoInvalidation;

impl Invalidate for NoInvalidation {
    fn entry(&self, _parent: u64, _name: &[u8]) {}
    fn inode(&self, _ino: u64) {}
    fn enabled(&self) -> bool {
        false
    }
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
/// never caches a negative lookup in the kernel); names that went away
/// or moved need their entries dropped, which takes their directory's
/// inode: the event's `parent` / `old_parent` (one stat of the
/// directory for events of a server that does not send them).
async fn notes(client: &Client, ev: &WatchEvent) -> Vec<Note> {
    let mut out = Vec::new();
    let paths: Vec<(&str, Option<u64>)> = match ev.kind {
        // Snapshots change nothing the live mount shows.
        EventKind::Created | EventKind::SnapshotCreated | EventKind::SnapshotRetired => return out,
        EventKind::Published | EventKind::Replaced | EventKind::AttrChanged => Vec::new(),
        EventKind::Removed => vec![(ev.path.as_str(), Some(ev.parent))],
        EventKind::Renamed => std::iter::once((ev.path.as_str(), Some(ev.parent)))
            .chain(ev.old_path.as_deref().map(|p| (p, ev.old_parent)))
            .collect(),
    };
    out.push(Note::Inode(ev.ino));
    for (path, parent) in paths {
        let Some((dir, name)) = split(path) else {
            continue;
        };
        let parent = match parent.filter(|&p| p != 0) {
            Some(p) => p,
            None => match client.stat(dir).await {
                Ok(attr) => attr.ino,
                Err(_) => continue,
            },
        };
        out.push(Note::Inode(parent));
        out.push(Note::Entry(parent, name.as_bytes().to_vec()));
    }
    out
}

/// Follows the watch log of `client` forever, invalidating through
/// `target` and keeping `caches` current. Run it as a task; drop it
/// (abort) to stop.
pub async fn follow(client: Client, target: impl Invalidate, caches: Vec<Arc<dyn FollowsWatch>>) {
    // Whatever ends this task (abort included) must not leave a cache
    // that nothing keeps current.
    struct ResetOnDrop(Vec<Arc<dyn FollowsWatch>>);
    impl Drop for ResetOnDrop {
        fn drop(&mut self) {
            for c in &self.0 {
                c.reset();
            }
        }
    }
    let _reset = ResetOnDrop(caches.clone());
    let notify = target.enabled();
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
                    for c in &caches {
                        c.settle(&ev).await;
                        c.apply(&ev);
                    }
                    if !notify {
                        continue;
                    }
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
        // Events after the last one applied may be missed from here on.
        for c in &caches {
            c.reset();
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
