//! The block store: one `object_store` backend plus the block cache.
//!
//! Invariants:
//! - keys passed in are relative to the volume: the S3 key prefix is
//!   applied by a `PrefixStore` and the local root by the filesystem
//!   backend, so callers never see or build backend paths;
//! - the local backend fsyncs every object before `put_block` returns,
//!   matching the durability S3 gives on a 200: a published manifest
//!   must never point at bytes a power cut can take back;
//! - `get_block` returns only bytes whose length and BLAKE3 match the
//!   `BlockRef`; `get_raw` is the only unverified read and exists for
//!   fsck and benchmarks.

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use nokv_types::{BlockRef, Error, ObjectLocation, Result, S3Location};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};

use crate::cache::{BlockCache, CacheStats};
use crate::config::{BlockStoreOptions, StoreCredentials};
use crate::errors::{block_error, classify, one_line, store_error};
use crate::hash;

/// Immutable blocks of one volume. Cloning is cheap and shares the
/// backend connection pool and the cache.
#[derive(Clone)]
pub struct BlockStore {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn ObjectStore>,
    opts: BlockStoreOptions,
    cache: BlockCache,
    /// Human description of the location, for error messages.
    describe: String,
    /// The root of the local backend: keys must stay inside it.
    local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for BlockStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockStore")
            .field("location", &self.inner.describe)
            .field("opts", &self.inner.opts)
            .finish()
    }
}

fn object_path(key: &str) -> Result<Path> {
    Path::parse(key).map_err(|e| Error::InvalidArgument(format!("object key {key:?}: {e}")))
}

/// Refuses a key whose path under the local `root` passes through a
/// symlink: `object_store`'s local backend follows symlinks, so one
/// planted inside the root would let reads, writes and deletes (fsck
/// --delete-leaked) reach files outside it. `..` and absolute keys are
/// already refused by `Path::parse`.
fn check_local(root: &std::path::Path, key: &str) -> Result<()> {
    let mut p = root.to_path_buf();
    for part in key.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::InvalidArgument(format!(
                    "object key {key:?} passes through the symlink {}; the local block \
                     directory {} is never left",
                    p.display(),
                    root.display()
                )))
            }
            Ok(_) => {}
            // Nothing below a missing component can be a symlink.
            Err(_) => break,
        }
    }
    Ok(())
}

fn open_local(root: &std::path::Path) -> Result<Arc<dyn ObjectStore>> {
    std::fs::create_dir_all(root).map_err(|e| {
        Error::Io(format!(
            "cannot create object directory {}: {e}",
            root.display()
        ))
    })?;
    let fs = LocalFileSystem::new_with_prefix(root)
        .map_err(|e| store_error(&format!("opening {}", root.display()), &e))?
        .with_fsync(true)
        // Blocks live in one directory per upload; without cleanup GC
        // would leave one empty directory behind per deleted upload.
        .with_automatic_cleanup(true);
    Ok(Arc::new(fs))
}

fn missing_credentials(what: &str) -> Error {
    Error::InvalidArgument(format!(
        "S3 credentials missing: {what} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
         or pass --s3-access-key-id and --s3-secret-access-key)"
    ))
}

fn open_s3(
    s3: &S3Location,
    creds: &StoreCredentials,
    opts: &BlockStoreOptions,
) -> Result<Arc<dyn ObjectStore>> {
    if s3.bucket.is_empty() {
        return Err(Error::InvalidArgument("S3 bucket name is empty".into()));
    }
    // Checked here rather than left to the builder: without static keys
    // it silently falls back to instance metadata, which off EC2 turns
    // into a slow, baffling timeout at the first request.
    let (key_id, secret) = match (&creds.access_key_id, &creds.secret_access_key) {
        (Some(k), Some(s)) => (k, s),
        (None, None) => return Err(missing_credentials("no access key id and no secret key")),
        (None, Some(_)) => return Err(missing_credentials("no access key id")),
        (Some(_), None) => return Err(missing_credentials("no secret access key")),
    };
    let retry = RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: opts.retries,
        // Long enough for every retry to get its full per-request timeout.
        retry_timeout: opts.timeout.saturating_mul(
            u32::try_from(opts.retries)
                .unwrap_or(u32::MAX)
                .saturating_add(1),
        ),
    };
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name(&s3.bucket)
        .with_region(&s3.region)
        .with_access_key_id(key_id)
        .with_secret_access_key(secret)
        .with_retry(retry)
        .with_client_options(ClientOptions::new().with_timeout(opts.timeout));
    if let Some(token) = &creds.session_token {
        builder = builder.with_token(token);
    }
    builder = match &s3.endpoint {
        // Non-AWS stores (MinIO, Garage, RustFS …) rarely have wildcard
        // DNS for bucket subdomains, so path style is the portable choice.
        Some(endpoint) => builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://")),
        None => builder.with_virtual_hosted_style_request(true),
    };
    builder = builder.with_unsigned_payload(!signs_payload(s3.endpoint.as_deref()));
    let store = builder.build().map_err(|e| {
        Error::InvalidArgument(one_line(&format!(
            "S3 configuration for bucket {:?}: {e}",
            s3.bucket
        )))
    })?;
    let prefix = s3.prefix.trim_matches('/');
    if prefix.is_empty() {
        return Ok(Arc::new(store));
    }
    let prefix = Path::parse(prefix)
        .map_err(|e| Error::InvalidArgument(format!("S3 key prefix {:?}: {e}", s3.prefix)))?;
    Ok(Arc::new(PrefixStore::new(store, prefix)))
}

/// Whether request signatures cover the body (a SHA-256 of every block,
/// on both ends: a fifth of a writer's CPU in a profile of the FUSE
/// mount). Over plain HTTP they do: the signature is then the only check
/// that the stored bytes are the bytes sent. Over HTTPS, TLS already
/// guarantees that, so bodies go unsigned (as the AWS SDKs do); reads
/// still verify every block's BLAKE3 either way.
fn signs_payload(endpoint: Option<&str>) -> bool {
    endpoint.is_some_and(|e| !e.trim_start().to_ascii_lowercase().starts_with("https://"))
}

impl BlockStore {
    /// Opens the block store of a volume. No request is made: use
    /// [`BlockStore::check`] to find out whether the store is reachable.
    ///
    /// S3 credentials are taken from `creds` only; callers that want the
    /// `AWS_*` environment as a fallback pass `creds.or_env()`.
    pub fn open(
        location: &ObjectLocation,
        creds: &StoreCredentials,
        opts: BlockStoreOptions,
    ) -> Result<BlockStore> {
        let store = match location {
            ObjectLocation::Local { root } => open_local(root)?,
            ObjectLocation::S3(s3) => open_s3(s3, creds, &opts)?,
            ObjectLocation::Memory => Arc::new(InMemory::new()) as Arc<dyn ObjectStore>,
        };
        let mut bs = BlockStore::from_parts(store, opts, location.describe());
        if let ObjectLocation::Local { root } = location {
            if let Some(inner) = Arc::get_mut(&mut bs.inner) {
                inner.local_root = Some(root.clone());
            }
        }
        Ok(bs)
    }

    /// A fresh in-memory store with default options (tests).
    pub fn memory() -> BlockStore {
        BlockStore::from_parts(
            Arc::new(InMemory::new()),
            BlockStoreOptions::default(),
            ObjectLocation::Memory.describe(),
        )
    }

    fn from_parts(store: Arc<dyn ObjectStore>, opts: BlockStoreOptions, describe: String) -> Self {
        BlockStore {
            inner: Arc::new(Inner {
                store,
                cache: BlockCache::new(opts.cache_bytes),
                opts,
                describe,
                local_root: None,
            }),
        }
    }

    pub fn options(&self) -> &BlockStoreOptions {
        &self.inner.opts
    }

    /// Puts, reads back and deletes a small probe object, so `init`
    /// fails up front, with a reason, instead of at the first publish.
    pub async fn check(&self) -> Result<()> {
        let key = format!("probe/{}", uuid::Uuid::new_v4().simple());
        let path = object_path(&key)?;
        let payload = Bytes::from_static(b"nokv probe\n");
        let store = &self.inner.store;
        store
            .put(&path, PutPayload::from(payload.clone()))
            .await
            .map_err(|e| self.probe_error("write", &e))?;
        let read = async { store.get(&path).await?.bytes().await }
            .await
            .map_err(|e| self.probe_error("read", &e))?;
        if read != payload {
            return Err(Error::ObjectStore(format!(
                "{}: probe object {key} read back different bytes",
                self.inner.describe
            )));
        }
        store
            .delete(&path)
            .await
            .map_err(|e| self.probe_error("delete", &e))?;
        Ok(())
    }

    fn probe_error(&self, op: &str, e: &object_store::Error) -> Error {
        Error::ObjectStore(one_line(&format!(
            "{}: {} (probe {op} failed: {e})",
            self.inner.describe,
            classify(e).describe()
        )))
    }

    /// The object path of `key`, refused if it would leave the local root.
    fn checked_path(&self, key: &str) -> Result<Path> {
        let path = object_path(key)?;
        if let Some(root) = &self.inner.local_root {
            check_local(root, key)?;
        }
        Ok(path)
    }

    /// Writes one object. Block objects are written once and never
    /// overwritten; the key uniqueness comes from the caller.
    pub async fn put_block(&self, key: &str, data: Bytes) -> Result<()> {
        let path = self.checked_path(key)?;
        self.inner
            .store
            .put(&path, PutPayload::from(data))
            .await
            .map_err(|e| store_error(&format!("writing {key}"), &e))?;
        Ok(())
    }

    /// Whole verified block, through the cache.
    pub async fn get_block(&self, block: &BlockRef) -> Result<Bytes> {
        let block = *block;
        self.inner
            .cache
            .get_or_fetch((block.upload, block.index), || self.fetch_verified(block))
            .await
    }

    /// A block read that failed on the way (a body cut short, bytes
    /// that do not match their checksum) is fetched again, up to
    /// `FETCH_ATTEMPTS` times in all: bad bytes are never returned, and a
    /// flaky link does not fail the read. Status errors were already
    /// retried by `object_store` and are not repeated here.
    async fn fetch_verified(&self, block: BlockRef) -> Result<Bytes> {
        const FETCH_ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            match self.fetch_once(block).await {
                Err((e, true)) if attempt < FETCH_ATTEMPTS => {
                    tracing::warn!(attempt, "block read failed on the way, fetching again: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(20 << attempt)).await;
                    attempt += 1;
                }
                Err((e, _)) => return Err(e),
                Ok(bytes) => return Ok(bytes),
            }
        }
    }

    /// One verified fetch; on error also says whether another fetch may
    /// succeed (corrupt in transit, body cut short).
    async fn fetch_once(&self, block: BlockRef) -> std::result::Result<Bytes, (Error, bool)> {
        let key = block.object_key();
        let path = self.checked_path(&key).map_err(|e| (e, false))?;
        let fetched = async { self.inner.store.get(&path).await?.bytes().await }.await;
        let bytes = match fetched {
            Ok(b) => b,
            Err(e) => {
                let again = crate::errors::broken_in_transit(&e);
                return Err((block_error(&key, e), again));
            }
        };
        if bytes.len() as u64 != block.len as u64 {
            tracing::warn!(
                key,
                expected = block.len,
                actual = bytes.len(),
                "block has the wrong length"
            );
            return Err((Error::ChecksumMismatch { key }, true));
        }
        if hash::digest(bytes.clone()).await.map_err(|e| (e, false))? != block.checksum {
            tracing::warn!(key, "block checksum mismatch");
            return Err((Error::ChecksumMismatch { key }, true));
        }
        Ok(bytes)
    }

    async fn get_object(&self, key: &str) -> Result<Bytes> {
        let path = self.checked_path(key)?;
        let result = self
            .inner
            .store
            .get(&path)
            .await
            .map_err(|e| block_error(key, e))?;
        result.bytes().await.map_err(|e| block_error(key, e))
    }

    /// Deletes one object; a missing object counts as deleted, so GC can
    /// be re-run after a crash.
    pub async fn delete(&self, key: &str) -> Result<()> {
        // An S3 delete goes out as a one-key DeleteObjects, whose per-key
        // failures (Garage under load: "ServiceUnavailable ... database
        // is locked") come back inside a 200, so `object_store` does not
        // retry them. A delete is idempotent: try again a few times.
        const DELETE_ATTEMPTS: u32 = 4;
        let path = self.checked_path(key)?;
        let mut attempt = 1;
        loop {
            match self.inner.store.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
                Err(e) if attempt < DELETE_ATTEMPTS => {
                    tracing::debug!(attempt, "deleting {key} failed, trying again: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt)).await;
                    attempt += 1;
                }
                Err(e) => return Err(store_error(&format!("deleting {key}"), &e)),
            }
        }
    }

    /// Every object whose key starts with `prefix` (plain string prefix,
    /// relative to the volume), with its size, sorted by key.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        // object_store lists by whole path segments; list the enclosing
        // directory and filter, so "blocks/0" matches "blocks/0a/…".
        let dir = match prefix.rfind('/') {
            Some(i) => &prefix[..i],
            None => "",
        };
        let dir_path = if dir.trim_matches('/').is_empty() {
            None
        } else {
            Some(object_path(dir.trim_matches('/'))?)
        };
        let metas: Vec<_> = self
            .inner
            .store
            .list(dir_path.as_ref())
            .try_collect()
            .await
            .map_err(|e| store_error(&format!("listing {prefix:?}"), &e))?;
        let mut keys: Vec<(String, u64)> = metas
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .filter(|(k, _)| k.starts_with(prefix))
            .collect();
        if let Some(root) = &self.inner.local_root {
            // Objects reached through a symlink are not in the store.
            // Directories are checked once each, then every file itself.
            let mut dirs: std::collections::HashMap<String, bool> = Default::default();
            keys.retain(|(k, _)| {
                let dir = k.rsplit_once('/').map_or("", |(d, _)| d);
                let dir_ok = *dirs
                    .entry(dir.to_string())
                    .or_insert_with(|| check_local(root, dir).is_ok());
                let file_is_link = std::fs::symlink_metadata(root.join(k))
                    .is_ok_and(|m| m.file_type().is_symlink());
                if !dir_ok || file_is_link {
                    tracing::warn!("listing skips {k}: it is reached through a symlink");
                }
                dir_ok && !file_is_link
            });
        }
        keys.sort();
        Ok(keys)
    }

    /// Unverified GET of one object (fsck, benchmarks).
    pub async fn get_raw(&self, key: &str) -> Result<Bytes> {
        self.get_object(key).await
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.inner.cache.stats()
    }
}

#[cfg(test)]
mod payload_signing {
    use super::signs_payload;

    #[test]
    fn plain_http_bodies_are_signed_tls_bodies_are_not() {
        assert!(signs_payload(Some("http://127.0.0.1:3900")));
        assert!(signs_payload(Some("HTTP://garage.local")));
        assert!(!signs_payload(Some("https://s3.example.com")));
        assert!(!signs_payload(Some("HTTPS://minio:9000")));
        // AWS itself (no endpoint) is always HTTPS.
        assert!(!signs_payload(None));
    }
}

#[cfg(test)]
mod delete_retries {
    //! Error path only: a store whose first deletes fail the way a bulk
    //! delete reports a busy key (inside a 200, not retried below us).
    use std::sync::atomic::{AtomicUsize, Ordering};

    use futures::stream::{BoxStream, StreamExt};
    use object_store::path::Path;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutOptions, PutResult,
    };

    use super::*;

    #[derive(Debug)]
    struct BusyDeletes {
        inner: InMemory,
        failures_left: AtomicUsize,
    }

    impl std::fmt::Display for BusyDeletes {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "BusyDeletes")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for BusyDeletes {
        async fn put_opts(
            &self,
            p: &Path,
            payload: PutPayload,
            o: PutOptions,
        ) -> object_store::Result<PutResult> {
            self.inner.put_opts(p, payload, o).await
        }
        async fn put_multipart_opts(
            &self,
            p: &Path,
            o: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(p, o).await
        }
        async fn get_opts(&self, p: &Path, o: GetOptions) -> object_store::Result<GetResult> {
            self.inner.get_opts(p, o).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            let busy = self
                .failures_left
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if busy {
                return futures::stream::once(async {
                    Err(object_store::Error::Generic {
                        store: "S3",
                        source: "DeleteObjects request failed: ServiceUnavailable".into(),
                    })
                })
                .boxed();
            }
            self.inner.delete_stream(locations)
        }
        fn list(&self, p: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(p)
        }
        async fn list_with_delimiter(&self, p: Option<&Path>) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(p).await
        }
        async fn copy_opts(&self, a: &Path, b: &Path, o: CopyOptions) -> object_store::Result<()> {
            self.inner.copy_opts(a, b, o).await
        }
    }

    fn store(failures: usize) -> BlockStore {
        BlockStore::from_parts(
            Arc::new(BusyDeletes {
                inner: InMemory::new(),
                failures_left: AtomicUsize::new(failures),
            }),
            BlockStoreOptions::default(),
            "busy".into(),
        )
    }

    #[tokio::test]
    async fn a_busy_delete_is_tried_again_and_a_lasting_failure_is_an_error() {
        let s = store(3);
        s.inner
            .store
            .put(&Path::from("blocks/x"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        s.delete("blocks/x").await.unwrap();
        assert!(s.list_keys("blocks/").await.unwrap().is_empty());

        let s = store(usize::MAX);
        let e = s.delete("blocks/y").await.unwrap_err();
        assert!(e.to_string().contains("deleting blocks/y"), "{e}");
    }
}
