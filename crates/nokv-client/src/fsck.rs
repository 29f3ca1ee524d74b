//! fsck: metadata checked against the object store.
//!
//! Every block a manifest references must exist with its recorded size;
//! every object under the volume's `blocks/` prefix must be referenced
//! by a manifest, belong to a staged upload (in flight or awaiting GC),
//! or be on the GC queue. Anything else is leaked, and
//! `delete_leaked` removes exactly those objects, nothing else.
//!
//! Invariant for `delete_leaked` while other clients keep writing: the
//! object listing is taken FIRST, then the staging records, then the
//! manifests, then the GC queue. A listed object was uploaded after its
//! upload's staging record committed, so at the later reads it is still
//! staged, or published (in a manifest), or was replaced or removed by a
//! command that queued it for GC before the queue is read. Nothing in
//! use is ever called leaked.

use std::collections::{BTreeMap, HashSet};

use nokv_meta::{MetaOp, MetaReply};
use nokv_types::Result;
use serde::Serialize;

use crate::client::{expect_reply, Client};

/// What fsck found (and deleted).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FsckReport {
    /// Distinct blocks referenced by manifests.
    pub referenced_blocks: u64,
    /// Objects found under `blocks/`.
    pub stored_objects: u64,
    /// Referenced blocks with no object.
    pub missing: Vec<String>,
    /// Referenced blocks whose object has another size: (key, expected, found).
    pub wrong_size: Vec<(String, u64, u64)>,
    /// Objects nothing references.
    pub leaked: Vec<String>,
    /// Leaked objects deleted (with `delete_leaked`).
    pub deleted: Vec<String>,
    /// Objects of uploads still staged (not leaked: publish or GC owns them).
    pub staged_objects: u64,
    /// Objects on the GC queue (not leaked: the next `gc` deletes them).
    pub queued_objects: u64,
}

impl FsckReport {
    /// True when every referenced block is intact and nothing leaked
    /// (or every leaked object was deleted).
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty()
            && self.wrong_size.is_empty()
            && self.leaked.len() == self.deleted.len()
    }
}

/// Upload id of a block key `blocks/<spread>/<upload:016x>/<index:08x>`.
fn upload_of(key: &str) -> Option<u64> {
    let mut parts = key.split('/');
    if parts.next()? != "blocks" {
        return None;
    }
    let _spread = parts.next()?;
    u64::from_str_radix(parts.next()?, 16).ok()
}

impl Client {
    /// Checks metadata against the object store; with `delete_leaked`,
    /// deletes the objects nothing references.
    pub async fn fsck(&self, delete_leaked: bool) -> Result<FsckReport> {
        let mut report = FsckReport::default();
        let store = self.store();
        let objects: BTreeMap<String, u64> =
            store.list_keys("blocks/").await?.into_iter().collect();
        report.stored_objects = objects.len() as u64;

        let reply = self
            .call(MetaOp::ExpiredUploads {
                now: i64::MAX,
                limit: u32::MAX,
            })
            .await?;
        let staged = expect_reply!(reply, "expired_uploads", MetaReply::Staged(s) => s)?;
        let staged: HashSet<u64> = staged.iter().map(|r| r.upload).collect();

        let mut referenced: BTreeMap<String, u64> = BTreeMap::new();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let reply = self
                .call(MetaOp::ManifestBlocks {
                    after: after.take(),
                    limit: 4096,
                })
                .await?;
            let (blocks, next) = expect_reply!(
                reply,
                "manifest_blocks",
                MetaReply::Blocks { blocks, next } => (blocks, next)
            )?;
            for b in blocks {
                referenced.insert(b.object_key(), b.len as u64);
            }
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        report.referenced_blocks = referenced.len() as u64;

        // The whole queue, page by page: blocks kept for live snapshots
        // are queued (owned), not leaked.
        let mut queued: HashSet<String> = HashSet::new();
        let mut after = None;
        loop {
            let reply = self
                .call(MetaOp::GcQueueAll {
                    after,
                    limit: nokv_meta::MAX_PAGE,
                })
                .await?;
            let page = expect_reply!(reply, "gc_queue_all", MetaReply::Gc(g) => g)?;
            let Some(last) = page.last() else {
                break;
            };
            after = Some(last.id);
            queued.extend(
                page.iter()
                    .flat_map(|e| e.blocks.iter().map(|b| b.object_key())),
            );
        }

        for (key, len) in &referenced {
            match objects.get(key) {
                None => report.missing.push(key.clone()),
                Some(found) if found != len => report.wrong_size.push((key.clone(), *len, *found)),
                Some(_) => {}
            }
        }
        for key in objects.keys() {
            if referenced.contains_key(key) {
                continue;
            }
            if queued.contains(key) {
                report.queued_objects += 1;
            } else if upload_of(key).is_some_and(|u| staged.contains(&u)) {
                report.staged_objects += 1;
            } else {
                report.leaked.push(key.clone());
            }
        }
        if delete_leaked {
            for key in &report.leaked {
                store.delete(key).await?;
                report.deleted.push(key.clone());
            }
        }
        Ok(report)
    }
}
