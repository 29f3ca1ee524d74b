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
    pub fn apply(
        &self,
        commands: &[&MetadataCommand],
        extra: &[(Vec<u8>, Vec<u8>)],
    ) -> Result<bool> {
        self.tree
            .atomic(|batch| {
                for command in commands {
                    // Guards go where they were checked: holt's guards see
                    // the writes queued before them in the same batch.
                    let mut guards = command.predicates.iter().peekable();
                    for (i, m) in command.mutations.iter().enumerate() {
                        while let Some((_, p)) = guards.next_if(|(at, _)| *at <= i) {
                            guard(batch, p);
                        }
                        match m {
                            Mutation::Put(k, v) => batch.put(k, v),
                            Mutation::Delete(k) => batch.delete(k),
                        }
                    }
                    for (_, p) in guards {
                        guard(batch, p);
                    }
                }
                for (k, v) in extra {
                    batch.put(k, v);
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
