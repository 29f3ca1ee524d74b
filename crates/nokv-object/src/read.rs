//! Ranged, prefetching reads of a body.
//!
//! Invariants:
//! - chunks come out in byte order and cover exactly the requested range
//!   clamped to the body; every byte comes from a verified block;
//! - at most `concurrency` block fetches run ahead of the consumer, each
//!   in its own task so it progresses while the consumer is busy, and
//!   dropping the stream cancels them;
//! - the stream ends after its first error, so a consumer can never read
//!   past a hole;
//! - a read of the whole body also checks the whole-body digest, which
//!   catches a manifest whose blocks are individually intact but wrong
//!   as a whole (for example, reordered).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use nokv_types::{BlockRef, Body, Digest, Error, Result};
use tokio::task::JoinHandle;

use crate::hash;
use crate::store::BlockStore;

/// One block of the plan and the part of it the caller wants.
struct Piece {
    block: BlockRef,
    lo: usize,
    hi: usize,
}

/// Blocks overlapping `[start, end)`, which the caller clamped to the
/// body; the manifest passed `Body::check`, so offsets are uniform.
fn plan(body: &Body, start: u64, end: u64) -> Vec<Piece> {
    if start >= end || body.block_size == 0 {
        return Vec::new();
    }
    let bs = body.block_size as u64;
    let first = (start / bs) as usize;
    let last = ((end - 1) / bs) as usize;
    (first..=last)
        .filter_map(|i| {
            let block = *body.blocks.get(i)?;
            let block_start = body.block_offset(i);
            let lo = start.saturating_sub(block_start).min(block.len as u64);
            let hi = (end - block_start).min(block.len as u64);
            Some(Piece {
                block,
                lo: lo as usize,
                hi: hi as usize,
            })
        })
        .collect()
}

/// A spawned fetch that is cancelled when the stream drops it.
struct AbortOnDrop(JoinHandle<Result<Bytes>>);

impl Future for AbortOnDrop {
    type Output = Result<Bytes>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|joined| {
            joined.unwrap_or_else(|e| Err(Error::Io(format!("block fetch task failed: {e}"))))
        })
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

struct State {
    chunks: BoxStream<'static, Result<Bytes>>,
    /// Present only when the whole body is read.
    hasher: Option<blake3::Hasher>,
    expected: Digest,
    done: bool,
}

async fn step(mut st: State) -> Option<(Result<Bytes>, State)> {
    if st.done {
        return None;
    }
    match st.chunks.next().await {
        Some(Ok(chunk)) => {
            if let Some(h) = st.hasher.take() {
                match hash::update(h, chunk.clone()).await {
                    Ok(h) => st.hasher = Some(h),
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                }
            }
            Some((Ok(chunk), st))
        }
        Some(Err(e)) => {
            st.done = true;
            Some((Err(e), st))
        }
        None => {
            st.done = true;
            let h = st.hasher.take()?;
            if *h.finalize().as_bytes() != st.expected {
                tracing::warn!("whole-body digest mismatch");
                return Some((
                    Err(Error::ChecksumMismatch {
                        key: "body".to_string(),
                    }),
                    st,
                ));
            }
            None
        }
    }
}

/// Ordered chunks of `[offset, offset + len)` of `body`, clamped to its
/// size; sequential consumers get up to `concurrency` blocks prefetched.
pub fn read_stream(
    store: &BlockStore,
    body: &Body,
    offset: u64,
    len: u64,
) -> BoxStream<'static, Result<Bytes>> {
    if let Err(e) = body.check() {
        return stream::once(async move { Err(e) }).boxed();
    }
    let start = offset.min(body.size);
    let end = offset.saturating_add(len).min(body.size);
    let whole = offset == 0 && len >= body.size;
    let concurrency = store.options().effective_concurrency();
    let store = store.clone();
    let chunks = stream::iter(plan(body, start, end))
        .map(move |piece| {
            let store = store.clone();
            // Spawned (not just polled by `buffered`) so prefetches make
            // progress while the consumer is off doing something else.
            AbortOnDrop(tokio::spawn(async move {
                let block = store.get_block(&piece.block).await?;
                Ok(block.slice(piece.lo..piece.hi))
            }))
        })
        .buffered(concurrency)
        .boxed();
    let state = State {
        chunks,
        hasher: whole.then(blake3::Hasher::new),
        expected: body.digest,
        done: false,
    };
    stream::unfold(state, step).boxed()
}

/// The range as one buffer (see [`read_stream`]).
pub async fn read_range(store: &BlockStore, body: &Body, offset: u64, len: u64) -> Result<Bytes> {
    let mut chunks = read_stream(store, body, offset, len);
    let Some(first) = chunks.next().await.transpose()? else {
        return Ok(Bytes::new());
    };
    let Some(second) = chunks.next().await.transpose()? else {
        // Single-block reads skip the copy.
        return Ok(first);
    };
    let want = offset
        .saturating_add(len)
        .min(body.size)
        .saturating_sub(offset);
    let mut buf = BytesMut::with_capacity(usize::try_from(want).unwrap_or(0));
    buf.extend_from_slice(&first);
    buf.extend_from_slice(&second);
    while let Some(chunk) = chunks.next().await.transpose()? {
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}
