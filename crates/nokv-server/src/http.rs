//! The plain-HTTP side: `/healthz` (the process is up), `/readyz` (it
//! accepts metadata requests: 503 once shutdown has begun) and
//! `/metrics` (Prometheus text format). No auth, no volume content.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use nokv_meta::Volume;

use crate::metrics::Metrics;

#[derive(Clone)]
pub(crate) struct HttpState {
    pub vol: Volume,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub(crate) fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(s): State<HttpState>) -> impl IntoResponse {
    if s.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
    }
}

async fn metrics(State(s): State<HttpState>) -> impl IntoResponse {
    let body = tokio::task::spawn_blocking(move || s.metrics.render(&s.vol))
        .await
        .unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body)
}
