//! The remote metadata path: `MetaOp`s to a `nokv-fs serve` over gRPC.
//!
//! Invariants: this file moves ops and replies and maps errors back to
//! the `nokv_types::Error` variant the server produced (through
//! `nokv_proto`); it adds no semantics. The token is sent as
//! `authorization: Bearer …` on every request and never logged.

use std::time::Duration;

use nokv_meta::{MetaOp, MetaReply};
use nokv_proto::pb::{self, metadata_client::MetadataClient};
use nokv_proto::{decode_error, decode_reply, encode_op, error_from_status};
use nokv_types::{Error, Result};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

/// No unary or batch RPC waits longer than this for its answer: a
/// connection that broke in a way the transport never reports must
/// surface as an error, not hang the caller. (Found by the crash
/// campaign: once in ~800 server kills a put waited forever.) Every op
/// the server runs is bounded well below this; watch streams are not
/// subject to it.
const RPC_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(v) = &self.0 {
            req.metadata_mut().insert("authorization", v.clone());
        }
        Ok(req)
    }
}

/// A connection to a metadata server. Cheap to clone (one channel).
#[derive(Clone)]
pub(crate) struct Remote {
    client: MetadataClient<InterceptedService<Channel, Bearer>>,
    url: String,
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

impl Remote {
    /// Connects (eagerly: an unreachable server fails here).
    pub async fn connect(url: &str, token: Option<&str>) -> Result<Remote> {
        let endpoint = Endpoint::from_shared(url.to_string())
            .map_err(|e| Error::InvalidArgument(format!("server URL {url:?}: {e}")))?
            .connect_timeout(Duration::from_secs(10))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        let channel = endpoint.connect().await.map_err(|e| {
            Error::Io(format!(
                "cannot reach the metadata server at {url}: {}",
                chain(&e)
            ))
        })?;
        let token = match token {
            Some(t) => Some(
                MetadataValue::try_from(format!("Bearer {}", t.trim())).map_err(|_| {
                    Error::InvalidArgument("the token has characters a header cannot carry".into())
                })?,
            ),
            None => None,
        };
        let client = MetadataClient::with_interceptor(channel, Bearer(token))
            .max_decoding_message_size(nokv_proto::CLIENT_MAX_MESSAGE_BYTES)
            .max_encoding_message_size(usize::MAX);
        Ok(Remote {
            client,
            url: url.to_string(),
        })
    }

    fn no_answer(&self, op: &str) -> Error {
        Error::Io(format!(
            "the metadata server at {} did not answer {op} within {} s",
            self.url,
            RPC_DEADLINE.as_secs()
        ))
    }

    fn error(&self, s: &Status) -> Error {
        match error_from_status(s) {
            Error::Io(m) => match std::error::Error::source(s) {
                Some(src) => Error::Io(format!("{m} ({}): {}", self.url, chain(src))),
                None => Error::Io(format!("{m} ({})", self.url)),
            },
            e => e,
        }
    }

    /// The server's push stream of watch pages from `from`.
    pub async fn watch(
        &self,
        prefix: &str,
        from: u64,
    ) -> Result<futures::stream::BoxStream<'static, Result<nokv_types::WatchPage>>> {
        use futures::StreamExt;
        let mut c = self.client.clone();
        let req = pb::WatchRequest {
            from,
            prefix: prefix.to_string(),
        };
        let stream = c.watch(req).await.map_err(|s| self.error(&s))?.into_inner();
        let me = self.clone();
        Ok(stream
            .map(move |item| match item {
                Ok(page) => nokv_proto::decode_watch_page(page),
                Err(s) => Err(me.error(&s)),
            })
            .boxed())
    }

    pub async fn call(&self, op: MetaOp) -> Result<MetaReply> {
        let op_name = op.name();
        let mut c = self.client.clone();
        let req = pb::OpRequest {
            op: Some(encode_op(op)),
        };
        let answer = tokio::time::timeout(RPC_DEADLINE, c.call(req))
            .await
            .map_err(|_| self.no_answer(op_name))?;
        match answer {
            Ok(r) => match r.into_inner().reply {
                Some(reply) => decode_reply(reply),
                None => Err(Error::InvalidArgument(
                    "malformed message: reply is missing".into(),
                )),
            },
            Err(s) => Err(self.error(&s)),
        }
    }

    /// Ops in order, each with its own result; split into requests of
    /// at most `MAX_BATCH_OPS` ops.
    pub async fn batch(&self, ops: Vec<MetaOp>) -> Vec<Result<MetaReply>> {
        let mut out = Vec::with_capacity(ops.len());
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<pb::Op> = ops
                .by_ref()
                .take(nokv_proto::MAX_BATCH_OPS)
                .map(encode_op)
                .collect();
            let n = chunk.len();
            let mut c = self.client.clone();
            let answer =
                tokio::time::timeout(RPC_DEADLINE, c.batch(pb::BatchRequest { ops: chunk }))
                    .await
                    .unwrap_or_else(|_| Err(Status::unavailable("no answer within the deadline")));
            match answer {
                Ok(r) => {
                    let results = r.into_inner().results;
                    if results.len() != n {
                        let e = Error::Metadata(format!(
                            "the server answered {} results to {n} ops",
                            results.len()
                        ));
                        out.extend((0..n).map(|_| Err(e.clone())));
                        continue;
                    }
                    out.extend(results.into_iter().map(|r| match r.result {
                        Some(pb::op_result::Result::Ok(reply)) => decode_reply(reply),
                        Some(pb::op_result::Result::Err(e)) => Err(decode_error(e)),
                        None => Err(Error::InvalidArgument(
                            "malformed message: result is missing".into(),
                        )),
                    }));
                }
                Err(s) => {
                    let e = self.error(&s);
                    out.extend((0..n).map(|_| Err(e.clone())));
                }
            }
        }
        out
    }
}
