//! Upload-while-writing for one write handle: blocks a sequential
//! writer has completed are uploaded in the background (a
//! [`StagedUpload`]), so closing a big file only uploads its tail.
//!
//! Invariants:
//! - at most `limit` stagings of this handle are in flight, and each
//!   holds a permit of the mount-wide `budget` until it ends; a writer
//!   that outruns the object store waits here, so memory stays at
//!   `limit` blocks per handle and the budget's blocks per mount;
//! - at most one staging per block index is in flight, and none once
//!   [`Stager::finish`] returns: the publish may then upload over any
//!   staged key without racing a late write of the same key;
//! - a failed staging only loses the head start (the publish uploads
//!   that block itself); it never fails the write;
//! - a staged upload is handed to exactly one publish, or discarded;
//! - the prefix: blocks `0..fed` were staged in index order and their
//!   bytes fed, in that order, to one whole-body hasher (a chain of
//!   blocking tasks, each after the one before). Any change to a block
//!   below `fed` (a write, a shrink, a block staged again) ends the
//!   prefix until the next publish, so a prefix handed to the publish
//!   is exactly the file's leading blocks and the publish need not
//!   read or hash them again.

use std::collections::VecDeque;

use std::sync::Arc;

use bytes::Bytes;
use nokv_client::{hash_in_order, BlockRef, Client, Error, Prefix, Result, StagedUpload};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

type Staging = JoinHandle<Result<BlockRef>>;
type Hashing = JoinHandle<Result<blake3::Hasher>>;

pub struct Stager {
    client: Client,
    limit: usize,
    budget: Arc<Semaphore>,
    staged: Option<StagedUpload>,
    in_flight: VecDeque<(u32, Staging)>,
    prefix: Option<Running>,
}

/// The whole-body hash of blocks `0..fed`, in progress (no task before
/// the first block).
struct Running {
    fed: u32,
    hashing: Option<Hashing>,
    /// Per fed block, once its staging has finished: the block a body
    /// names for its bytes (staged, or the base's when equal).
    known: Vec<Option<BlockRef>>,
}

impl Stager {
    pub fn new(client: Client, limit: usize, budget: Arc<Semaphore>) -> Stager {
        Stager {
            client,
            limit: limit.max(1),
            budget,
            staged: None,
            in_flight: VecDeque::new(),
            prefix: Some(Running::empty()),
        }
    }

    /// Blocks from `block` on change: the prefix cannot cover them.
    pub fn changed_from(&mut self, block: u64) {
        if self
            .prefix
            .as_ref()
            .is_some_and(|p| block < u64::from(p.fed))
        {
            self.end_prefix();
        }
    }

    fn end_prefix(&mut self) {
        if let Some(hashing) = self.prefix.take().and_then(|r| r.hashing) {
            hashing.abort();
        }
    }

    /// Starts uploading `data` as block `index` (skipped by the upload
    /// itself when it equals `unless`, the base generation's block).
    pub async fn stage(&mut self, index: u32, data: Bytes, unless: Option<BlockRef>) {
        if let Some(at) = self.in_flight.iter().position(|(i, _)| *i == index) {
            if let Some(entry) = self.in_flight.remove(at) {
                self.settle(entry).await;
            }
        }
        while self.in_flight.len() >= self.limit {
            match self.in_flight.pop_front() {
                Some(entry) => self.settle(entry).await,
                None => break,
            }
        }
        if self.staged.as_ref().is_some_and(|s| !s.is_fresh()) {
            self.drain().await;
            if let Some(old) = self.staged.take() {
                self.discard(old);
            }
            // The prefix's blocks were staged under the discarded upload.
            self.end_prefix();
        }
        if self.staged.is_none() {
            match self.client.begin_staged_upload().await {
                Ok(staged) => self.staged = Some(staged),
                Err(e) => {
                    tracing::debug!("not staging block {index}: {e}");
                    self.end_prefix();
                    return;
                }
            }
        }
        let Some(upload) = self.staged.as_ref().map(StagedUpload::upload) else {
            return;
        };
        let Ok(permit) = self.budget.clone().acquire_owned().await else {
            // Closed budget: the mount is going away; the publish
            // uploads the block itself.
            self.end_prefix();
            return;
        };
        self.extend_prefix(index, &data);
        let client = self.client.clone();
        let task = tokio::spawn(async move {
            let staged = client.stage_block(upload, index, data, unless).await;
            drop(permit);
            staged
        });
        self.in_flight.push_back((index, task));
    }

    fn extend_prefix(&mut self, index: u32, data: &Bytes) {
        match self.prefix.as_ref().map(|p| p.fed) {
            Some(fed) if index == fed => {}
            Some(fed) if index < fed => return self.end_prefix(),
            // A gap, or no prefix: nothing to extend.
            _ => return,
        }
        let Some(running) = self.prefix.take() else {
            return;
        };
        let before = running.hashing;
        let data = data.clone();
        let hashing = tokio::spawn(async move {
            let hasher = match before {
                Some(task) => task
                    .await
                    .map_err(|e| Error::Io(format!("hashing task: {e}")))??,
                None => blake3::Hasher::new(),
            };
            hash_in_order(hasher, data).await
        });
        let mut known = running.known;
        known.push(None);
        self.prefix = Some(Running {
            fed: index + 1,
            hashing: Some(hashing),
            known,
        });
    }

    async fn settle(&mut self, (index, task): (u32, Staging)) {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::debug!("staging block {index} did not finish: {e}");
                return;
            }
        };
        match outcome {
            Ok(block) => {
                if let Some(staged) = self.staged.as_mut() {
                    staged.record(block);
                }
                if let Some(slot) = self
                    .prefix
                    .as_mut()
                    .and_then(|p| p.known.get_mut(index as usize))
                {
                    *slot = Some(block);
                }
            }
            Err(e) => tracing::debug!("staging block {index} failed: {e}"),
        }
    }

    async fn drain(&mut self) {
        while let Some(entry) = self.in_flight.pop_front() {
            self.settle(entry).await;
        }
    }

    fn discard(&self, staged: StagedUpload) {
        let client = self.client.clone();
        tokio::spawn(async move { client.discard_staged(staged).await });
    }

    /// Waits for every staging in flight and hands over the staged
    /// upload for the publish, with its prefix when there is one (None
    /// when nothing is staged, or the upload is too close to its
    /// deadline to be published safely).
    ///
    /// The stager starts over afterwards (a fresh upload, an empty
    /// prefix): the published upload is never staged into again.
    pub async fn finish(&mut self) -> Option<StagedUpload> {
        self.drain().await;
        let running = self.prefix.replace(Running::empty());
        let mut staged = self.staged.take()?;
        if !staged.is_fresh() {
            self.discard(staged);
            return None;
        }
        if let Some(prefix) = match running {
            Some(r) => r.into_prefix().await,
            None => None,
        } {
            staged.set_prefix(prefix);
        }
        Some(staged)
    }
}

impl Running {
    fn empty() -> Running {
        Running {
            fed: 0,
            hashing: None,
            known: Vec::new(),
        }
    }

    /// The finished prefix, when every fed block's staging succeeded (a
    /// failed one leaves its block unknown, and the hasher cannot drop
    /// bytes it was fed, so there is then no prefix at all).
    async fn into_prefix(self) -> Option<Prefix> {
        let hashing = self.hashing?;
        let Some(blocks) = self
            .known
            .iter()
            .copied()
            .collect::<Option<Vec<BlockRef>>>()
        else {
            hashing.abort();
            return None;
        };
        let hasher = hashing.await.ok()?.ok()?;
        Some(Prefix { hasher, blocks })
    }
}

impl Drop for Stager {
    /// A handle dropped without publishing (its file was removed, or the
    /// publish failed before taking the upload) gives its objects back
    /// now rather than at the staging deadline, after the stagings in
    /// flight have landed (so none lands after the clean-up).
    fn drop(&mut self) {
        self.end_prefix();
        let in_flight: Vec<Staging> = self.in_flight.drain(..).map(|(_, t)| t).collect();
        let staged = self.staged.take();
        if in_flight.is_empty() && staged.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // no runtime: the staging deadline lets GC collect them
        };
        let client = self.client.clone();
        runtime.spawn(async move {
            for task in in_flight {
                let _ = task.await;
            }
            if let Some(staged) = staged {
                client.discard_staged(staged).await;
            }
        });
    }
}
