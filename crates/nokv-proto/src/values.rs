//! Plain values shared by ops and replies: attributes, owners, block
//! manifests, locations, volume identity.

use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use nokv_meta::{GcId, Owner, VolumeInfo};
use nokv_types::{
    Attr, BlockRef, Body, Digest, Error, EventKind, FileKind, ObjectLocation, Result, SetAttr,
    WatchEvent,
};

use crate::{missing, pb};

pub(crate) fn digest(bytes: Vec<u8>, what: &str) -> Result<Digest> {
    let len = bytes.len();
    bytes.try_into().map_err(|_| {
        Error::InvalidArgument(format!("malformed message: {what} has {len} bytes, not 32"))
    })
}

pub(crate) fn path_bytes(p: PathBuf) -> Vec<u8> {
    p.into_os_string().into_vec()
}

pub(crate) fn bytes_path(b: Vec<u8>) -> PathBuf {
    PathBuf::from(OsString::from_vec(b))
}

pub(crate) fn need<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| missing(what))
}

pub(crate) fn kind_to(k: FileKind) -> pb::FileKind {
    match k {
        FileKind::File => pb::FileKind::File,
        FileKind::Dir => pb::FileKind::Dir,
        FileKind::Symlink => pb::FileKind::Symlink,
    }
}

pub(crate) fn kind_from(k: i32) -> Result<FileKind> {
    match pb::FileKind::try_from(k) {
        Ok(pb::FileKind::File) => Ok(FileKind::File),
        Ok(pb::FileKind::Dir) => Ok(FileKind::Dir),
        Ok(pb::FileKind::Symlink) => Ok(FileKind::Symlink),
        _ => Err(Error::InvalidArgument(format!(
            "malformed message: file kind {k} is unknown"
        ))),
    }
}

pub(crate) fn attr_to(a: Attr) -> pb::Attr {
    pb::Attr {
        ino: a.ino,
        kind: kind_to(a.kind) as i32,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        nlink: a.nlink,
        generation: a.generation,
        digest: a.digest.map(|d| d.to_vec()),
    }
}

pub(crate) fn attr_from(a: Option<pb::Attr>) -> Result<Attr> {
    let a = need(a, "attr")?;
    Ok(Attr {
        ino: a.ino,
        kind: kind_from(a.kind)?,
        mode: a.mode,
        uid: a.uid,
        gid: a.gid,
        size: a.size,
        atime: a.atime,
        mtime: a.mtime,
        ctime: a.ctime,
        nlink: a.nlink,
        generation: a.generation,
        digest: a.digest.map(|d| digest(d, "attr digest")).transpose()?,
    })
}

pub(crate) fn setattr_to(s: SetAttr) -> pb::SetAttr {
    pb::SetAttr {
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: s.atime,
        mtime: s.mtime,
    }
}

pub(crate) fn setattr_from(s: Option<pb::SetAttr>) -> Result<SetAttr> {
    let s = need(s, "attribute change")?;
    Ok(SetAttr {
        mode: s.mode,
        uid: s.uid,
        gid: s.gid,
        size: s.size,
        atime: s.atime,
        mtime: s.mtime,
    })
}

pub(crate) fn owner_to(o: Owner) -> pb::Owner {
    pb::Owner {
        mode: o.mode,
        uid: o.uid,
        gid: o.gid,
    }
}

pub(crate) fn owner_from(o: Option<pb::Owner>) -> Result<Owner> {
    let o = need(o, "owner")?;
    Ok(Owner {
        mode: o.mode,
        uid: o.uid,
        gid: o.gid,
    })
}

pub(crate) fn block_to(b: BlockRef) -> pb::BlockRef {
    pb::BlockRef {
        upload: b.upload,
        index: b.index,
        len: b.len,
        checksum: b.checksum.to_vec(),
    }
}

pub(crate) fn block_from(b: pb::BlockRef) -> Result<BlockRef> {
    Ok(BlockRef {
        upload: b.upload,
        index: b.index,
        len: b.len,
        checksum: digest(b.checksum, "block checksum")?,
    })
}

pub(crate) fn blocks_from(bs: Vec<pb::BlockRef>) -> Result<Vec<BlockRef>> {
    bs.into_iter().map(block_from).collect()
}

pub(crate) fn body_to(b: Body) -> pb::Body {
    pb::Body {
        size: b.size,
        block_size: b.block_size,
        digest: b.digest.to_vec(),
        blocks: b.blocks.into_iter().map(block_to).collect(),
    }
}

pub(crate) fn body_from(b: Option<pb::Body>) -> Result<Body> {
    let b = need(b, "body")?;
    Ok(Body {
        size: b.size,
        block_size: b.block_size,
        digest: digest(b.digest, "body digest")?,
        blocks: blocks_from(b.blocks)?,
    })
}

pub(crate) fn gc_id_to(id: GcId) -> pb::GcId {
    pb::GcId {
        commit_version: id.commit_version,
        seq: id.seq,
    }
}

pub(crate) fn gc_id_from(id: Option<pb::GcId>) -> Result<GcId> {
    let id = need(id, "gc id")?;
    Ok(GcId {
        commit_version: id.commit_version,
        seq: id.seq,
    })
}

fn location_to(l: ObjectLocation) -> pb::ObjectLocation {
    use pb::object_location::Kind;
    let kind = match l {
        ObjectLocation::Local { root } => Kind::Local(pb::LocalLocation {
            root: path_bytes(root),
        }),
        ObjectLocation::S3(s3) => Kind::S3(pb::S3Location {
            bucket: s3.bucket,
            endpoint: s3.endpoint,
            region: s3.region,
            prefix: s3.prefix,
        }),
        ObjectLocation::Memory => Kind::Memory(pb::MemoryLocation {}),
    };
    pb::ObjectLocation { kind: Some(kind) }
}

fn location_from(l: Option<pb::ObjectLocation>) -> Result<ObjectLocation> {
    use pb::object_location::Kind;
    Ok(
        match need(need(l, "object location")?.kind, "object location")? {
            Kind::Local(l) => ObjectLocation::Local {
                root: bytes_path(l.root),
            },
            Kind::S3(s3) => ObjectLocation::S3(nokv_types::S3Location {
                bucket: s3.bucket,
                endpoint: s3.endpoint,
                region: s3.region,
                prefix: s3.prefix,
            }),
            Kind::Memory(_) => ObjectLocation::Memory,
        },
    )
}

pub(crate) fn info_to(i: VolumeInfo) -> pb::VolumeInfo {
    pb::VolumeInfo {
        home: i.home.as_os_str().as_bytes().to_vec(),
        volume_id: i.volume_id,
        format_version: i.format_version,
        root_ino: i.root_ino,
        location: Some(location_to(i.location)),
        block_size: i.block_size,
        commit_version: i.commit_version,
        created: i.created,
        reader_leases: i.reader_leases,
        reader_leases_since: i.reader_leases_since,
    }
}

pub(crate) fn info_from(i: pb::VolumeInfo) -> Result<VolumeInfo> {
    Ok(VolumeInfo {
        home: bytes_path(i.home),
        volume_id: i.volume_id,
        format_version: i.format_version,
        root_ino: i.root_ino,
        location: location_from(i.location)?,
        block_size: i.block_size,
        commit_version: i.commit_version,
        created: i.created,
        reader_leases: i.reader_leases,
        reader_leases_since: i.reader_leases_since,
    })
}

pub(crate) fn event_kind_to(k: EventKind) -> pb::EventKind {
    match k {
        EventKind::Created => pb::EventKind::Created,
        EventKind::Published => pb::EventKind::Published,
        EventKind::Replaced => pb::EventKind::Replaced,
        EventKind::Removed => pb::EventKind::Removed,
        EventKind::Renamed => pb::EventKind::Renamed,
        EventKind::AttrChanged => pb::EventKind::AttrChanged,
        EventKind::SnapshotCreated => pb::EventKind::SnapshotCreated,
        EventKind::SnapshotRetired => pb::EventKind::SnapshotRetired,
    }
}

pub(crate) fn event_kind_from(k: i32) -> Result<EventKind> {
    Ok(match pb::EventKind::try_from(k) {
        Ok(pb::EventKind::Created) => EventKind::Created,
        Ok(pb::EventKind::Published) => EventKind::Published,
        Ok(pb::EventKind::Replaced) => EventKind::Replaced,
        Ok(pb::EventKind::Removed) => EventKind::Removed,
        Ok(pb::EventKind::Renamed) => EventKind::Renamed,
        Ok(pb::EventKind::AttrChanged) => EventKind::AttrChanged,
        Ok(pb::EventKind::SnapshotCreated) => EventKind::SnapshotCreated,
        Ok(pb::EventKind::SnapshotRetired) => EventKind::SnapshotRetired,
        _ => return Err(Error::InvalidArgument(format!("unknown event kind {k}"))),
    })
}

pub(crate) fn event_to(e: WatchEvent) -> pb::WatchEvent {
    pb::WatchEvent {
        seq: e.seq,
        commit_version: e.commit_version,
        kind: event_kind_to(e.kind) as i32,
        path: e.path,
        old_path: e.old_path,
        ino: e.ino,
        file_kind: kind_to(e.file_kind) as i32,
        generation: e.generation,
        size: e.size,
        digest: e.digest.map(|d| d.to_vec()),
        time: e.time,
        snapshot: e.snapshot,
        parent: e.parent,
        old_parent: e.old_parent,
    }
}

pub(crate) fn event_from(e: pb::WatchEvent) -> Result<WatchEvent> {
    Ok(WatchEvent {
        seq: e.seq,
        commit_version: e.commit_version,
        kind: event_kind_from(e.kind)?,
        path: e.path,
        old_path: e.old_path,
        ino: e.ino,
        file_kind: kind_from(e.file_kind)?,
        generation: e.generation,
        size: e.size,
        digest: e.digest.map(|d| digest(d, "event digest")).transpose()?,
        time: e.time,
        snapshot: e.snapshot,
        parent: e.parent,
        old_parent: e.old_parent,
    })
}

pub(crate) fn snapshot_to(s: nokv_meta::SnapshotInfo) -> pb::SnapshotInfo {
    pb::SnapshotInfo {
        name: s.name,
        path: s.path,
        root: s.root,
        kind: kind_to(s.kind) as i32,
        version: s.version,
        ino_mark: s.ino_mark,
        created: s.created,
    }
}

pub(crate) fn snapshot_from(s: pb::SnapshotInfo) -> Result<nokv_meta::SnapshotInfo> {
    Ok(nokv_meta::SnapshotInfo {
        name: s.name,
        path: s.path,
        root: s.root,
        kind: kind_from(s.kind)?,
        version: s.version,
        ino_mark: s.ino_mark,
        created: s.created,
    })
}
