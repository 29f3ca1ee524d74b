//! Mounting: checks the mountpoint and the machine first (clear errors
//! instead of a kernel errno), runs the FUSE session on its own thread,
//! and on SIGTERM/SIGINT (or a shutdown future) publishes every dirty
//! handle before it unmounts.
//!
//! Invariants:
//! - nothing is mounted unless every check passed;
//! - on a signal, dirty handles are published *before* the unmount, so
//!   an orderly stop never loses written bytes; the session's own
//!   release handlers publish anything written after that;
//! - an unmount that finds the mount busy (files still open) detaches
//!   it lazily and waits a bounded time for the session to end.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nokv_client::{Client, Error, Result};

use crate::core::{FsCore, FsOptions};
use crate::fuse::NokvFs;

/// How to mount.
#[derive(Debug, Clone)]
pub struct MountOptions {
    pub mountpoint: PathBuf,
    pub read_only: bool,
    /// How long the kernel caches attributes and entries.
    pub ttl: Duration,
    /// Follow the watch log and invalidate kernel caches (for volumes
    /// other clients change: `--server` mounts).
    pub invalidate: bool,
    pub fs: FsOptions,
    /// Kernel request reader threads.
    pub threads: usize,
    /// File system name shown in `mount` / `df`.
    pub fsname: String,
}

/// Checks that `path` can be mounted on, with messages that say what to
/// do: missing, not a directory, a stale FUSE mount, already mounted.
pub fn check_mountpoint(path: &Path) -> Result<PathBuf> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(Error::NotADirectory(format!(
                "mountpoint {} is not a directory",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::NotFound(format!(
                "mountpoint {} does not exist (create it with mkdir first)",
                path.display()
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => {
            return Err(Error::Busy(format!(
                "mountpoint {} is a dead FUSE mount (its process exited); \
                 run `fusermount3 -u {}` first",
                path.display(),
                path.display()
            )))
        }
        Err(e) => return Err(Error::Io(format!("mountpoint {}: {e}", path.display()))),
    }
    let canonical = path
        .canonicalize()
        .map_err(|e| Error::Io(format!("mountpoint {}: {e}", path.display())))?;
    if is_mount_point(&canonical)? {
        return Err(Error::Busy(format!(
            "mountpoint {} is busy: something is already mounted there",
            canonical.display()
        )));
    }
    Ok(canonical)
}

/// True when `path` (canonical) is listed in /proc/self/mountinfo.
fn is_mount_point(path: &Path) -> Result<bool> {
    let text = match std::fs::read_to_string("/proc/self/mountinfo") {
        Ok(t) => t,
        Err(_) => return Ok(false),
    };
    let want = path.to_string_lossy();
    Ok(text.lines().any(|line| {
        line.split(' ')
            .nth(4)
            .map(unescape_mountinfo)
            .is_some_and(|p| p == want)
    }))
}

fn unescape_mountinfo(field: &str) -> String {
    // Spaces, tabs, newlines and backslashes are octal escapes there.
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = std::str::from_utf8(&bytes[i + 1..i + 4]).ok();
            if let Some(v) = oct.and_then(|o| u8::from_str_radix(o, 8).ok()) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks that this machine can mount FUSE at all.
pub fn check_fuse_available() -> Result<()> {
    if !Path::new("/dev/fuse").exists() {
        return Err(Error::Io(
            "FUSE is not available on this machine: /dev/fuse is missing \
             (load the fuse kernel module, or give the container /dev/fuse)"
                .into(),
        ));
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root && find_in_path("fusermount3").is_none() && find_in_path("fusermount").is_none() {
        return Err(Error::Io(
            "FUSE is not usable: fusermount3 is not installed \
             (install the fuse3 package, or mount as root)"
                .into(),
        ));
    }
    Ok(())
}

fn find_in_path(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Mounts `client`'s volume and serves it until the mount goes away
/// (`fusermount3 -u`, `umount`) or `shutdown` resolves (the CLI passes
/// SIGTERM/SIGINT). Returns after the unmount, with every handle's
/// writes published (or the number that could not be).
/// `on_mounted` runs once the mount is live.
pub async fn serve<F>(
    client: Client,
    opts: MountOptions,
    shutdown: F,
    on_mounted: impl FnOnce(),
) -> Result<MountReport>
where
    F: std::future::Future<Output = ()>,
{
    check_fuse_available()?;
    let mountpoint = check_mountpoint(&opts.mountpoint)?;
    let mut fs_opts = opts.fs.clone();
    fs_opts.read_only |= opts.read_only;
    // Local answers for absent names need the watch follower that keeps
    // them current; an embedded mount's lookups are cheap anyway.
    fs_opts.dir_cache &= opts.invalidate;
    let read_only = fs_opts.read_only || fs_opts.snapshot.is_some();
    let snapshot_mount = fs_opts.snapshot.is_some();
    let core = Arc::new(FsCore::start(client.clone(), fs_opts).await?);
    if !read_only {
        // Many small files closed in a row begin their uploads in
        // batches; what is left unused is given back below.
        client.begin_uploads_ahead();
    }
    let fs = NokvFs::new(core.clone(), tokio::runtime::Handle::current(), opts.ttl);

    let mut config = fuser::Config::default();
    config.mount_options = vec![
        fuser::MountOption::FSName(opts.fsname.clone()),
        fuser::MountOption::Subtype("nokv".into()),
        fuser::MountOption::DefaultPermissions,
        fuser::MountOption::NoAtime,
        if read_only {
            fuser::MountOption::RO
        } else {
            fuser::MountOption::RW
        },
    ];
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        config.acl = fuser::SessionACL::All;
    }
    config.n_threads = Some(opts.threads.max(1));
    config.clone_fd = opts.threads > 1;

    let mp = mountpoint.clone();
    let session = tokio::task::spawn_blocking(move || fuser::Session::new(fs, &mp, &config))
        .await
        .map_err(|e| Error::Io(format!("mount task: {e}")))?
        .map_err(|e| mount_error(&mountpoint, e))?;
    let mut session = session;
    let notifier = session.notifier();
    let mut unmounter = session.unmount_callable();
    let (done_tx, mut done_rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("nokv-fuse-session".into())
        .spawn(move || {
            let _ = done_tx.send(session.run());
        })
        .map_err(|e| Error::Io(format!("starting the FUSE session: {e}")))?;
    tracing::info!("mounted at {}", mountpoint.display());
    on_mounted();

    // A snapshot never changes: nothing to invalidate. An embedded
    // mount follows the watch log only for its reader lease.
    let leases = core.reader_leases();
    let invalidator = if snapshot_mount {
        None
    } else if opts.invalidate {
        Some(tokio::spawn(crate::invalidate::follow(
            client.clone(),
            notifier,
            core.watch_caches(),
        )))
    } else if leases.is_some() {
        Some(tokio::spawn(crate::invalidate::follow(
            client.clone(),
            crate::invalidate::NoInvalidation,
            core.watch_caches(),
        )))
    } else {
        None
    };
    let lease_keeper = leases.clone().map(|l| tokio::spawn(l.keep(client.clone())));

    let signalled = tokio::select! {
        _ = shutdown => true,
        ended = &mut done_rx => {
            if let Ok(Err(e)) = ended {
                tracing::warn!("FUSE session ended: {e}");
            }
            false
        }
    };
    let mut failed = 0;
    if signalled {
        tracing::info!("stopping: publishing open files, then unmounting");
        failed += core.flush_all().await;
        if let Err(e) = unmounter.unmount() {
            tracing::warn!("unmount: {e}; detaching lazily");
            detach(&mountpoint);
        }
        if tokio::time::timeout(Duration::from_secs(3), &mut done_rx)
            .await
            .is_err()
        {
            tracing::warn!("files are still open on the detached mount; exiting anyway");
        }
    }
    if let Some(task) = invalidator {
        task.abort();
    }
    if let (Some(task), Some(l)) = (lease_keeper, &leases) {
        task.abort();
        l.release(&client).await;
    }
    if let (Some(names), Some(attrs)) = (core.dir_cache(), core.dir_attrs()) {
        tracing::info!(
            absent_names = names.stats().absent_answers,
            dir_attrs = attrs.hits(),
            "requests answered without the server"
        );
    }
    // Handles the kernel never released (a lazily detached mount).
    failed += core.flush_all().await;
    client.release_uploads_ahead().await;
    Ok(MountReport {
        signalled,
        unpublished: failed,
    })
}

/// How a mount ended.
#[derive(Debug, Clone, Copy)]
pub struct MountReport {
    /// Stopped by the shutdown future (a signal) rather than an unmount.
    pub signalled: bool,
    /// Handles whose writes could not be published.
    pub unpublished: usize,
}

fn detach(mountpoint: &Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(c) = std::ffi::CString::new(mountpoint.as_os_str().as_bytes()) {
        // SAFETY: `c` is a valid NUL-terminated path for the call.
        let rc = unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        if rc == 0 {
            return;
        }
    }
    let _ = std::process::Command::new("fusermount3")
        .args(["-u", "-z", "--"])
        .arg(mountpoint)
        .status();
}

fn mount_error(mountpoint: &Path, e: std::io::Error) -> Error {
    let shown = mountpoint.display();
    match e.raw_os_error() {
        Some(libc::EBUSY) => Error::Busy(format!("mountpoint {shown} is busy")),
        Some(libc::ENOENT) => Error::NotFound(format!("mountpoint {shown} does not exist")),
        Some(libc::EPERM) | Some(libc::EACCES) => Error::Io(format!(
            "not allowed to mount on {shown}: {e} (is fusermount3 installed and setuid?)"
        )),
        _ if e.kind() == std::io::ErrorKind::NotFound => Error::Io(format!(
            "mounting {shown}: {e} (is fusermount3 installed? apt-get install fuse3)"
        )),
        _ => Error::Io(format!("mounting {shown}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape_mountinfo("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }

    #[test]
    fn missing_and_non_directory_mountpoints_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = check_mountpoint(&missing).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = check_mountpoint(&file).unwrap_err().to_string();
        assert!(e.contains("not a directory"), "{e}");
        assert!(check_mountpoint(dir.path()).is_ok());
        // The root of the machine is a mount point: busy.
        let e = check_mountpoint(Path::new("/")).unwrap_err().to_string();
        assert!(e.contains("busy"), "{e}");
    }
}
