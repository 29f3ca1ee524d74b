//! The gRPC `Metadata` service: decode ops, run them through
//! `nokv_meta::execute` / `execute_batch` on the blocking pool, encode
//! the replies. No filesystem semantics live here.
//!
//! Invariants: a malformed request (missing fields, unknown oneof
//! cases, too many ops) is refused as a whole before anything runs;
//! each op of a well-formed batch gets its own result; ops run on
//! tokio's blocking pool, so concurrent requests share group commits
//! and never stall the async workers.

use std::sync::Arc;
use std::time::Instant;

use nokv_meta::{MetaOp, Volume};
use nokv_proto::pb::{self, metadata_server::Metadata};
use nokv_proto::{decode_op, encode_error, encode_reply, status_from_error};
use nokv_types::{Error, Result};
use tonic::{Request, Response, Status};

use crate::metrics::Metrics;

pub(crate) struct Service {
    pub vol: Volume,
    /// Cancelled when shutdown begins: ends watch streams, which would
    /// otherwise hold the graceful shutdown for its whole grace period.
    pub stop: tokio_util::sync::CancellationToken,
    pub metrics: Arc<Metrics>,
    pub max_batch_ops: usize,
}

/// Counts a request in flight for as long as it lives.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(m: &'a Metrics) -> Self {
        m.inflight.inc();
        InFlight(m)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.inflight.dec();
    }
}

fn malformed(metrics: &Metrics, e: Error) -> Status {
    metrics.refused("malformed");
    tracing::warn!("refused a malformed request: {e}");
    status_from_error(&e)
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Metadata(format!("metadata task failed: {e}")))
}

struct WatchState {
    vol: Volume,
    prefix: nokv_types::NokvPath,
    next: u64,
    stop: tokio_util::sync::CancellationToken,
    /// When to read again (woken by commits: an idle follower costs the
    /// server nothing).
    pace: nokv_meta::FollowPace,
    metrics: Arc<Metrics>,
    done: bool,
}

async fn next_watch_page(
    mut st: WatchState,
) -> Option<(Result<pb::WatchPage, Status>, WatchState)> {
    loop {
        if st.done || st.stop.is_cancelled() {
            return None;
        }
        st.pace.before_read();
        st.metrics.watch.with_label_values(&["read"]).inc();
        match st.vol.watch_page(st.next, &st.prefix, 1024) {
            Ok(page) => {
                let moved = page.next != st.next;
                st.next = page.next;
                if !page.events.is_empty() {
                    st.metrics.watch.with_label_values(&["page"]).inc();
                    st.pace.page_read();
                    return Some((Ok(nokv_proto::encode_watch_page(page)), st));
                }
                if !moved {
                    tokio::select! {
                        more = st.pace.wait() => {
                            if !more {
                                return None;
                            }
                        }
                        _ = st.stop.cancelled() => return None,
                    }
                }
            }
            Err(e) => {
                st.done = true;
                return Some((Err(status_from_error(&e)), st));
            }
        }
    }
}

#[tonic::async_trait]
impl Metadata for Service {
    type WatchStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::WatchPage, Status>> + Send + 'static>,
    >;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let r = req.into_inner();
        let prefix =
            nokv_types::NokvPath::parse(&r.prefix).map_err(|e| malformed(&self.metrics, e))?;
        // A compacted cursor fails the call itself, not the first item.
        self.vol
            .watch_page(r.from, &prefix, 1)
            .map_err(|e| status_from_error(&e))?;
        let state = WatchState {
            pace: nokv_meta::FollowPace::new(&self.vol),
            vol: self.vol.clone(),
            prefix,
            next: r.from,
            stop: self.stop.clone(),
            metrics: self.metrics.clone(),
            done: false,
        };
        Ok(Response::new(Box::pin(futures::stream::unfold(
            state,
            next_watch_page,
        ))))
    }

    async fn call(&self, req: Request<pb::OpRequest>) -> Result<Response<pb::OpReply>, Status> {
        let _inflight = InFlight::new(&self.metrics);
        let op = req
            .into_inner()
            .op
            .ok_or_else(|| Error::InvalidArgument("malformed message: op is missing".into()))
            .and_then(decode_op)
            .map_err(|e| malformed(&self.metrics, e))?;
        let name = op.name();
        let start = Instant::now();
        let vol = self.vol.clone();
        // Reads, and single changes of an async volume, skip the hop to
        // the blocking pool: it cost 30-40% of an unbatched create's
        // round trip over loopback (docs/benchmarks.md).
        let result = if nokv_meta::runs_inline(&vol, &op) {
            nokv_meta::execute(&vol, op)
        } else {
            blocking(move || nokv_meta::execute(&vol, op))
                .await
                .and_then(|r| r)
        };
        let took = start.elapsed();
        self.metrics.op_done(name, took, &result);
        tracing::debug!(
            op = name,
            ok = result.is_ok(),
            micros = took.as_micros() as u64
        );
        match result {
            Ok(reply) => Ok(Response::new(pb::OpReply {
                reply: Some(encode_reply(reply)),
            })),
            Err(e) => Err(status_from_error(&e)),
        }
    }

    async fn batch(
        &self,
        req: Request<pb::BatchRequest>,
    ) -> Result<Response<pb::BatchReply>, Status> {
        let _inflight = InFlight::new(&self.metrics);
        let ops = req.into_inner().ops;
        if ops.len() > self.max_batch_ops {
            self.metrics.refused("batch_too_large");
            return Err(Status::resource_exhausted(format!(
                "a batch may carry at most {} ops, this one has {}",
                self.max_batch_ops,
                ops.len()
            )));
        }
        let ops: Vec<MetaOp> = ops
            .into_iter()
            .map(decode_op)
            .collect::<Result<_>>()
            .map_err(|e| malformed(&self.metrics, e))?;
        let n = ops.len();
        self.metrics.batch(n);
        let names: Vec<&'static str> = ops.iter().map(|o| o.name()).collect();
        let start = Instant::now();
        let vol = self.vol.clone();
        let results = match blocking(move || nokv_meta::execute_batch(&vol, ops)).await {
            Ok(r) => r,
            Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
        };
        let took = start.elapsed();
        // Ops of one batch share its latency: per-op time is not
        // observable inside a group commit.
        let each = took / (n.max(1) as u32);
        for (name, r) in names.iter().zip(&results) {
            self.metrics.op_done(name, each, r);
        }
        tracing::debug!(ops = n, micros = took.as_micros() as u64, "batch");
        let results = results
            .into_iter()
            .map(|r| pb::OpResult {
                result: Some(match r {
                    Ok(reply) => pb::op_result::Result::Ok(encode_reply(reply)),
                    Err(e) => pb::op_result::Result::Err(encode_error(&e)),
                }),
            })
            .collect();
        Ok(Response::new(pb::BatchReply { results }))
    }
}
