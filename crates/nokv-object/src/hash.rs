//! BLAKE3 off the async runtime.
//!
//! Invariant: no hash of more than `INLINE_LIMIT` bytes runs on a
//! runtime worker thread. Hashing a 4 MiB block takes milliseconds, and
//! on a 2-core machine that would stall every other task on the worker;
//! below the limit a thread hand-off costs more than the hash.

use bytes::Bytes;
use nokv_types::{Digest, Error, Result};

const INLINE_LIMIT: usize = 64 * 1024;

fn join_error(e: tokio::task::JoinError) -> Error {
    Error::Io(format!("hashing task failed: {e}"))
}

/// BLAKE3 of `data`.
pub(crate) async fn digest(data: Bytes) -> Result<Digest> {
    if data.len() <= INLINE_LIMIT {
        return Ok(*blake3::hash(&data).as_bytes());
    }
    tokio::task::spawn_blocking(move || *blake3::hash(&data).as_bytes())
        .await
        .map_err(join_error)
}

/// Feeds `data` into a running whole-body hasher. The hasher moves in
/// and out so that ordered updates can run on the blocking pool.
pub(crate) async fn update(mut hasher: blake3::Hasher, data: Bytes) -> Result<blake3::Hasher> {
    if data.len() <= INLINE_LIMIT {
        hasher.update(&data);
        return Ok(hasher);
    }
    tokio::task::spawn_blocking(move || {
        hasher.update(&data);
        hasher
    })
    .await
    .map_err(join_error)
}

/// Both the block's own digest and the whole-body update (the upload
/// path needs both for every block). For big blocks the two run on two
/// blocking threads at once: hashing is the serial part of an upload.
pub(crate) async fn digest_and_update(
    mut hasher: blake3::Hasher,
    data: Bytes,
) -> Result<(Digest, blake3::Hasher)> {
    if data.len() <= INLINE_LIMIT {
        hasher.update(&data);
        return Ok((*blake3::hash(&data).as_bytes(), hasher));
    }
    let (block, body) = tokio::join!(digest(data.clone()), update(hasher, data));
    Ok((block?, body?))
}
