//! The pace of a watch-log follower (a server's watch stream, an
//! embedded `Client::watch`): when to read the log again after a read
//! that found nothing new.
//!
//! Invariants:
//! - a commit that lands after `before_read` wakes the next `wait`
//!   (the receiver is marked seen before the read, never after), so no
//!   event is left waiting for a later commit;
//! - a follower that caught up and sees no change reads nothing until
//!   the next commit: an idle follower costs no reads and no wake-ups;
//! - while changes keep coming, reads come at most one `WATCH_PAGE_GAP`
//!   apart after a page, so commits in between are taken as one page.

use std::time::{Duration, Instant};

use tokio::sync::watch::Receiver;

use crate::volume::Volume;

/// The shortest gap between two pages a follower reads under a steady
/// stream of changes.
pub const WATCH_PAGE_GAP: Duration = Duration::from_millis(2);

pub struct FollowPace {
    commits: Receiver<u64>,
    last_page: Option<Instant>,
}

impl FollowPace {
    pub fn new(vol: &Volume) -> FollowPace {
        FollowPace {
            commits: vol.subscribe_commits(),
            last_page: None,
        }
    }

    /// Call right before each read of the log.
    pub fn before_read(&mut self) {
        self.commits.borrow_and_update();
    }

    /// Call after a read that returned events.
    pub fn page_read(&mut self) {
        self.last_page = Some(Instant::now());
    }

    /// Waits until a read may find something new: one gap after the last
    /// page while changes keep coming, otherwise the next commit. False
    /// once the volume is gone (no commit can come).
    pub async fn wait(&mut self) -> bool {
        let gap = self
            .last_page
            .and_then(|t| WATCH_PAGE_GAP.checked_sub(t.elapsed()));
        match gap {
            Some(gap) => {
                tokio::time::sleep(gap).await;
                self.last_page = None;
                true
            }
            None => self.commits.changed().await.is_ok(),
        }
    }
}
