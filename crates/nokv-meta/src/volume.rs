//! A volume: its on-disk home, its identity (superblock) and the
//! namespace API every front door uses.
//!
//! Layout of a volume home directory:
//! - `NOKV_VOLUME`: a small JSON marker (format version, volume id),
//!   written last by `init` (tmp + rename), so a half-initialized home
//!   is never mistaken for a volume;
//! - `meta/`: the holt tree with all metadata, superblock included;
//! - `TOKEN`: the metadata server's access token (mode 0600), written
//!   by `init` (or by the first `serve` of an older volume);
//! - `LOCK`: the volume lock and a description of its holder.
//!
//! Invariants: a volume opens only if its marker and superblock agree
//! and carry the format version this build reads; only one process
//! holds a volume open for writing (holt's exclusive lock).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use nokv_types::{
    Attr, Body, Error, FileKind, NokvPath, ObjectLocation, Result, SetAttr, DEFAULT_BLOCK_SIZE,
    MAX_BLOCK_SIZE, MIN_BLOCK_SIZE, ROOT_INO,
};
use serde::{Deserialize, Serialize};

use crate::bodies::read_body;
use crate::command::Txn;
use crate::committer::Committer;
use crate::engine::{Durability, Engine};
use crate::keys;
use crate::lock::VolumeLock;
use crate::namespace::create::Owner;
use crate::namespace::list::{DirEntry, DirEntryPlus, DirPage};
use crate::namespace::rename::RenameMode;
use crate::namespace::{self, load_entry, require_inode, Source};
use crate::publish::{PublishOutcome, PublishRequest};
use crate::records::{decode, encode, InodeRecord, StagingRecord, Superblock, FORMAT_VERSION};
use crate::{gcq, publish, resolve};

const MARKER: &str = "NOKV_VOLUME";
const TOKEN: &str = "TOKEN";
const META_DIR: &str = "meta";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Marker {
    format_version: u32,
    volume_id: String,
}

/// Parses the `NOKV_VOLUME` marker read from `path`.
pub(crate) fn parse_marker(path: &Path, text: &[u8]) -> Result<Marker> {
    serde_json::from_slice(text).map_err(|e| Error::Corrupt(format!("{}: {e}", path.display())))
}

/// How to create a volume.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub location: ObjectLocation,
    pub block_size: u32,
}

impl InitOptions {
    pub fn new(location: ObjectLocation) -> InitOptions {
        InitOptions {
            location,
            block_size: DEFAULT_BLOCK_SIZE,
        }
    }
}

/// How to open a volume.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub durability: Durability,
    /// holt cache budget in 512 KiB frames.
    pub cache_frames: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            durability: Durability::Sync,
            cache_frames: 256,
        }
    }
}

/// Identity and state of an open volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    pub home: PathBuf,
    pub volume_id: String,
    pub format_version: u32,
    pub root_ino: u64,
    pub location: ObjectLocation,
    pub block_size: u32,
    pub commit_version: u64,
    pub created: i64,
    /// Reader leases live now, and the oldest `since` among them: GC
    /// keeps every block queued from then on (see `leases`). Filled by
    /// the `Info` op ([`Volume::status`]); [`Volume::info`] leaves them
    /// empty.
    #[serde(default)]
    pub reader_leases: u64,
    #[serde(default)]
    pub reader_leases_since: Option<i64>,
}

struct Inner {
    // Fields drop in order: holt closes before the lock is released.
    engine: Engine,
    committer: Committer,
    superblock: Superblock,
    home: PathBuf,
    durability: Durability,
    _lock: VolumeLock,
}

/// An open volume. Cheap to clone; all clones share one engine.
#[derive(Clone)]
pub struct Volume {
    inner: Arc<Inner>,
}

/// The metadata server token of the volume in `home`: read from
/// `<home>/TOKEN`, or generated (256 random bits as hex) and written
/// there with mode 0600 when missing.
pub fn volume_token(home: &Path) -> Result<String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = home.join(TOKEN);
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok(t.trim().to_string()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::Io(format!("{}: {e}", path.display()))),
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let tmp = home.join(format!("{TOKEN}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(token.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(token)
}

/// Retries a multi-key read that came back `Corrupt`: between its point
/// reads a commit may have moved what it was following (see the note on
/// reads in `impl Volume`). Real corruption persists and is returned.
fn untorn<T>(read: impl Fn() -> Result<T>) -> Result<T> {
    let mut tries = 0;
    loop {
        match read() {
            Err(Error::Corrupt(_)) if tries < 16 => {
                tries += 1;
                std::thread::yield_now();
            }
            other => return other,
        }
    }
}

/// True when `home` holds a volume marker.
pub fn volume_exists(home: &Path) -> bool {
    home.join(MARKER).is_file()
}

impl Volume {
    /// Creates a new volume in `home` (created if missing; must not hold
    /// a volume already).
    pub fn init(home: &Path, init: InitOptions, open: OpenOptions) -> Result<Volume> {
        if !(MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE).contains(&init.block_size) {
            return Err(Error::InvalidArgument(format!(
                "block size {} is outside {MIN_BLOCK_SIZE}..={MAX_BLOCK_SIZE}",
                init.block_size
            )));
        }
        if volume_exists(home) {
            return Err(Error::Exists(format!("volume at {}", home.display())));
        }
        std::fs::create_dir_all(home)?;
        let lock = VolumeLock::acquire(home)?;
        if volume_exists(home) {
            return Err(Error::Exists(format!("volume at {}", home.display())));
        }
        let meta = home.join(META_DIR);
        if meta.exists() {
            // A previous init died before writing the marker: start over.
            std::fs::remove_dir_all(&meta)?;
        }
        std::fs::create_dir_all(&meta)?;
        volume_token(home)?;
        let engine = Engine::open(&meta, open.durability, open.cache_frames)?;
        let now = nokv_types::now_nanos();
        let superblock = Superblock {
            format_version: FORMAT_VERSION,
            volume_id: uuid::Uuid::new_v4().to_string(),
            root_ino: ROOT_INO,
            location: init.location,
            block_size: init.block_size,
            created: now,
        };
        let committer = Committer::new(&engine)?;
        let sb = superblock.clone();
        committer.run(&engine, move |txn: &mut Txn<'_>| {
            let mut root = namespace::new_inode(FileKind::Dir, 0o755, 0, 0, txn.now());
            root.nlink = 2;
            txn.put(keys::SUPERBLOCK.to_vec(), encode(&sb)?)?;
            txn.put(keys::inode(ROOT_INO), encode(&InodeRecord::Own(root))?)?;
            Ok(())
        })?;
        engine.checkpoint()?;
        let marker = Marker {
            format_version: FORMAT_VERSION,
            volume_id: superblock.volume_id.clone(),
        };
        let tmp = home.join(format!("{MARKER}.tmp"));
        let text = serde_json::to_vec_pretty(&marker).map_err(|e| Error::Io(e.to_string()))?;
        std::fs::write(&tmp, text)?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, home.join(MARKER))?;
        std::fs::File::open(home)?.sync_all()?;
        Ok(Volume {
            inner: Arc::new(Inner {
                home: home.to_path_buf(),
                engine,
                committer,
                superblock,
                durability: open.durability,
                _lock: lock,
            }),
        })
    }

    /// Opens the volume in `home`.
    pub fn open(home: &Path, open: OpenOptions) -> Result<Volume> {
        let marker_path = home.join(MARKER);
        let text = match std::fs::read(&marker_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NoVolume(home.display().to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let marker = parse_marker(&marker_path, &text)?;
        if marker.format_version != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                found: marker.format_version,
                supported: FORMAT_VERSION,
            });
        }
        let lock = VolumeLock::acquire(home)?;
        let engine = Engine::open(&home.join(META_DIR), open.durability, open.cache_frames)?;
        let superblock: Superblock = match engine.get(keys::SUPERBLOCK)? {
            Some(bytes) => decode("superblock", &bytes)?,
            None => return Err(Error::Corrupt("the superblock is missing".into())),
        };
        if superblock.format_version != FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                found: superblock.format_version,
                supported: FORMAT_VERSION,
            });
        }
        if superblock.volume_id != marker.volume_id {
            return Err(Error::Corrupt(format!(
                "marker names volume {} but the metadata belongs to {}",
                marker.volume_id, superblock.volume_id
            )));
        }
        let committer = Committer::new(&engine)?;
        Ok(Volume {
            inner: Arc::new(Inner {
                home: home.to_path_buf(),
                engine,
                committer,
                superblock,
                durability: open.durability,
                _lock: lock,
            }),
        })
    }

    pub fn info(&self) -> VolumeInfo {
        let sb = &self.inner.superblock;
        VolumeInfo {
            home: self.inner.home.clone(),
            volume_id: sb.volume_id.clone(),
            format_version: sb.format_version,
            root_ino: sb.root_ino,
            location: sb.location.clone(),
            block_size: sb.block_size,
            commit_version: self.inner.committer.version(),
            created: sb.created,
            reader_leases: 0,
            reader_leases_since: None,
        }
    }

    /// [`Volume::info`] with the reader leases live now.
    pub fn status(&self) -> Result<VolumeInfo> {
        let (reader_leases, reader_leases_since) =
            crate::leases::live(&self.inner.engine, nokv_types::now_nanos())?;
        Ok(VolumeInfo {
            reader_leases,
            reader_leases_since,
            ..self.info()
        })
    }

    /// The volume's home directory.
    pub fn home(&self) -> &Path {
        &self.inner.home
    }

    /// How this open acknowledges commands.
    pub fn durability(&self) -> Durability {
        self.inner.durability
    }

    /// Tells later openers who holds the volume (shown in their `Busy`
    /// error), e.g. "the metadata server at http://…".
    pub fn set_holder(&self, description: &str) -> Result<()> {
        self.inner._lock.describe(description)
    }

    pub fn block_size(&self) -> u32 {
        self.inner.superblock.block_size
    }

    /// Flushes holt's dirty state and trims its WAL (faster reopen).
    pub fn checkpoint(&self) -> Result<()> {
        self.inner.engine.checkpoint()
    }

    /// Runs `fs` as separate commands, in order, sharing group commits.
    pub(crate) fn commit_many<T, F>(&self, fs: Vec<F>) -> Vec<Result<T>>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>, u32) -> Result<T> + Send + 'static,
    {
        let block_size = self.block_size();
        let fs: Vec<_> = fs
            .into_iter()
            .map(|f| move |txn: &mut Txn<'_>| f(txn, block_size))
            .collect();
        self.inner.committer.run_many(&self.inner.engine, fs)
    }

    pub(crate) fn commit<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Txn<'_>, u32) -> Result<T> + Send + 'static,
    {
        let block_size = self.block_size();
        self.inner
            .committer
            .run(&self.inner.engine, move |txn| f(txn, block_size))
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub(crate) fn committer(&self) -> &Committer {
        &self.inner.committer
    }

    fn src(&self) -> &dyn Source {
        &self.inner.engine
    }

    // ---- reads (inode level) ----
    //
    // Reads outside a command are several point reads, each of the latest
    // state: a change that commits in between (a replace deleting the old
    // manifest, a rename moving the entry a back-pointer names) can make
    // them disagree. Such a torn read shows up as `Corrupt`; it is retried
    // (`untorn`), and only a disagreement that persists is reported.

    pub fn getattr(&self, ino: u64) -> Result<Attr> {
        untorn(|| {
            let (data, _) = require_inode(self.src(), ino)?;
            Ok(data.to_attr(ino))
        })
    }

    pub fn lookup(&self, parent: u64, name: &[u8]) -> Result<Attr> {
        nokv_types::validate_name(name)?;
        untorn(|| {
            namespace::require_dir(self.src(), parent)?;
            let entry = load_entry(self.src(), parent, name)?
                .ok_or_else(|| Error::NotFound(namespace::shown(name)))?;
            let (ino, data, _) = namespace::entry_inode(self.src(), parent, name, entry)?;
            Ok(data.to_attr(ino))
        })
    }

    pub fn readlink(&self, ino: u64) -> Result<Vec<u8>> {
        let (data, _) = untorn(|| require_inode(self.src(), ino))?;
        match (data.kind, data.target) {
            (FileKind::Symlink, Some(t)) => Ok(t),
            _ => Err(Error::NotASymlink(format!("inode {ino}"))),
        }
    }

    pub fn readdir(
        &self,
        dir: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntry>> {
        untorn(|| namespace::list::readdir(&self.inner.engine, dir, after, limit))
    }

    pub fn readdirplus(
        &self,
        dir: u64,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        untorn(|| namespace::list::readdirplus(&self.inner.engine, dir, after, limit))
    }

    /// Attributes and manifest of a file's current generation.
    pub fn body(&self, ino: u64) -> Result<(Attr, Body)> {
        untorn(|| {
            let (data, _) = require_inode(self.src(), ino)?;
            match data.kind {
                FileKind::File => {}
                FileKind::Dir => return Err(Error::IsADirectory(format!("inode {ino}"))),
                FileKind::Symlink => {
                    return Err(Error::InvalidArgument(format!("inode {ino} is a symlink")))
                }
            }
            let body = read_body(self.src(), ino, &data, self.block_size())?;
            Ok((data.to_attr(ino), body))
        })
    }

    // ---- reads (path level) ----

    /// Resolves a path; `follow` decides whether a final symlink is
    /// followed (stat) or returned (lstat).
    pub fn resolve(&self, path: &NokvPath, follow: bool) -> Result<Attr> {
        untorn(|| resolve::resolve(self.src(), path, follow))
    }

    /// The directory a new name at `path` goes into, and the name.
    pub fn resolve_parent(&self, path: &NokvPath) -> Result<(u64, Vec<u8>)> {
        untorn(|| resolve::resolve_parent(self.src(), path))
    }

    // ---- changes (inode level); each is one MetadataCommand ----

    pub fn mkdir(&self, parent: u64, name: &[u8], owner: Owner) -> Result<Attr> {
        let name = name.to_vec();
        self.commit(move |txn, _| namespace::create::mkdir(txn, parent, &name, owner))
    }

    pub fn create(&self, parent: u64, name: &[u8], owner: Owner, exclusive: bool) -> Result<Attr> {
        let name = name.to_vec();
        self.commit(move |txn, _| namespace::create::create(txn, parent, &name, owner, exclusive))
    }

    pub fn symlink(&self, parent: u64, name: &[u8], target: &[u8], owner: Owner) -> Result<Attr> {
        let (name, target) = (name.to_vec(), target.to_vec());
        self.commit(move |txn, _| namespace::create::symlink(txn, parent, &name, &target, owner))
    }

    pub fn link(&self, ino: u64, new_parent: u64, new_name: &[u8]) -> Result<Attr> {
        let new_name = new_name.to_vec();
        self.commit(move |txn, _| namespace::create::link(txn, ino, new_parent, &new_name))
    }

    pub fn unlink(&self, parent: u64, name: &[u8]) -> Result<()> {
        let name = name.to_vec();
        self.commit(move |txn, bs| namespace::remove::unlink(txn, parent, &name, bs))
    }

    pub fn rmdir(&self, parent: u64, name: &[u8]) -> Result<()> {
        let name = name.to_vec();
        self.commit(move |txn, _| namespace::remove::rmdir(txn, parent, &name))
    }

    pub fn rename(
        &self,
        parent: u64,
        name: &[u8],
        new_parent: u64,
        new_name: &[u8],
        mode: RenameMode,
    ) -> Result<()> {
        let (name, new_name) = (name.to_vec(), new_name.to_vec());
        self.commit(move |txn, bs| {
            namespace::rename::rename(txn, parent, &name, new_parent, &new_name, mode, bs)
        })
    }

    pub fn setattr(&self, ino: u64, change: SetAttr) -> Result<Attr> {
        self.commit(move |txn, bs| namespace::attr::setattr(txn, ino, &change, bs))
    }

    // ---- publish ----

    /// Records a staged upload that must be published or collected by
    /// `deadline` (ns since epoch); returns its upload id.
    pub fn begin_upload(&self, deadline: i64) -> Result<u64> {
        self.commit(move |txn, _| publish::begin_upload(txn, deadline))
    }

    /// Drops the staging record of an upload whose blocks the caller
    /// has deleted (or never wrote).
    pub fn finish_upload(&self, upload: u64) -> Result<()> {
        self.commit(move |txn, _| publish::finish_upload(txn, upload))
    }

    pub fn publish(&self, req: PublishRequest) -> Result<PublishOutcome> {
        self.commit(move |txn, bs| publish::publish(txn, req, bs))
    }

    /// Staged uploads whose deadline is before `now`.
    pub fn expired_uploads(&self, now: i64, limit: usize) -> Result<Vec<StagingRecord>> {
        let rows = self
            .inner
            .engine
            .scan(&keys::staging_prefix(), None, usize::MAX)?;
        let mut out = Vec::new();
        for (key, value) in rows {
            if out.len() >= limit {
                break;
            }
            let rec: StagingRecord = decode("staging", &value)?;
            if keys::staging_upload(&key) != Some(rec.upload) {
                return Err(Error::Corrupt(format!(
                    "staging record {} is filed under the wrong key",
                    rec.upload
                )));
            }
            if rec.deadline < now {
                out.push(rec);
            }
        }
        Ok(out)
    }

    /// Every block referenced by a manifest chunk, a page at a time (for
    /// fsck): up to `limit` chunks after the cursor `after`, and the
    /// cursor of the next page (None at the end). Manifests of every live
    /// generation count, reachable by name or not, so fsck never calls a
    /// referenced block leaked.
    pub fn manifest_blocks(
        &self,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<nokv_types::BlockRef>, Option<Vec<u8>>)> {
        let prefix = keys::manifest_prefix();
        let limit = limit.max(1);
        let rows = self.inner.engine.scan(&prefix, after, limit + 1)?;
        let more = rows.len() > limit;
        let mut blocks = Vec::new();
        let mut last = None;
        for (key, value) in rows.into_iter().take(limit) {
            let chunk: crate::records::ManifestChunk = decode("manifest", &value)?;
            blocks.extend(chunk.blocks);
            last = Some(key);
        }
        Ok((blocks, if more { last } else { None }))
    }

    /// Watch events with `seq >= from` about `prefix` (or below it): at
    /// most `limit`, looking at no more than 16 × `limit` events, so a
    /// quiet subtree in a busy volume still answers promptly (follow
    /// `next`). A cursor below the retention floor is `WatchCompacted`.
    pub fn watch_page(
        &self,
        from: u64,
        prefix: &NokvPath,
        limit: usize,
    ) -> Result<nokv_types::WatchPage> {
        let limit = limit.clamp(1, 16_384);
        crate::watch::page(
            &self.inner.engine,
            from,
            &prefix.to_string(),
            limit,
            limit * 16,
        )
    }

    /// A receiver that changes after every command group that wrote
    /// something, once it is committed: watch consumers wait on it
    /// instead of polling the log (an idle follower then costs nothing).
    /// Only the latest version is kept; changes in between coalesce.
    pub fn subscribe_commits(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.committer.subscribe()
    }

    /// The `seq` a consumer starting now should resume from (one past the
    /// last event written).
    pub fn watch_head(&self) -> u64 {
        (self.inner.committer.version() + 1) * nokv_types::EVENTS_PER_COMMAND
    }

    /// Up to `limit` entries of the GC queue, oldest first, that no live
    /// snapshot can need (queued at or before the oldest one).
    pub fn gc_queue(&self, limit: usize) -> Result<Vec<gcq::GcEntry>> {
        let mut page = gcq::page(&self.inner.engine, limit, self.gc_floor())?;
        // Reader leases hold back entries queued at or after their `since`.
        if let (_, Some(since)) = crate::leases::live(&self.inner.engine, nokv_types::now_nanos())?
        {
            let held = page.iter().position(|e| e.queued_at >= since);
            if let Some(i) = held {
                page.truncate(i);
            }
        }
        Ok(page)
    }

    /// Up to `limit` entries of the whole GC queue after `after`, the
    /// ones kept for live snapshots included (fsck: every queued block
    /// is owned, not leaked).
    pub fn gc_queue_all(
        &self,
        after: Option<gcq::GcId>,
        limit: usize,
    ) -> Result<Vec<gcq::GcEntry>> {
        gcq::page_after(&self.inner.engine, after, limit, None)
    }

    /// Removes GC queue entries whose blocks have been deleted.
    pub fn gc_done(&self, ids: Vec<gcq::GcId>) -> Result<()> {
        self.commit(move |txn, _| {
            for id in &ids {
                txn.delete(keys::gc(id.commit_version, id.seq))?;
            }
            Ok(())
        })
    }

    /// Debug text about the metadata engine.
    pub fn engine_stats(&self) -> Result<String> {
        Ok(self.inner.engine.stats()?.summary)
    }
}
