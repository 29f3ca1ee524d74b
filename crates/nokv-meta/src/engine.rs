//! The holt tree of a volume: opening it with the chosen durability,
//! point reads and scans, and applying a group of commands as one
//! atomic batch. The only module that names holt types.
//!
//! Invariant: a group is applied with one `Tree::atomic` call, so it is
//! one WAL record: after a crash, replay has all of it or none of it.
//! In sync mode `atomic` returns only once that record is on stable
//! storage.

use std::path::Path;

use holt::{Durability as HoltDurability, RangeEntry, Tree, TreeBuilder};
use nokv_types::{Error, Result};

use crate::command::{MetadataCommand, Mutation, Predicate};

/// How acknowledged commands survive failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// A command is acknowledged after its WAL record is fsynced: it
    /// survives a process crash and a power loss. Concurrent commands
    /// share one fsync (group commit).
    #[default]
    Sync,
    /// Acknowledged once in holt's in-process WAL buffer; a background
    /// group commit writes and fsyncs it shortly after. A process crash or
    /// a power loss can lose the last acknowledged commands (measured:
    /// up to a few hundred creates); an orderly close keeps everything.
    Async,
}

pub(crate) struct Engine {
    tree: Tree,
}

fn holt_err(what: &str, e: holt::Error) -> Error {
    Error::Metadata(format!("{what}: {e}"))
}

impl Engine {
    pub fn open(dir: &Path, durability: Durability, buffer_pool_frames: usize) -> Result<Engine> {
        let holt_durability = HoltDurability::Wal {
            sync: durability == Durability::Sync,
        };
        let tree = TreeBuilder::new(dir)
            .durability(holt_durability)
            .buffer_pool_size(buffer_pool_frames)
            .open()
            .map_err(|e| {
                let msg = e.to_string();
                if msg.contains("lock")
                    || msg.contains("WouldBlock")
                    || msg.contains("temporarily unavailable")
                {
                    Error::Busy(format!(
                        "{} is open in another process ({msg})",
                        dir.display()
                    ))
                } else {
                    holt_err("open", e)
                }
            })?;
        Ok(Engine { tree })
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tree.get(key).map_err(|e| holt_err("get", e))
    }

    /// Up to `limit` records whose key starts with `prefix` and sorts
    /// after `after` (when given), in key order.
    pub fn scan(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let mut builder = self.tree.scan(prefix);
        if let Some(after) = after {
            builder = builder.start_after(after);
        }
        let mut out = Vec::new();
        for entry in builder {
            if out.len() >= limit {
                break;
            }
            if let RangeEntry::Key { key, value, .. } = entry.map_err(|e| holt_err("scan", e))? {
                if !key.starts_with(prefix) {
                    break;
                }
                out.push((key, value));
            }
        }
        Ok(out)
    }

    /// Whether some key under `prefix` is not in `skip`.
    pub fn prefix_has_key_not(&self, prefix: &[u8], skip: &dyn Fn(&[u8]) -> bool) -> Result<bool> {
        for entry in self.tree.scan_keys(prefix) {
            let entry = entry.map_err(|e| holt_err("scan", e))?;
            if let holt::KeyRangeEntry::Key { key, .. } = entry {
                if !key.starts_with(prefix) {
                    return Ok(false);
                }
                if !skip(&key) {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Applies the commands in order as one holt batch, followed by
    /// `extra` unconditional puts. Ok(false): a guard failed in holt and
    /// nothing was applied.
    ///
    /// Writes that a later write of the same batch overwrites are left
    /// out (see `superseded`): the batch is one WAL record and applies
    /// all or nothing, so nobody can observe the overwritten value, and
    /// the final state is the same. A group of creates in one directory
    /// rewrites that directory's entry once per create; holt now gets it
    /// once.
    pub fn apply(
        &self,
        commands: &[&MetadataCommand],
        extra: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<bool> {
        let mut ops: Vec<BatchOp<'_>> = Vec::new();
        for command in commands {
            // Guards go where they were checked: holt's guards see the
            // writes queued before them in the same batch.
            let mut guards = command.predicates.iter().peekable();
            for (i, m) in command.mutations.iter().enumerate() {
                while let Some((_, p)) = guards.next_if(|(at, _)| *at <= i) {
                    ops.push(BatchOp::Guard(p));
                }
                ops.push(match m {
                    Mutation::Put(k, v) => BatchOp::Put(k, v),
                    Mutation::Delete(k) => BatchOp::Delete(k),
                });
            }
            ops.extend(guards.map(|(_, p)| BatchOp::Guard(p)));
        }
        ops.extend(extra.iter().map(|(k, v)| BatchOp::Put(k, v)));
        let skip = superseded(&ops);
        self.tree
            .atomic(|batch| {
                for (op, skip) in ops.iter().zip(skip) {
                    match op {
                        _ if skip => {}
                        BatchOp::Guard(p) => guard(batch, p),
                        BatchOp::Put(k, v) => batch.put(k, v),
                        BatchOp::Delete(k) => batch.delete(k),
                    }
                }
            })
            .map_err(|e| holt_err("commit", e))
    }

    /// Flushes dirty state to the data files and trims the WAL, so the
    /// next open replays little.
    pub fn checkpoint(&self) -> Result<()> {
        self.tree
            .checkpoint()
            .map_err(|e| holt_err("checkpoint", e))
    }

    /// Bytes of memory and disk used by the engine, for status/bench.
    pub fn stats(&self) -> Result<EngineStats> {
        let s = self.tree.stats().map_err(|e| holt_err("stats", e))?;
        Ok(EngineStats {
            summary: format!("{s:?}"),
        })
    }
}

/// One entry of a batch, in the order holt gets them.
enum BatchOp<'a> {
    Guard(&'a Predicate),
    Put(&'a [u8], &'a [u8]),
    Delete(&'a [u8]),
}

/// For each op, whether it is a write that can be left out: a later
/// write of the same batch replaces it, and no guard between the two
/// looks at its key (such a guard must see the earlier value).
fn superseded(ops: &[BatchOp<'_>]) -> Vec<bool> {
    let mut skip = vec![false; ops.len()];
    // Keys written later in the batch with no guard on them since.
    let mut later: std::collections::HashSet<&[u8]> = std::collections::HashSet::new();
    for (i, op) in ops.iter().enumerate().rev() {
        match op {
            BatchOp::Guard(Predicate::Absent(k)) => {
                later.remove(k.as_slice());
            }
            BatchOp::Guard(Predicate::PrefixEmpty(prefix)) => {
                later.retain(|k| !k.starts_with(prefix));
            }
            BatchOp::Put(k, _) | BatchOp::Delete(k) => skip[i] = !later.insert(k),
        }
    }
    skip
}

fn guard(batch: &mut holt::AtomicBatch, p: &Predicate) {
    match p {
        Predicate::Absent(k) => batch.assert_absent(k),
        Predicate::PrefixEmpty(k) => batch.assert_prefix_empty(k),
    }
}

/// Engine statistics, as text (holt's own types stay inside this crate).
#[derive(Debug, Clone)]
pub struct EngineStats {
    pub summary: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absent(k: &[u8]) -> Predicate {
        Predicate::Absent(k.to_vec())
    }

    #[test]
    fn only_overwritten_writes_are_left_out() {
        let (p_a, p_b) = (absent(b"a"), Predicate::PrefixEmpty(b"b".to_vec()));
        let ops = [
            BatchOp::Put(b"d", b"1"), // replaced by the last put of d
            BatchOp::Put(b"a", b"1"), // guarded below: kept
            BatchOp::Guard(&p_a),
            BatchOp::Put(b"a", b"2"),
            BatchOp::Delete(b"b1"), // a prefix guard on b sees it: kept
            BatchOp::Guard(&p_b),
            BatchOp::Put(b"b1", b"x"),
            BatchOp::Delete(b"c"), // replaced by the put of c
            BatchOp::Put(b"c", b"3"),
            BatchOp::Put(b"d", b"2"),
        ];
        assert_eq!(
            superseded(&ops),
            [true, false, false, false, false, false, false, true, false, false]
        );
    }
}
