//! Where the client's metadata operations go: an embedded volume in this
//! process, or a metadata server (`nokv-fs serve`). Either way the
//! client sends the same `MetaOp`s and gets the same `MetaReply`s; the
//! semantics run in `nokv_meta::execute` / `execute_batch` in both
//! cases (in this process, or in the server's).

use nokv_meta::{MetaOp, MetaReply, Volume};
use nokv_types::Result;

use crate::blocking::blocking;
use crate::remote::Remote;

#[derive(Clone)]
pub(crate) enum Meta {
    Embedded(Volume),
    Remote(Box<Remote>),
}

impl Meta {
    /// Runs one op.
    pub async fn call(&self, op: MetaOp) -> Result<MetaReply> {
        match self {
            Meta::Embedded(vol) => {
                if nokv_meta::runs_inline(vol, &op) {
                    // Nothing to wait for (a read, or a change of an
                    // async volume): no need for a thread hop.
                    nokv_meta::execute(vol, op)
                } else {
                    let vol = vol.clone();
                    blocking(move || nokv_meta::execute(&vol, op)).await
                }
            }
            Meta::Remote(r) => r.call(op).await,
        }
    }

    /// Runs ops in order, each with its own result (not atomic).
    pub async fn batch(&self, ops: Vec<MetaOp>) -> Vec<Result<MetaReply>> {
        match self {
            Meta::Embedded(vol) => {
                let vol = vol.clone();
                let n = ops.len();
                match blocking(move || Ok(nokv_meta::execute_batch(&vol, ops))).await {
                    Ok(results) => results,
                    Err(e) => (0..n).map(|_| Err(e.clone())).collect(),
                }
            }
            Meta::Remote(r) => r.batch(ops).await,
        }
    }
}
