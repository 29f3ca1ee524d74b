//! `Client`: opening a volume and the namespace operations, by path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nokv_meta::{
    DirEntryPlus, DirPage, Durability, InitOptions, OpenOptions, Owner, RenameMode, Volume,
    VolumeInfo,
};
use nokv_object::{BlockStore, BlockStoreOptions, StoreCredentials};
use nokv_types::{Attr, Error, NokvPath, Result, SetAttr};

use crate::blocking::blocking;

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
            uid: 0,
            gid: 0,
        }
    }
}

pub(crate) struct Inner {
    pub volume: Volume,
    pub store: BlockStore,
    pub opts: ClientOptions,
}

/// A handle on one volume. Cheap to clone.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) fn parse(path: &str) -> Result<NokvPath> {
    NokvPath::parse(path)
}

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
        Ok(Client {
            inner: Arc::new(Inner {
                volume,
                store,
                opts,
            }),
        })
    }

    /// Opens the volume in `home` (embedded, in this process).
    pub async fn open(home: &Path, opts: ClientOptions) -> Result<Client> {
        let home = home.to_path_buf();
        let open = OpenOptions {
            durability: opts.durability,
            ..OpenOptions::default()
        };
        let volume = blocking(move || Volume::open(&home, open)).await?;
        let store = BlockStore::open(
            &volume.info().location,
            &opts.credentials,
            opts.store.clone(),
        )?;
        Ok(Client {
            inner: Arc::new(Inner {
                volume,
                store,
                opts,
            }),
        })
    }

    pub fn info(&self) -> VolumeInfo {
        self.inner.volume.info()
    }

    pub(crate) fn volume(&self) -> Volume {
        self.inner.volume.clone()
    }

    pub(crate) fn store(&self) -> &BlockStore {
        &self.inner.store
    }

    pub(crate) fn owner(&self, mode: u32) -> Owner {
        Owner {
            mode,
            uid: self.inner.opts.uid,
            gid: self.inner.opts.gid,
        }
    }

    /// Flushes metadata to its data files and trims the WAL.
    pub async fn checkpoint(&self) -> Result<()> {
        let vol = self.volume();
        blocking(move || vol.checkpoint()).await
    }

    /// stat: attributes of `path`, following a final symlink.
    pub async fn stat(&self, path: &str) -> Result<Attr> {
        let path = parse(path)?;
        self.inner.volume.stat_path(&path, true)
    }

    /// lstat: attributes of `path` itself, even if it is a symlink.
    pub async fn lstat(&self, path: &str) -> Result<Attr> {
        let path = parse(path)?;
        self.inner.volume.stat_path(&path, false)
    }

    /// One page of a directory listing with attributes; pass the page's
    /// `next` to continue.
    pub async fn list_page(
        &self,
        path: &str,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        let path = parse(path)?;
        self.inner.volume.list_path(&path, after, limit)
    }

    /// A whole directory listing with attributes.
    pub async fn list(&self, path: &str) -> Result<Vec<DirEntryPlus>> {
        let mut out = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.list_page(path, after.as_deref(), 4096).await?;
            out.extend(page.entries);
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok(out),
            }
        }
    }

    pub async fn mkdir(&self, path: &str, mode: u32) -> Result<Attr> {
        let (path, vol, owner) = (parse(path)?, self.volume(), self.owner(mode));
        blocking(move || vol.mkdir_path(&path, owner, false)).await
    }

    /// mkdir -p.
    pub async fn mkdir_all(&self, path: &str, mode: u32) -> Result<Attr> {
        let (path, vol, owner) = (parse(path)?, self.volume(), self.owner(mode));
        blocking(move || vol.mkdir_path(&path, owner, true)).await
    }

    /// Creates an empty file; `exclusive` fails if the name exists.
    pub async fn create(&self, path: &str, mode: u32, exclusive: bool) -> Result<Attr> {
        let (path, vol, owner) = (parse(path)?, self.volume(), self.owner(mode));
        blocking(move || vol.create_path(&path, owner, exclusive)).await
    }

    /// Creates `path` as a symlink to `target`.
    pub async fn symlink(&self, target: &str, path: &str) -> Result<Attr> {
        let (path, vol, owner) = (parse(path)?, self.volume(), self.owner(0o777));
        let target = target.as_bytes().to_vec();
        blocking(move || vol.symlink_path(&path, &target, owner)).await
    }

    pub async fn readlink(&self, path: &str) -> Result<String> {
        let path = parse(path)?;
        let target = self.inner.volume.readlink_path(&path)?;
        String::from_utf8(target)
            .map_err(|_| Error::InvalidArgument(format!("{path}: target is not UTF-8")))
    }

    /// Hard link: `new` becomes another name of `existing`.
    pub async fn link(&self, existing: &str, new: &str) -> Result<Attr> {
        let (existing, new, vol) = (parse(existing)?, parse(new)?, self.volume());
        blocking(move || vol.link_path(&existing, &new)).await
    }

    /// Removes a file or symlink.
    pub async fn remove(&self, path: &str) -> Result<()> {
        let (path, vol) = (parse(path)?, self.volume());
        blocking(move || vol.unlink_path(&path)).await
    }

    /// Removes an empty directory.
    pub async fn remove_dir(&self, path: &str) -> Result<()> {
        let (path, vol) = (parse(path)?, self.volume());
        blocking(move || vol.rmdir_path(&path)).await
    }

    /// Removes `path` and its subtree; returns how many names went.
    pub async fn remove_all(&self, path: &str) -> Result<u64> {
        let (path, vol) = (parse(path)?, self.volume());
        if path.is_root() {
            return Err(Error::InvalidArgument(
                "refusing to remove the volume root".into(),
            ));
        }
        blocking(move || vol.remove_tree(&path)).await
    }

    /// rename(2): with `replace`, an existing destination is replaced.
    pub async fn rename(&self, src: &str, dst: &str, replace: bool) -> Result<()> {
        let (src, dst, vol) = (parse(src)?, parse(dst)?, self.volume());
        let mode = if replace {
            RenameMode::Replace
        } else {
            RenameMode::NoReplace
        };
        blocking(move || vol.rename_path(&src, &dst, mode)).await
    }

    /// chmod / chown / utimens. A size change publishes a new body: use
    /// [`Client::truncate`].
    pub async fn set_attr(&self, path: &str, change: SetAttr) -> Result<Attr> {
        if change.size.is_some() {
            return Err(Error::InvalidArgument(
                "use truncate to change a file's size".into(),
            ));
        }
        let (path, vol) = (parse(path)?, self.volume());
        blocking(move || vol.setattr_path(&path, change)).await
    }
}
