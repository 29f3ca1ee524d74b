//! Sequential-read detection for one read handle.
//!
//! Invariants:
//! - a read counts as sequential when it starts at (or within one block
//!   of) where the previous one ended: the kernel issues readahead
//!   requests concurrently, so they may arrive slightly out of order;
//! - while reads are sequential, blocks up to `window` ahead of the one
//!   being read are requested once each (`fetched_until` only grows);
//!   a random read resets the window, and asks for nothing.

#[derive(Debug)]
pub struct Readahead {
    next_offset: u64,
    fetched_until: usize,
    window: usize,
}

impl Readahead {
    pub fn new(window: usize) -> Readahead {
        Readahead {
            next_offset: 0,
            fetched_until: 0,
            window,
        }
    }

    /// Records a read of `[offset, offset+len)`; returns the blocks to
    /// prefetch now as `(first, count)`, if any.
    pub fn on_read(
        &mut self,
        offset: u64,
        len: u64,
        block_size: u64,
        blocks: usize,
    ) -> Option<(usize, usize)> {
        let block_size = block_size.max(1);
        let sequential = offset <= self.next_offset.saturating_add(block_size)
            && offset.saturating_add(block_size) >= self.next_offset;
        self.next_offset = self.next_offset.max(offset.saturating_add(len));
        let current = usize::try_from(offset / block_size).unwrap_or(usize::MAX);
        if !sequential {
            self.next_offset = offset.saturating_add(len);
            self.fetched_until = current.saturating_add(1);
            return None;
        }
        let want = current.saturating_add(1 + self.window).min(blocks);
        let first = self.fetched_until.max(current + 1);
        if want <= first {
            return None;
        }
        self.fetched_until = want;
        Some((first, want - first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequential_reads_fetch_each_block_once_ahead() {
        let mut ra = Readahead::new(4);
        let bs = 1024;
        assert_eq!(ra.on_read(0, 128, bs, 100), Some((1, 4)));
        assert_eq!(ra.on_read(128, 128, bs, 100), None);
        // Into block 1: one more block comes into the window.
        assert_eq!(ra.on_read(1024, 128, bs, 100), Some((5, 1)));
        // Slightly out of order (concurrent kernel readahead) still counts.
        assert_eq!(ra.on_read(2048 + 64, 128, bs, 100), Some((6, 1)));
        assert_eq!(ra.on_read(2048, 128, bs, 100), None);
    }

    #[test]
    fn random_reads_prefetch_nothing_and_reset() {
        let mut ra = Readahead::new(4);
        let bs = 1024;
        assert_eq!(ra.on_read(50 * bs, 10, bs, 100), None);
        assert_eq!(ra.on_read(10 * bs, 10, bs, 100), None);
        // Sequential again from there.
        assert_eq!(ra.on_read(10 * bs + 10, 10, bs, 100), Some((11, 4)));
    }

    #[test]
    fn the_window_stops_at_the_last_block() {
        let mut ra = Readahead::new(8);
        assert_eq!(ra.on_read(0, 10, 1024, 3), Some((1, 2)));
        assert_eq!(ra.on_read(1024, 10, 1024, 3), None);
    }
}
