//! The filesystem core of a mount: every kernel operation as an async
//! method by inode over the NoKV client, with no FUSE types in it (the
//! adapter in `fuse.rs` only converts arguments and replies), so all of
//! it can be driven without a kernel.
//!
//! Invariants:
//! - namespace changes are single client calls (one metadata command
//!   each); the core adds no namespace semantics;
//! - an open-for-write handle owns a private spool (`spool.rs`); its
//!   bytes become visible only when flush, fsync or release publishes
//!   them as a new generation, so readers see published generations
//!   only; several writers of one file each publish their own view and
//!   the last one wins;
//! - a read-only handle pins the generation it opened: a publish or a
//!   rename over the file meanwhile does not tear what it reads;
//! - attributes of a file with unpublished writes in this mount show the
//!   spool's size and mtime (`overlay`), so `stat` during a write agrees
//!   with what the writer wrote;
//! - with `dir_cache` (`--server` mounts), a lookup of a name is
//!   answered "absent" locally only when `dircache.rs` knows the whole
//!   directory as of the watch stream's position (see its invariants);
//!   every op that adds a name tells the cache, so this mount always
//!   sees its own new names;
//! - with `reader_leases`, a read handle that reads across a replacement
//!   keeps its blocks from GC while it is open (`leases.rs`);
//! - with `dir_cache`, a directory's attributes may also be answered
//!   locally (`dirattrs.rs`): as of the watch stream's position plus this
//!   mount's own commands, which tell that cache what they changed;
//! - with `async_close`, release publishes in the background
//!   (`after_close.rs`): the handle stays open here until its publish
//!   ends, and opening or truncating that inode waits for it.

mod after_close;
pub mod dirattrs;
pub mod dircache;
mod follows;
pub mod leases;
mod readahead;
mod reads;
pub mod spool;
mod stage;
#[cfg(test)]
mod test_events;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use nokv_client::{
    Attr, Body, Client, DirEntryPlus, Error, FileKind, Owner, RenameMode, Result, SetAttr,
    Timestamp,
};
use parking_lot::Mutex;

use dirattrs::DirAttrs;
use dircache::DirCache;
pub use follows::FollowsWatch;
use leases::ReaderLeases;
use readahead::Readahead;
use spool::Spool;

/// How the core behaves.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Refuse every change (the kernel mount is read-only too).
    pub read_only: bool,
    /// Where write spools (temp files) live.
    pub spool_dir: PathBuf,
    /// Blocks fetched ahead of a sequential reader.
    pub readahead_blocks: usize,
    /// Serve this snapshot instead of the live volume (read-only; its
    /// pinned directory is the root).
    pub snapshot: Option<String>,
    /// Answer lookups of absent names in directories this mount made,
    /// and attributes of directories, from caches kept by the watch
    /// follower (`dircache.rs`, `dirattrs.rs`; the follower must be fed
    /// with `FsCore::watch_caches`).
    pub dir_cache: bool,
    /// Longest a directory's attributes are answered locally after the
    /// server last confirmed them (the kernel's attribute TTL).
    pub dir_attr_max_age: std::time::Duration,
    /// Hold a reader lease (this TTL, renewed) while a read handle reads
    /// a generation that was replaced or removed (`leases.rs`; the
    /// follower must be fed with `FsCore::watch_caches` and the lease
    /// kept by `ReaderLeases::keep`). None: off.
    pub reader_leases: Option<std::time::Duration>,
    /// Publish a closed file's writes in the background: `close` returns
    /// before the publish (`after_close.rs`); `fsync` still waits.
    pub async_close: bool,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            read_only: false,
            spool_dir: std::env::temp_dir(),
            readahead_blocks: 16,
            snapshot: None,
            dir_cache: false,
            dir_attr_max_age: std::time::Duration::from_secs(1),
            reader_leases: None,
            async_close: false,
        }
    }
}

/// How a file is opened.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenIntent {
    pub write: bool,
    pub append: bool,
    pub truncate: bool,
}

/// A block being fetched (or fetched) for a read handle.
type Pending = futures::future::Shared<futures::future::BoxFuture<'static, Result<Bytes>>>;

struct ReadFile {
    /// The inode's attributes when it was opened (what `getattr` shows
    /// once the inode is gone from the volume while still open here).
    attr: Attr,
    body: Option<Body>,
    readahead: Mutex<Readahead>,
    /// Blocks fetched ahead of a sequential reader, by index; dropped
    /// once the reader is past them. Held here, not only in the block
    /// cache, which may evict them before they are read.
    ahead: Mutex<std::collections::BTreeMap<usize, Pending>>,
}

struct WriteFile {
    ino: u64,
    append: bool,
    spool: tokio::sync::Mutex<Spool>,
    // Mirrors of the spool state readable without its lock (getattr).
    size: AtomicU64,
    dirty: AtomicBool,
    mtime: AtomicI64,
    changed: AtomicU64,
    /// The inode's attributes as of the open, this handle's last publish
    /// or this mount's last change of them, and when that was (None: no
    /// longer known): what a deferred setattr, and a getattr within the
    /// attribute TTL, answer from.
    attr: Mutex<(Attr, Option<std::time::Instant>)>,
    /// Mode, owner and atime changes made through this handle while it
    /// had unpublished writes: sent with its publish, not on their own
    /// (`tar x` does a chown, a chmod and a utimens per file). Changed
    /// only under the spool lock.
    deferred: Mutex<SetAttr>,
}

// Each lives behind an `Arc` in `files`, one per open handle: the size
// difference between the variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum OpenFile {
    Read(ReadFile),
    Write(WriteFile),
}

struct DirHandle {
    ino: u64,
    entries: tokio::sync::Mutex<Option<Arc<Vec<DirEntryPlus>>>>,
}

/// The mount's filesystem, by inode.
pub struct FsCore {
    client: Client,
    reads: reads::Reads,
    opts: FsOptions,
    next_fh: AtomicU64,
    change_seq: AtomicU64,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    dircache: Option<Arc<DirCache>>,
    dirattrs: Option<Arc<DirAttrs>>,
    leases: Option<Arc<ReaderLeases>>,
    after_close: Option<Arc<after_close::AfterClose>>,
    /// Blocks all write handles may be uploading while they write.
    staging_budget: Arc<tokio::sync::Semaphore>,
}

/// Bytes of completed blocks the mount's writers may have in flight to
/// the store at once (each writer up to 16 blocks of it).
const STAGING_BUDGET_BYTES: u64 = 128 << 20;

fn read_only() -> Error {
    Error::InvalidArgument("the mount is read-only".into())
}

impl FsCore {
    /// A core over the live volume (`opts.snapshot` must be None; see
    /// [`FsCore::start`] for snapshots).
    pub fn new(client: Client, opts: FsOptions) -> Result<FsCore> {
        if opts.snapshot.is_some() {
            return Err(Error::InvalidArgument(
                "a snapshot core is made with FsCore::start".into(),
            ));
        }
        let reads = reads::Reads::Live(client.clone());
        FsCore::with_reads(client, opts, reads)
    }

    /// A core over the live volume or, with `opts.snapshot`, over that
    /// snapshot (read-only; its pinned path must be a directory).
    pub async fn start(client: Client, mut opts: FsOptions) -> Result<FsCore> {
        let Some(name) = opts.snapshot.clone() else {
            return FsCore::new(client, opts);
        };
        let reader = client.at_snapshot(&name);
        let root = reader.stat("/").await?;
        if root.kind != FileKind::Dir {
            return Err(Error::NotADirectory(format!(
                "snapshot {name} pins a file; only a directory snapshot can be mounted"
            )));
        }
        opts.read_only = true;
        let reads = reads::Reads::Snapshot {
            reader,
            root: root.ino,
        };
        FsCore::with_reads(client, opts, reads)
    }

    fn with_reads(client: Client, opts: FsOptions, reads: reads::Reads) -> Result<FsCore> {
        std::fs::create_dir_all(&opts.spool_dir)
            .map_err(|e| Error::Io(format!("spool directory {}: {e}", opts.spool_dir.display())))?;
        let live_rw = !opts.read_only && opts.snapshot.is_none();
        let dircache = (opts.dir_cache && live_rw).then(|| Arc::new(DirCache::default()));
        let dirattrs =
            (opts.dir_cache && live_rw).then(|| Arc::new(DirAttrs::new(opts.dir_attr_max_age)));
        // A snapshot's blocks are kept by the snapshot itself.
        let leases = opts
            .reader_leases
            .filter(|_| opts.snapshot.is_none())
            .map(|ttl| Arc::new(ReaderLeases::new(ttl)));
        let after_close = (opts.async_close && live_rw).then(|| {
            Arc::new(after_close::AfterClose::new(
                after_close::DEFAULT_PENDING_LIMIT,
            ))
        });
        let budget_blocks = (STAGING_BUDGET_BYTES / u64::from(client.block_size().max(1))).max(8);
        Ok(FsCore {
            dircache,
            dirattrs,
            leases,
            after_close,
            staging_budget: Arc::new(tokio::sync::Semaphore::new(budget_blocks as usize)),
            client,
            reads,
            opts,
            next_fh: AtomicU64::new(1),
            change_seq: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The absent-name cache, for the watch follower to keep current
    /// (None unless `FsOptions::dir_cache`).
    pub fn dir_cache(&self) -> Option<Arc<DirCache>> {
        self.dircache.clone()
    }

    /// The directory-attribute cache (None unless `FsOptions::dir_cache`).
    pub fn dir_attrs(&self) -> Option<Arc<DirAttrs>> {
        self.dirattrs.clone()
    }

    /// Everything the watch follower must keep current, in the order it
    /// applies each event.
    pub fn watch_caches(&self) -> Vec<Arc<dyn FollowsWatch>> {
        // Attributes first: once a name shows, its directory's
        // attributes show the change too.
        let mut out: Vec<Arc<dyn FollowsWatch>> = Vec::new();
        if let Some(l) = &self.leases {
            out.push(l.clone());
        }
        if let Some(c) = &self.dirattrs {
            out.push(c.clone());
        }
        if let Some(c) = &self.dircache {
            out.push(c.clone());
        }
        out
    }

    /// The reader-lease tracker (None unless `FsOptions::reader_leases`
    /// on a live mount).
    pub fn reader_leases(&self) -> Option<Arc<ReaderLeases>> {
        self.leases.clone()
    }

    /// Where the attribute cache stands before a request is sent.
    fn attr_mark(&self) -> Option<dirattrs::Mark> {
        self.dirattrs.as_deref().map(|c| c.mark())
    }

    /// A reply to a request sent at `mark` showed `attr`.
    fn attr_fill(&self, mark: Option<dirattrs::Mark>, attr: &Attr) {
        if let (Some(c), Some(m)) = (self.dirattrs.as_deref(), mark) {
            c.fill(attr, m);
        }
    }

    /// Starts an own command that makes a name in `parent`.
    fn attr_begin(&self, parent: u64) -> Option<dirattrs::Change<'_>> {
        self.dirattrs.as_deref().map(|c| c.begin(parent))
    }

    /// The command `change` stands for made `child`.
    fn attr_added(change: Option<dirattrs::Change<'_>>, child: &Attr) {
        if let Some(c) = change {
            c.added(child);
        }
    }

    /// `result` of an own command that changes `parent`: a failure may
    /// still have changed it (a reply lost after the commit).
    fn dir_changing<T>(&self, parent: u64, result: Result<T>) -> Result<T> {
        if result.is_err() {
            self.attr_changed(&[parent]);
        }
        result
    }

    /// An own command changed these inodes.
    fn attr_changed(&self, inos: &[u64]) {
        if let Some(c) = self.dirattrs.as_deref() {
            c.changed(inos);
        }
    }

    /// A ticket for an own op that may add a name to `dir`.
    fn adding(&self, dir: u64) -> Option<dircache::Ticket<'_>> {
        self.dircache.as_deref().map(|c| c.begin(dir))
    }

    pub fn block_size(&self) -> u32 {
        self.client.block_size()
    }

    fn writable(&self) -> Result<()> {
        if self.opts.read_only {
            Err(read_only())
        } else {
            Ok(())
        }
    }

    fn fh(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    fn file(&self, fh: u64) -> Result<Arc<OpenFile>> {
        self.files
            .lock()
            .get(&fh)
            .cloned()
            .ok_or_else(|| Error::InvalidArgument(format!("file handle {fh} is not open")))
    }

    /// `attr` with the size and mtime of this mount's latest unpublished
    /// write to the same inode, if any.
    pub fn overlay(&self, mut attr: Attr) -> Attr {
        if attr.kind != FileKind::File {
            return attr;
        }
        let files = self.files.lock();
        let latest = files
            .values()
            .filter_map(|f| match &**f {
                OpenFile::Write(w) if w.ino == attr.ino && w.dirty.load(Ordering::Acquire) => {
                    Some(w)
                }
                _ => None,
            })
            .max_by_key(|w| w.changed.load(Ordering::Relaxed));
        if let Some(w) = latest {
            attr.size = w.size.load(Ordering::Acquire);
            attr.mtime = w.mtime.load(Ordering::Relaxed);
            attr.ctime = attr.ctime.max(attr.mtime);
            let deferred = w.deferred.lock();
            attr.mode = deferred.mode.unwrap_or(attr.mode);
            attr.uid = deferred.uid.unwrap_or(attr.uid);
            attr.gid = deferred.gid.unwrap_or(attr.gid);
            attr.atime = deferred.atime.unwrap_or(attr.atime);
        }
        attr
    }

    // ---- names and attributes ----

    /// True when name and attribute lookups never wait on I/O (the
    /// volume is in this process), so a caller may run them on the
    /// thread that asked.
    pub fn lookups_are_local(&self) -> bool {
        self.client.is_embedded()
    }

    /// True when the absent-name cache answers that `parent/name` does
    /// not exist (no I/O; `lookup` would fail with NotFound).
    pub fn known_absent(&self, parent: u64, name: &[u8]) -> bool {
        self.dircache
            .as_deref()
            .is_some_and(|c| c.absent(parent, name))
    }

    /// The attributes of directory `ino` if the attribute cache knows
    /// them (no I/O; see `dirattrs.rs` for what that guarantees).
    pub fn known_attr(&self, ino: u64) -> Option<Attr> {
        self.dirattrs
            .as_deref()
            .and_then(|c| c.get(ino))
            .or_else(|| self.writing_attr(ino))
    }

    /// A file with unpublished writes here (the kernel drops its cached
    /// attributes after each write, then asks before the next chown or
    /// chmod): its size and mtime are this mount's, and the rest is
    /// answered from its write handle when this mount learned it within
    /// the attribute TTL, as the kernel itself would have cached it.
    fn writing_attr(&self, ino: u64) -> Option<Attr> {
        let base = {
            let files = self.files.lock();
            files.values().find_map(|f| match &**f {
                OpenFile::Write(w) if w.ino == ino && w.dirty.load(Ordering::Acquire) => {
                    let (attr, at) = &*w.attr.lock();
                    at.filter(|at| at.elapsed() < self.opts.dir_attr_max_age)
                        .map(|_| attr.clone())
                }
                _ => None,
            })
        }?;
        Some(self.overlay(base))
    }

    pub async fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        if self.known_absent(parent, name) {
            return Err(Error::NotFound(String::from_utf8_lossy(name).into_owned()));
        }
        let mark = self.attr_mark();
        let attr = self.reads.lookup(parent, name).await?;
        self.attr_fill(mark, &attr);
        Ok(self.overlay(attr))
    }

    pub async fn getattr(&self, ino: u64) -> Result<Attr> {
        if let Some(a) = self.known_attr(ino) {
            return Ok(a);
        }
        let mark = self.attr_mark();
        let attr = match self.reads.getattr(ino).await {
            Ok(attr) => attr,
            // Removed (or renamed over) while open here: the kernel still
            // asks about it for its readers, which read on as on a local
            // disk.
            Err(Error::NotFound(m)) => match self.open_attr_of(ino) {
                Some(attr) => return Ok(attr),
                None => return Err(Error::NotFound(m)),
            },
            Err(e) => return Err(e),
        };
        self.attr_fill(mark, &attr);
        Ok(self.overlay(attr))
    }

    /// The attributes of `ino` as a read handle here opened it, with no
    /// links left (the inode is gone from the volume).
    fn open_attr_of(&self, ino: u64) -> Option<Attr> {
        let files = self.files.lock();
        files.values().find_map(|f| match &**f {
            OpenFile::Read(r) if r.attr.ino == ino => Some(Attr {
                nlink: 0,
                ..r.attr.clone()
            }),
            _ => None,
        })
    }

    /// chmod / chown / utimens / truncate. A size change through a write
    /// handle (`fh`) changes that handle's spool; without one it
    /// publishes right away.
    pub async fn setattr(&self, ino: u64, fh: Option<u64>, change: SetAttr) -> Result<Attr> {
        self.writable()?;
        let SetAttr { size, .. } = change;
        let meta = SetAttr {
            size: None,
            ..change
        };
        let has_meta = meta.mode.is_some()
            || meta.uid.is_some()
            || meta.gid.is_some()
            || meta.atime.is_some()
            || meta.mtime.is_some();
        let handle = fh.and_then(|fh| self.files.lock().get(&fh).cloned());
        if let Some(size) = size {
            match handle.as_deref() {
                Some(OpenFile::Write(w)) => {
                    let mut spool = w.spool.lock().await;
                    spool.truncate(size)?;
                    self.mirror(w, &spool);
                }
                _ => self.truncate_now(ino, size).await?,
            }
        }
        if let Some(mtime) = meta.mtime {
            self.set_unpublished_mtime(ino, mtime);
        }
        if has_meta {
            if let Some(attr) = self.defer_attrs(ino, &meta).await {
                return Ok(attr);
            }
        }
        let attr = if has_meta {
            let r = self.client.setattr_ino(ino, meta).await;
            self.attr_changed(&[ino]);
            let attr = r?;
            self.refresh_writers(&attr);
            attr
        } else {
            self.client.getattr(ino).await?
        };
        Ok(self.overlay(attr))
    }

    /// Keeps `change` for the publish of the write handle on `ino`
    /// instead of sending it now, when there is exactly one such handle
    /// here (so no other publish could drop it) and it has unpublished
    /// writes. (The kernel names no handle for fchmod, fchown or
    /// futimens.) Returns what the kernel should see, or None when the
    /// change must go out now.
    async fn defer_attrs(&self, ino: u64, change: &SetAttr) -> Option<Attr> {
        let file = {
            let files = self.files.lock();
            let mut writers = files
                .values()
                .filter(|f| matches!(&***f, OpenFile::Write(w) if w.ino == ino));
            match (writers.next(), writers.next()) {
                (Some(f), None) => f.clone(),
                _ => return None,
            }
        };
        let OpenFile::Write(w) = &*file else {
            return None;
        };
        let spool = w.spool.lock().await;
        if !spool.is_dirty() {
            return None;
        }
        {
            let mut d = w.deferred.lock();
            d.mode = change.mode.or(d.mode);
            d.uid = change.uid.or(d.uid);
            d.gid = change.gid.or(d.gid);
            d.atime = change.atime.or(d.atime);
        }
        drop(spool);
        let base = w.attr.lock().0.clone();
        Some(self.overlay(base))
    }

    /// An explicit mtime outlives the unpublished writes before it: every
    /// dirty handle on `ino` publishes it unless it writes again.
    fn set_unpublished_mtime(&self, ino: u64, mtime: Timestamp) {
        self.each_writer(|w| {
            if w.ino == ino && w.dirty.load(Ordering::Acquire) {
                w.mtime.store(mtime, Ordering::Relaxed);
            }
        });
    }

    /// Runs `f` on every open write handle (under the `files` lock).
    fn each_writer(&self, mut f: impl FnMut(&WriteFile)) {
        for file in self.files.lock().values() {
            if let OpenFile::Write(w) = &**file {
                f(w);
            }
        }
    }

    /// Truncates a file that this call has no handle for: size 0 is one
    /// metadata command; other sizes publish a new generation that
    /// reuses every unchanged block.
    async fn truncate_now(&self, ino: u64, size: u64) -> Result<()> {
        self.wait_published(ino).await;
        if size == 0 {
            self.client
                .setattr_ino(
                    ino,
                    SetAttr {
                        size: Some(0),
                        ..SetAttr::default()
                    },
                )
                .await?;
            return Ok(());
        }
        let (attr, body) = self.client.body_ino(ino).await?;
        if attr.size == size {
            return Ok(());
        }
        let base = (attr.generation > 0).then_some(body);
        let mut spool = Spool::new(
            &self.opts.spool_dir,
            self.block_size(),
            base,
            false,
            self.staging_budget.clone(),
        )?;
        spool.truncate(size)?;
        spool.publish(&self.client, ino, SetAttr::default()).await?;
        Ok(())
    }

    pub async fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        self.reads.readlink(ino).await
    }

    pub async fn mkdir(&self, parent: u64, name: &[u8], owner: Owner) -> Result<Attr> {
        self.writable()?;
        let ticket = self
            .dircache
            .as_deref()
            .map(|c| c.begin_mkdir(parent, name));
        let change = self.attr_begin(parent);
        let attr = self.dir_changing(parent, self.client.mkdir_at(parent, name, owner).await)?;
        Self::attr_added(change, &attr);
        if let Some(t) = ticket {
            t.made_dir(name, attr.ino, attr.ctime);
        }
        Ok(attr)
    }

    /// mknod of a regular file (other kinds are not stored).
    pub async fn mknod_file(&self, parent: u64, name: &[u8], owner: Owner) -> Result<Attr> {
        self.writable()?;
        let ticket = self.adding(parent);
        let change = self.attr_begin(parent);
        let attr = self.dir_changing(
            parent,
            self.client.create_at(parent, name, owner, true).await,
        )?;
        Self::attr_added(change, &attr);
        if let Some(t) = ticket {
            t.added(name, attr.ino, attr.ctime);
        }
        Ok(attr)
    }

    pub async fn symlink(
        &self,
        parent: u64,
        name: &[u8],
        target: &[u8],
        owner: Owner,
    ) -> Result<Attr> {
        self.writable()?;
        let ticket = self.adding(parent);
        let change = self.attr_begin(parent);
        let attr = self.dir_changing(
            parent,
            self.client.symlink_at(parent, name, target, owner).await,
        )?;
        Self::attr_added(change, &attr);
        if let Some(t) = ticket {
            t.added(name, attr.ino, attr.ctime);
        }
        Ok(attr)
    }

    pub async fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Attr> {
        self.writable()?;
        let ticket = self.adding(new_parent);
        let change = self.attr_begin(new_parent);
        let attr = self.dir_changing(
            new_parent,
            self.client.link_at(ino, new_parent, new_name).await,
        )?;
        Self::attr_added(change, &attr);
        if let Some(t) = ticket {
            t.added(new_name, attr.ino, attr.ctime);
        }
        self.refresh_writers(&attr);
        Ok(self.overlay(attr))
    }

    /// No write handle answers getattr from what it knows until it learns
    /// its inode's attributes again (an unlink or rename changed a link
    /// count this mount cannot name).
    fn forget_writer_attrs(&self) {
        self.each_writer(|w| w.attr.lock().1 = None);
    }

    /// Write handles on `attr.ino` answer from `attr` from now on.
    fn refresh_writers(&self, attr: &Attr) {
        let now = std::time::Instant::now();
        self.each_writer(|w| {
            if w.ino == attr.ino {
                *w.attr.lock() = (attr.clone(), Some(now));
            }
        });
    }

    pub async fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.writable()?;
        let r = self.client.unlink_at(parent, name).await;
        self.attr_changed(&[parent]);
        // The reply names no inode: a file open here may have lost a link.
        self.forget_writer_attrs();
        r
    }

    pub async fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        self.writable()?;
        let r = self.client.rmdir_at(parent, name).await;
        self.attr_changed(&[parent]);
        r
    }

    pub async fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        no_replace: bool,
    ) -> Result<()> {
        self.writable()?;
        let mode = if no_replace {
            RenameMode::NoReplace
        } else {
            RenameMode::Replace
        };
        let ticket = self.adding(new_parent);
        let r = self
            .client
            .rename_at(parent, name, new_parent, new_name, mode)
            .await;
        // The reply names no inode: the moved one may be a directory.
        if let Some(c) = self.dirattrs.as_deref() {
            c.reset();
        }
        // A file replaced by the rename may be open here.
        self.forget_writer_attrs();
        r?;
        if let Some(t) = ticket {
            t.moved_in(new_name);
        }
        Ok(())
    }

    // ---- files ----

    /// Creates (or with `exclusive == false` opens an existing) file and
    /// opens it for writing.
    pub async fn create(
        &self,
        parent: u64,
        name: &[u8],
        owner: Owner,
        exclusive: bool,
        intent: OpenIntent,
    ) -> Result<(Attr, u64)> {
        self.writable()?;
        let ticket = self.adding(parent);
        let change = self.attr_begin(parent);
        // The kernel sends CREATE for a name it found absent, so first
        // try an exclusive create: its success says the command made the
        // file (and changed `parent`), which the attribute cache needs to
        // know. Without O_EXCL an existing file is then opened, as on a
        // local disk; this covers a name the cache said was absent but
        // another client created within the watch lag.
        let attr = match self.client.create_at(parent, name, owner, true).await {
            Ok(attr) => {
                Self::attr_added(change, &attr);
                attr
            }
            Err(Error::Exists(_)) if !exclusive => {
                drop(change);
                let r = self.client.create_at(parent, name, owner, false).await;
                // Made or found: unknown.
                self.attr_changed(&[parent]);
                let attr = r?;
                if self.wait_published(attr.ino).await {
                    self.reads.getattr(attr.ino).await?
                } else {
                    attr
                }
            }
            Err(e) => {
                self.attr_changed(&[parent]);
                return Err(e);
            }
        };
        if let Some(t) = ticket {
            t.added(name, attr.ino, attr.ctime);
        }
        let fh = self
            .open_attr(
                &attr,
                OpenIntent {
                    write: true,
                    ..intent
                },
            )
            .await?;
        Ok((self.overlay(attr), fh))
    }

    /// Opens file `ino`; returns the handle.
    pub async fn open(&self, ino: u64, intent: OpenIntent) -> Result<u64> {
        if intent.write || intent.truncate {
            self.writable()?;
        }
        self.wait_published(ino).await;
        let attr = self.reads.getattr(ino).await?;
        self.open_attr(&attr, intent).await
    }

    async fn open_attr(&self, attr: &Attr, intent: OpenIntent) -> Result<u64> {
        match attr.kind {
            FileKind::File => {}
            FileKind::Dir => return Err(Error::IsADirectory(format!("inode {}", attr.ino))),
            FileKind::Symlink => {
                return Err(Error::InvalidArgument(format!(
                    "inode {} is a symbolic link",
                    attr.ino
                )))
            }
        }
        let needs_body = attr.generation > 0 && !(intent.write && intent.truncate);
        // A handle over a published generation reads its blocks (a write
        // handle: the parts it did not overwrite): the lease covers both.
        let reads_blocks = needs_body;
        let body = if needs_body {
            Some(self.reads.body(attr.ino).await?.1)
        } else {
            None
        };
        let file = if intent.write {
            // Truncating an empty file changes nothing: no publish at close
            // (a create with O_TRUNC is the common case).
            let truncate = intent.truncate && attr.size > 0;
            let spool = Spool::new(
                &self.opts.spool_dir,
                self.block_size(),
                body,
                truncate,
                self.staging_budget.clone(),
            )?;
            let w = WriteFile {
                ino: attr.ino,
                append: intent.append,
                size: AtomicU64::new(spool.size()),
                dirty: AtomicBool::new(spool.is_dirty()),
                mtime: AtomicI64::new(nokv_types::now_nanos()),
                changed: AtomicU64::new(self.change_seq.fetch_add(1, Ordering::Relaxed)),
                spool: tokio::sync::Mutex::new(spool),
                attr: Mutex::new((attr.clone(), Some(std::time::Instant::now()))),
                deferred: Mutex::new(SetAttr::default()),
            };
            OpenFile::Write(w)
        } else {
            OpenFile::Read(ReadFile {
                attr: attr.clone(),
                body,
                readahead: Mutex::new(Readahead::new(self.opts.readahead_blocks)),
                ahead: Mutex::new(std::collections::BTreeMap::new()),
            })
        };
        let fh = self.fh();
        if let (true, Some(l)) = (reads_blocks, &self.leases) {
            l.opened(fh, attr.ino, attr.generation);
        }
        self.files.lock().insert(fh, Arc::new(file));
        Ok(fh)
    }

    fn mirror(&self, w: &WriteFile, spool: &Spool) {
        w.size.store(spool.size(), Ordering::Release);
        w.dirty.store(spool.is_dirty(), Ordering::Release);
        w.mtime.store(nokv_types::now_nanos(), Ordering::Relaxed);
        w.changed.store(
            self.change_seq.fetch_add(1, Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Bytes> {
        match &*self.file(fh)? {
            OpenFile::Read(r) => {
                let Some(body) = &r.body else {
                    return Ok(Bytes::new());
                };
                self.read_pinned(r, body, offset, size).await
            }
            OpenFile::Write(w) => {
                let spool = w.spool.lock().await;
                spool.read(&self.client, offset, u64::from(size)).await
            }
        }
    }

    /// A read of the generation a read handle pinned: blocks a readahead
    /// fetched come from the handle, others through the block cache.
    async fn read_pinned(
        &self,
        r: &ReadFile,
        body: &Body,
        offset: u64,
        size: u32,
    ) -> Result<Bytes> {
        use futures::FutureExt;
        let end = offset.saturating_add(u64::from(size)).min(body.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let bs = u64::from(body.block_size.max(1));
        let first = (offset / bs) as usize;
        let last = ((end - 1) / bs) as usize;
        let ahead = r
            .readahead
            .lock()
            .on_read(offset, u64::from(size), bs, body.blocks.len());
        let wanted: Vec<(usize, Option<Pending>)> = {
            let mut map = r.ahead.lock();
            if let Some((from, count)) = ahead {
                for i in from..from + count {
                    if let Some(block) = body.blocks.get(i).copied() {
                        let task = tokio::spawn(self.client.fetch_block(block));
                        let fut = async move {
                            task.await
                                .map_err(|e| Error::Io(format!("readahead task: {e}")))?
                        }
                        .boxed()
                        .shared();
                        map.insert(i, fut);
                    }
                }
            }
            // Blocks behind the reader are done with.
            let keep = map.split_off(&first);
            *map = keep;
            (first..=last).map(|i| (i, map.get(&i).cloned())).collect()
        };
        let mut out = bytes::BytesMut::new();
        for (i, pending) in wanted {
            let Some(block) = body.blocks.get(i).copied() else {
                break;
            };
            let bytes = match pending {
                Some(p) => p.await?,
                None => self.client.fetch_block(block).await?,
            };
            let start = body.block_offset(i);
            let lo = offset.saturating_sub(start).min(bytes.len() as u64) as usize;
            let hi = (end - start).min(bytes.len() as u64) as usize;
            if first == last {
                return Ok(bytes.slice(lo..hi));
            }
            out.extend_from_slice(&bytes[lo..hi]);
        }
        Ok(out.freeze())
    }

    pub async fn write(&self, fh: u64, offset: u64, data: &[u8]) -> Result<u32> {
        let file = self.file(fh)?;
        let OpenFile::Write(w) = &*file else {
            return Err(Error::InvalidArgument(format!(
                "file handle {fh} is not open for writing"
            )));
        };
        let mut spool = w.spool.lock().await;
        let offset = if w.append { spool.size() } else { offset };
        spool.write(&self.client, offset, data).await?;
        self.mirror(w, &spool);
        u32::try_from(data.len())
            .map_err(|_| Error::InvalidArgument("write larger than 4 GiB".into()))
    }

    /// True when closing `fh` has nothing to publish (a read handle, or a
    /// write handle with no unpublished writes), so the adapter can
    /// answer flush without a trip through the runtime.
    pub fn is_clean(&self, fh: u64) -> bool {
        match self.files.lock().get(&fh).map(|f| &**f) {
            Some(OpenFile::Write(w)) => !w.dirty.load(Ordering::Acquire),
            _ => true,
        }
    }

    /// Closes `fh` at once if it has nothing to publish; false (and
    /// nothing done) otherwise.
    pub fn release_if_clean(&self, fh: u64) -> bool {
        let mut files = self.files.lock();
        let clean = match files.get(&fh).map(|f| &**f) {
            Some(OpenFile::Write(w)) => !w.dirty.load(Ordering::Acquire),
            _ => true,
        };
        if clean {
            files.remove(&fh);
            drop(files);
            self.closed(fh);
        }
        clean
    }

    /// `fh` is gone from `files`.
    fn closed(&self, fh: u64) {
        if let Some(l) = &self.leases {
            l.closed(fh);
        }
    }

    /// Publishes the handle's unpublished writes (flush, fsync).
    pub async fn flush(&self, fh: u64) -> Result<()> {
        let file = self.file(fh)?;
        if let OpenFile::Write(w) = &*file {
            self.publish(w).await?;
        }
        Ok(())
    }

    async fn publish(&self, w: &WriteFile) -> Result<()> {
        let mut spool = w.spool.lock().await;
        if !spool.is_dirty() {
            return Ok(());
        }
        // The file keeps the mtime its writer last gave it (a write, or
        // a utimens on the open file as `tar x` and `cp -p` do), as on
        // a local disk, where close never changes mtime.
        let attrs = SetAttr {
            mtime: Some(w.mtime.load(Ordering::Relaxed)),
            ..w.deferred.lock().clone()
        };
        let published = spool.publish(&self.client, w.ino, attrs).await;
        if let Ok(Some(attr)) = &published {
            *w.deferred.lock() = SetAttr::default();
            *w.attr.lock() = (attr.clone(), Some(std::time::Instant::now()));
        }
        w.dirty.store(spool.is_dirty(), Ordering::Release);
        published.map(|_| ())
    }

    /// Closes a handle, publishing what it has not published yet. A file
    /// removed while open has nowhere to publish: its writes are dropped,
    /// as on a local disk.
    pub async fn release(&self, fh: u64) -> Result<()> {
        let file = self.files.lock().get(&fh).cloned();
        let Some(file) = file else {
            return Ok(());
        };
        // Published before it leaves `files`: until then getattr shows
        // its size and mtime, and an unmount would publish it.
        let published = match &*file {
            OpenFile::Write(w) => match self.publish(w).await {
                Err(Error::NotFound(_)) => {
                    tracing::debug!("inode {} was removed while open: writes dropped", w.ino);
                    Ok(())
                }
                r => r,
            },
            OpenFile::Read(_) => Ok(()),
        };
        self.files.lock().remove(&fh);
        self.closed(fh);
        published
    }

    /// Waits until every file closed so far has been published (an
    /// fsync of a directory: `sync DIR` after `tar x`).
    pub async fn wait_closed_published(&self) {
        if let Some(after) = &self.after_close {
            after.wait_begun_so_far().await;
        }
    }

    /// True when closes publish in the background (`async_close`).
    pub fn closes_in_background(&self) -> bool {
        self.after_close.is_some()
    }

    /// A close (the kernel's FLUSH) of `fh`: publishes its writes, or
    /// with `async_close` leaves them to the release, waiting only while
    /// too many publishes are in flight.
    pub async fn close(&self, fh: u64) -> Result<()> {
        match &self.after_close {
            Some(after) => {
                after.wait_room().await;
                Ok(())
            }
            None => self.flush(fh).await,
        }
    }

    /// Releases `fh` and publishes its writes in a task on `rt` (with
    /// `async_close`, the inode counts as pending from this call on;
    /// otherwise the same as awaiting [`FsCore::release`] in a task).
    pub fn release_in_background(self: Arc<Self>, fh: u64, rt: &tokio::runtime::Handle) {
        let ino = match self.files.lock().get(&fh).map(|f| &**f) {
            Some(OpenFile::Write(w)) => Some(w.ino),
            _ => None,
        };
        let after = self.after_close.clone().filter(|_| ino.is_some());
        let ticket = after.as_ref().zip(ino).map(|(a, ino)| a.begin(ino));
        rt.spawn(async move {
            if let Err(e) = self.release(fh).await {
                tracing::error!(
                    "inode {}: publishing after close failed, its writes are lost: {e}",
                    ino.unwrap_or_default()
                );
                if let Some(after) = &after {
                    after.failed();
                }
            }
            if let (Some(after), Some(ticket)) = (after, ticket) {
                after.end(ticket);
            }
        });
    }

    /// Waits for this mount's background publishes of `ino`; true if
    /// there were any (the caller's view of `ino` may be stale).
    async fn wait_published(&self, ino: u64) -> bool {
        match &self.after_close {
            Some(after) if after.is_pending(ino) => {
                after.wait_ino(ino).await;
                true
            }
            _ => false,
        }
    }

    /// Publishes every handle's unpublished writes (before an unmount).
    /// Returns how many handles failed to publish.
    pub async fn flush_all(&self) -> usize {
        let files: Vec<_> = self.files.lock().values().cloned().collect();
        let mut failed = 0;
        for f in files {
            if let OpenFile::Write(w) = &*f {
                match self.publish(w).await {
                    Ok(()) | Err(Error::NotFound(_)) => {}
                    Err(e) => {
                        tracing::error!("inode {}: unpublished writes lost: {e}", w.ino);
                        failed += 1;
                    }
                }
            }
        }
        // Every spool is clean now; background releases only finish.
        if let Some(after) = &self.after_close {
            after.wait_idle().await;
            failed += after.take_failed();
        }
        failed
    }

    // ---- directories ----

    pub fn opendir(&self, ino: u64) -> u64 {
        let fh = self.fh();
        let dir = DirHandle {
            ino,
            entries: tokio::sync::Mutex::new(None),
        };
        self.dirs.lock().insert(fh, Arc::new(dir));
        fh
    }

    /// The directory's entries (with attributes), listed once per open
    /// handle so kernel offsets stay stable while it is read.
    pub async fn readdir(&self, fh: u64) -> Result<Arc<Vec<DirEntryPlus>>> {
        let dir =
            self.dirs.lock().get(&fh).cloned().ok_or_else(|| {
                Error::InvalidArgument(format!("directory handle {fh} is not open"))
            })?;
        let mut entries = dir.entries.lock().await;
        if let Some(e) = &*entries {
            return Ok(e.clone());
        }
        let mut all = Vec::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.reads.list(dir.ino, after.as_deref(), 4096).await?;
            all.extend(page.entries.into_iter().map(|mut e| {
                e.attr = self.overlay(e.attr);
                e
            }));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let all = Arc::new(all);
        *entries = Some(all.clone());
        Ok(all)
    }

    pub fn releasedir(&self, fh: u64) {
        self.dirs.lock().remove(&fh);
    }
}

#[cfg(test)]
mod tests;
