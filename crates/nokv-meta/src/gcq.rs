//! Reading and trimming the durable GC queue (`G ‖ version ‖ seq`).
//! Entries are appended by the commands that make blocks unreachable
//! (see `bodies`); a collector deletes the blocks, then the entry.

use nokv_types::{BlockRef, Error, Result};
use serde::{Deserialize, Serialize};

use crate::engine::Engine;
use crate::keys;
use crate::records::{decode, GcRecord};

/// Identity of one GC queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcId {
    pub commit_version: u64,
    pub seq: u32,
}

/// One GC queue entry: blocks that no generation references.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcEntry {
    pub id: GcId,
    pub blocks: Vec<BlockRef>,
    /// When the blocks became unreachable (ns since the epoch).
    pub queued_at: i64,
}

/// Up to `limit` entries, oldest first, queued at or before `floor`
/// (all of them without a floor). An entry queued by the command with
/// version `v` holds blocks that were readable at versions below `v`
/// only, so a snapshot at `s >= v` never reads them.
pub(crate) fn page(engine: &Engine, limit: usize, floor: Option<u64>) -> Result<Vec<GcEntry>> {
    page_after(engine, None, limit, floor)
}

/// Like [`page`], starting after entry `after`.
pub(crate) fn page_after(
    engine: &Engine,
    after: Option<GcId>,
    limit: usize,
    floor: Option<u64>,
) -> Result<Vec<GcEntry>> {
    let after_key = after.map(|id| keys::gc(id.commit_version, id.seq));
    let rows = engine.scan(&keys::gc_prefix(), after_key.as_deref(), limit)?;
    let mut out = Vec::with_capacity(rows.len());
    for (key, value) in rows {
        let (Some(v), Some(s)) = (key.get(1..9), key.get(9..13)) else {
            return Err(Error::Corrupt("malformed GC queue key".into()));
        };
        let id = GcId {
            commit_version: u64::from_be_bytes(
                v.try_into().map_err(|_| Error::Corrupt("gc key".into()))?,
            ),
            seq: u32::from_be_bytes(s.try_into().map_err(|_| Error::Corrupt("gc key".into()))?),
        };
        if floor.is_some_and(|f| id.commit_version > f) {
            break; // keys sort by version: the rest are newer still
        }
        let record: GcRecord = decode("gc", &value)?;
        out.push(GcEntry {
            id,
            blocks: record.blocks,
            queued_at: record.queued_at,
        });
    }
    Ok(out)
}
