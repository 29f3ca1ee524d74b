//! Publishing a file: stage, upload blocks, one command makes the new
//! generation visible.
//!
//! Invariants:
//! - nothing is visible before the publish command commits; readers
//!   see the old generation or the new one, never a mix;
//! - blocks of a failed put are deleted here when possible, and are
//!   covered by the staging record (and so by GC) when not (crash);
//! - blocks reused from the previous generation are never deleted by a
//!   failed put (only blocks of this put's own upload are).

use std::sync::Arc;

use nokv_meta::{MetaOp, MetaReply};
use nokv_object::upload_body_staged;
use nokv_types::{block_object_key, upload_object_prefix, Attr, BlockRef, Body, Error, Result};
use tokio::io::AsyncRead;

use crate::client::{expect_reply, Client};
use crate::staged::StagedUpload;
use crate::upload_pool::Begun;

/// Options of one put.
#[derive(Clone, Default)]
pub struct PutOptions {
    /// Publish only if the current generation is this (0: only if the
    /// file does not exist yet).
    pub if_generation: Option<u64>,
    /// Permission bits of a newly created file (default 0o644).
    pub mode: Option<u32>,
    /// Called with the number of input bytes consumed so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl std::fmt::Debug for PutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOptions")
            .field("if_generation", &self.if_generation)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What a put did.
#[derive(Debug, Clone)]
pub struct PutOutcome {
    pub attr: Attr,
    /// The generation this put replaced, if any.
    pub replaced: Option<Body>,
    pub uploaded_blocks: usize,
    pub uploaded_bytes: u64,
    pub reused_blocks: usize,
    /// Blocks uploaded ahead of the publish (a [`StagedUpload`]) and kept.
    pub staged_blocks: usize,
    /// The manifest this put published (the new generation).
    pub body: Body,
}

/// Deletes the blocks of an upload that will never be published, then
/// its staging record. If this fails the staging record stays and GC
/// collects the upload after its deadline.
pub(crate) async fn discard_upload(client: &Client, upload: u64) {
    let store = client.store();
    let prefix = upload_object_prefix(upload);
    let cleaned = async {
        for (key, _) in store.list_keys(&prefix).await? {
            store.delete(&key).await?;
        }
        Ok::<(), Error>(())
    }
    .await;
    match cleaned {
        Ok(()) => {
            if let Err(e) = client.done(MetaOp::FinishUpload { upload }).await {
                tracing::warn!("upload {upload}: dropping the staging record failed: {e}");
            }
        }
        Err(e) => tracing::warn!("upload {upload}: blocks left for GC: {e}"),
    }
}

/// True when a failed publish certainly did not commit: the metadata
/// layer refused it (a failed check applies nothing). Transport and
/// engine failures (`Io`, `Metadata`, `Corrupt`) leave the outcome
/// unknown: the command may have committed before the reply was lost.
pub(crate) fn publish_refused(e: &Error) -> bool {
    !matches!(e, Error::Io(_) | Error::Metadata(_) | Error::Corrupt(_))
}

impl Client {
    /// Publishes the bytes of `reader` as the new content of `path`
    /// (created or replaced). Streams: memory stays bounded whatever the
    /// input size.
    pub async fn put<R>(&self, path: &str, reader: R, opts: PutOptions) -> Result<PutOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        // The current generation: its blocks may be reused, and a guard
        // that cannot hold fails before anything is uploaded.
        let previous = match self.body(path).await {
            Ok((attr, body)) => Some((attr.generation, body)),
            Err(Error::NotFound(_)) => None,
            Err(Error::InvalidArgument(m)) if m.contains("symlink") => None,
            Err(e) => return Err(e),
        };
        if let Some(expected) = opts.if_generation {
            let current = previous.as_ref().map_or(0, |(g, _)| *g);
            if expected != current {
                return Err(Error::GenerationMismatch {
                    path: path.to_string(),
                    expected,
                    actual: current,
                });
            }
        }

        let owner = self.owner(opts.mode.unwrap_or(0o644));
        let previous_body = previous.as_ref().map(|(_, b)| b);
        let publish = |body: Body, upload: u64| MetaOp::Publish {
            path: path.to_string(),
            body,
            upload,
            if_generation: opts.if_generation,
            owner,
        };
        self.upload_and_publish(
            reader,
            previous_body,
            None,
            opts.if_generation,
            opts.progress.clone(),
            publish,
        )
        .await
    }

    /// The publish protocol shared by every writer (paths and inodes):
    /// stage an upload, stream `reader` into blocks (reusing blocks of
    /// `previous` that did not change), then run the op `publish(body,
    /// upload)` builds. Without a generation guard a publish that lost
    /// its reused blocks to a concurrent writer copies them and
    /// publishes again (last writer wins). A failed upload or publish
    /// discards its own blocks and staging record. With `staged`, the
    /// upload is that one and its blocks still matching are kept.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn upload_and_publish<R>(
        &self,
        reader: R,
        previous: Option<&Body>,
        staged: Option<StagedUpload>,
        if_generation: Option<u64>,
        progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
        publish: impl Fn(Body, u64) -> MetaOp,
    ) -> Result<PutOutcome>
    where
        R: AsyncRead + Unpin + Send,
    {
        let (upload, (staged, prefix)) = match staged {
            Some(staged) => (staged.upload(), staged.into_parts()),
            None => (self.begin_upload().await?, (Vec::new(), None)),
        };

        let report = move |n: u64| {
            if let Some(p) = &progress {
                p(n)
            }
        };
        let uploaded = match upload_body_staged(
            self.store(),
            reader,
            self.inner.block_size,
            upload,
            previous,
            &staged,
            prefix,
            &report,
        )
        .await
        {
            Ok(u) => u,
            Err(e) => {
                discard_upload(self, upload).await;
                return Err(e);
            }
        };

        let mut body = uploaded.body.clone();
        let mut uploaded_blocks = uploaded.uploaded_keys.len();
        let mut uploaded_bytes = uploaded.uploaded_bytes;
        let mut reused_blocks = uploaded.reused_blocks;
        let mut result = self.call(publish(body.clone(), upload)).await;
        if let Err(Error::GenerationMismatch { .. }) = &result {
            if if_generation.is_none() && reused_blocks > 0 {
                // Another writer replaced the generation whose blocks this
                // put reused (they may be on the GC queue now). Without a
                // generation guard the put should still win: copy the
                // reused blocks into this upload and publish again.
                match self.adopt_reused_blocks(&mut body, upload).await {
                    Ok((n, bytes)) => {
                        uploaded_blocks += n;
                        uploaded_bytes += bytes;
                        reused_blocks = 0;
                        result = self.call(publish(body.clone(), upload)).await;
                    }
                    Err(e) => result = Err(e),
                }
            }
        }
        match result {
            Ok(MetaReply::Published(outcome)) => {
                self.delete_unused_staged(upload, &staged, &body).await;
                Ok(PutOutcome {
                    attr: outcome.attr,
                    replaced: outcome.replaced,
                    uploaded_blocks,
                    uploaded_bytes,
                    reused_blocks,
                    staged_blocks: uploaded.staged_blocks,
                    body,
                })
            }
            Ok(other) => Err(nokv_meta::unexpected("publish", &other)),
            Err(e) if publish_refused(&e) => {
                discard_upload(self, upload).await;
                Err(e)
            }
            // The publish may have committed (the server died or the
            // connection broke after it ran): its blocks may be
            // referenced now, so they stay. If it did not commit, the
            // staging record still covers them and GC collects them
            // after the deadline.
            Err(e) => Err(e),
        }
    }

    /// A fresh upload id with its staging record.
    pub(crate) async fn begin_upload(&self) -> Result<u64> {
        Ok(self.begin_upload_begun().await?.id)
    }

    /// A fresh upload with its staging record's deadline: from the pool
    /// of uploads begun ahead when it is on and has one, else begun now
    /// (with more for the pool when uploads are being taken in a burst).
    pub(crate) async fn begin_upload_begun(&self) -> Result<Begun> {
        let ttl = self.staging_ttl_nanos();
        let now = nokv_types::now_nanos();
        let taken = self.inner.uploads.take(now, ttl);
        if !taken.stale.is_empty() {
            self.give_back_uploads(taken.stale).await;
        }
        if let Some(begun) = taken.begun {
            return Ok(begun);
        }
        let deadline = now.saturating_add(ttl);
        let op = MetaOp::BeginUpload { deadline };
        let mut results = if taken.refill <= 1 {
            vec![self.call(op).await]
        } else {
            self.batch(vec![op; taken.refill]).await
        }
        .into_iter()
        .map(|r| {
            r.and_then(|reply| {
                expect_reply!(reply, "begin_upload", MetaReply::Upload(id) => Begun { id, deadline })
            })
        });
        let first = results
            .next()
            .unwrap_or_else(|| Err(Error::Metadata("begin_upload: no reply".into())));
        let extra: Vec<Begun> = results.filter_map(Result::ok).collect();
        if !extra.is_empty() && !self.inner.uploads.put(extra.iter().copied()) {
            self.give_back_uploads(extra.iter().map(|b| b.id).collect())
                .await;
        }
        first
    }

    /// Begins uploads ahead, in batches, from now on: for a client that
    /// publishes many small files (a mount). Give the rest back with
    /// [`Client::release_uploads_ahead`] when done.
    pub fn begin_uploads_ahead(&self) {
        self.inner.uploads.enable();
    }

    /// Undoes one [`Client::begin_uploads_ahead`]; after the last, stops
    /// beginning uploads ahead and drops the staging records of those
    /// still unused (they have no objects).
    pub async fn release_uploads_ahead(&self) {
        let unused = self.inner.uploads.drain();
        self.give_back_uploads(unused).await;
    }

    /// Drops the staging records of uploads that were never written to.
    async fn give_back_uploads(&self, ids: Vec<u64>) {
        if ids.is_empty() {
            return;
        }
        let ops = ids
            .iter()
            .map(|&upload| MetaOp::FinishUpload { upload })
            .collect();
        for (id, r) in ids.iter().zip(self.batch(ops).await) {
            if let Err(e) = r {
                tracing::warn!("upload {id}: dropping its unused staging record failed: {e}");
            }
        }
    }

    pub(crate) fn staging_ttl_nanos(&self) -> i64 {
        nokv_types::duration_nanos(self.inner.opts.staging_ttl)
    }

    /// Deletes staged objects the published body does not name (blocks
    /// past its end, or where the previous generation's block was kept).
    /// Their upload is published, so GC no longer covers them: a failure
    /// here leaves them to `fsck --delete-leaked`.
    async fn delete_unused_staged(&self, upload: u64, staged: &[Option<BlockRef>], body: &Body) {
        for (index, _) in staged.iter().enumerate().filter(|(_, s)| s.is_some()) {
            let named = body
                .blocks
                .get(index)
                .is_some_and(|b| b.upload == upload && b.index as usize == index);
            if named {
                continue;
            }
            let key = block_object_key(upload, index as u32);
            if let Err(e) = self.store().delete(&key).await {
                tracing::warn!("staged block {key} left behind: {e}");
            }
        }
    }

    /// Copies every block of `body` that belongs to another upload into
    /// `upload` (same index, verified bytes), so the body no longer
    /// depends on a generation that may be collected. Returns the number
    /// of blocks and bytes copied.
    async fn adopt_reused_blocks(&self, body: &mut Body, upload: u64) -> Result<(usize, u64)> {
        let store = self.store();
        let mut copied = (0usize, 0u64);
        for block in body.blocks.iter_mut().filter(|b| b.upload != upload) {
            let bytes = store.get_block(block).await?;
            let key = nokv_types::block_object_key(upload, block.index);
            store.put_block(&key, bytes).await?;
            block.upload = upload;
            copied.0 += 1;
            copied.1 += block.len as u64;
        }
        Ok(copied)
    }

    /// Publishes `bytes` as the content of `path`.
    pub async fn put_bytes(
        &self,
        path: &str,
        bytes: &[u8],
        opts: PutOptions,
    ) -> Result<PutOutcome> {
        self.put(path, bytes, opts).await
    }

    /// Sets a file's size: shrinking keeps the prefix, growing appends
    /// zeros. Unchanged blocks are reused, not re-uploaded.
    pub async fn truncate(&self, path: &str, size: u64) -> Result<Attr> {
        let (attr, body) = self.body(path).await?;
        if size == body.size {
            return Ok(attr);
        }
        if size == 0 {
            let change = nokv_types::SetAttr {
                size: Some(0),
                ..Default::default()
            };
            let reply = self
                .call(MetaOp::SetAttr {
                    path: path.into(),
                    change,
                })
                .await?;
            return expect_reply!(reply, "setattr", MetaReply::Attr(a) => a);
        }
        use tokio::io::AsyncReadExt;
        let kept = self.read_range_stream(path, 0, size.min(body.size)).await?;
        let zeros = tokio::io::repeat(0).take(size.saturating_sub(body.size));
        let reader = stream_reader(kept).chain(zeros);
        let opts = PutOptions {
            if_generation: Some(attr.generation),
            ..PutOptions::default()
        };
        Ok(self.put(path, Box::pin(reader), opts).await?.attr)
    }
}

/// Adapts a stream of byte chunks to `AsyncRead`.
fn stream_reader(
    stream: futures::stream::BoxStream<'static, Result<bytes::Bytes>>,
) -> impl AsyncRead + Send + Unpin {
    use futures::TryStreamExt;
    tokio_util::io::StreamReader::new(stream.map_err(|e| std::io::Error::other(e.to_string())))
}
