//! Key-level history: what a live snapshot needs of a key that changed
//! after it.
//!
//! When a command with commit version `v` changes a versioned key `K`
//! (see `keys::is_versioned`) while snapshots live, it first writes
//! `H ‖ K ‖ v` = the value `K` had before (or "absent"), in the same
//! command. A read of `K` at snapshot version `s` takes the history
//! record with the smallest version above `s`; with none, `K` has not
//! changed since `s` and its current value is the answer.
//!
//! Invariants:
//! - with no live snapshot nothing is written here: writes pay no
//!   history cost;
//! - per key, a record is written only when no record above the newest
//!   snapshot's version exists yet: the first change after a snapshot
//!   saves the value the snapshot saw, later changes have nothing new
//!   to save for it (older snapshots are covered by records written
//!   while they were the newest);
//! - a key created for an inode allocated by the same command
//!   (`put_fresh`) is not recorded when it was absent: the reader knows
//!   from the snapshot's `ino_mark` that such an entry or inode did not
//!   exist at `s`, and manifests of generations a snapshot did not see
//!   are never read at it;
//! - the record is queued before the change it protects, in the same
//!   atomic command, and readers read the current value before the
//!   history: a reader that sees the new value also finds the record;
//! - records are only deleted by pruning, and only when no live
//!   snapshot lies in the interval of versions they cover.

use nokv_types::{Error, Result};
use serde::{Deserialize, Serialize};

use crate::command::Txn;
use crate::engine::Engine;
use crate::keys;
use crate::records::{decode, encode};

/// The value a key had before a change (`None`: it was absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct HistoryRecord {
    pub value: Option<Vec<u8>>,
}

/// A key and its value at some version (`None`: absent then).
pub(crate) type KeyAt = (Vec<u8>, Option<Vec<u8>>);

/// Versions must leave the top byte zero (see `keys::history_prefix`).
const MAX_VERSION: u64 = (1 << 56) - 1;

/// Keys known to have a history record above the newest snapshot, so
/// their next changes skip the probe. Only a cache: entries added by a
/// command that is then refused are taken back, a failed group clears
/// it, and a new newest snapshot starts it afresh.
#[derive(Debug, Default)]
pub(crate) struct PreservedKeys {
    newest: Option<u64>,
    keys: std::collections::HashSet<Vec<u8>>,
    added: Vec<Vec<u8>>,
}

/// Entries kept at most; beyond, the cache starts over.
const PRESERVED_CACHE_MAX: usize = 1 << 20;

impl PreservedKeys {
    fn contains(&mut self, newest: u64, key: &[u8]) -> bool {
        if self.newest != Some(newest) {
            self.keys.clear();
            self.newest = Some(newest);
        }
        self.keys.contains(key)
    }

    fn insert(&mut self, key: &[u8]) {
        if self.keys.len() >= PRESERVED_CACHE_MAX {
            self.keys.clear();
        }
        if self.keys.insert(key.to_vec()) {
            self.added.push(key.to_vec());
        }
    }

    /// The command that ran last committed (`ok`) or was refused.
    pub fn command_done(&mut self, ok: bool) {
        if ok {
            self.added.clear();
        } else {
            for k in self.added.drain(..) {
                self.keys.remove(&k);
            }
        }
    }

    /// The group failed: nothing it wrote is durable.
    pub fn reset(&mut self) {
        self.keys.clear();
        self.added.clear();
    }
}

/// Saves what a live snapshot needs before `key` changes in `txn`.
pub(crate) fn preserve(txn: &mut Txn<'_>, key: &[u8], fresh: bool) -> Result<()> {
    let Some(newest) = txn.snapshots().newest() else {
        return Ok(());
    };
    let version = txn.version();
    if version > MAX_VERSION {
        return Err(Error::Metadata("commit versions exhausted".into()));
    }
    // A key that is absent and new (or a manifest, never read at a
    // generation the snapshot did not see) needs nothing: checked first,
    // it spares creates the history probe.
    let old = txn.get(key)?;
    if old.is_none() && (fresh || key.first() == Some(&b'M')) {
        return Ok(());
    }
    if txn.preserved().contains(newest, key) {
        return Ok(());
    }
    let prefix = keys::history_prefix(key);
    let record_len = prefix.len() + 8;
    if !txn.any_after(&prefix, &keys::history(key, newest), record_len)? {
        let record = encode(&HistoryRecord { value: old })?;
        txn.put_raw(keys::history(key, version), record);
    }
    // Saved now or before: later changes until the next snapshot skip.
    txn.preserved().insert(key);
    Ok(())
}

/// What history says `key` was at version `at`: `Some(value)` from the
/// first record above `at`, `None` when `key` has not changed since.
pub(crate) fn value_at(engine: &Engine, key: &[u8], at: u64) -> Result<Option<Option<Vec<u8>>>> {
    let prefix = keys::history_prefix(key);
    let rows = engine.scan(&prefix, Some(&keys::history(key, at)), 1)?;
    let Some((hkey, value)) = rows.into_iter().next() else {
        return Ok(None);
    };
    match keys::split_history(&hkey) {
        Some((k, _)) if k == key => {}
        // A record of a longer key that starts with `key`: none of `key`.
        _ => return Ok(None),
    }
    let record: HistoryRecord = decode("history", &value)?;
    Ok(Some(record.value))
}

/// The history records of keys under `prefix` (a directory's entries)
/// that a read at `at` must consult: for each key after `after_key`, its
/// first record above `at`, in key order, for at most `limit` keys.
pub(crate) fn first_after_under(
    engine: &Engine,
    prefix: &[u8],
    after_key: Option<&[u8]>,
    at: u64,
    limit: usize,
) -> Result<Vec<KeyAt>> {
    let hprefix = keys::history_prefix(prefix);
    // Skip every record of `after_key` itself: the largest version.
    let start = after_key.map(|k| keys::history(k, MAX_VERSION));
    let mut out: Vec<KeyAt> = Vec::new();
    let mut cursor = start;
    while out.len() < limit {
        let rows = engine.scan(&hprefix, cursor.as_deref(), 1024)?;
        let Some((last, _)) = rows.last() else {
            break;
        };
        let last = last.clone();
        for (hkey, value) in rows {
            let Some((k, version)) = keys::split_history(&hkey) else {
                return Err(Error::Corrupt("malformed history key".into()));
            };
            if version <= at || out.last().is_some_and(|(prev, _)| prev == k) {
                continue;
            }
            if out.len() >= limit {
                break;
            }
            let record: HistoryRecord = decode("history", &value)?;
            out.push((k.to_vec(), record.value));
        }
        cursor = Some(last);
    }
    Ok(out)
}

/// Deletes, from a page of history after `after`, the records no live
/// snapshot (at `live`, ascending) can read. Returns how many it
/// deleted and the cursor of the next page (None at the end). A page
/// ends at a key boundary, so each key is judged with all its records.
pub(crate) fn prune_page(
    txn: &mut Txn<'_>,
    live: &[u64],
    after: Option<&[u8]>,
    limit: usize,
) -> Result<(u64, Option<Vec<u8>>)> {
    let engine = txn.engine();
    let prefix = keys::history_all_prefix();
    let mut rows = engine.scan(&prefix, after, limit.max(1) + 1)?;
    let more = rows.len() > limit.max(1);
    if more {
        // Finish the last key so its records are judged together.
        let last_key = match rows.last().and_then(|(k, _)| keys::split_history(k)) {
            Some((k, _)) => k.to_vec(),
            None => return Err(Error::Corrupt("malformed history key".into())),
        };
        let tail_from = rows.last().map(|(k, _)| k.clone()).unwrap_or_default();
        let tail = engine.scan(
            &keys::history_prefix(&last_key),
            Some(&tail_from),
            usize::MAX,
        )?;
        rows.extend(tail.into_iter().filter(|(k, _)| {
            keys::split_history(k).is_some_and(|(key, _)| key == last_key.as_slice())
        }));
    }
    let mut deleted = 0u64;
    let mut prev: Option<(Vec<u8>, u64)> = None;
    for (hkey, _) in &rows {
        let Some((key, version)) = keys::split_history(hkey) else {
            return Err(Error::Corrupt("malformed history key".into()));
        };
        // The record holds the value of `key` from (at the latest) the
        // previous record's version until `version`.
        let from = match &prev {
            Some((k, v)) if k.as_slice() == key => *v,
            _ => 0,
        };
        let needed = live.iter().any(|s| *s >= from && *s < version);
        if !needed {
            txn.delete_raw(hkey.clone());
            deleted += 1;
        }
        prev = Some((key.to_vec(), version));
    }
    let next = if more {
        rows.last().map(|(k, _)| k.clone())
    } else {
        None
    };
    Ok((deleted, next))
}
