//! Atomic directory publish (`put -r`): a whole local directory of
//! checkpoint shards becomes visible at once.
//!
//! 1. every file is published into a hidden staging tree
//!    (`STAGING_DIR/<random>`), which readers of the destination never see;
//! 2. one command (`SwapTree`) moves an existing destination tree of any
//!    size to the trash and the staged tree into its place;
//! 3. `gc` removes trash trees after a grace period (a reader that was
//!    walking the old tree keeps seeing it whole until then; their blocks
//!    go to the GC queue) and staging trees of crashed uploads after the
//!    staging TTL.

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use nokv_meta::{MetaOp, MetaReply};
use nokv_types::{Error, FileKind, Result};
use serde::Serialize;

use crate::client::{expect_reply, Client};
use crate::put::PutOptions;

/// Where `put -r` stages trees before swapping them into place.
pub const STAGING_DIR: &str = "/.nokv-staging";

/// What a tree publish did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PutTreeOutcome {
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    /// Where the replaced tree waits for `gc`, if one was replaced.
    pub replaced_tree: Option<String>,
}

enum Item {
    Dir(String),
    File(PathBuf, String),
    Symlink(String, String),
}

/// Everything under `root`, parents before children, names sorted.
fn walk(root: &Path) -> Result<Vec<Item>> {
    let mut items = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| Error::Io(format!("reading {}: {e}", dir.display())))?
            .collect::<std::io::Result<_>>()
            .map_err(|e| Error::Io(format!("reading {}: {e}", dir.display())))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let name = entry.file_name().into_string().map_err(|n| {
                Error::InvalidArgument(format!("{}: name {n:?} is not UTF-8", dir.display()))
            })?;
            let child = format!("{rel}/{name}");
            let file_type = entry
                .file_type()
                .map_err(|e| Error::Io(format!("{}: {e}", entry.path().display())))?;
            if file_type.is_dir() {
                items.push(Item::Dir(child.clone()));
                subdirs.push((entry.path(), child));
            } else if file_type.is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| Error::Io(format!("{}: {e}", entry.path().display())))?;
                let target = target.into_os_string().into_string().map_err(|t| {
                    Error::InvalidArgument(format!("symlink target {t:?} is not UTF-8"))
                })?;
                items.push(Item::Symlink(child, target));
            } else if file_type.is_file() {
                items.push(Item::File(entry.path(), child));
            } else {
                return Err(Error::InvalidArgument(format!(
                    "{}: only files, directories and symlinks can be published",
                    entry.path().display()
                )));
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(items)
}

impl Client {
    /// Publishes the local directory `local` as `dst`, atomically: readers
    /// see the complete old tree or the complete new one.
    pub async fn put_tree(&self, local: &Path, dst: &str) -> Result<PutTreeOutcome> {
        let meta =
            std::fs::metadata(local).map_err(|e| Error::Io(format!("{}: {e}", local.display())))?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory(local.display().to_string()));
        }
        let path = nokv_types::NokvPath::parse(dst)?;
        // Refused before anything is uploaded, not after (the swap
        // checks again, atomically).
        if path.is_root() {
            return Err(nokv_meta::root_is_fixed(&path));
        }
        if let Some(parent) = path.parent() {
            let a = self.stat(&parent.to_string()).await?;
            if a.kind != FileKind::Dir {
                return Err(Error::NotADirectory(parent.to_string()));
            }
        }
        match self.stat(dst).await {
            Ok(a) if a.kind != FileKind::Dir => return Err(Error::NotADirectory(dst.into())),
            Ok(_) | Err(Error::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let items = walk(local)?;
        let staged = format!(
            "{STAGING_DIR}/{:016x}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0)
                ^ u64::from(std::process::id()) << 40
        );
        self.mkdir_all(&staged, 0o755).await?;
        let result = self.fill_staged(&staged, items).await;
        let mut outcome = match result {
            Ok(o) => o,
            Err(e) => {
                let _ = self.remove_all(&staged).await;
                return Err(e);
            }
        };
        let reply = self
            .call(MetaOp::SwapTree {
                staged: staged.clone(),
                dst: dst.to_string(),
            })
            .await;
        let old = match reply {
            Ok(r) => expect_reply!(r, "swap_tree", MetaReply::Target(t) => t)?,
            Err(e) => {
                let _ = self.remove_all(&staged).await;
                return Err(e);
            }
        };
        let old = String::from_utf8_lossy(&old).into_owned();
        outcome.replaced_tree = (!old.is_empty()).then_some(old);
        Ok(outcome)
    }

    async fn fill_staged(&self, staged: &str, items: Vec<Item>) -> Result<PutTreeOutcome> {
        let mut outcome = PutTreeOutcome::default();
        let mut files = Vec::new();
        for item in items {
            match item {
                Item::Dir(rel) => {
                    self.mkdir(&format!("{staged}{rel}"), 0o755).await?;
                    outcome.dirs += 1;
                }
                Item::Symlink(rel, target) => {
                    self.symlink(&target, &format!("{staged}{rel}")).await?;
                    outcome.symlinks += 1;
                }
                Item::File(local, rel) => files.push((local, format!("{staged}{rel}"))),
            }
        }
        // Directories exist now; files upload a few at a time, their
        // uploads begun in batches.
        self.begin_uploads_ahead();
        let sizes = self.put_files(files).await;
        self.release_uploads_ahead().await;
        let sizes = sizes?;
        outcome.files = sizes.len() as u64;
        outcome.bytes = sizes.iter().sum();
        Ok(outcome)
    }

    async fn put_files(&self, files: Vec<(std::path::PathBuf, String)>) -> Result<Vec<u64>> {
        futures::stream::iter(files)
            .map(|(local, path)| async move {
                let f = tokio::fs::File::open(&local)
                    .await
                    .map_err(|e| Error::Io(format!("{}: {e}", local.display())))?;
                let out = self.put(&path, f, PutOptions::default()).await?;
                Ok::<u64, Error>(out.attr.size)
            })
            .buffer_unordered(4)
            .try_collect()
            .await
    }
}
