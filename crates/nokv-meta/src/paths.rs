//! Path-level operations, each resolved and applied inside ONE command:
//! the path walk reads through the command's view (`Txn` is a
//! `Source`), so resolution and change are linearizable together, and a
//! batch of path ops sees the effects of the ops before it.
//!
//! The SDK, the CLI and the server all come here (through `ops`), so a
//! path operation is one call into the metadata layer wherever it runs.

use nokv_types::{Attr, Body, Error, FileKind, NokvPath, Result, SetAttr};

use crate::command::Txn;
use crate::namespace::create::Owner;
use crate::namespace::list::{DirEntryPlus, DirPage};
use crate::namespace::rename::RenameMode;
use crate::namespace::{self};
use crate::publish::{PublishOutcome, PublishRequest};
use crate::resolve::{resolve, resolve_parent};
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

// ---- command bodies: run inside a Txn ----

/// The root can be neither removed nor moved, nor replaced by a rename
/// (rmdir(2) and rename(2) of a mount point: EBUSY's case).
pub fn root_is_fixed(path: &NokvPath) -> Error {
    Error::InvalidPath {
        path: path.to_string(),
        reason: "the volume root cannot be removed, moved or replaced",
    }
}

pub(crate) fn mkdir_in(
    txn: &mut Txn<'_>,
    path: &NokvPath,
    owner: Owner,
    parents: bool,
) -> Result<Attr> {
    if !parents {
        if path.is_root() {
            // mkdir(2) of an existing directory: EEXIST, as for any name.
            return Err(Error::Exists(path.to_string()));
        }
        let (parent, name) = resolve_parent(txn, path)?;
        return namespace::create::mkdir(txn, parent, &name, owner).map_err(|e| at_path(e, path));
    }
    // mkdir -p in one command: all missing directories appear together.
    let mut cur = NokvPath::root();
    let mut attr = resolve(txn, &cur, true)?;
    for name in path.components() {
        cur = cur.join(name)?;
        attr = match resolve(txn, &cur, true) {
            Ok(a) if a.kind == FileKind::Dir => a,
            Ok(_) => return Err(Error::NotADirectory(cur.to_string())),
            Err(Error::NotFound(_)) => namespace::create::mkdir(txn, attr.ino, name, owner)
                .map_err(|e| at_path(e, &cur))?,
            Err(e) => return Err(e),
        };
    }
    Ok(attr)
}

pub(crate) fn create_in(
    txn: &mut Txn<'_>,
    path: &NokvPath,
    owner: Owner,
    exclusive: bool,
) -> Result<Attr> {
    if path.is_root() {
        // The root exists and is a directory: creat(2)'s EEXIST / EISDIR.
        return Err(if exclusive {
            Error::Exists(path.to_string())
        } else {
            Error::IsADirectory(path.to_string())
        });
    }
    let (parent, name) = resolve_parent(txn, path)?;
    namespace::create::create(txn, parent, &name, owner, exclusive).map_err(|e| at_path(e, path))
}

pub(crate) fn symlink_in(
    txn: &mut Txn<'_>,
    path: &NokvPath,
    target: &[u8],
    owner: Owner,
) -> Result<Attr> {
    if path.is_root() {
        return Err(Error::Exists(path.to_string()));
    }
    let (parent, name) = resolve_parent(txn, path)?;
    namespace::create::symlink(txn, parent, &name, target, owner).map_err(|e| at_path(e, path))
}

pub(crate) fn link_in(txn: &mut Txn<'_>, existing: &NokvPath, new: &NokvPath) -> Result<Attr> {
    if new.is_root() {
        return Err(Error::Exists(new.to_string()));
    }
    let src = resolve(txn, existing, false)?;
    let (parent, name) = resolve_parent(txn, new)?;
    namespace::create::link(txn, src.ino, parent, &name).map_err(|e| at_path(e, new))
}

pub(crate) fn unlink_in(txn: &mut Txn<'_>, path: &NokvPath, block_size: u32) -> Result<()> {
    if path.is_root() {
        return Err(Error::IsADirectory(path.to_string()));
    }
    let (parent, name) = resolve_parent(txn, path)?;
    namespace::remove::unlink(txn, parent, &name, block_size).map_err(|e| at_path(e, path))
}

pub(crate) fn rmdir_in(txn: &mut Txn<'_>, path: &NokvPath) -> Result<()> {
    if path.is_root() {
        return Err(root_is_fixed(path));
    }
    let (parent, name) = resolve_parent(txn, path)?;
    namespace::remove::rmdir(txn, parent, &name).map_err(|e| at_path(e, path))
}

pub(crate) fn rename_in(
    txn: &mut Txn<'_>,
    src: &NokvPath,
    dst: &NokvPath,
    mode: RenameMode,
    block_size: u32,
) -> Result<()> {
    if src.is_root() {
        return Err(root_is_fixed(src));
    }
    if dst.is_root() {
        return Err(root_is_fixed(dst));
    }
    let (src_parent, src_name) = resolve_parent(txn, src)?;
    let (dst_parent, dst_name) = resolve_parent(txn, dst)?;
    namespace::rename::rename(
        txn, src_parent, &src_name, dst_parent, &dst_name, mode, block_size,
    )
    .map_err(|e| match e {
        Error::NotFound(_) => Error::NotFound(src.to_string()),
        Error::IntoOwnSubtree { .. } => Error::IntoOwnSubtree {
            src: src.to_string(),
            dst: dst.to_string(),
        },
        other => at_path(other, dst),
    })
}

/// Where replaced trees wait for `gc` (readers that were inside the old
/// tree when it was swapped out keep seeing it whole until then).
pub const TRASH_DIR: &str = "/.nokv-trash";

/// Swaps the directory `staged` into place at `dst` in one command: an
/// existing `dst` (a directory of any size) moves into `TRASH_DIR`, and
/// `staged` takes its name. Readers see the whole old tree or the whole
/// new one. Returns the trash path of the old tree, if there was one.
pub(crate) fn swap_tree_in(
    txn: &mut Txn<'_>,
    staged: &NokvPath,
    dst: &NokvPath,
    block_size: u32,
) -> Result<Option<String>> {
    let staged_attr = resolve(txn, staged, false)?;
    if staged_attr.kind != FileKind::Dir {
        return Err(Error::NotADirectory(staged.to_string()));
    }
    if dst.starts_with(staged) || staged.starts_with(dst) {
        return Err(Error::IntoOwnSubtree {
            src: staged.to_string(),
            dst: dst.to_string(),
        });
    }
    let (dst_parent, dst_name) = resolve_parent(txn, dst)?;
    let mut trashed = None;
    if let Some(entry) = namespace::load_entry(txn, dst_parent, &dst_name)? {
        if entry.kind() != FileKind::Dir {
            return Err(Error::NotADirectory(dst.to_string()));
        }
        let owner = Owner {
            mode: 0o700,
            uid: 0,
            gid: 0,
        };
        let trash_dir = mkdir_in(txn, &NokvPath::parse(TRASH_DIR)?, owner, true)?;
        let trash_name = format!("{}-{}", txn.version(), namespace::shown(&dst_name));
        namespace::rename::rename(
            txn,
            dst_parent,
            &dst_name,
            trash_dir.ino,
            trash_name.as_bytes(),
            RenameMode::NoReplace,
            block_size,
        )?;
        trashed = Some(format!("{TRASH_DIR}/{trash_name}"));
    }
    rename_in(txn, staged, dst, RenameMode::NoReplace, block_size)?;
    Ok(trashed)
}

pub(crate) fn setattr_in(
    txn: &mut Txn<'_>,
    path: &NokvPath,
    change: &SetAttr,
    block_size: u32,
) -> Result<Attr> {
    let attr = resolve(txn, path, true)?;
    namespace::attr::setattr(txn, attr.ino, change, block_size).map_err(|e| at_path(e, path))
}

pub(crate) fn publish_in(
    txn: &mut Txn<'_>,
    path: &NokvPath,
    body: Body,
    upload: u64,
    if_generation: Option<u64>,
    owner: Owner,
    block_size: u32,
) -> Result<PublishOutcome> {
    if path.is_root() {
        return Err(Error::IsADirectory(path.to_string()));
    }
    let (parent, name) = resolve_parent(txn, path)?;
    let req = PublishRequest {
        parent,
        name,
        body,
        upload,
        if_generation,
        owner,
    };
    crate::publish::publish(txn, req, block_size).map_err(|e| at_path(e, path))
}

// ---- the public, one-call-per-operation API ----

impl Volume {
    /// stat (`follow`) or lstat of a path.
    pub fn stat_path(&self, path: &NokvPath, follow: bool) -> Result<Attr> {
        self.resolve(path, follow)
    }

    /// mkdir, or with `parents` mkdir -p (existing directories are fine,
    /// symlinks to directories are followed; one command either way).
    pub fn mkdir_path(&self, path: &NokvPath, owner: Owner, parents: bool) -> Result<Attr> {
        let p = path.clone();
        self.commit(move |txn, _| mkdir_in(txn, &p, owner, parents))
    }

    pub fn create_path(&self, path: &NokvPath, owner: Owner, exclusive: bool) -> Result<Attr> {
        let p = path.clone();
        self.commit(move |txn, _| create_in(txn, &p, owner, exclusive))
    }

    pub fn symlink_path(&self, path: &NokvPath, target: &[u8], owner: Owner) -> Result<Attr> {
        let (p, target) = (path.clone(), target.to_vec());
        self.commit(move |txn, _| symlink_in(txn, &p, &target, owner))
    }

    pub fn readlink_path(&self, path: &NokvPath) -> Result<Vec<u8>> {
        let attr = self.resolve(path, false)?;
        self.readlink(attr.ino).map_err(|e| at_path(e, path))
    }

    /// Hard link: `new` becomes another name of `existing`.
    pub fn link_path(&self, existing: &NokvPath, new: &NokvPath) -> Result<Attr> {
        let (a, b) = (existing.clone(), new.clone());
        self.commit(move |txn, _| link_in(txn, &a, &b))
    }

    /// Removes a non-directory.
    pub fn unlink_path(&self, path: &NokvPath) -> Result<()> {
        let p = path.clone();
        self.commit(move |txn, bs| unlink_in(txn, &p, bs))
    }

    /// Removes an empty directory.
    pub fn rmdir_path(&self, path: &NokvPath) -> Result<()> {
        let p = path.clone();
        self.commit(move |txn, _| rmdir_in(txn, &p))
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
        let (a, b) = (src.clone(), dst.clone());
        self.commit(move |txn, bs| rename_in(txn, &a, &b, mode, bs))
    }

    pub fn setattr_path(&self, path: &NokvPath, change: SetAttr) -> Result<Attr> {
        let p = path.clone();
        self.commit(move |txn, bs| setattr_in(txn, &p, &change, bs))
    }

    /// Publishes `body` (uploaded under `upload`) as the content of
    /// `path` (see `publish`).
    pub fn publish_path(
        &self,
        path: &NokvPath,
        body: Body,
        upload: u64,
        if_generation: Option<u64>,
        owner: Owner,
    ) -> Result<PublishOutcome> {
        let p = path.clone();
        self.commit(move |txn, bs| publish_in(txn, &p, body, upload, if_generation, owner, bs))
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
