//! The NoKV metadata server (`nokv-fs serve`): one volume, many clients.
//!
//! gRPC (`proto/nokv.proto`) carries `MetaOp`s in and replies out; every
//! op runs through `nokv_meta::execute`, exactly as in an embedded
//! client. Blocks never pass through the server: clients learn the
//! volume's object-store location from `Info` and talk to the store
//! with their own credentials. A second port serves `/healthz`,
//! `/readyz` and Prometheus `/metrics` over plain HTTP.
//!
//! Invariants:
//! - without a token the server only listens on loopback addresses;
//! - requests larger than `max_message_bytes` or batches of more than
//!   `max_batch_ops` ops are refused before anything runs, and the
//!   server keeps serving everyone else;
//! - on shutdown it stops accepting, lets in-flight requests finish
//!   (bounded by `shutdown_grace`), checkpoints holt, and returns `Ok`;
//! - the volume lock names the server's URL, so an embedded open of the
//!   same volume fails with `Busy` saying which `--server` to use.

mod auth;
mod http;
mod metrics;
mod service;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use nokv_meta::Volume;
use nokv_proto::pb::metadata_server::MetadataServer;
use nokv_types::{Error, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;

/// How to serve a volume.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// gRPC address (port 0: any free port).
    pub listen: SocketAddr,
    /// HTTP address for health and metrics; `None`: no HTTP port.
    pub http_listen: Option<SocketAddr>,
    /// Required bearer token; `None` disables auth (loopback only).
    pub token: Option<String>,
    /// Largest request message accepted.
    pub max_message_bytes: usize,
    /// Most ops in one batch.
    pub max_batch_ops: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            listen: SocketAddr::from(([127, 0, 0, 1], 7878)),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 7879))),
            token: None,
            max_message_bytes: nokv_proto::DEFAULT_MAX_MESSAGE_BYTES,
            max_batch_ops: nokv_proto::MAX_BATCH_OPS,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A server with its ports bound, not yet serving.
pub struct Server {
    vol: Volume,
    grpc: TcpListener,
    http: Option<TcpListener>,
    opts: ServeOptions,
    url: String,
}

async fn listen(addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| Error::Io(format!("cannot listen on {addr}: {e}")))
}

impl Server {
    /// Binds the ports (refusing an unauthenticated non-loopback bind)
    /// and records the server's URL in the volume lock.
    pub async fn bind(vol: Volume, opts: ServeOptions) -> Result<Server> {
        match &opts.token {
            None if !opts.listen.ip().is_loopback() => {
                return Err(Error::InvalidArgument(format!(
                    "refusing to serve {} without a token: authentication may only be \
                     disabled on a loopback address",
                    opts.listen
                )))
            }
            Some(t) if t.trim().is_empty() => {
                return Err(Error::InvalidArgument("the token is empty".into()))
            }
            _ => {}
        }
        if opts.max_message_bytes < 1024 || opts.max_batch_ops == 0 {
            return Err(Error::InvalidArgument(
                "message limit must be at least 1024 bytes and batches at least 1 op".into(),
            ));
        }
        let grpc = listen(opts.listen).await?;
        let http = match opts.http_listen {
            Some(a) => Some(listen(a).await?),
            None => None,
        };
        let url = format!("http://{}", grpc.local_addr()?);
        vol.set_holder(&format!(
            "the metadata server at {url} (use --server {url})"
        ))?;
        Ok(Server {
            vol,
            grpc,
            http,
            opts,
            url,
        })
    }

    /// The URL clients connect to (`http://127.0.0.1:7878`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` completes, then shuts down gracefully.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let Server {
            vol,
            grpc,
            http,
            opts,
            url,
        } = self;
        let metrics = Arc::new(metrics::Metrics::new());
        let ready = Arc::new(AtomicBool::new(true));
        let cancel = CancellationToken::new();
        let svc = MetadataServer::new(service::Service {
            vol: vol.clone(),
            stop: cancel.clone(),
            metrics: metrics.clone(),
            max_batch_ops: opts.max_batch_ops,
        })
        .max_decoding_message_size(opts.max_message_bytes)
        .max_encoding_message_size(usize::MAX);
        let auth = auth::Auth {
            token: opts.token.as_ref().map(|t| Arc::from(t.trim().as_bytes())),
            metrics: metrics.clone(),
        };
        let incoming = tonic::transport::server::TcpIncoming::from(grpc).with_nodelay(Some(true));
        let mut grpc_task = tokio::spawn(
            tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(Duration::from_secs(30)))
                .add_service(InterceptedService::new(svc, auth))
                .serve_with_incoming_shutdown(incoming, cancel.clone().cancelled_owned()),
        );
        let http_task = http.map(|l| {
            let router = http::router(http::HttpState {
                vol: vol.clone(),
                metrics: metrics.clone(),
                ready: ready.clone(),
            });
            let stop = cancel.clone().cancelled_owned();
            tokio::spawn(async move { axum::serve(l, router).with_graceful_shutdown(stop).await })
        });
        tracing::info!(url = %url, auth = opts.token.is_some(), "serving");

        let mut failure = None;
        tokio::select! {
            _ = shutdown => tracing::info!("shutdown requested: finishing in-flight requests"),
            r = &mut grpc_task => {
                failure = Some(match r {
                    Ok(Ok(())) => Error::Io("the gRPC server stopped".into()),
                    Ok(Err(e)) => Error::Io(format!("gRPC server: {e}")),
                    Err(e) => Error::Io(format!("gRPC server task: {e}")),
                });
            }
        }
        ready.store(false, Ordering::SeqCst);
        cancel.cancel();
        if failure.is_none() {
            match tokio::time::timeout(opts.shutdown_grace, &mut grpc_task).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => tracing::warn!("gRPC server: {e}"),
                Ok(Err(e)) => tracing::warn!("gRPC server task: {e}"),
                Err(_) => {
                    tracing::warn!("in-flight requests outlived the shutdown grace period");
                    grpc_task.abort();
                }
            }
        }
        if let Some(t) = http_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), t).await;
        }
        let v = vol.clone();
        match tokio::task::spawn_blocking(move || v.checkpoint()).await {
            Ok(Ok(())) => tracing::info!("checkpointed; stopped"),
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::Metadata(format!("checkpoint task: {e}"))),
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Installs SIGTERM and SIGINT handlers now (so a signal that arrives
/// before the server runs is not lost) and completes on either.
/// Must be called inside a tokio runtime.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM"),
            _ = int.recv() => tracing::info!("SIGINT"),
        }
    })
}

/// Binds and serves `vol` until SIGTERM or SIGINT.
pub async fn serve(vol: Volume, opts: ServeOptions) -> Result<()> {
    let stop = shutdown_signal()?;
    let server = Server::bind(vol, opts).await?;
    server.run(stop).await
}
