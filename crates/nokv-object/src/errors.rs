//! Translation of `object_store` errors into `nokv_types::Error`.
//!
//! Invariants:
//! - "object not found" becomes `MissingBlock(key)` only where the
//!   caller asked for a block; everything else is `ObjectStore`;
//! - messages are one line (S3 error bodies are multi-line XML), so the
//!   CLI can print them as-is;
//! - credentials never appear: `object_store` does not print them and
//!   nothing here adds them.

use nokv_types::Error;
use object_store::client::{HttpError, HttpErrorKind};

/// Collapses whitespace runs (including newlines) into single spaces.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Generic mapping: `what` says which operation on which key failed.
pub(crate) fn store_error(what: &str, e: &object_store::Error) -> Error {
    Error::ObjectStore(one_line(&format!("{what}: {e}")))
}

/// Mapping for reads of a block: a missing object is a missing block.
pub(crate) fn block_error(key: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::MissingBlock(key.to_string()),
        e => store_error(&format!("reading {key}"), &e),
    }
}

/// True when a read failed while its response was on the way (body cut
/// short, undecodable): worth one more request. Connect and timeout
/// failures were already retried by `object_store` itself.
pub(crate) fn broken_in_transit(e: &object_store::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Decode
                    | HttpErrorKind::Interrupted
                    | HttpErrorKind::Request
                    | HttpErrorKind::Unknown
            );
        }
        source = err.source();
    }
    false
}

/// What a failed probe most likely means for the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProbeFailure {
    Unreachable,
    TimedOut,
    BucketMissing,
    AccessDenied,
    Other,
}

impl ProbeFailure {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            ProbeFailure::Unreachable => "endpoint unreachable",
            ProbeFailure::TimedOut => "endpoint timed out",
            ProbeFailure::BucketMissing => "bucket missing",
            ProbeFailure::AccessDenied => "access denied",
            ProbeFailure::Other => "request failed",
        }
    }
}

/// Best-effort diagnosis. `object_store` keeps its HTTP status type
/// private, so this looks at the public error variants, the transport
/// error kind in the source chain, and the S3 error codes in the text.
pub(crate) fn classify(e: &object_store::Error) -> ProbeFailure {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(http) = err.downcast_ref::<HttpError>() {
            match http.kind() {
                HttpErrorKind::Connect => return ProbeFailure::Unreachable,
                HttpErrorKind::Timeout => return ProbeFailure::TimedOut,
                _ => {}
            }
        }
        source = err.source();
    }
    let text = e.to_string();
    if text.contains("NoSuchBucket") {
        return ProbeFailure::BucketMissing;
    }
    if [
        "AccessDenied",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidToken",
        "ExpiredToken",
        "Forbidden",
    ]
    .iter()
    .any(|code| text.contains(code))
    {
        return ProbeFailure::AccessDenied;
    }
    match e {
        object_store::Error::PermissionDenied { .. }
        | object_store::Error::Unauthenticated { .. } => ProbeFailure::AccessDenied,
        // A PUT answered with 404 can only mean the bucket is absent.
        object_store::Error::NotFound { .. } => ProbeFailure::BucketMissing,
        _ => ProbeFailure::Other,
    }
}
