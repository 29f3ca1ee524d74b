//! Path resolution for the SDK and CLI: names from the root, following
//! symlinks met on the way (and at the end when asked).
//!
//! Symlink targets are resolved inside the volume: an absolute target
//! starts from the volume root, a relative one from the link's
//! directory, and `..` never climbs above the root. More than
//! `MAX_SYMLINK_HOPS` expansions is an error (ELOOP), not a hang.

use std::collections::VecDeque;

use nokv_types::{Attr, Error, FileKind, NokvPath, Result, ROOT_INO};

use crate::namespace::{entry_inode, load_entry, require_inode, shown, Source};

/// Symlink expansions allowed in one resolution (Linux uses 40).
pub const MAX_SYMLINK_HOPS: usize = 40;

/// Resolves `path` to an inode. With `follow_last`, a symlink at the end
/// is followed too (stat vs lstat).
pub(crate) fn resolve(src: &dyn Source, path: &NokvPath, follow_last: bool) -> Result<Attr> {
    resolve_in(src, ROOT_INO, path, follow_last)
}

/// Resolves `path` with `root` as its `/` (a snapshot's pinned inode):
/// `..` and absolute symlink targets never leave `root`.
pub(crate) fn resolve_in(
    src: &dyn Source,
    root_ino: u64,
    path: &NokvPath,
    follow_last: bool,
) -> Result<Attr> {
    let mut todo: VecDeque<Vec<u8>> = path.components().iter().cloned().collect();
    // Inodes of the directories walked so far; `..` pops one.
    let mut stack: Vec<u64> = vec![root_ino];
    let mut hops = 0usize;
    let (root, _) = require_inode(src, root_ino)?;
    let mut current = root.to_attr(root_ino);
    let mut walked = String::new();

    while let Some(name) = todo.pop_front() {
        if name == b"." || name.is_empty() {
            continue;
        }
        if name == b".." {
            if stack.len() > 1 {
                stack.pop();
            }
            let dir = *stack.last().unwrap_or(&root_ino);
            let (data, _) = require_inode(src, dir)?;
            current = data.to_attr(dir);
            continue;
        }
        let dir = *stack.last().unwrap_or(&root_ino);
        walked.push('/');
        walked.push_str(&shown(&name));
        if current.kind != FileKind::Dir {
            return Err(Error::NotADirectory(walked.clone()));
        }
        let entry = load_entry(src, dir, &name)?.ok_or_else(|| Error::NotFound(walked.clone()))?;
        let (ino, data, _) = entry_inode(src, dir, &name, entry)?;
        let is_last = todo.is_empty();
        if data.kind == FileKind::Symlink && (!is_last || follow_last) {
            hops += 1;
            if hops > MAX_SYMLINK_HOPS {
                return Err(Error::InvalidPath {
                    path: walked,
                    reason: "too many levels of symbolic links",
                });
            }
            let target = data.target.clone().unwrap_or_default();
            if target.first() == Some(&b'/') {
                stack.truncate(1);
                let (root, _) = require_inode(src, root_ino)?;
                current = root.to_attr(root_ino);
            }
            for part in target.split(|b| *b == b'/').rev() {
                todo.push_front(part.to_vec());
            }
            continue;
        }
        current = data.to_attr(ino);
        if data.kind == FileKind::Dir {
            stack.push(ino);
        }
    }
    Ok(current)
}

/// The directory a new name at `path` goes into, and the name.
pub(crate) fn resolve_parent(src: &dyn Source, path: &NokvPath) -> Result<(u64, Vec<u8>)> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::InvalidPath {
            path: path.to_string(),
            reason: "the volume root has no parent",
        });
    };
    let dir = resolve(src, &parent, true)?;
    if dir.kind != FileKind::Dir {
        return Err(Error::NotADirectory(parent.to_string()));
    }
    Ok((dir.ino, name.to_vec()))
}
