//! Token authentication for the gRPC service.
//!
//! Invariants: every RPC passes this check before its message is
//! looked at; the token is compared in constant time and never logged;
//! a missing or wrong token is `UNAUTHENTICATED` with a message that
//! says which of the two it was.

use std::sync::Arc;

use subtle::ConstantTimeEq;
use tonic::{Request, Status};

use crate::metrics::Metrics;

/// Checks `authorization: Bearer <token>` on every request.
#[derive(Clone)]
pub(crate) struct Auth {
    pub token: Option<Arc<[u8]>>,
    pub metrics: Arc<Metrics>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(req);
        };
        let given = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                self.metrics.refused("unauthenticated");
                tracing::warn!("refused a request without a token");
                Err(Status::unauthenticated(
                    "this server requires a token (--token or NOKV_TOKEN)",
                ))
            }
            Some(t) if bool::from(t.as_bytes().ct_eq(expected)) => Ok(req),
            Some(_) => {
                self.metrics.refused("unauthenticated");
                tracing::warn!("refused a request with a wrong token");
                Err(Status::unauthenticated("wrong token"))
            }
        }
    }
}
