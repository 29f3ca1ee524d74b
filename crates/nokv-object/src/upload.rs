//! Streaming upload of one body.
//!
//! Invariants:
//! - memory is bounded by the block size times (concurrency + 2): the
//!   uploads in flight, the block being hashed and the block being
//!   read; the input is never buffered whole;
//! - the whole-body digest is fed blocks strictly in input order;
//! - a block is reused only when the previous body has the same block
//!   size and, at the same index, the same length and BLAKE3: a reused
//!   `BlockRef` names bytes identical to what would have been uploaded;
//! - the same holds for blocks staged ahead under this upload (see
//!   [`stage_block`]): a staged block whose bytes still match is kept,
//!   one that no longer matches is uploaded again over the same key, so
//!   the caller must not have a staged upload of that key in flight;
//! - a [`Prefix`] is the first blocks of the body, hashed in order by
//!   the caller ([`hash_in_order`]) and known not to have changed: the
//!   upload continues the whole-body digest from it instead of reading
//!   those bytes again, and the reader yields only what follows;
//! - on error nothing is deleted here, but every upload already started
//!   has finished (or failed) before the error is returned, so the
//!   caller's clean-up sees every object this call will ever write (an
//!   aborted task could still land its object later: a local write runs
//!   on a blocking thread that cannot be cancelled);
//! - the objects written so far are unreferenced, and the caller (or
//!   staging GC) owns their deletion.

use bytes::{Bytes, BytesMut};
use nokv_types::{block_object_key, BlockRef, Body, Digest, Error, Result};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use crate::hash;
use crate::store::BlockStore;

/// What [`upload_body`] wrote.
#[derive(Debug, Clone)]
pub struct UploadOutcome {
    /// The manifest to publish; `body.check()` holds.
    pub body: Body,
    /// Keys of the objects written by this call, in block order.
    pub uploaded_keys: Vec<String>,
    /// Blocks taken over from the previous body instead of uploaded.
    pub reused_blocks: usize,
    /// Blocks staged ahead under this upload and kept as they were.
    pub staged_blocks: usize,
    pub uploaded_bytes: u64,
}

fn task_error(e: tokio::task::JoinError) -> Error {
    Error::Io(format!("upload task failed: {e}"))
}

/// Fills one block from `reader`; shorter than `block_size` only at EOF.
async fn read_block<R: AsyncRead + Unpin>(
    reader: &mut R,
    block_size: u32,
    consumed: &mut u64,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<BytesMut> {
    let block_size = block_size as usize;
    let mut buf = BytesMut::with_capacity(block_size);
    while buf.len() < block_size {
        // `take` caps the read even if the allocator handed out more
        // capacity than asked for.
        let remaining = (block_size - buf.len()) as u64;
        let n = (&mut *reader)
            .take(remaining)
            .read_buf(&mut buf)
            .await
            .map_err(|e| Error::Io(format!("reading input: {e}")))?;
        if n == 0 {
            break;
        }
        *consumed += n as u64;
        progress(*consumed);
    }
    Ok(buf)
}

async fn join_one(uploads: &mut JoinSet<Result<()>>) -> Result<()> {
    match uploads.join_next().await {
        Some(joined) => joined.map_err(task_error)?,
        None => Ok(()),
    }
}

/// Streams `reader` into blocks of `block_size` bytes, uploads those not
/// reusable from `previous`, and returns the new manifest.
pub async fn upload_body<R: AsyncRead + Unpin + Send>(
    store: &BlockStore,
    reader: R,
    block_size: u32,
    upload: u64,
    previous: Option<&Body>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<UploadOutcome> {
    upload_body_staged(
        store,
        reader,
        block_size,
        upload,
        previous,
        &[],
        None,
        progress,
    )
    .await
}

/// The leading full blocks of a body the caller already hashed: the
/// whole-body hasher fed with exactly those bytes, and their blocks.
#[derive(Debug, Clone)]
pub struct Prefix {
    pub hasher: blake3::Hasher,
    pub blocks: Vec<BlockRef>,
}

/// Feeds `data` into a running whole-body hasher, off the runtime's
/// worker threads (callers chain these to keep block order).
pub async fn hash_in_order(hasher: blake3::Hasher, data: Bytes) -> Result<blake3::Hasher> {
    hash::update(hasher, data).await
}

/// Uploads one block ahead of the body it will belong to, as block
/// `index` of `upload`, unless it equals `unless` (the block the
/// previous generation has at that index). Returns the block the body
/// can name for those bytes: the one written, or `unless`.
pub async fn stage_block(
    store: &BlockStore,
    upload: u64,
    index: u32,
    data: Bytes,
    unless: Option<BlockRef>,
) -> Result<BlockRef> {
    let len = u32::try_from(data.len())
        .map_err(|_| Error::InvalidArgument("staged block longer than 4 GiB".into()))?;
    let checksum = hash::digest(data.clone()).await?;
    if let Some(same) = unless.filter(|p| p.len == len && p.checksum == checksum) {
        return Ok(same);
    }
    store
        .put_block(&block_object_key(upload, index), data)
        .await?;
    Ok(BlockRef {
        upload,
        index,
        len,
        checksum,
    })
}

/// [`upload_body`] where `staged[i]`, when set, is block `i` already
/// written under `upload` by [`stage_block`]: kept if the input's block
/// still has its bytes. With a `prefix`, `reader` yields the bytes after
/// the prefix's blocks only.
#[allow(clippy::too_many_arguments)]
pub async fn upload_body_staged<R: AsyncRead + Unpin + Send>(
    store: &BlockStore,
    reader: R,
    block_size: u32,
    upload: u64,
    previous: Option<&Body>,
    staged: &[Option<BlockRef>],
    prefix: Option<Prefix>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<UploadOutcome> {
    if block_size == 0 {
        return Err(Error::InvalidArgument("block size must be positive".into()));
    }
    let reusable: &[BlockRef] = previous
        .filter(|p| p.block_size == block_size)
        .map_or(&[], |p| p.blocks.as_slice());
    let concurrency = store.options().effective_concurrency();

    let mut uploads: JoinSet<Result<()>> = JoinSet::new();
    let result = upload_blocks(
        store,
        reader,
        block_size,
        upload,
        Reusable {
            previous: reusable,
            staged,
        },
        prefix,
        concurrency,
        &mut uploads,
        progress,
    )
    .await;
    if result.is_err() {
        // Let started uploads finish so none lands after we return.
        while uploads.join_next().await.is_some() {}
    }
    result
}

/// Blocks an upload may keep instead of writing.
struct Reusable<'a> {
    previous: &'a [BlockRef],
    staged: &'a [Option<BlockRef>],
}

impl Reusable<'_> {
    fn previous(&self, index: u32, len: u32, checksum: &Digest) -> Option<BlockRef> {
        self.previous
            .get(index as usize)
            .filter(|p| p.len == len && &p.checksum == checksum)
            .copied()
    }

    fn staged(&self, upload: u64, index: u32, len: u32, checksum: &Digest) -> Option<BlockRef> {
        self.staged
            .get(index as usize)
            .copied()
            .flatten()
            .filter(|s| s.upload == upload && s.index == index)
            .filter(|s| s.len == len && &s.checksum == checksum)
    }
}

#[allow(clippy::too_many_arguments)]
async fn upload_blocks<R: AsyncRead + Unpin + Send>(
    store: &BlockStore,
    reader: R,
    block_size: u32,
    upload: u64,
    reusable: Reusable<'_>,
    prefix: Option<Prefix>,
    concurrency: usize,
    uploads: &mut JoinSet<Result<()>>,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<UploadOutcome> {
    let mut reader = reader;
    let mut uploaded_keys = Vec::new();
    let mut reused_blocks = 0usize;
    let mut staged_blocks = 0usize;
    let mut uploaded_bytes = 0u64;
    let (mut hasher, mut blocks) = match prefix {
        Some(p) => (p.hasher, p.blocks),
        None => (blake3::Hasher::new(), Vec::new()),
    };
    if let Some(short) = blocks.iter().find(|b| b.len != block_size) {
        return Err(Error::InvalidArgument(format!(
            "prefix block {} is {} bytes, not a full block of {block_size}",
            short.index, short.len
        )));
    }
    for (i, b) in blocks.iter().enumerate() {
        if b.upload == upload && b.index as usize == i {
            staged_blocks += 1;
        } else {
            reused_blocks += 1;
        }
    }
    let mut consumed = blocks.len() as u64 * u64::from(block_size);

    let mut next = read_block(&mut reader, block_size, &mut consumed, progress).await?;
    while !next.is_empty() {
        let data: Bytes = next.freeze();
        let at_eof = data.len() < block_size as usize;
        let index = u32::try_from(blocks.len()).map_err(|_| {
            Error::InvalidArgument(format!(
                "input has more than {} blocks of {block_size} bytes",
                u32::MAX
            ))
        })?;
        // Hash this block while the next one is being read.
        let hashing = tokio::spawn(hash::digest_and_update(hasher, data.clone()));
        next = if at_eof {
            BytesMut::new()
        } else {
            read_block(&mut reader, block_size, &mut consumed, progress).await?
        };
        let (checksum, updated) = hashing.await.map_err(task_error)??;
        hasher = updated;

        // Blocks are at most `block_size` (a u32) long.
        let len = data.len() as u32;
        if let Some(prev) = reusable.previous(index, len, &checksum) {
            blocks.push(prev);
            reused_blocks += 1;
            continue;
        }
        if let Some(staged) = reusable.staged(upload, index, len, &checksum) {
            blocks.push(staged);
            staged_blocks += 1;
            continue;
        }
        while uploads.len() >= concurrency {
            join_one(uploads).await?;
        }
        let key = block_object_key(upload, index);
        let task_store = store.clone();
        let task_key = key.clone();
        uploads.spawn(async move { task_store.put_block(&task_key, data).await });
        uploaded_keys.push(key);
        uploaded_bytes += len as u64;
        blocks.push(BlockRef {
            upload,
            index,
            len,
            checksum,
        });
    }
    while !uploads.is_empty() {
        join_one(uploads).await?;
    }

    let body = Body {
        size: consumed,
        block_size,
        digest: *hasher.finalize().as_bytes(),
        blocks,
    };
    body.check()?;
    Ok(UploadOutcome {
        body,
        uploaded_keys,
        reused_blocks,
        staged_blocks,
        uploaded_bytes,
    })
}
