//! The local-file-system peer and OS probes: the ext4 side of each
//! workload uses exactly these std::fs calls (create_new + close,
//! metadata, remove_file, read_dir + per-entry metadata), never fsync,
//! so the kernel page cache absorbs its writes. Also: `du`-style disk
//! usage (apparent bytes vs allocated st_blocks*512), process memory
//! from /proc/self/status, and the scratch file system's type.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// open(O_CREAT|O_EXCL|O_WRONLY) + close, like mdtest's create.
pub fn create_file(path: &Path) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    Ok(())
}

/// stat(2).
pub fn stat_file(path: &Path) -> Result<std::fs::Metadata> {
    std::fs::metadata(path).with_context(|| format!("stat {}", path.display()))
}

pub fn remove_file(path: &Path) -> Result<()> {
    std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
}

pub fn mkdir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))
}

/// readdirplus equivalent: read_dir plus an fstatat of every entry
/// (relative to the directory fd). Returns the number of entries.
pub fn list_plus(dir: &Path) -> Result<usize> {
    let mut n = 0usize;
    let mut sizes = 0u64;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        let md = entry
            .metadata()
            .with_context(|| format!("stat {}", entry.path().display()))?;
        sizes = sizes.wrapping_add(md.len());
        n += 1;
    }
    std::hint::black_box(sizes);
    Ok(n)
}

/// Names (and d_type) only.
pub fn list_names(dir: &Path) -> Result<usize> {
    let mut n = 0usize;
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
        std::hint::black_box(entry.file_name());
        n += 1;
    }
    Ok(n)
}

/// Disk usage of a tree.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    pub files: u64,
    pub dirs: u64,
    /// Sum of st_size of regular files.
    pub apparent: u64,
    /// Sum of st_blocks * 512 of files and directories (like `du`).
    pub allocated: u64,
}

/// Walks `root` (not following symlinks) and sums sizes.
pub fn usage(root: &Path) -> Result<Usage> {
    let mut u = Usage::default();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let md =
            std::fs::symlink_metadata(&dir).with_context(|| format!("stat {}", dir.display()))?;
        u.dirs += 1;
        u.allocated += md.blocks() * 512;
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let ft = entry
                .file_type()
                .with_context(|| format!("type of {}", entry.path().display()))?;
            if ft.is_dir() {
                stack.push(entry.path());
            } else {
                let md = entry
                    .metadata()
                    .with_context(|| format!("stat {}", entry.path().display()))?;
                u.files += 1;
                u.apparent += md.len();
                u.allocated += md.blocks() * 512;
            }
        }
    }
    Ok(u)
}

/// The largest files under `root` with their apparent size.
pub fn largest_files(root: &Path, n: usize) -> Result<Vec<(String, u64)>> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("listing {}", dir.display()))?
        {
            let entry = entry.with_context(|| format!("listing {}", dir.display()))?;
            let md = entry
                .metadata()
                .with_context(|| format!("stat {}", entry.path().display()))?;
            if md.is_dir() {
                stack.push(entry.path());
            } else {
                let rel = entry
                    .path()
                    .strip_prefix(root)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| entry.path().display().to_string());
                all.push((rel, md.len()));
            }
        }
    }
    all.sort_by_key(|e| std::cmp::Reverse(e.1));
    all.truncate(n);
    Ok(all)
}

/// Resident memory of this process (bytes): current and peak.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    pub rss: u64,
    pub hwm: u64,
}

pub fn memory() -> Result<Memory> {
    let text = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let field = |name: &str| -> Result<u64> {
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(name) {
                let kb: u64 = rest
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse()
                    .with_context(|| format!("parsing {name} in /proc/self/status"))?;
                return Ok(kb * 1024);
            }
        }
        bail!("{name} missing from /proc/self/status")
    };
    Ok(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// Name of the file system holding `path` (from statfs f_type).
pub fn fs_type(path: &Path) -> String {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return "?".into();
    };
    // SAFETY: statfs writes into a zeroed struct we own; the path is a
    // valid NUL-terminated string.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return "?".into();
    }
    match st.f_type as i64 {
        0xEF53 => "ext2/3/4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        0x794C_7630 => "overlayfs".into(),
        0x6573_5546 => "fuse".into(),
        other => format!("0x{other:x}"),
    }
}
