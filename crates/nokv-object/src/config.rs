//! Credentials and tuning knobs of a block store.
//!
//! Invariant: secrets never reach logs. `StoreCredentials` has a
//! hand-written `Debug` that redacts the secret key and session token
//! (and masks most of the key id), so `{:?}` of any struct that holds
//! it is safe to log.

use std::time::Duration;

/// S3 credentials, from command-line flags and/or the standard `AWS_*`
/// environment. Never persisted: the superblock holds only the location.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreCredentials {
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
}

const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

fn env_var(name: &str) -> Option<String> {
    // An exported-but-empty variable is treated as unset: shells make
    // that state easy to reach by accident, and an empty key can only
    // produce a confusing signature error later.
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl StoreCredentials {
    /// Reads `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and
    /// `AWS_SESSION_TOKEN`.
    pub fn from_env() -> Self {
        StoreCredentials {
            access_key_id: env_var(ENV_ACCESS_KEY_ID),
            secret_access_key: env_var(ENV_SECRET_ACCESS_KEY),
            session_token: env_var(ENV_SESSION_TOKEN),
        }
    }

    /// Fills the fields that are `None` from the environment, so explicit
    /// flags win over the environment field by field.
    pub fn or_env(self) -> Self {
        StoreCredentials {
            access_key_id: self.access_key_id.or_else(|| env_var(ENV_ACCESS_KEY_ID)),
            secret_access_key: self
                .secret_access_key
                .or_else(|| env_var(ENV_SECRET_ACCESS_KEY)),
            session_token: self.session_token.or_else(|| env_var(ENV_SESSION_TOKEN)),
        }
    }
}

/// Keeps the last 4 characters of a key id: enough to tell which key is
/// in use, not enough to be a credential.
fn mask_key_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 4 {
        return "****".to_string();
    }
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("****{tail}")
}

impl std::fmt::Debug for StoreCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redact = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("StoreCredentials")
            .field(
                "access_key_id",
                &self.access_key_id.as_deref().map(mask_key_id),
            )
            .field("secret_access_key", &redact(&self.secret_access_key))
            .field("session_token", &redact(&self.session_token))
            .finish()
    }
}

/// Tuning of one [`crate::BlockStore`].
#[derive(Clone, Debug)]
pub struct BlockStoreOptions {
    /// Capacity of the in-memory block cache in bytes (0 disables it).
    pub cache_bytes: u64,
    /// Requests in flight per upload or read stream.
    pub concurrency: usize,
    /// Retries of one request after a transient failure (S3 only; the
    /// local and memory backends do not fail transiently).
    pub retries: usize,
    /// Timeout of one request (S3 only).
    pub timeout: Duration,
}

impl Default for BlockStoreOptions {
    fn default() -> Self {
        BlockStoreOptions {
            cache_bytes: 256 * 1024 * 1024,
            concurrency: 16,
            retries: 5,
            timeout: Duration::from_secs(30),
        }
    }
}

impl BlockStoreOptions {
    /// Concurrency as used: a zero from a config file must not deadlock.
    pub(crate) fn effective_concurrency(&self) -> usize {
        self.concurrency.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_secrets() {
        let creds = StoreCredentials {
            access_key_id: Some("AKIAEXAMPLEKEYID1234".into()),
            secret_access_key: Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRET".into()),
            session_token: Some("FwoGZXIvYXdzSESSIONTOKEN".into()),
        };
        let shown = format!("{creds:?}");
        assert!(!shown.contains("wJalrXUtnFEMI"), "{shown}");
        assert!(!shown.contains("SECRET"), "{shown}");
        assert!(!shown.contains("SESSIONTOKEN"), "{shown}");
        assert!(!shown.contains("AKIAEXAMPLEKEYID"), "{shown}");
        assert!(shown.contains("1234"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        let alt = format!("{creds:#?}");
        assert!(!alt.contains("wJalrXUtnFEMI"), "{alt}");
    }

    #[test]
    fn or_env_keeps_explicit_values() {
        let creds = StoreCredentials {
            access_key_id: Some("explicit".into()),
            secret_access_key: Some("explicit-secret".into()),
            session_token: Some("explicit-token".into()),
        };
        assert_eq!(creds.clone().or_env(), creds);
    }

    #[test]
    fn defaults() {
        let o = BlockStoreOptions::default();
        assert_eq!(o.cache_bytes, 256 << 20);
        assert_eq!(o.concurrency, 16);
        assert_eq!(o.retries, 5);
        assert_eq!(o.timeout, Duration::from_secs(30));
    }
}
