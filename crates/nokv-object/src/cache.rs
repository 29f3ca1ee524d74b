//! Bounded in-memory cache of verified blocks.
//!
//! Invariants:
//! - only bytes that passed the length and BLAKE3 check are inserted
//!   (the caller's `fetch` verifies before returning `Ok`), so a hit
//!   never needs re-verification;
//! - resident bytes never exceed `cache_bytes` (entries are weighted by
//!   their length);
//! - concurrent misses of one block wait on a single fetch instead of
//!   each issuing a GET; a failed or cancelled fetch releases the
//!   waiters, one of which then fetches again.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use nokv_types::{Result, DEFAULT_BLOCK_SIZE};
use quick_cache::sync::Cache;
use quick_cache::Weighter;

/// Counters of one block store's cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Block reads served without a GET (including waits on a fetch
    /// already in flight for the same block).
    pub hits: u64,
    /// Block reads that issued a GET.
    pub misses: u64,
    /// Bytes currently held.
    pub bytes: u64,
    /// Blocks currently held.
    pub entries: usize,
}

/// Key: `(upload, index)`. Derived object keys are a function of these,
/// and they never name two different byte strings.
type BlockKey = (u64, u32);

#[derive(Clone, Copy)]
struct ByLength;

impl Weighter<BlockKey, Bytes> for ByLength {
    fn weight(&self, _key: &BlockKey, value: &Bytes) -> u64 {
        // Zero-weight entries would never be evicted; blocks are never
        // empty, but a bogus manifest must not pin memory.
        (value.len() as u64).max(1)
    }
}

pub(crate) struct BlockCache {
    cache: Option<Cache<BlockKey, Bytes, ByLength>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl BlockCache {
    pub(crate) fn new(capacity_bytes: u64) -> BlockCache {
        let cache = (capacity_bytes > 0).then(|| {
            // The item estimate only sizes shards and ghost tracking; the
            // default block size keeps shards large enough to hold blocks.
            let items = (capacity_bytes / DEFAULT_BLOCK_SIZE as u64).max(1);
            Cache::with_weighter(
                usize::try_from(items).unwrap_or(usize::MAX),
                capacity_bytes,
                ByLength,
            )
        });
        BlockCache {
            cache,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// Returns the cached block or runs `fetch` (which must verify) and
    /// caches its result.
    pub(crate) async fn get_or_fetch<F, Fut>(&self, key: BlockKey, fetch: F) -> Result<Bytes>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Bytes>>,
    {
        let Some(cache) = &self.cache else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return fetch().await;
        };
        match cache.get_value_or_guard_async(&key).await {
            Ok(bytes) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Ok(bytes)
            }
            Err(guard) => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                let bytes = fetch().await?;
                // Err only means the entry was replaced meanwhile; the
                // caller has its verified bytes either way.
                let _ = guard.insert(bytes.clone());
                Ok(bytes)
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bytes: self.cache.as_ref().map_or(0, |c| c.weight()),
            entries: self.cache.as_ref().map_or(0, |c| c.len()),
        }
    }
}
