//! Prometheus metrics of the server: per-op counts by outcome and
//! latency histograms, batch sizes, refusals, requests in flight, the
//! volume's commit version and holt's tree statistics.
//!
//! Invariant: label values come from fixed sets (op names, error kinds,
//! refusal reasons), never from request content, so a client cannot
//! blow up the number of series.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use nokv_meta::Volume;
use nokv_types::Error;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};

pub(crate) struct Metrics {
    registry: Registry,
    ops: IntCounterVec,
    latency: HistogramVec,
    batch_ops: Histogram,
    refused: IntCounterVec,
    pub inflight: IntGauge,
    commit_version: IntGauge,
    reader_leases: IntGauge,
    /// Watch streams: reads of the log made for them, pages pushed.
    pub watch: IntCounterVec,
    holt: Mutex<(Option<Instant>, Gauges)>,
}

/// Named integer gauges.
type Gauges = Vec<(String, i64)>;

/// How often the (tree-walking) holt statistics are refreshed at most.
const HOLT_STATS_EVERY: Duration = Duration::from_secs(30);

/// A stable, low-cardinality label for an error.
pub(crate) fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::NotFound(_) => "not_found",
        Error::Exists(_) => "exists",
        Error::NotADirectory(_) => "not_a_directory",
        Error::IsADirectory(_) => "is_a_directory",
        Error::NotEmpty(_) => "not_empty",
        Error::NotASymlink(_) => "not_a_symlink",
        Error::NameTooLong(_) => "name_too_long",
        Error::InvalidName { .. } => "invalid_name",
        Error::InvalidPath { .. } => "invalid_path",
        Error::InvalidArgument(_) => "invalid_argument",
        Error::IntoOwnSubtree { .. } => "into_own_subtree",
        Error::GenerationMismatch { .. } => "generation_mismatch",
        Error::NoVolume(_) => "no_volume",
        Error::UnsupportedFormat { .. } => "unsupported_format",
        Error::Busy(_) => "busy",
        Error::ChecksumMismatch { .. } => "checksum_mismatch",
        Error::MissingBlock(_) => "missing_block",
        Error::ObjectStore(_) => "object_store",
        Error::Corrupt(_) => "corrupt",
        Error::Metadata(_) => "metadata",
        Error::Io(_) => "io",
        Error::Unauthenticated(_) => "unauthenticated",
        Error::WatchCompacted { .. } => "watch_compacted",
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let ops = IntCounterVec::new(
            Opts::new("nokv_ops_total", "Metadata ops by op and outcome"),
            &["op", "outcome"],
        )
        .expect("static metric definition");
        let latency = HistogramVec::new(
            HistogramOpts::new("nokv_op_duration_seconds", "Metadata op latency").buckets(vec![
                0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05,
                0.1, 0.25, 1.0, 5.0,
            ]),
            &["op"],
        )
        .expect("static metric definition");
        let batch_ops = Histogram::with_opts(
            HistogramOpts::new("nokv_batch_ops", "Ops per batch request")
                .buckets(vec![1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 10000.0]),
        )
        .expect("static metric definition");
        let refused = IntCounterVec::new(
            Opts::new(
                "nokv_requests_refused_total",
                "Requests refused before execution, by reason",
            ),
            &["reason"],
        )
        .expect("static metric definition");
        let inflight = IntGauge::new("nokv_requests_in_flight", "RPCs being executed")
            .expect("static metric definition");
        let commit_version = IntGauge::new("nokv_commit_version", "Latest commit version")
            .expect("static metric definition");
        let reader_leases = IntGauge::new(
            "nokv_reader_leases",
            "Reader leases live now (each holds back GC of blocks queued after its since)",
        )
        .expect("static metric definition");
        let watch = IntCounterVec::new(
            Opts::new(
                "nokv_watch_stream_total",
                "Watch streams: log reads made for them (read) and pages pushed (page)",
            ),
            &["what"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(ops.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(watch.clone()),
            Box::new(latency.clone()),
            Box::new(batch_ops.clone()),
            Box::new(refused.clone()),
            Box::new(inflight.clone()),
            Box::new(commit_version.clone()),
            Box::new(reader_leases.clone()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        Metrics {
            registry,
            ops,
            latency,
            batch_ops,
            refused,
            inflight,
            commit_version,
            reader_leases,
            watch,
            holt: Mutex::new((None, Vec::new())),
        }
    }

    pub fn op_done<T>(&self, op: &'static str, took: Duration, result: &Result<T, Error>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => error_kind(e),
        };
        self.ops.with_label_values(&[op, outcome]).inc();
        self.latency
            .with_label_values(&[op])
            .observe(took.as_secs_f64());
    }

    pub fn batch(&self, n: usize) {
        self.batch_ops.observe(n as f64);
    }

    pub fn refused(&self, reason: &'static str) {
        self.refused.with_label_values(&[reason]).inc();
    }

    /// The text exposition of every metric.
    pub fn render(&self, vol: &Volume) -> String {
        match vol.status() {
            Ok(info) => {
                self.commit_version
                    .set(i64::try_from(info.commit_version).unwrap_or(i64::MAX));
                self.reader_leases
                    .set(i64::try_from(info.reader_leases).unwrap_or(i64::MAX));
            }
            Err(e) => tracing::warn!("volume status for metrics: {e}"),
        }
        let mut out = Vec::new();
        let enc = TextEncoder::new();
        if let Err(e) = enc.encode(&self.registry.gather(), &mut out) {
            tracing::warn!("metrics encoding failed: {e}");
        }
        let mut text = String::from_utf8_lossy(&out).into_owned();
        for (name, value) in self.holt_stats(vol) {
            text.push_str(&format!(
                "# TYPE nokv_holt_{name} gauge\nnokv_holt_{name} {value}\n"
            ));
        }
        text
    }

    fn holt_stats(&self, vol: &Volume) -> Gauges {
        let mut cache = match self.holt.lock() {
            Ok(c) => c,
            Err(p) => p.into_inner(),
        };
        let fresh = cache.0.is_some_and(|t| t.elapsed() < HOLT_STATS_EVERY);
        if !fresh {
            if let Ok(summary) = vol.engine_stats() {
                *cache = (Some(Instant::now()), numeric_fields(&summary));
            }
        }
        cache.1.clone()
    }
}

/// `name: 123` pairs of a Debug rendering (holt's stats stay opaque
/// outside nokv-meta; their integer fields become gauges).
fn numeric_fields(debug: &str) -> Gauges {
    let mut out = Vec::new();
    for part in debug.split([',', '{', '}']) {
        let Some((name, value)) = part.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            continue;
        }
        if let Ok(v) = value.trim().parse::<i64>() {
            if !out.iter().any(|(n, _)| n == name) {
                out.push((name.to_string(), v));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn numeric_fields_of_a_debug_struct() {
        let f = super::numeric_fields(
            "TreeStats { blob_count: 3, avg: 1.5, name: \"x\", total_slots: 40 }",
        );
        assert_eq!(
            f,
            vec![("blob_count".into(), 3), ("total_slots".into(), 40)]
        );
    }
}
