//! Metadata commands may wait for an fsync; they run on tokio's blocking
//! pool so they never stall the async workers (and so concurrent
//! commands can share one group commit).

use nokv_types::{Error, Result};

pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => Err(Error::Metadata(format!("metadata task failed: {e}"))),
    }
}
