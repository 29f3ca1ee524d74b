//! The one mapping of `nokv_types::Error` to the wire and back.
//!
//! A refused `Call` is a gRPC status: its code says the class of failure
//! (for generic gRPC tooling) and its details carry the encoded
//! `pb::Error`, so the client gets back the exact variant. Statuses
//! that did not come from `execute` (transport failures, the auth
//! interceptor, tonic's message-size limit) carry no details and are
//! mapped by their code.

use nokv_types::Error;
use prost::Message;
use tonic::{Code, Status};

use crate::pb::{self, error::Kind as K};

/// `InvalidName` / `InvalidPath` carry a `&'static str` reason; the
/// reasons the metadata layer uses are listed here so they survive the
/// trip. An unknown reason (a newer server) keeps its class.
const REASONS: &[&str] = &[
    "empty",
    "`.` and `..` are not names",
    "contains '/'",
    "contains NUL",
    "empty path",
    "escapes the volume root",
    "too many levels of symbolic links",
    "the volume root has no parent",
    "the volume root cannot be removed, moved or replaced",
];

fn reason(r: &str) -> &'static str {
    REASONS
        .iter()
        .copied()
        .find(|known| *known == r)
        .unwrap_or("refused by the server")
}

/// The wire form of an error.
pub fn encode_error(e: &Error) -> pb::Error {
    let s = |v: &String| v.clone();
    let kind = match e {
        Error::NotFound(v) => K::NotFound(s(v)),
        Error::Exists(v) => K::Exists(s(v)),
        Error::NotADirectory(v) => K::NotADirectory(s(v)),
        Error::IsADirectory(v) => K::IsADirectory(s(v)),
        Error::NotEmpty(v) => K::NotEmpty(s(v)),
        Error::NotASymlink(v) => K::NotASymlink(s(v)),
        Error::NameTooLong(n) => K::NameTooLong(*n as u64),
        Error::InvalidName { name, reason } => K::InvalidName(pb::NamedReason {
            name: name.clone(),
            reason: reason.to_string(),
        }),
        Error::InvalidPath { path, reason } => K::InvalidPath(pb::NamedReason {
            name: path.clone(),
            reason: reason.to_string(),
        }),
        Error::InvalidArgument(v) => K::InvalidArgument(s(v)),
        Error::IntoOwnSubtree { src, dst } => K::IntoOwnSubtree(pb::SrcDst {
            src: src.clone(),
            dst: dst.clone(),
        }),
        Error::GenerationMismatch {
            path,
            expected,
            actual,
        } => K::GenerationMismatch(pb::GenerationMismatch {
            path: path.clone(),
            expected: *expected,
            actual: *actual,
        }),
        Error::NoVolume(v) => K::NoVolume(s(v)),
        Error::UnsupportedFormat { found, supported } => {
            K::UnsupportedFormat(pb::UnsupportedFormat {
                found: *found,
                supported: *supported,
            })
        }
        Error::Busy(v) => K::Busy(s(v)),
        Error::ChecksumMismatch { key } => K::ChecksumMismatch(key.clone()),
        Error::MissingBlock(v) => K::MissingBlock(s(v)),
        Error::ObjectStore(v) => K::ObjectStore(s(v)),
        Error::Corrupt(v) => K::Corrupt(s(v)),
        Error::Metadata(v) => K::Metadata(s(v)),
        Error::Io(v) => K::Io(s(v)),
        Error::Unauthenticated(v) => K::Unauthenticated(s(v)),
        Error::WatchCompacted { requested, oldest } => K::WatchCompacted(pb::WatchCompacted {
            requested: *requested,
            oldest: *oldest,
        }),
    };
    pb::Error { kind: Some(kind) }
}

/// An error from the wire. An empty one (a newer peer's unknown kind)
/// becomes `Error::Metadata`.
pub fn decode_error(e: pb::Error) -> Error {
    let Some(kind) = e.kind else {
        return Error::Metadata("the server reported an error of an unknown kind".into());
    };
    match kind {
        K::NotFound(v) => Error::NotFound(v),
        K::Exists(v) => Error::Exists(v),
        K::NotADirectory(v) => Error::NotADirectory(v),
        K::IsADirectory(v) => Error::IsADirectory(v),
        K::NotEmpty(v) => Error::NotEmpty(v),
        K::NotASymlink(v) => Error::NotASymlink(v),
        K::NameTooLong(n) => Error::NameTooLong(usize::try_from(n).unwrap_or(usize::MAX)),
        K::InvalidName(r) => Error::InvalidName {
            name: r.name,
            reason: reason(&r.reason),
        },
        K::InvalidPath(r) => Error::InvalidPath {
            path: r.name,
            reason: reason(&r.reason),
        },
        K::InvalidArgument(v) => Error::InvalidArgument(v),
        K::IntoOwnSubtree(r) => Error::IntoOwnSubtree {
            src: r.src,
            dst: r.dst,
        },
        K::GenerationMismatch(g) => Error::GenerationMismatch {
            path: g.path,
            expected: g.expected,
            actual: g.actual,
        },
        K::NoVolume(v) => Error::NoVolume(v),
        K::UnsupportedFormat(u) => Error::UnsupportedFormat {
            found: u.found,
            supported: u.supported,
        },
        K::Busy(v) => Error::Busy(v),
        K::ChecksumMismatch(key) => Error::ChecksumMismatch { key },
        K::MissingBlock(v) => Error::MissingBlock(v),
        K::ObjectStore(v) => Error::ObjectStore(v),
        K::Corrupt(v) => Error::Corrupt(v),
        K::Metadata(v) => Error::Metadata(v),
        K::Io(v) => Error::Io(v),
        K::Unauthenticated(v) => Error::Unauthenticated(v),
        K::WatchCompacted(w) => Error::WatchCompacted {
            requested: w.requested,
            oldest: w.oldest,
        },
    }
}

fn code_of(e: &Error) -> Code {
    match e {
        Error::NotFound(_) | Error::MissingBlock(_) | Error::NoVolume(_) => Code::NotFound,
        Error::Exists(_) => Code::AlreadyExists,
        Error::NotADirectory(_)
        | Error::IsADirectory(_)
        | Error::NotEmpty(_)
        | Error::NotASymlink(_)
        | Error::GenerationMismatch { .. }
        | Error::WatchCompacted { .. } => Code::FailedPrecondition,
        Error::NameTooLong(_)
        | Error::InvalidName { .. }
        | Error::InvalidPath { .. }
        | Error::InvalidArgument(_)
        | Error::IntoOwnSubtree { .. } => Code::InvalidArgument,
        Error::UnsupportedFormat { .. } => Code::Unimplemented,
        Error::Busy(_) => Code::Unavailable,
        Error::ChecksumMismatch { .. } | Error::Corrupt(_) => Code::DataLoss,
        Error::ObjectStore(_) | Error::Metadata(_) | Error::Io(_) => Code::Internal,
        Error::Unauthenticated(_) => Code::Unauthenticated,
    }
}

/// The status a refused `Call` answers with.
pub fn status_from_error(e: &Error) -> Status {
    let details = encode_error(e).encode_to_vec();
    Status::with_details(code_of(e), e.to_string(), details.into())
}

/// The error a status stands for: the exact variant when the status
/// carries one, otherwise a variant chosen by code.
pub fn error_from_status(status: &Status) -> Error {
    if !status.details().is_empty() {
        if let Ok(e) = pb::Error::decode(status.details()) {
            if e.kind.is_some() {
                return decode_error(e);
            }
        }
    }
    let msg = status.message().to_string();
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied => Error::Unauthenticated(msg),
        Code::InvalidArgument => Error::InvalidArgument(msg),
        Code::ResourceExhausted | Code::OutOfRange => {
            Error::InvalidArgument(format!("the server refused the request: {msg}"))
        }
        Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded => {
            Error::Io(format!("metadata server unavailable: {msg}"))
        }
        code => Error::Metadata(format!("metadata server: {code:?}: {msg}")),
    }
}
