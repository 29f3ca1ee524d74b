//! The FUSE adapter: kernel requests in, `FsCore` calls, replies out.
//! Nothing here decides semantics; it converts arguments and results.
//!
//! Invariants:
//! - every request is answered exactly once: each handler moves its
//!   reply into a task on the runtime, which answers with the core's
//!   result or its error (flush and release of a handle with nothing to
//!   publish, opendir/releasedir, a name the absent-name cache rules
//!   out, a directory's attributes the attribute cache knows, and an
//!   embedded mount's lookup and getattr, which wait on no I/O, answer
//!   on the FUSE thread);
//! - errors become errno in one place ([`errno`]);
//! - attributes and entries are cached by the kernel for `ttl`; changes
//!   by other clients (a `--server` mount) are also pushed out of the
//!   kernel's caches by the watch invalidator (`invalidate.rs`).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyOpen, ReplyStatfs,
    ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use nokv_client::{Attr, Error, FileKind, Owner, SetAttr};
use tokio::runtime::Handle;

use crate::core::{FsCore, OpenIntent};

/// The errno a NoKV error becomes (the one mapping, for every op).
pub fn errno(e: &Error) -> Errno {
    Errno::from_i32(e.errno())
}

fn time(nanos: i64) -> SystemTime {
    if nanos >= 0 {
        UNIX_EPOCH + Duration::from_nanos(nanos as u64)
    } else {
        UNIX_EPOCH - Duration::from_nanos(nanos.unsigned_abs())
    }
}

fn nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => nokv_types::duration_nanos(d),
        Err(e) => -nokv_types::duration_nanos(e.duration()),
    }
}

fn time_or_now(t: TimeOrNow) -> i64 {
    match t {
        TimeOrNow::SpecificTime(t) => nanos(t),
        TimeOrNow::Now => nokv_types::now_nanos(),
    }
}

fn kind(k: FileKind) -> FileType {
    match k {
        FileKind::File => FileType::RegularFile,
        FileKind::Dir => FileType::Directory,
        FileKind::Symlink => FileType::Symlink,
    }
}

/// The kernel's view of an inode's attributes.
pub fn file_attr(a: &Attr, block_size: u32) -> FileAttr {
    FileAttr {
        ino: INodeNo(a.ino),
        size: a.size,
        blocks: a.size.div_ceil(512),
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: kind(a.kind),
        perm: (a.mode & 0o7777) as u16,
        nlink: a.nlink.max(1),
        uid: a.uid,
        gid: a.gid,
        rdev: 0,
        blksize: block_size.min(1 << 20),
        flags: 0,
    }
}

fn owner(req: &Request, mode: u32, umask: u32) -> Owner {
    Owner {
        mode: mode & !umask & 0o7777,
        uid: req.uid(),
        gid: req.gid(),
    }
}

fn intent(flags: OpenFlags) -> OpenIntent {
    OpenIntent {
        write: !matches!(flags.acc_mode(), OpenAccMode::O_RDONLY),
        append: flags.0 & libc::O_APPEND != 0,
        truncate: flags.0 & libc::O_TRUNC != 0,
    }
}

/// The adapter: a core, the runtime its calls run on, and cache TTLs.
pub struct NokvFs {
    core: Arc<FsCore>,
    rt: Handle,
    ttl: Duration,
    block_size: u32,
}

impl NokvFs {
    pub fn new(core: Arc<FsCore>, rt: Handle, ttl: Duration) -> NokvFs {
        let block_size = core.block_size();
        NokvFs {
            core,
            rt,
            ttl,
            block_size,
        }
    }

    fn spawn<F>(&self, f: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f);
    }
}

/// A reply-sending context that can move into a task.
#[derive(Clone)]
struct Ctx {
    core: Arc<FsCore>,
    ttl: Duration,
    block_size: u32,
}

impl Ctx {
    fn attr(&self, a: &Attr) -> FileAttr {
        file_attr(a, self.block_size)
    }

    fn entry(&self, reply: ReplyEntry, result: nokv_client::Result<Attr>) {
        match result {
            Ok(a) => reply.entry(&self.ttl, &self.attr(&a), Generation(0)),
            Err(e) => reply.error(errno(&e)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, result: nokv_client::Result<()>) {
        match result {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(&e)),
        }
    }
}

impl NokvFs {
    fn ctx(&self) -> Ctx {
        Ctx {
            core: self.core.clone(),
            ttl: self.ttl,
            block_size: self.block_size,
        }
    }
}

fn name(n: &OsStr) -> Vec<u8> {
    n.as_bytes().to_vec()
}

impl Filesystem for NokvFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        let wanted = InitFlags::FUSE_ATOMIC_O_TRUNC
            | InitFlags::FUSE_DO_READDIRPLUS
            | InitFlags::FUSE_READDIRPLUS_AUTO
            | InitFlags::FUSE_PARALLEL_DIROPS
            | InitFlags::FUSE_MAX_PAGES
            | InitFlags::FUSE_CACHE_SYMLINKS;
        let supported = config.capabilities() & wanted;
        if let Err(unsupported) = config.add_capabilities(supported) {
            tracing::debug!("kernel refused FUSE capabilities {unsupported:?}");
        }
        // Large writes and reads mean fewer round trips per byte.
        let _ = config.set_max_write(1 << 20);
        let _ = config.set_max_readahead(1 << 20);
        let _ = config.set_max_background(64);
        Ok(())
    }

    fn lookup(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEntry) {
        // A name the absent-name cache rules out has nothing to wait for:
        // answered on this thread (the LOOKUP before every create).
        if self.core.known_absent(parent.0, n.as_bytes()) {
            reply.error(Errno::ENOENT);
            return;
        }
        let (ctx, n) = (self.ctx(), name(n));
        if self.core.lookups_are_local() {
            // An embedded lookup is microseconds of CPU: cheaper here than
            // a hop to the runtime and back.
            let r = self.rt.block_on(ctx.core.lookup(parent.0, &n));
            return ctx.entry(reply, r);
        }
        self.spawn(async move {
            let r = ctx.core.lookup(parent.0, &n).await;
            ctx.entry(reply, r)
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        let ctx = self.ctx();
        // A directory whose attributes the mount knows (the GETATTR after
        // every create in it): answered on this thread.
        if let Some(a) = self.core.known_attr(ino.0) {
            return reply.attr(&ctx.ttl, &ctx.attr(&a));
        }
        if self.core.lookups_are_local() {
            match self.rt.block_on(ctx.core.getattr(ino.0)) {
                Ok(a) => reply.attr(&ctx.ttl, &ctx.attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
            return;
        }
        self.spawn(async move {
            match ctx.core.getattr(ino.0).await {
                Ok(a) => reply.attr(&ctx.ttl, &ctx.attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ctx = self.ctx();
        let change = SetAttr {
            mode: mode.map(|m| m & 0o7777),
            uid,
            gid,
            size,
            atime: atime.map(time_or_now),
            mtime: mtime.map(time_or_now),
        };
        self.spawn(async move {
            match ctx.core.setattr(ino.0, fh.map(|f| f.0), change).await {
                Ok(a) => reply.attr(&ctx.ttl, &ctx.attr(&a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        let ctx = self.ctx();
        self.spawn(async move {
            match ctx.core.readlink(ino.0).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            // Devices, FIFOs and sockets are not stored.
            reply.error(Errno::EPERM);
            return;
        }
        let (ctx, n, owner) = (self.ctx(), name(n), owner(req, mode, umask));
        self.spawn(async move {
            let r = ctx.core.mknod_file(parent.0, &n, owner).await;
            ctx.entry(reply, r)
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (ctx, n, owner) = (self.ctx(), name(n), owner(req, mode, umask));
        self.spawn(async move {
            let r = ctx.core.mkdir(parent.0, &n, owner).await;
            ctx.entry(reply, r)
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (ctx, n) = (self.ctx(), name(n));
        self.spawn(async move {
            let r = ctx.core.unlink(parent.0, &n).await;
            ctx.empty(reply, r)
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, n: &OsStr, reply: ReplyEmpty) {
        let (ctx, n) = (self.ctx(), name(n));
        self.spawn(async move {
            let r = ctx.core.rmdir(parent.0, &n).await;
            ctx.empty(reply, r)
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let ctx = self.ctx();
        let n = name(link_name);
        let target = target.as_os_str().as_bytes().to_vec();
        let owner = owner(req, 0o777, 0);
        self.spawn(async move {
            let r = ctx.core.symlink(parent.0, &n, &target, owner).await;
            ctx.entry(reply, r)
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        n: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if flags.contains(RenameFlags::RENAME_EXCHANGE)
            || flags.contains(RenameFlags::RENAME_WHITEOUT)
        {
            reply.error(Errno::EINVAL);
            return;
        }
        let no_replace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        let (ctx, n, nn) = (self.ctx(), name(n), name(newname));
        self.spawn(async move {
            let r = ctx
                .core
                .rename(parent.0, &n, newparent.0, &nn, no_replace)
                .await;
            ctx.empty(reply, r)
        });
    }

    fn link(
        &self,
        _req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let (ctx, nn) = (self.ctx(), name(newname));
        self.spawn(async move {
            let r = ctx.core.link(ino.0, newparent.0, &nn).await;
            ctx.entry(reply, r)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let ctx = self.ctx();
        self.spawn(async move {
            match ctx.core.open(ino.0, intent(flags)).await {
                Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let ctx = self.ctx();
        self.spawn(async move {
            match ctx.core.read(fh.0, offset, size).await {
                Ok(b) => reply.data(&b),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let ctx = self.ctx();
        let data = data.to_vec();
        self.spawn(async move {
            match ctx.core.write(fh.0, offset, &data).await {
                Ok(n) => reply.written(n),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        if self.core.is_clean(fh.0) {
            // Nothing to publish: answer on this thread.
            reply.ok();
            return;
        }
        let ctx = self.ctx();
        self.spawn(async move {
            let r = ctx.core.close(fh.0).await;
            ctx.empty(reply, r)
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        if self.core.release_if_clean(fh.0) {
            reply.ok();
            return;
        }
        if self.core.closes_in_background() {
            self.core.clone().release_in_background(fh.0, &self.rt);
            reply.ok();
            return;
        }
        let ctx = self.ctx();
        self.spawn(async move {
            let r = ctx.core.release(fh.0).await;
            if let Err(e) = &r {
                tracing::error!("closing file handle {}: {e}", fh.0);
            }
            ctx.empty(reply, r)
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        let ctx = self.ctx();
        self.spawn(async move {
            let r = ctx.core.flush(fh.0).await;
            ctx.empty(reply, r)
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let fh = self.core.opendir(ino.0);
        reply.opened(FileHandle(fh), FopenFlags::empty());
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let ctx = self.ctx();
        self.spawn(async move {
            let entries = match ctx.core.readdir(fh.0).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            // Offsets: 1 = ".", 2 = "..", 2 + i + 1 = entries[i].
            let mut next = offset;
            if next == 0 {
                if reply.add(ino, 1, FileType::Directory, ".") {
                    return reply.ok();
                }
                next = 1;
            }
            if next == 1 {
                if reply.add(ino, 2, FileType::Directory, "..") {
                    return reply.ok();
                }
                next = 2;
            }
            let skip = usize::try_from(next - 2).unwrap_or(usize::MAX);
            for (i, e) in entries.iter().enumerate().skip(skip) {
                let off = 3 + i as u64;
                if reply.add(
                    INodeNo(e.attr.ino),
                    off,
                    kind(e.attr.kind),
                    OsStr::from_bytes(&e.name),
                ) {
                    break;
                }
            }
            reply.ok()
        });
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ctx = self.ctx();
        self.spawn(async move {
            let entries = match ctx.core.readdir(fh.0).await {
                Ok(e) => e,
                Err(e) => return reply.error(errno(&e)),
            };
            let mut next = offset;
            if next < 2 {
                // "." and ".." carry no attributes the kernel uses.
                let dot = match ctx.core.getattr(ino.0).await {
                    Ok(a) => ctx.attr(&a),
                    Err(e) => return reply.error(errno(&e)),
                };
                if next == 0 && reply.add(ino, 1, ".", &ctx.ttl, &dot, Generation(0)) {
                    return reply.ok();
                }
                if reply.add(ino, 2, "..", &ctx.ttl, &dot, Generation(0)) {
                    return reply.ok();
                }
                next = 2;
            }
            let skip = usize::try_from(next - 2).unwrap_or(usize::MAX);
            for (i, e) in entries.iter().enumerate().skip(skip) {
                let off = 3 + i as u64;
                let attr = ctx.attr(&e.attr);
                if reply.add(
                    INodeNo(e.attr.ino),
                    off,
                    OsStr::from_bytes(&e.name),
                    &ctx.ttl,
                    &attr,
                    Generation(0),
                ) {
                    break;
                }
            }
            reply.ok()
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.core.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Every namespace change is already committed when it returns;
        // with --async-close, closed files may still be publishing.
        if !self.core.closes_in_background() {
            return reply.ok();
        }
        let ctx = self.ctx();
        self.spawn(async move {
            ctx.core.wait_closed_published().await;
            reply.ok()
        });
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        // Object stores have no fixed capacity: report a large one so
        // tools that check free space proceed.
        const BLOCKS: u64 = 1 << 40; // of 4 KiB: 4 EiB
        const FILES: u64 = 1 << 40;
        reply.statfs(BLOCKS, BLOCKS, BLOCKS, FILES, FILES, 4096, 255, 4096);
    }

    // Extended attributes are not stored. ENOSYS (rather than fuser's
    // default, which is the same answer plus a warning in the log) makes
    // the kernel stop asking for the rest of the mount.
    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.error(Errno::ENOSYS);
    }

    fn setxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _value: &[u8],
        _flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn removexattr(&self, _req: &Request, _ino: INodeNo, _name: &OsStr, reply: ReplyEmpty) {
        reply.error(Errno::ENOSYS);
    }

    /// No ioctl applies to a NoKV file. The kernel forwards every one,
    /// and it is asked often: each `isatty` (Python's `open` does one per
    /// file) is a TCGETS. Answered on this thread, without a log line.
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        reply.error(Errno::ENOTTY);
    }

    // Not offered, answered ENOSYS like fuser's defaults but without
    // their warning: the kernel then stops asking for the mount's life
    // and falls back (fallocate: glibc writes zeros; copy_file_range:
    // read and write; lseek SEEK_DATA/SEEK_HOLE: the whole file is data;
    // poll: always ready).
    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn copy_file_range(
        &self,
        _req: &Request,
        _ino_in: INodeNo,
        _fh_in: FileHandle,
        _offset_in: u64,
        _ino_out: INodeNo,
        _fh_out: FileHandle,
        _offset_out: u64,
        _len: u64,
        _flags: fuser::CopyFileRangeFlags,
        reply: ReplyWrite,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn lseek(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: i64,
        _whence: i32,
        reply: fuser::ReplyLseek,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _ph: fuser::PollNotifier,
        _events: fuser::PollEvents,
        _flags: fuser::PollFlags,
        reply: fuser::ReplyPoll,
    ) {
        reply.error(Errno::ENOSYS);
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        // Permission checks are the kernel's (default_permissions).
        reply.ok();
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        n: &OsStr,
        mode: u32,
        umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let (ctx, n, owner) = (self.ctx(), name(n), owner(req, mode, umask));
        let exclusive = flags & libc::O_EXCL != 0;
        let intent = intent(OpenFlags(flags));
        self.spawn(async move {
            match ctx
                .core
                .create(parent.0, &n, owner, exclusive, intent)
                .await
            {
                Ok((a, fh)) => reply.created(
                    &ctx.ttl,
                    &ctx.attr(&a),
                    Generation(0),
                    FileHandle(fh),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }
}
