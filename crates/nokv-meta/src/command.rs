//! `MetadataCommand`: every change to a volume is predicates plus
//! mutations, applied atomically in one holt batch.
//!
//! Invariants:
//! - a command is built by a transaction function that runs while it
//!   holds the commit turn (see `committer`), so what it reads cannot
//!   change before it commits; its reads see the writes of the commands
//!   ahead of it in the same group;
//! - a predicate that fails makes the command apply nothing: its
//!   writes are dropped from the group and never reach holt;
//! - the predicates are also handed to holt as guards, each at the point
//!   of the command where it was checked (after the writes made before
//!   it, before the writes made after it), so a
//!   divergence between what the command saw and what holt holds fails
//!   the whole batch rather than applying something unchecked.

use std::collections::BTreeMap;

use nokv_types::Result;

use crate::alloc::Allocators;
use crate::engine::Engine;
use crate::keys;
use crate::snapshot::history::{self, PreservedKeys};
use crate::snapshot::LiveSnapshots;

/// A condition that must hold when a command commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Predicate {
    /// The key does not exist.
    Absent(Vec<u8>),
    /// No key starts with this prefix.
    PrefixEmpty(Vec<u8>),
}

/// One write of a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mutation {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

/// Predicates and mutations of one committed change.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct MetadataCommand {
    /// Each predicate with the number of mutations recorded before it
    /// was checked: holt must check it at that point of the batch.
    pub predicates: Vec<(usize, Predicate)>,
    pub mutations: Vec<Mutation>,
}

impl MetadataCommand {
    /// Approximate encoded size, used to bound group batches.
    pub fn weight(&self) -> usize {
        let p: usize = self
            .predicates
            .iter()
            .map(|(_, p)| match p {
                Predicate::Absent(k) | Predicate::PrefixEmpty(k) => k.len() + 8,
            })
            .sum();
        let m: usize = self
            .mutations
            .iter()
            .map(|m| match m {
                Mutation::Put(k, v) => k.len() + v.len() + 8,
                Mutation::Delete(k) => k.len() + 8,
            })
            .sum();
        p + m
    }
}

/// Pending writes of the commands already accepted in the current
/// group: `None` marks a delete.
pub(crate) type Overlay = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Engine reads made by the commands of the current group, so the next
/// command reading the same key (a create reads its directory's inode
/// and its ancestors' back-pointers, as did the create before it) does
/// not walk holt again. Valid for one group only: holt changes only when
/// the group is applied, by the leader that owns this cache, and the
/// group's own writes are found in its overlays before this cache.
#[derive(Default)]
pub(crate) struct ReadCache(
    std::cell::RefCell<std::collections::HashMap<Vec<u8>, Option<Vec<u8>>>>,
);

/// Entries a group's read cache keeps at most (it is dropped after the
/// group anyway; this bounds one huge group).
const READ_CACHE_MAX: usize = 4096;

/// The view a transaction function has of the volume while it holds the
/// commit turn.
pub(crate) struct Txn<'a> {
    engine: &'a Engine,
    group: &'a Overlay,
    reads: &'a ReadCache,
    local: Overlay,
    command: MetadataCommand,
    version: u64,
    now: i64,
    alloc: &'a mut Allocators,
    snapshots: &'a mut LiveSnapshots,
    preserved: &'a mut PreservedKeys,
    gc_seq: u32,
    events: u64,
}

impl<'a> Txn<'a> {
    #[allow(clippy::too_many_arguments)] // the leader's state, passed piecewise
    pub(crate) fn new(
        engine: &'a Engine,
        group: &'a Overlay,
        reads: &'a ReadCache,
        version: u64,
        now: i64,
        alloc: &'a mut Allocators,
        snapshots: &'a mut LiveSnapshots,
        preserved: &'a mut PreservedKeys,
    ) -> Txn<'a> {
        Txn {
            engine,
            group,
            reads,
            local: Overlay::new(),
            command: MetadataCommand::default(),
            version,
            now,
            alloc,
            snapshots,
            preserved,
            gc_seq: 0,
            events: 0,
        }
    }

    /// The engine under this command (for scans a command plans from).
    pub(crate) fn engine(&self) -> &'a Engine {
        self.engine
    }

    /// Commit version this command gets if it commits.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Wall-clock time of the command (one value for all its writes).
    pub fn now(&self) -> i64 {
        self.now
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.local.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.group.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.reads.0.borrow().get(key) {
            return Ok(v.clone());
        }
        let v = self.engine.get(key)?;
        let mut reads = self.reads.0.borrow_mut();
        if reads.len() >= READ_CACHE_MAX {
            reads.clear();
        }
        reads.insert(key.to_vec(), v.clone());
        Ok(v)
    }

    /// Writes `key`. A versioned key (namespace, manifests) first has
    /// its current value saved to history when a live snapshot needs it.
    pub fn put(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        if keys::is_versioned(&key) {
            history::preserve(self, &key, false)?;
        }
        self.put_raw(key, value);
        Ok(())
    }

    /// Writes a key of an inode allocated by this command: no snapshot
    /// can have seen it, so it needs no history when it was absent.
    pub fn put_fresh(&mut self, key: Vec<u8>, value: Vec<u8>) -> Result<()> {
        if keys::is_versioned(&key) {
            history::preserve(self, &key, true)?;
        }
        self.put_raw(key, value);
        Ok(())
    }

    pub fn delete(&mut self, key: Vec<u8>) -> Result<()> {
        if keys::is_versioned(&key) {
            history::preserve(self, &key, false)?;
        }
        self.delete_raw(key);
        Ok(())
    }

    /// A write that bypasses history: for keyspaces snapshots never read
    /// and for history records themselves.
    pub(crate) fn put_raw(&mut self, key: Vec<u8>, value: Vec<u8>) {
        self.local.insert(key.clone(), Some(value.clone()));
        self.command.mutations.push(Mutation::Put(key, value));
    }

    pub(crate) fn delete_raw(&mut self, key: Vec<u8>) {
        self.local.insert(key.clone(), None);
        self.command.mutations.push(Mutation::Delete(key));
    }

    /// Whether some key of exactly `len` bytes under `prefix` sorts
    /// after `after`, as this command sees the volume (its own and its
    /// group's pending writes included). Longer keys under the prefix
    /// are not counted: the history records of entry `f1` share their
    /// prefix with those of `f10`.
    pub(crate) fn any_after(&self, prefix: &[u8], after: &[u8], len: usize) -> Result<bool> {
        use std::ops::Bound;
        let pending = |o: &Overlay| {
            o.range::<[u8], _>((Bound::Excluded(after), Bound::Unbounded))
                .take_while(|(k, _)| k.starts_with(prefix))
                .any(|(k, v)| k.len() == len && v.is_some())
        };
        if pending(&self.local) || pending(self.group) {
            return Ok(true);
        }
        let mut from = after.to_vec();
        loop {
            let rows = self.engine.scan(prefix, Some(&from), 8)?;
            let Some((last, _)) = rows.last() else {
                return Ok(false);
            };
            let last = last.clone();
            for (k, _) in rows {
                if k.len() != len {
                    // Keys of `len` bytes sort before the longer ones
                    // (see `keys::history_prefix`): none is left.
                    return Ok(false);
                }
                let deleted = match self.local.get(&k) {
                    Some(v) => v.is_none(),
                    None => matches!(self.group.get(&k), Some(None)),
                };
                if !deleted {
                    return Ok(true);
                }
            }
            from = last;
        }
    }

    /// Live snapshots as of this command (its own create/retire
    /// included).
    pub(crate) fn snapshots(&self) -> &LiveSnapshots {
        self.snapshots
    }

    pub(crate) fn snapshots_mut(&mut self) -> &mut LiveSnapshots {
        self.snapshots
    }

    pub(crate) fn preserved(&mut self) -> &mut PreservedKeys {
        self.preserved
    }

    /// The first inode number no command before this one handed out.
    pub(crate) fn ino_mark(&self) -> u64 {
        self.alloc.ino.peek()
    }

    /// Predicate: `key` is absent. Returns whether it holds now; the
    /// caller turns `false` into its semantic error.
    pub fn require_absent(&mut self, key: &[u8]) -> Result<bool> {
        let absent = self.get(key)?.is_none();
        if absent {
            let at = self.command.mutations.len();
            self.command
                .predicates
                .push((at, Predicate::Absent(key.to_vec())));
        }
        Ok(absent)
    }

    /// Predicate: no key starts with `prefix`.
    pub fn require_prefix_empty(&mut self, prefix: &[u8]) -> Result<bool> {
        let empty = self.prefix_is_empty(prefix)?;
        if empty {
            let at = self.command.mutations.len();
            self.command
                .predicates
                .push((at, Predicate::PrefixEmpty(prefix.to_vec())));
        }
        Ok(empty)
    }

    fn prefix_is_empty(&self, prefix: &[u8]) -> Result<bool> {
        let pending_put = |o: &Overlay| {
            o.range(prefix.to_vec()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .any(|(_, v)| v.is_some())
        };
        if pending_put(&self.local) || pending_put(self.group) {
            return Ok(false);
        }
        let deleted = |k: &[u8]| {
            matches!(self.local.get(k), Some(None))
                || (!self.local.contains_key(k) && matches!(self.group.get(k), Some(None)))
        };
        self.engine
            .prefix_has_key_not(prefix, &deleted)
            .map(|found| !found)
    }

    /// Sequence number of the next GC record this command writes.
    pub fn next_gc_seq(&mut self) -> u32 {
        self.gc_seq += 1;
        self.gc_seq
    }

    /// Appends `event` to the watch log in this command (its `seq` and
    /// commit version are filled in here).
    pub fn emit(&mut self, mut event: nokv_types::WatchEvent) -> Result<()> {
        if self.events >= nokv_types::EVENTS_PER_COMMAND {
            return Err(nokv_types::Error::Metadata(
                "too many watch events in one command".into(),
            ));
        }
        event.commit_version = self.version;
        event.seq = self.version * nokv_types::EVENTS_PER_COMMAND + self.events;
        event.time = self.now;
        self.events += 1;
        let value = crate::records::encode(&event)?;
        self.put_raw(crate::keys::watch(event.seq), value);
        Ok(())
    }

    /// A fresh inode number (never reused, allocated in ranges).
    pub fn alloc_ino(&mut self) -> u64 {
        let (ino, persist) = self.alloc.next_ino();
        if let Some(high_water) = persist {
            self.put_raw(
                crate::keys::INO_HIGH_WATER.to_vec(),
                crate::records::encode_u64(high_water).to_vec(),
            );
        }
        ino
    }

    /// A fresh upload id (never reused, allocated in ranges).
    pub fn alloc_upload(&mut self) -> u64 {
        let (id, persist) = self.alloc.next_upload();
        if let Some(high_water) = persist {
            self.put_raw(
                crate::keys::UPLOAD_HIGH_WATER.to_vec(),
                crate::records::encode_u64(high_water).to_vec(),
            );
        }
        id
    }

    /// The command built so far and its writes, for the committer.
    pub(crate) fn finish(self) -> (MetadataCommand, Overlay) {
        (self.command, self.local)
    }
}
