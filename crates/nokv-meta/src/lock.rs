//! The volume lock: one process at a time opens a volume for writing.
//!
//! A second open fails at once with a message naming the holder
//! (its pid and command line, written into the lock file), instead of
//! waiting. The lock is an `flock(2)` on `<home>/LOCK`, so it is released
//! by the kernel when the holder exits, however it exits. The holder
//! may replace its description (the metadata server writes its URL, so
//! an embedded open names the server to use instead).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use nokv_types::{Error, Result};

const LOCK_FILE: &str = "LOCK";

/// Holds the volume lock until dropped.
#[derive(Debug)]
pub(crate) struct VolumeLock {
    file: File,
}

fn holder_description() -> String {
    let cmdline = std::fs::read("/proc/self/cmdline")
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!("pid {} ({})", std::process::id(), cmdline)
}

impl VolumeLock {
    pub fn acquire(home: &Path) -> Result<VolumeLock> {
        let path = home.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::WouldBlock {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(Error::Busy(format!(
                    "{} is open in another process: {}",
                    home.display(),
                    if holder.is_empty() {
                        "unknown holder"
                    } else {
                        holder
                    }
                )));
            }
            return Err(err.into());
        }
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        file.write_all(holder_description().as_bytes())?;
        Ok(VolumeLock { file })
    }

    /// Replaces the holder description a second opener sees.
    pub fn describe(&self, text: &str) -> Result<()> {
        let text = format!("{text} [{}]", holder_description());
        self.file.set_len(0)?;
        self.file.write_all_at(text.as_bytes(), 0)?;
        Ok(())
    }
}
