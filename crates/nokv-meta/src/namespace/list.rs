//! Directory listing: one prefix scan of `E ‖ dir`, paged by name.
//!
//! The cursor of a page is the last name it returned; the next page
//! starts strictly after it, so a listing resumed after concurrent
//! changes never returns a name twice and never skips a name that
//! existed throughout.

use nokv_types::{Attr, FileKind, Result};
use serde::{Deserialize, Serialize};

use super::{entry_inode, require_dir, EntrySource};
use crate::records::{decode, EntryRecord};

/// One entry of a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub kind: FileKind,
}

impl DirEntry {
    /// The name for display (lossy for non-UTF-8 names).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// One entry of a listing with its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirEntryPlus {
    pub name: Vec<u8>,
    pub attr: Attr,
}

impl DirEntryPlus {
    /// The name for display (lossy for non-UTF-8 names).
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }
}

/// A page of a listing; `next` resumes after its last entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DirPage<T> {
    pub entries: Vec<T>,
    /// Cursor for the next page; `None` when the listing is complete.
    pub next: Option<Vec<u8>>,
}

/// Decoded `(name, entry)` rows of one page, and the cursor after it.
type RawPage = (Vec<(Vec<u8>, EntryRecord)>, Option<Vec<u8>>);

fn scan_page(
    src: &dyn EntrySource,
    dir: u64,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<RawPage> {
    require_dir(src.as_source(), dir)?;
    let page = src.entries(dir, after, limit)?;
    let mut out = Vec::with_capacity(page.rows.len());
    for (name, value) in page.rows {
        out.push((name, decode::<EntryRecord>("entry", &value)?));
    }
    Ok((out, page.next))
}

pub(crate) fn readdir(
    src: &dyn EntrySource,
    dir: u64,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<DirPage<DirEntry>> {
    let (rows, next) = scan_page(src, dir, after, limit)?;
    let entries = rows
        .into_iter()
        .map(|(name, e)| DirEntry {
            ino: e.ino(),
            kind: e.kind(),
            name,
        })
        .collect();
    Ok(DirPage { entries, next })
}

pub(crate) fn readdirplus(
    src: &dyn EntrySource,
    dir: u64,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<DirPage<DirEntryPlus>> {
    let (rows, next) = scan_page(src, dir, after, limit)?;
    let mut entries = Vec::with_capacity(rows.len());
    for (name, e) in rows {
        // Inline entries carry their attributes; only hard-linked names
        // cost one more read.
        let (ino, data, _) = entry_inode(src.as_source(), dir, &name, e)?;
        entries.push(DirEntryPlus {
            attr: data.to_attr(ino),
            name,
        });
    }
    Ok(DirPage { entries, next })
}
