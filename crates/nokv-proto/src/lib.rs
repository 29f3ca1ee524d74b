//! The NoKV RPC schema (`proto/nokv.proto`, package `nokv.v1`) and its
//! conversions to and from the metadata types.
//!
//! Invariants:
//! - the schema is transport only: every `MetaOp`, `MetaReply` and
//!   `Error` variant has exactly one message (or oneof case), and
//!   `decode(encode(x)) == x` for all of them (tested by proptest);
//! - decoding never panics: a missing field, an empty oneof, an unknown
//!   enum value or a digest of the wrong length is
//!   `Error::InvalidArgument`, whatever bytes a peer sent;
//! - errors are mapped once, here: `Error` -> gRPC status code plus the
//!   encoded `pb::Error` in the status details, and back to the same
//!   variant on the client.

mod error;
mod op;
mod reply;
mod values;

/// The generated protobuf messages and the gRPC client and server.
#[allow(clippy::all, missing_docs)]
pub mod pb {
    tonic::include_proto!("nokv.v1");
}

pub use error::{decode_error, encode_error, error_from_status, status_from_error};
pub use op::{decode_op, encode_op};
pub use reply::{decode_reply, decode_watch_page, encode_reply, encode_watch_page};

/// Most ops one batch may carry (servers refuse larger batches; the
/// client splits).
pub const MAX_BATCH_OPS: usize = 10_000;

/// Default limit on one decoded request message.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;

/// Limit on one decoded reply on the client (a listing page or a huge
/// manifest can be large).
pub const CLIENT_MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

pub(crate) fn missing(what: &str) -> nokv_types::Error {
    nokv_types::Error::InvalidArgument(format!("malformed message: {what} is missing"))
}
