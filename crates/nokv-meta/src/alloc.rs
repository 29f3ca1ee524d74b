//! Range allocation of inode numbers and upload ids.
//!
//! Invariant: an id is handed out only below a high-water mark that is
//! either already durable or written by the same command that takes the
//! id. A command that fails drops its high-water write, and the next
//! command that needs an id writes one again, because `committed` only
//! moves when a group reaches holt. So no id is ever handed out twice,
//! across crashes included, while a create costs no counter write in
//! the common case.

/// Ids reserved per high-water write.
const RANGE: u64 = 4096;

#[derive(Debug, Clone)]
pub(crate) struct Counter {
    next: u64,
    committed: u64,
    pending: u64,
}

impl Counter {
    /// A counter whose durable high-water mark is `high_water`: ids
    /// below it may have been handed out before, so start there.
    pub fn new(high_water: u64) -> Counter {
        Counter {
            next: high_water,
            committed: high_water,
            pending: high_water,
        }
    }

    /// Next id, and the high-water mark to persist with it if needed.
    pub fn take(&mut self) -> (u64, Option<u64>) {
        let id = self.next;
        self.next += 1;
        if self.next > self.committed {
            let mark = self.next.max(self.pending).max(id + RANGE);
            self.pending = mark;
            return (id, Some(mark));
        }
        (id, None)
    }

    /// The id the next `take` returns.
    pub fn peek(&self) -> u64 {
        self.next
    }

    /// The group holding the pending marks reached holt.
    pub fn commit(&mut self) {
        self.committed = self.committed.max(self.pending);
    }

    /// The group failed: nothing it wrote is durable. Ids already handed
    /// out stay burnt (never reused); the mark must be written again.
    pub fn abort(&mut self) {
        self.pending = self.committed;
        self.next = self.next.max(self.committed);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Allocators {
    pub ino: Counter,
    pub upload: Counter,
}

impl Allocators {
    pub fn next_ino(&mut self) -> (u64, Option<u64>) {
        self.ino.take()
    }

    pub fn next_upload(&mut self) -> (u64, Option<u64>) {
        self.upload.take()
    }

    pub fn commit(&mut self) {
        self.ino.commit();
        self.upload.commit();
    }

    pub fn abort(&mut self) {
        self.ino.abort();
        self.upload.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persists_a_mark_only_when_crossing_it() {
        let mut c = Counter::new(10);
        let (id, mark) = c.take();
        assert_eq!(id, 10);
        let mark = mark.expect("first id crosses the durable mark");
        assert!(mark > 10);
        c.commit();
        for _ in 0..(mark - 11) {
            assert!(c.take().1.is_none());
        }
        let (id, again) = c.take();
        assert_eq!(id, mark);
        assert!(again.is_some());
    }

    #[test]
    fn abort_burns_ids_and_rewrites_the_mark() {
        let mut c = Counter::new(1);
        let (a, m1) = c.take();
        assert!(m1.is_some());
        c.abort();
        let (b, m2) = c.take();
        assert!(b > a, "ids are never reused");
        assert!(m2.is_some(), "the lost mark must be written again");
    }
}
