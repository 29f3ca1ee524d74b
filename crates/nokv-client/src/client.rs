//! `Client`: opening a volume and the namespace operations, by path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nokv_meta::{
    DirEntryPlus, DirPage, Durability, InitOptions, MetaOp, MetaReply, OpenOptions, Owner, Volume,
    VolumeInfo,
};
use nokv_object::{BlockStore, BlockStoreOptions, StoreCredentials};
use nokv_types::{Attr, Error, Result, SetAttr};

use crate::blocking::blocking;
use crate::meta::Meta;
use crate::remote::Remote;

/// How a client opens a volume.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    pub durability: Durability,
    /// Credentials for S3 volumes (never stored in the volume).
    pub credentials: StoreCredentials,
    pub store: BlockStoreOptions,
    /// How long an upload may stay unpublished before GC may delete its
    /// blocks.
    pub staging_ttl: Duration,
    /// How long a tree replaced by `put_tree` stays in the trash (whole,
    /// for readers that were inside it) before `gc` removes it.
    pub trash_grace: Duration,
    /// How long `gc` keeps the blocks of a replaced or removed generation
    /// after the change, for readers that opened it before (a read handle
    /// keeps reading the generation it opened). 0 (the default for the
    /// SDK and `nokv-fs gc`): collect at once; background GC in mounts
    /// and servers keeps them 10 minutes.
    pub gc_grace: Duration,
    /// Watch events older than this many commit versions are dropped
    /// by `gc` (a follower further behind gets `WatchCompacted`).
    pub watch_retention_versions: u64,
    /// Owner of new files and directories.
    pub uid: u32,
    pub gid: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            durability: Durability::Sync,
            credentials: StoreCredentials::default(),
            store: BlockStoreOptions::default(),
            staging_ttl: Duration::from_secs(3600),
            watch_retention_versions: 1_000_000,
            trash_grace: Duration::from_secs(60),
            gc_grace: Duration::ZERO,
            uid: 0,
            gid: 0,
        }
    }
}

pub(crate) struct Inner {
    pub meta: Meta,
    pub store: BlockStore,
    pub opts: ClientOptions,
    /// The volume's block size: fixed at `init`, so read once at open.
    pub block_size: u32,
    /// Uploads begun ahead (off unless turned on).
    pub uploads: crate::upload_pool::UploadPool,
}

/// A handle on one volume. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

/// Unpacks the expected reply variant or reports a confused peer.
macro_rules! expect_reply {
    ($reply:expr, $op:literal, $pat:pat => $out:expr) => {
        match $reply {
            $pat => Ok($out),
            other => Err(nokv_meta::unexpected($op, &other)),
        }
    };
}
pub(crate) use expect_reply;

impl Client {
    /// Creates a volume in `home` whose blocks live at `init.location`.
    /// The object store is probed first: a wrong endpoint, bucket or
    /// credential fails here, and no volume is created.
    pub async fn init(home: &Path, init: InitOptions, opts: ClientOptions) -> Result<Client> {
        let store = BlockStore::open(&init.location, &opts.credentials, opts.store.clone())?;
        store.check().await?;
        let home = home.to_path_buf();
        let open = OpenOptions {
            durability: opts.durability,
            ..OpenOptions::default()
        };
        let volume = blocking(move || Volume::init(&home, init, open)).await?;
        let block_size = volume.block_size();
        Ok(Client::from_parts(
            Meta::Embedded(volume),
            store,
            opts,
            block_size,
        ))
    }

    /// Opens the volume in `home` (embedded, in this process).
    pub async fn open(home: &Path, opts: ClientOptions) -> Result<Client> {
        let home = home.to_path_buf();
        let open = OpenOptions {
            durability: opts.durability,
            ..OpenOptions::default()
        };
        let volume = blocking(move || Volume::open(&home, open)).await?;
        Client::embedded(volume, opts)
    }

    /// Connects to the metadata server at `url` (`http://host:port`, as
    /// printed by `nokv-fs serve`) with `token`. The server names the
    /// volume's object store; blocks go directly between this process
    /// and the store, with `opts.credentials`.
    pub async fn connect(url: &str, token: Option<&str>, opts: ClientOptions) -> Result<Client> {
        let remote = Remote::connect(url, token).await?;
        let meta = Meta::Remote(Box::new(remote));
        let info = match meta.call(MetaOp::Info).await? {
            MetaReply::Info(i) => i,
            other => return Err(nokv_meta::unexpected("info", &other)),
        };
        if info.location == nokv_types::ObjectLocation::Memory {
            return Err(Error::InvalidArgument(format!(
                "the volume served at {url} keeps its blocks in the server's memory; \
                 no other process can reach them"
            )));
        }
        let store = BlockStore::open(&info.location, &opts.credentials, opts.store.clone())?;
        Ok(Client::from_parts(meta, store, opts, info.block_size))
    }

    /// A client on a volume this process already has open (e.g. the
    /// server's own, for its background GC worker).
    pub fn embedded(volume: Volume, opts: ClientOptions) -> Result<Client> {
        let store = BlockStore::open(
            &volume.info().location,
            &opts.credentials,
            opts.store.clone(),
        )?;
        let block_size = volume.block_size();
        Ok(Client::from_parts(
            Meta::Embedded(volume),
            store,
            opts,
            block_size,
        ))
    }

    pub(crate) fn from_parts(
        meta: Meta,
        store: BlockStore,
        opts: ClientOptions,
        block_size: u32,
    ) -> Client {
        Client {
            inner: Arc::new(Inner {
                meta,
                store,
                opts,
                block_size,
                uploads: Default::default(),
            }),
        }
    }

    /// Identity and state of the volume.
    pub async fn info(&self) -> Result<VolumeInfo> {
        let reply = self.call(MetaOp::Info).await?;
        expect_reply!(reply, "info", MetaReply::Info(i) => i)
    }

    pub(crate) async fn call(&self, op: MetaOp) -> Result<MetaReply> {
        self.inner.meta.call(op).await
    }

    /// Runs metadata ops in order in one round trip, each with its own
    /// result (not atomic). Changes share group commits.
    pub async fn batch(&self, ops: Vec<MetaOp>) -> Vec<Result<MetaReply>> {
        self.inner.meta.batch(ops).await
    }

    /// True when metadata is in this process (no server round trips):
    /// metadata reads then never wait on I/O.
    pub fn is_embedded(&self) -> bool {
        matches!(self.inner.meta, crate::meta::Meta::Embedded(_))
    }

    pub(crate) fn store(&self) -> &BlockStore {
        &self.inner.store
    }

    /// Owner of new inodes made by this client, with `mode`.
    pub fn owner(&self, mode: u32) -> Owner {
        Owner {
            mode,
            uid: self.inner.opts.uid,
            gid: self.inner.opts.gid,
        }
    }

    async fn attr(&self, op: MetaOp) -> Result<Attr> {
        let name = op.name();
        match self.call(op).await? {
            MetaReply::Attr(a) => Ok(a),
            other => Err(nokv_meta::unexpected(name, &other)),
        }
    }

    pub(crate) async fn done(&self, op: MetaOp) -> Result<()> {
        let name = op.name();
        match self.call(op).await? {
            MetaReply::Done => Ok(()),
            other => Err(nokv_meta::unexpected(name, &other)),
        }
    }

    /// Flushes metadata to its data files and trims the WAL.
    pub async fn checkpoint(&self) -> Result<()> {
        self.done(MetaOp::Checkpoint).await
    }

    /// stat: attributes of `path`, following a final symlink.
    pub async fn stat(&self, path: &str) -> Result<Attr> {
        self.attr(MetaOp::Stat {
            path: path.into(),
            follow: true,
        })
        .await
    }

    /// lstat: attributes of `path` itself, even if it is a symlink.
    pub async fn lstat(&self, path: &str) -> Result<Attr> {
        self.attr(MetaOp::Stat {
            path: path.into(),
            follow: false,
        })
        .await
    }

    /// One page of a directory listing with attributes; pass the page's
    /// `next` to continue.
    pub async fn list_page(
        &self,
        path: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        let reply = self.call(list_op(path, after, limit)).await?;
        expect_reply!(reply, "list", MetaReply::Page(p) => p)
    }

    /// A whole directory listing with attributes.
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntryPlus>> {
        all_pages(|after| async move { self.list_page(path, after.as_deref(), 4096).await }).await
    }

    pub async fn mkdir(&self, path: &str, mode: u32) -> Result<Attr> {
        let owner = self.owner(mode);
        self.attr(MetaOp::Mkdir {
            path: path.into(),
            owner,
            parents: false,
        })
        .await
    }

    /// mkdir -p (one command: every missing directory appears at once).
    pub async fn mkdir_all(&self, path: &str, mode: u32) -> Result<Attr> {
        let owner = self.owner(mode);
        self.attr(MetaOp::Mkdir {
            path: path.into(),
            owner,
            parents: true,
        })
        .await
    }

    /// Creates an empty file; `exclusive` fails if the name exists.
    pub async fn create(&self, path: &str, mode: u32, exclusive: bool) -> Result<Attr> {
        let owner = self.owner(mode);
        self.attr(MetaOp::Create {
            path: path.into(),
            owner,
            exclusive,
        })
        .await
    }

    /// Creates `path` as a symlink to `target`.
    pub async fn symlink(&self, target: &str, path: &str) -> Result<Attr> {
        let owner = self.owner(0o777);
        let target = target.as_bytes().to_vec();
        self.attr(MetaOp::Symlink {
            path: path.into(),
            target,
            owner,
        })
        .await
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        let reply = self.call(MetaOp::Readlink { path: path.into() }).await?;
        let target = expect_reply!(reply, "readlink", MetaReply::Target(t) => t)?;
        String::from_utf8(target)
            .map_err(|_| Error::InvalidArgument(format!("{path}: target is not UTF-8")))
    }

    /// Hard link: `new` becomes another name of `existing`.
    pub async fn link(&self, existing: &str, new: &str) -> Result<Attr> {
        self.attr(MetaOp::Link {
            existing: existing.into(),
            new: new.into(),
        })
        .await
    }

    /// Removes a file or symlink.
    pub async fn remove(&self, path: &str) -> Result<()> {
        self.done(MetaOp::Unlink { path: path.into() }).await
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&self, path: &str) -> Result<()> {
        self.done(MetaOp::Rmdir { path: path.into() }).await
    }

    /// Removes `path` and its subtree; returns how many names went.
    pub async fn remove_all(&self, path: &str) -> Result<u64> {
        let reply = self.call(MetaOp::RemoveTree { path: path.into() }).await?;
        expect_reply!(reply, "remove_tree", MetaReply::Count(n) => n)
    }

    /// rename(2): with `replace`, an existing destination is replaced.
    pub async fn rename(&self, src: &str, dst: &str, replace: bool) -> Result<()> {
        self.done(MetaOp::Rename {
            src: src.into(),
            dst: dst.into(),
            replace,
        })
        .await
    }

    /// chmod / chown / utimens. A size change publishes a new body: use
    /// [`Client::truncate`].
    pub async fn set_attr(&self, path: &str, change: SetAttr) -> Result<Attr> {
        if change.size.is_some() {
            return Err(Error::InvalidArgument(
                "use truncate to change a file's size".into(),
            ));
        }
        self.attr(MetaOp::SetAttr {
            path: path.into(),
            change,
        })
        .await
    }
}

/// A page of the listing of `path` (the page size clamped to what one op
/// may ask for).
pub(crate) fn list_op(path: &str, after: Option<&[u8]>, limit: usize) -> MetaOp {
    MetaOp::List {
        path: path.into(),
        after: after.map(|a| a.to_vec()),
        limit: limit.clamp(1, nokv_meta::MAX_PAGE as usize) as u32,
    }
}

/// A page of directory inode `dir`.
pub(crate) fn list_ino_op(dir: u64, after: Option<&[u8]>, limit: usize) -> MetaOp {
    MetaOp::ListIno {
        dir,
        after: after.map(|a| a.to_vec()),
        limit: limit.clamp(1, nokv_meta::MAX_PAGE as usize) as u32,
    }
}

/// Every entry of a paged listing: `page(after)` returns the page after
/// the cursor, until one has no `next`.
pub(crate) async fn all_pages<F, Fut>(mut page: F) -> Result<Vec<DirEntryPlus>>
where
    F: FnMut(Option<Vec<u8>>) -> Fut,
    Fut: std::future::Future<Output = Result<DirPage<DirEntryPlus>>>,
{
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let p = page(after.take()).await?;
        out.extend(p.entries);
        match p.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}
