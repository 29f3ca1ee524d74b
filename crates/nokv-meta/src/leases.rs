//! Reader leases: a client still reading generations that were replaced
//! or removed keeps their blocks from GC for as long as it says so.
//!
//! A mount's open file reads the generation it opened; when another
//! writer replaces or removes the file, those blocks go on the GC queue
//! (`queued_at` = the replacing command's commit time). The GC grace
//! covers readers for a while; a lease covers them for as long as they
//! stay open.
//!
//! Invariants:
//! - a lease `L ‖ id` holds `since` (the commit time of the oldest
//!   replacement its holder still reads across) and `expires` (this
//!   volume's clock; renewed by holding again). An expired lease counts
//!   for nothing, and the next hold or release deletes it, so a holder
//!   that crashed stops holding GC back after its TTL;
//! - the GC queue hands out an entry only if `queued_at < since` for
//!   every live lease: an entry queued at or after `since` may hold
//!   blocks the holder reads. Entries are in commit order, so the first
//!   held entry ends the page;
//! - leases are not versioned (snapshots never see them) and emit no
//!   watch event.

use nokv_types::{Error, Result};

use crate::command::Txn;
use crate::engine::Engine;
use crate::keys;
use crate::records::{decode, encode, LeaseRecord};

/// Longest a lease may run before it must be held again.
pub const MAX_LEASE_MS: u64 = 86_400_000;

/// Creates or renews lease `id` (chosen by the holder; not 0) until
/// `ttl_ms` from now.
pub(crate) fn hold(txn: &mut Txn<'_>, id: u64, since: i64, ttl_ms: u64) -> Result<()> {
    if id == 0 {
        return Err(Error::InvalidArgument("lease id 0 is reserved".into()));
    }
    if ttl_ms == 0 || ttl_ms > MAX_LEASE_MS {
        return Err(Error::InvalidArgument(format!(
            "lease ttl {ttl_ms} ms is outside 1..={MAX_LEASE_MS}"
        )));
    }
    let now = txn.now();
    let ttl = i64::try_from(ttl_ms)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);
    let record = LeaseRecord {
        since,
        expires: now.saturating_add(ttl),
    };
    drop_expired(txn, now, id)?;
    txn.put(keys::lease(id), encode(&record)?)?;
    Ok(())
}

/// Ends lease `id` (a lease that expired or never existed is fine).
pub(crate) fn release(txn: &mut Txn<'_>, id: u64) -> Result<()> {
    let now = txn.now();
    drop_expired(txn, now, id)?;
    txn.delete(keys::lease(id))?;
    Ok(())
}

fn drop_expired(txn: &mut Txn<'_>, now: i64, except: u64) -> Result<()> {
    let rows = txn.engine().scan(&keys::lease_prefix(), None, usize::MAX)?;
    for (key, value) in rows {
        let record: LeaseRecord = decode("lease", &value)?;
        if record.expires < now && key != keys::lease(except) {
            txn.delete(key)?;
        }
    }
    Ok(())
}

/// The leases live at `now`: how many, and the oldest `since` among
/// them (None: no lease).
pub(crate) fn live(engine: &Engine, now: i64) -> Result<(u64, Option<i64>)> {
    let rows = engine.scan(&keys::lease_prefix(), None, usize::MAX)?;
    let (mut n, mut floor) = (0, None::<i64>);
    for (_, value) in rows {
        let record: LeaseRecord = decode("lease", &value)?;
        if record.expires >= now {
            n += 1;
            floor = Some(floor.map_or(record.since, |f| f.min(record.since)));
        }
    }
    Ok((n, floor))
}
