//! Upload-while-writing for one write handle: blocks a sequential
//! writer has completed are uploaded in the background (a
//! [`StagedUpload`]), so closing a big file only uploads its tail.
//!
//! Invariants:
//! - at most `limit` stagings are in flight; a writer that outruns the
//!   object store waits here, so memory stays at `limit` blocks;
//! - at most one staging per block index is in flight, and none once
//!   [`Stager::finish`] returns: the publish may then upload over any
//!   staged key without racing a late write of the same key;
//! - a failed staging only loses the head start (the publish uploads
//!   that block itself); it never fails the write;
//! - a staged upload is handed to exactly one publish, or discarded.

use std::collections::VecDeque;

use bytes::Bytes;
use nokv_client::{BlockRef, Client, Result, StagedUpload};
use tokio::task::JoinHandle;

type Staging = JoinHandle<Result<Option<BlockRef>>>;

pub struct Stager {
    client: Client,
    limit: usize,
    staged: Option<StagedUpload>,
    in_flight: VecDeque<(u32, Staging)>,
}

impl Stager {
    pub fn new(client: Client, limit: usize) -> Stager {
        Stager {
            client,
            limit: limit.max(1),
            staged: None,
            in_flight: VecDeque::new(),
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
        }
        if self.staged.is_none() {
            match self.client.begin_staged_upload().await {
                Ok(staged) => self.staged = Some(staged),
                Err(e) => {
                    tracing::debug!("not staging block {index}: {e}");
                    return;
                }
            }
        }
        let Some(upload) = self.staged.as_ref().map(StagedUpload::upload) else {
            return;
        };
        let client = self.client.clone();
        let task =
            tokio::spawn(async move { client.stage_block(upload, index, data, unless).await });
        self.in_flight.push_back((index, task));
    }

    async fn settle(&mut self, (index, task): (u32, Staging)) {
        let outcome = match task.await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::debug!("staging block {index} did not finish: {e}");
                return;
            }
        };
        match (outcome, self.staged.as_mut()) {
            (Ok(Some(block)), Some(staged)) => staged.record(block),
            (Ok(_), _) => {}
            (Err(e), _) => tracing::debug!("staging block {index} failed: {e}"),
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
    /// upload for the publish (None when nothing is staged or the
    /// upload is too close to its deadline to be published safely).
    pub async fn finish(&mut self) -> Option<StagedUpload> {
        self.drain().await;
        let staged = self.staged.take()?;
        if staged.is_fresh() {
            return Some(staged);
        }
        self.discard(staged);
        None
    }
}

impl Drop for Stager {
    /// A handle dropped without publishing (its file was removed, or the
    /// publish failed before taking the upload) gives its objects back
    /// now rather than at the staging deadline, after the stagings in
    /// flight have landed (so none lands after the clean-up).
    fn drop(&mut self) {
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
