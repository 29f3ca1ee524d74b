//! Path-level operations: resolve, then run the inode-level command.
//! The SDK, the CLI and (later) the server call these, so a path
//! operation is one call into the metadata layer wherever it runs.
//!
//! Resolution of the parent happens before the command; the command
//! itself re-checks that the parent is still a directory, so a
//! concurrent change can make an operation fail, never corrupt.

use nokv_types::{Attr, Error, FileKind, NokvPath, Result, SetAttr};

use crate::namespace::create::Owner;
use crate::namespace::list::{DirEntryPlus, DirPage};
use crate::namespace::rename::RenameMode;
use crate::volume::Volume;

/// Rewrites the subject of a semantic error to the full path the user
/// gave, so messages name what the user typed.
pub fn at_path(err: Error, path: &NokvPath) -> Error {
    let p = path.to_string();
    match err {
        Error::NotFound(_) => Error::NotFound(p),
        Error::Exists(_) => Error::Exists(p),
        Error::NotADirectory(_) => Error::NotADirectory(p),
        Error::IsADirectory(_) => Error::IsADirectory(p),
        Error::NotEmpty(_) => Error::NotEmpty(p),
        Error::NotASymlink(_) => Error::NotASymlink(p),
        Error::GenerationMismatch {
            expected, actual, ..
        } => Error::GenerationMismatch {
            path: p,
            expected,
            actual,
        },
        Error::IntoOwnSubtree { dst, .. } => Error::IntoOwnSubtree { src: p, dst },
        other => other,
    }
}

impl Volume {
    /// stat (`follow`) or lstat of a path.
    pub fn stat_path(&self, path: &NokvPath, follow: bool) -> Result<Attr> {
        self.resolve(path, follow)
    }

    /// mkdir, or with `parents` mkdir -p (existing directories are fine,
    /// symlinks to directories are followed).
    pub fn mkdir_path(&self, path: &NokvPath, owner: Owner, parents: bool) -> Result<Attr> {
        if !parents {
            let (parent, name) = self.resolve_parent(path)?;
            return self
                .mkdir(parent, &name, owner)
                .map_err(|e| at_path(e, path));
        }
        let mut cur = NokvPath::root();
        let mut attr = self.resolve(&cur, true)?;
        for name in path.components() {
            cur = cur.join(name)?;
            attr = match self.resolve(&cur, true) {
                Ok(a) if a.kind == FileKind::Dir => a,
                Ok(_) => return Err(Error::NotADirectory(cur.to_string())),
                Err(Error::NotFound(_)) => match self.mkdir(attr.ino, name, owner) {
                    Ok(a) => a,
                    // Lost a race with another mkdir: theirs is as good.
                    Err(Error::Exists(_)) => self.resolve(&cur, true)?,
                    Err(e) => return Err(at_path(e, &cur)),
                },
                Err(e) => return Err(e),
            };
            if attr.kind != FileKind::Dir {
                return Err(Error::NotADirectory(cur.to_string()));
            }
        }
        Ok(attr)
    }

    pub fn create_path(&self, path: &NokvPath, owner: Owner, exclusive: bool) -> Result<Attr> {
        let (parent, name) = self.resolve_parent(path)?;
        self.create(parent, &name, owner, exclusive)
            .map_err(|e| at_path(e, path))
    }

    pub fn symlink_path(&self, path: &NokvPath, target: &[u8], owner: Owner) -> Result<Attr> {
        let (parent, name) = self.resolve_parent(path)?;
        self.symlink(parent, &name, target, owner)
            .map_err(|e| at_path(e, path))
    }

    pub fn readlink_path(&self, path: &NokvPath) -> Result<Vec<u8>> {
        let attr = self.resolve(path, false)?;
        self.readlink(attr.ino).map_err(|e| at_path(e, path))
    }

    /// Hard link: `new` becomes another name of `existing`.
    pub fn link_path(&self, existing: &NokvPath, new: &NokvPath) -> Result<Attr> {
        let src = self.resolve(existing, false)?;
        let (parent, name) = self.resolve_parent(new)?;
        self.link(src.ino, parent, &name)
            .map_err(|e| at_path(e, new))
    }

    /// Removes a non-directory.
    pub fn unlink_path(&self, path: &NokvPath) -> Result<()> {
        let (parent, name) = self.resolve_parent(path)?;
        self.unlink(parent, &name).map_err(|e| at_path(e, path))
    }

    /// Removes an empty directory.
    pub fn rmdir_path(&self, path: &NokvPath) -> Result<()> {
        let (parent, name) = self.resolve_parent(path)?;
        self.rmdir(parent, &name).map_err(|e| at_path(e, path))
    }

    /// Removes `path` and everything below it, depth first, one command
    /// per name (not atomic: an interrupted removal leaves a smaller
    /// tree, never a broken one). Returns the number of names removed.
    pub fn remove_tree(&self, path: &NokvPath) -> Result<u64> {
        let attr = self.resolve(path, false)?;
        if attr.kind != FileKind::Dir {
            self.unlink_path(path)?;
            return Ok(1);
        }
        let mut removed = 0;
        loop {
            let page = self.readdir(attr.ino, None, 1024)?;
            if page.entries.is_empty() {
                break;
            }
            for entry in page.entries {
                let child = path.join(&entry.name)?;
                if entry.kind == FileKind::Dir {
                    removed += self.remove_tree(&child)?;
                } else {
                    match self.unlink(attr.ino, &entry.name) {
                        Ok(()) | Err(Error::NotFound(_)) => removed += 1,
                        Err(e) => return Err(at_path(e, &child)),
                    }
                }
            }
        }
        self.rmdir_path(path)?;
        Ok(removed + 1)
    }

    /// rename(2) on paths: `dst` is the exact new name (like `mv -T`).
    pub fn rename_path(&self, src: &NokvPath, dst: &NokvPath, mode: RenameMode) -> Result<()> {
        let (src_parent, src_name) = self.resolve_parent(src)?;
        let (dst_parent, dst_name) = self.resolve_parent(dst)?;
        self.rename(src_parent, &src_name, dst_parent, &dst_name, mode)
            .map_err(|e| match e {
                Error::NotFound(_) => Error::NotFound(src.to_string()),
                Error::IntoOwnSubtree { .. } => Error::IntoOwnSubtree {
                    src: src.to_string(),
                    dst: dst.to_string(),
                },
                other => at_path(other, dst),
            })
    }

    pub fn setattr_path(&self, path: &NokvPath, change: SetAttr) -> Result<Attr> {
        let attr = self.resolve(path, true)?;
        self.setattr(attr.ino, change).map_err(|e| at_path(e, path))
    }

    /// One page of a directory listing with attributes.
    pub fn list_path(
        &self,
        path: &NokvPath,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<DirPage<DirEntryPlus>> {
        let attr = self.resolve(path, true)?;
        if attr.kind != FileKind::Dir {
            return Err(Error::NotADirectory(path.to_string()));
        }
        self.readdirplus(attr.ino, after, limit)
    }
}
