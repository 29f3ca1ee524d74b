//! Reads at a snapshot: the volume's versioned keys as they were at the
//! snapshot's commit version `s`.
//!
//! A key's value at `s` is its first history record above `s`, or its
//! current value when it has none (see `history`); an entry or inode
//! record naming an inode at or above the snapshot's `ino_mark` did not
//! exist at `s` and reads as absent. The current value is read before
//! the history, so a change committing between the two reads is seen in
//! the history (it writes both in one command).

use nokv_types::{Error, Result};

use super::history;
use super::SnapshotInfo;
use crate::engine::Engine;
use crate::keys;
use crate::namespace::{EntryRows, EntrySource, Source};
use crate::records::{decode, EntryRecord};

/// The volume as it was at a snapshot.
pub(crate) struct SnapshotView<'a> {
    engine: &'a Engine,
    info: SnapshotInfo,
}

impl<'a> SnapshotView<'a> {
    pub fn new(engine: &'a Engine, info: SnapshotInfo) -> SnapshotView<'a> {
        SnapshotView { engine, info }
    }

    pub fn info(&self) -> &SnapshotInfo {
        &self.info
    }

    /// `value`, a value of `key` at `s`, or None when it names an inode
    /// created after `s`.
    fn visible(&self, key: &[u8], value: Option<Vec<u8>>) -> Result<Option<Vec<u8>>> {
        let Some(bytes) = value else {
            return Ok(None);
        };
        let ino = match key.first() {
            Some(b'E') => decode::<EntryRecord>("entry", &bytes)?.ino(),
            Some(b'I') => u64::from_be_bytes(
                key.get(1..9)
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| Error::Corrupt("malformed inode key".into()))?,
            ),
            _ => return Ok(Some(bytes)),
        };
        Ok((ino < self.info.ino_mark).then_some(bytes))
    }
}

impl Source for SnapshotView<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let current = self.engine.get(key)?;
        let value = match history::value_at(self.engine, key, self.info.version)? {
            Some(old) => old,
            None => current,
        };
        self.visible(key, value)
    }
}

impl EntrySource for SnapshotView<'_> {
    fn entries(&self, dir: u64, after: Option<&[u8]>, limit: usize) -> Result<EntryRows> {
        let limit = limit.max(1);
        let prefix = keys::entry_prefix(dir);
        let after_key = after.map(|name| keys::entry(dir, name));
        // Current entries first, then history (see the module comment).
        let current = self.engine.scan(&prefix, after_key.as_deref(), limit + 1)?;
        let old = history::first_after_under(
            self.engine,
            &prefix,
            after_key.as_deref(),
            self.info.version,
            limit + 1,
        )?;
        // Union by key, history winning; the first `limit` keys of the
        // union are exact (each source returned at least that many, or
        // all it has).
        let mut union: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>> =
            current.into_iter().map(|(k, v)| (k, Some(v))).collect();
        let sources_more = union.len() > limit || old.len() > limit;
        for (k, v) in old {
            union.insert(k, v);
        }
        let more = sources_more || union.len() > limit;
        let mut rows = Vec::new();
        let mut last = None;
        for (key, value) in union.into_iter().take(limit) {
            let name = keys::entry_name(&key).to_vec();
            if let Some(v) = self.visible(&key, value)? {
                rows.push((name.clone(), v));
            }
            last = Some(name);
        }
        Ok(EntryRows {
            rows,
            next: if more { last } else { None },
        })
    }

    fn as_source(&self) -> &dyn Source {
        self
    }
}
