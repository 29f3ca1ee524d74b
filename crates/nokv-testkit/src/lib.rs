//! Test support: the object-store backends every store-dependent test
//! runs on, and private Garage servers for fault tests.
//!
//! The shared Garage is started by `scripts/test.sh` (through
//! `scripts/garage-env.sh`), which exports its endpoint, bucket and
//! credentials as `NOKV_TEST_S3_*`. A test that needs S3 and finds no
//! such environment fails with a message saying how to get it: S3 tests
//! never skip.

mod faults;
mod garage;

pub use faults::{FaultCounts, FaultPlan, S3FaultProxy, TcpFaultProxy};
pub use garage::{PrivateGarage, S3Env};

use std::path::Path;

use nokv_object::StoreCredentials;
use nokv_types::{ObjectLocation, S3Location};

/// Where a test volume keeps its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A local directory under the test's temp dir.
    Local,
    /// The shared Garage bucket, under a key prefix unique to the test.
    Garage,
}

impl Backend {
    /// A fresh location for one test volume, and the credentials for it.
    pub fn location(self, tmp: &Path) -> (ObjectLocation, StoreCredentials) {
        match self {
            Backend::Local => (
                ObjectLocation::Local {
                    root: tmp.join("blocks"),
                },
                StoreCredentials::default(),
            ),
            Backend::Garage => {
                let env = S3Env::shared();
                let prefix = format!("test-{}/", uuid::Uuid::new_v4());
                (env.location(&prefix), env.credentials())
            }
        }
    }
}

impl S3Env {
    /// The location of `prefix` in this environment's bucket.
    pub fn location(&self, prefix: &str) -> ObjectLocation {
        ObjectLocation::S3(S3Location {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint.clone()),
            region: self.region.clone(),
            prefix: prefix.to_string(),
        })
    }

    pub fn credentials(&self) -> StoreCredentials {
        StoreCredentials {
            access_key_id: Some(self.access_key_id.clone()),
            secret_access_key: Some(self.secret_access_key.clone()),
            session_token: None,
        }
    }
}

/// Generates one test per backend from a test body `async fn(Backend)`:
/// `backend_tests!(round_trip);` makes `round_trip::local` and
/// `round_trip::garage`.
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn local() {
                    super::$name($crate::Backend::Local).await
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn garage() {
                    super::$name($crate::Backend::Garage).await
                }
            }
        )*
    };
}

/// Like [`backend_tests!`] for plain (non-async) test bodies
/// `fn(Backend)`.
#[macro_export]
macro_rules! backend_tests_blocking {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn local() {
                    super::$name($crate::Backend::Local)
                }
                #[test]
                fn garage() {
                    super::$name($crate::Backend::Garage)
                }
            }
        )*
    };
}
