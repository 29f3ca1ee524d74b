//! The error every NoKV layer below the front doors reports.
//!
//! Variants are semantic (what went wrong for the user), not
//! mechanical; each front door maps them once: to an errno in FUSE, a
//! status code in RPC, a message and exit code in the CLI.

/// Result with a NoKV [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{0}: no such file or directory")]
    NotFound(String),
    #[error("{0}: already exists")]
    Exists(String),
    #[error("{0}: not a directory")]
    NotADirectory(String),
    #[error("{0}: is a directory")]
    IsADirectory(String),
    #[error("{0}: directory not empty")]
    NotEmpty(String),
    #[error("{0}: not a symbolic link")]
    NotASymlink(String),
    #[error("name too long ({0} bytes; at most 255)")]
    NameTooLong(usize),
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: &'static str },
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("cannot move {src} into its own subtree {dst}")]
    IntoOwnSubtree { src: String, dst: String },
    #[error("{path}: generation is {actual}, expected {expected}")]
    GenerationMismatch {
        path: String,
        expected: u64,
        actual: u64,
    },
    #[error("no NoKV volume at {0} (run `nokv-fs init` first)")]
    NoVolume(String),
    #[error(
        "volume format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedFormat { found: u32, supported: u32 },
    #[error("volume is in use: {0}")]
    Busy(String),
    #[error("checksum mismatch in block {key}: the stored object is corrupt")]
    ChecksumMismatch { key: String },
    #[error("block {0} is missing from the object store")]
    MissingBlock(String),
    #[error("object store: {0}")]
    ObjectStore(String),
    #[error("metadata is corrupt: {0}")]
    Corrupt(String),
    #[error("metadata engine: {0}")]
    Metadata(String),
    #[error("I/O: {0}")]
    Io(String),
    #[error("access refused: {0}")]
    Unauthenticated(String),
    #[error("watch cursor {requested} is compacted: resync, then resume from {oldest}")]
    WatchCompacted { requested: u64, oldest: u64 },
}

impl Error {
    /// A process exit code that says what kind of failure this was.
    ///
    /// 1 = the request was refused by namespace semantics (not found,
    /// exists, …); 2 = bad input; 3 = volume problems (missing, format,
    /// busy, access refused by a server); 4 = data integrity; 5 = storage
    /// / I/O failures (an unreachable server included).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::NotFound(_)
            | Error::Exists(_)
            | Error::NotADirectory(_)
            | Error::IsADirectory(_)
            | Error::NotEmpty(_)
            | Error::NotASymlink(_)
            | Error::GenerationMismatch { .. }
            | Error::WatchCompacted { .. } => 1,
            Error::InvalidName { .. }
            | Error::NameTooLong(_)
            | Error::InvalidPath { .. }
            | Error::InvalidArgument(_)
            | Error::IntoOwnSubtree { .. } => 2,
            Error::NoVolume(_)
            | Error::UnsupportedFormat { .. }
            | Error::Busy(_)
            | Error::Unauthenticated(_) => 3,
            Error::ChecksumMismatch { .. } | Error::MissingBlock(_) | Error::Corrupt(_) => 4,
            Error::ObjectStore(_) | Error::Metadata(_) | Error::Io(_) => 5,
        }
    }

    /// The closest POSIX errno, for adapters that speak errno.
    pub fn errno(&self) -> i32 {
        // Values are Linux errno numbers; kept literal to avoid a libc
        // dependency in this crate.
        match self {
            Error::NotFound(_) => 2, // ENOENT
            // The file exists; its bytes cannot be read.
            Error::MissingBlock(_) => 5,   // EIO
            Error::Exists(_) => 17,        // EEXIST
            Error::NotADirectory(_) => 20, // ENOTDIR
            Error::IsADirectory(_) => 21,  // EISDIR
            Error::NotEmpty(_) => 39,      // ENOTEMPTY
            Error::NameTooLong(_) => 36,   // ENAMETOOLONG
            Error::NotASymlink(_)
            | Error::InvalidName { .. }
            | Error::InvalidPath { .. }
            | Error::InvalidArgument(_)
            | Error::IntoOwnSubtree { .. } => 22, // EINVAL
            Error::GenerationMismatch { .. } | Error::WatchCompacted { .. } => 116, // ESTALE
            Error::Busy(_) => 16,          // EBUSY
            Error::Unauthenticated(_) => 13, // EACCES
            Error::ChecksumMismatch { .. } | Error::Corrupt(_) => 5, // EIO
            Error::NoVolume(_) | Error::UnsupportedFormat { .. } => 19, // ENODEV
            Error::ObjectStore(_) | Error::Metadata(_) | Error::Io(_) => 5,
        }
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e.to_string())
    }
}
