//! Where a volume keeps its blocks. Stored in the volume's superblock,
//! so it never holds secrets: S3 credentials come from flags or the
//! standard `AWS_*` environment when the volume is opened.

use serde::{Deserialize, Serialize};

/// The object store of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectLocation {
    /// A local directory (the embedded default).
    Local { root: std::path::PathBuf },
    /// An S3-compatible bucket.
    S3(S3Location),
    /// Process memory: for tests only; bytes vanish with the process.
    Memory,
}

/// An S3-compatible bucket and the key prefix of one volume in it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Location {
    pub bucket: String,
    /// Endpoint URL for non-AWS stores (path-style addressing is used
    /// whenever an endpoint is set). `None` means AWS S3.
    pub endpoint: Option<String>,
    pub region: String,
    /// Key prefix inside the bucket ("" or ends with '/').
    pub prefix: String,
}

impl ObjectLocation {
    /// One line for humans: `local:/path`, `s3://bucket/prefix (endpoint)`.
    pub fn describe(&self) -> String {
        match self {
            ObjectLocation::Local { root } => format!("local:{}", root.display()),
            ObjectLocation::S3(s3) => {
                let mut s = format!("s3://{}/{}", s3.bucket, s3.prefix);
                if let Some(ep) = &s3.endpoint {
                    s.push_str(&format!(" at {ep}"));
                }
                s
            }
            ObjectLocation::Memory => "memory".to_string(),
        }
    }
}
