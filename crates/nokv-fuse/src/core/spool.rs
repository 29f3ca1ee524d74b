//! The write spool of one open-for-write handle: a local temp file (not
//! RAM) holding the handle's view of the file, over the generation it
//! started from (`base`).
//!
//! Invariants:
//! - the temp file's length is the logical size of the file;
//! - block `i` of the file is the temp file's bytes when `present[i]`;
//!   otherwise it is `base`'s bytes below `base_limit` and zeros above
//!   (the temp file region of a non-present block is never read);
//! - a write into a block that is not present first copies the base
//!   bytes of that block into the temp file (unless the write covers
//!   them all), so a present block is always complete;
//! - shrinking truncates the temp file and lowers `base_limit`, so bytes
//!   cut off never come back when the file grows again (zeros do);
//! - `dirty` is set by every change and cleared only by a successful
//!   publish; a clean spool publishes nothing;
//! - a block is staged (uploaded ahead, `stage.rs`) when a write
//!   completes it; staging is only a head start, the publish still
//!   reads and hashes every block and keeps a staged one only if its
//!   bytes match.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::stream::{self, StreamExt};
use nokv_client::{Attr, Body, Client, Error, Result, SetAttr};

use tokio::sync::Semaphore;

use super::stage::Stager;

/// Base blocks fetched ahead while a publish streams the file.
const PUBLISH_FETCH_AHEAD: usize = 8;

/// Completed blocks uploaded in the background at once, per handle (as
/// many as the mount-wide staging budget allows).
const STAGE_IN_FLIGHT: usize = 16;

pub struct Spool {
    /// Created at the first write or truncate: opening a file to only
    /// read it through a write handle, or creating an empty file, costs
    /// no temp file.
    file: Option<File>,
    dir: std::path::PathBuf,
    size: u64,
    block_size: u64,
    base: Option<Body>,
    base_limit: u64,
    present: Vec<bool>,
    dirty: bool,
    /// Created at the first completed block (boxed: most handles never
    /// complete one).
    stager: Option<Box<Stager>>,
    /// The mount's blocks-in-flight budget, shared by every stager.
    budget: Arc<Semaphore>,
}

fn io(e: std::io::Error) -> Error {
    Error::Io(format!("write spool: {e}"))
}

impl Spool {
    /// A spool in `dir` over `base` (None: an empty file). `truncate`
    /// starts it empty and dirty (O_TRUNC: the truncation publishes even
    /// if nothing is written).
    pub fn new(
        dir: &Path,
        block_size: u32,
        base: Option<Body>,
        truncate: bool,
        budget: Arc<Semaphore>,
    ) -> Result<Spool> {
        let base = if truncate { None } else { base };
        let size = base.as_ref().map_or(0, |b| b.size);
        Ok(Spool {
            file: None,
            dir: dir.to_path_buf(),
            size,
            block_size: u64::from(block_size.max(1)),
            base_limit: size,
            base,
            present: Vec::new(),
            dirty: truncate,
            stager: None,
            budget,
        })
    }

    /// The temp file, created (at the logical size) on first use.
    fn file(&mut self) -> Result<&File> {
        if self.file.is_none() {
            let f = tempfile::tempfile_in(&self.dir).map_err(io)?;
            f.set_len(self.size).map_err(io)?;
            self.file = Some(f);
        }
        self.file
            .as_ref()
            .ok_or_else(|| Error::Io("write spool: no temp file".into()))
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    fn is_present(&self, block: usize) -> bool {
        self.present.get(block).copied().unwrap_or(false)
    }

    fn set_present(&mut self, block: usize, yes: bool) {
        if self.present.len() <= block {
            if !yes {
                return;
            }
            self.present.resize(block + 1, false);
        }
        self.present[block] = yes;
    }

    /// Bytes `[start, end)` of the base generation as this spool sees
    /// them: base bytes below `base_limit`, zeros above.
    async fn base_bytes(&self, client: &Client, start: u64, end: u64) -> Result<Bytes> {
        let mut out = BytesMut::with_capacity((end - start) as usize);
        let from_base = end.min(self.base_limit);
        if let (Some(base), true) = (&self.base, start < from_base) {
            let got = client.read_body(base, start, from_base - start).await?;
            if got.len() as u64 != from_base - start {
                return Err(Error::Corrupt(format!(
                    "base read returned {} bytes, wanted {}",
                    got.len(),
                    from_base - start
                )));
            }
            out.extend_from_slice(&got);
        }
        out.resize((end - start) as usize, 0);
        Ok(out.freeze())
    }

    fn pread(&self, start: u64, len: usize) -> Result<Bytes> {
        let mut buf = vec![0u8; len];
        let Some(file) = &self.file else {
            return Ok(Bytes::from(buf)); // never written: nothing present
        };
        let mut done = 0;
        while done < len {
            let n = file
                .read_at(&mut buf[done..], start + done as u64)
                .map_err(io)?;
            if n == 0 {
                break; // past the temp file's end: zeros
            }
            done += n;
        }
        Ok(Bytes::from(buf))
    }

    /// Bytes `[offset, offset+len)` as the handle sees them (clamped to
    /// the size).
    pub async fn read(&self, client: &Client, offset: u64, len: u64) -> Result<Bytes> {
        let end = offset.saturating_add(len).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        let mut pos = offset;
        while pos < end {
            let block = (pos / self.block_size) as usize;
            let block_end = ((block as u64 + 1) * self.block_size).min(end);
            let piece = if self.is_present(block) {
                self.pread(pos, (block_end - pos) as usize)?
            } else {
                self.base_bytes(client, pos, block_end).await?
            };
            out.extend_from_slice(&piece);
            pos = block_end;
        }
        Ok(out.freeze())
    }

    /// Writes `data` at `offset` (extending the file with zeros if the
    /// offset is past the end).
    pub async fn write(&mut self, client: &Client, offset: u64, data: &[u8]) -> Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| Error::InvalidArgument("write past the largest offset".into()))?;
        let first = offset / self.block_size;
        let last = (end - 1) / self.block_size;
        if let Some(stager) = self.stager.as_mut() {
            stager.changed_from(first);
        }
        for block in first..=last {
            let b = block as usize;
            if self.is_present(b) {
                continue;
            }
            let bstart = block * self.block_size;
            let bend = bstart + self.block_size;
            let base_end = bend.min(self.base_limit).min(self.size);
            let covered = offset <= bstart && end >= base_end;
            if bstart < base_end && !covered {
                let bytes = self.base_bytes(client, bstart, base_end).await?;
                self.file()?.write_all_at(&bytes, bstart).map_err(io)?;
            }
            self.set_present(b, true);
        }
        self.file()?.write_all_at(data, offset).map_err(io)?;
        self.size = self.size.max(end);
        self.dirty = true;
        self.stage_completed(client, offset, end, first..=last)
            .await
    }

    /// Stages every block whose last byte this write `[offset, end)`
    /// wrote: a sequential writer completes each block exactly once.
    async fn stage_completed(
        &mut self,
        client: &Client,
        offset: u64,
        end: u64,
        blocks: std::ops::RangeInclusive<u64>,
    ) -> Result<()> {
        for block in blocks {
            let bstart = block * self.block_size;
            let bend = bstart + self.block_size;
            let completed = bend > offset && bend <= end && bend <= self.size;
            if !completed || !self.is_present(block as usize) {
                continue;
            }
            let Ok(index) = u32::try_from(block) else {
                continue; // past the largest block index: the publish refuses it
            };
            let data = self.pread(bstart, self.block_size as usize)?;
            let unless = self
                .base
                .as_ref()
                .filter(|b| u64::from(b.block_size) == self.block_size)
                .and_then(|b| b.blocks.get(block as usize).copied());
            self.stager
                .get_or_insert_with(|| {
                    Box::new(Stager::new(
                        client.clone(),
                        STAGE_IN_FLIGHT,
                        self.budget.clone(),
                    ))
                })
                .stage(index, data, unless)
                .await;
        }
        Ok(())
    }

    /// Sets the size: shrinking drops the bytes past it for good,
    /// growing adds zeros.
    pub fn truncate(&mut self, size: u64) -> Result<()> {
        if let Some(stager) = self.stager.as_mut() {
            // Growing changes the last partial block (zeros appended).
            stager.changed_from(size.min(self.size) / self.block_size);
        }
        if size < self.size {
            self.base_limit = self.base_limit.min(size);
            let keep = size.div_ceil(self.block_size) as usize;
            self.present.truncate(keep);
        }
        self.file()?.set_len(size).map_err(io)?;
        self.size = size;
        self.dirty = true;
        Ok(())
    }

    /// Publishes the spool as the next generation of `ino` (blocks equal
    /// to the base generation's are reused, not uploaded) with `attrs`
    /// set in the same command (without an mtime: the commit time) and
    /// makes the result the new base. Clean spools publish nothing and
    /// return None.
    pub async fn publish(
        &mut self,
        client: &Client,
        ino: u64,
        attrs: SetAttr,
    ) -> Result<Option<Attr>> {
        if !self.dirty {
            return Ok(None);
        }
        // Before the publish reads the spool: no staging may still be
        // writing a key the publish may write too.
        let staged = match self.stager.as_mut() {
            Some(stager) => stager.finish().await,
            None => None,
        };
        let blocks = self.size.div_ceil(self.block_size);
        // The prefix's blocks are hashed already: stream what follows.
        let first = staged.as_ref().map_or(0, |s| s.prefix_blocks() as u64);
        let this = &*self;
        let chunks = stream::iter(first..blocks)
            .map(move |block| async move {
                let start = block * this.block_size;
                this.read(client, start, this.block_size)
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))
            })
            .buffered(PUBLISH_FETCH_AHEAD);
        let reader = tokio_util_reader(Box::pin(chunks));
        let outcome = client
            .publish_ino_staged(ino, reader, self.base.as_ref(), staged, None, attrs)
            .await?;
        // The published body is exactly the spool's content: it becomes
        // the base, and present blocks stay valid.
        self.base_limit = outcome.body.size;
        self.base = Some(outcome.body);
        self.dirty = false;
        Ok(Some(outcome.attr))
    }
}

/// Adapts an ordered stream of chunks to `AsyncRead` for the uploader.
fn tokio_util_reader<S>(chunks: S) -> impl tokio::io::AsyncRead + Unpin + Send
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    StreamRead {
        chunks,
        current: Bytes::new(),
    }
}

struct StreamRead<S> {
    chunks: S,
    current: Bytes,
}

impl<S> tokio::io::AsyncRead for StreamRead<S>
where
    S: futures::Stream<Item = std::io::Result<Bytes>> + Unpin + Send,
{
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        loop {
            if !self.current.is_empty() {
                let n = self.current.len().min(buf.remaining());
                let chunk = self.current.split_to(n);
                buf.put_slice(&chunk);
                return Poll::Ready(Ok(()));
            }
            match self.chunks.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(chunk))) => self.current = chunk,
                Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(e)),
                Poll::Ready(None) => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
