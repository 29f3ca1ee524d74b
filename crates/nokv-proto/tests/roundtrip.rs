//! Every op, reply and error survives encode -> protobuf bytes ->
//! decode unchanged; malformed messages decode to InvalidArgument.

use nokv_meta::{
    DirEntryPlus, DirPage, GcEntry, GcId, MetaOp, MetaReply, Owner, PublishOutcome, StagingRecord,
    VolumeInfo,
};
use nokv_proto::*;
use nokv_types::{Attr, BlockRef, Body, Error, FileKind, ObjectLocation, S3Location, SetAttr};
use proptest::prelude::*;
use prost::Message;

fn owner() -> impl Strategy<Value = Owner> {
    (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(mode, uid, gid)| Owner { mode, uid, gid })
}

fn block() -> impl Strategy<Value = BlockRef> {
    (any::<u64>(), any::<u32>(), any::<u32>(), any::<[u8; 32]>()).prop_map(
        |(upload, index, len, checksum)| BlockRef {
            upload,
            index,
            len,
            checksum,
        },
    )
}

fn body() -> impl Strategy<Value = Body> {
    (
        any::<u64>(),
        any::<u32>(),
        any::<[u8; 32]>(),
        prop::collection::vec(block(), 0..4),
    )
        .prop_map(|(size, block_size, digest, blocks)| Body {
            size,
            block_size,
            digest,
            blocks,
        })
}

fn attr() -> impl Strategy<Value = Attr> {
    (
        (
            any::<u64>(),
            0..3u8,
            any::<u32>(),
            any::<u32>(),
            any::<u32>(),
        ),
        (any::<u64>(), any::<i64>(), any::<i64>(), any::<i64>()),
        (any::<u32>(), any::<u64>(), any::<Option<[u8; 32]>>()),
    )
        .prop_map(
            |(
                (ino, k, mode, uid, gid),
                (size, atime, mtime, ctime),
                (nlink, generation, digest),
            )| {
                Attr {
                    ino,
                    kind: [FileKind::File, FileKind::Dir, FileKind::Symlink][k as usize],
                    mode,
                    uid,
                    gid,
                    size,
                    atime,
                    mtime,
                    ctime,
                    nlink,
                    generation,
                    digest,
                }
            },
        )
}

fn path() -> impl Strategy<Value = String> {
    "(/[a-z\u{e9}\u{4e2d}]{0,4}){0,3}"
}

fn op() -> impl Strategy<Value = MetaOp> {
    prop_oneof![
        Just(MetaOp::Info),
        (path(), any::<bool>()).prop_map(|(path, follow)| MetaOp::Stat { path, follow }),
        (path(), any::<Option<Vec<u8>>>(), any::<u32>())
            .prop_map(|(path, after, limit)| MetaOp::List { path, after, limit }),
        (path(), owner(), any::<bool>()).prop_map(|(path, owner, parents)| MetaOp::Mkdir {
            path,
            owner,
            parents
        }),
        (path(), owner(), any::<bool>()).prop_map(|(path, owner, exclusive)| MetaOp::Create {
            path,
            owner,
            exclusive
        }),
        (path(), any::<Vec<u8>>(), owner()).prop_map(|(path, target, owner)| MetaOp::Symlink {
            path,
            target,
            owner
        }),
        path().prop_map(|path| MetaOp::Readlink { path }),
        (path(), path()).prop_map(|(existing, new)| MetaOp::Link { existing, new }),
        path().prop_map(|path| MetaOp::Unlink { path }),
        path().prop_map(|path| MetaOp::Rmdir { path }),
        path().prop_map(|path| MetaOp::RemoveTree { path }),
        (path(), path(), any::<bool>()).prop_map(|(src, dst, replace)| MetaOp::Rename {
            src,
            dst,
            replace
        }),
        (
            path(),
            any::<(Option<u32>, Option<u32>, Option<u32>)>(),
            any::<(Option<u64>, Option<i64>, Option<i64>)>()
        )
            .prop_map(|(path, (mode, uid, gid), (size, atime, mtime))| {
                MetaOp::SetAttr {
                    path,
                    change: SetAttr {
                        mode,
                        uid,
                        gid,
                        size,
                        atime,
                        mtime,
                    },
                }
            }),
        path().prop_map(|path| MetaOp::Body { path }),
        any::<i64>().prop_map(|deadline| MetaOp::BeginUpload { deadline }),
        any::<u64>().prop_map(|upload| MetaOp::FinishUpload { upload }),
        (path(), body(), any::<u64>(), any::<Option<u64>>(), owner()).prop_map(
            |(path, body, upload, if_generation, owner)| MetaOp::Publish {
                path,
                body,
                upload,
                if_generation,
                owner
            }
        ),
        (any::<i64>(), any::<u32>()).prop_map(|(now, limit)| MetaOp::ExpiredUploads { now, limit }),
        any::<u32>().prop_map(|limit| MetaOp::GcQueue { limit }),
        (any::<Option<Vec<u8>>>(), any::<u32>())
            .prop_map(|(after, limit)| MetaOp::ManifestBlocks { after, limit }),
        (any::<u64>(), path(), any::<u32>()).prop_map(|(from, prefix, limit)| MetaOp::Watch {
            from,
            prefix,
            limit
        }),
        any::<u64>().prop_map(|keep_versions| MetaOp::TrimWatch { keep_versions }),
        (path(), path()).prop_map(|(staged, dst)| MetaOp::SwapTree { staged, dst }),
        (any::<u64>(), any::<Option<Vec<u8>>>(), any::<u32>())
            .prop_map(|(dir, after, limit)| MetaOp::ListIno { dir, after, limit }),
        any::<u64>().prop_map(|ino| MetaOp::BodyIno { ino }),
        prop::collection::vec(any::<(u64, u32)>(), 0..4).prop_map(|ids| MetaOp::GcDone {
            ids: ids
                .into_iter()
                .map(|(commit_version, seq)| GcId {
                    commit_version,
                    seq
                })
                .collect()
        }),
        Just(MetaOp::Checkpoint),
        (path(), path()).prop_map(|(path, name)| MetaOp::SnapshotCreate { path, name }),
        path().prop_map(|name| MetaOp::SnapshotRetire { name }),
        Just(MetaOp::SnapshotList),
        (path(), path(), any::<bool>()).prop_map(|(snapshot, path, follow)| MetaOp::AtSnapshot {
            snapshot,
            op: Box::new(MetaOp::Stat { path, follow })
        }),
        (any::<Option<Vec<u8>>>(), any::<u32>())
            .prop_map(|(after, limit)| MetaOp::PruneHistory { after, limit }),
        (any::<Option<(u64, u32)>>(), any::<u32>()).prop_map(|(after, limit)| MetaOp::GcQueueAll {
            after: after.map(|(commit_version, seq)| GcId {
                commit_version,
                seq
            }),
            limit
        }),
    ]
}

fn snapshot_info() -> impl Strategy<Value = nokv_meta::SnapshotInfo> {
    (path(), path(), any::<(u64, bool, u64, u64, i64)>()).prop_map(|(name, path, n)| {
        nokv_meta::SnapshotInfo {
            name,
            path,
            root: n.0,
            kind: if n.1 { FileKind::Dir } else { FileKind::File },
            version: n.2,
            ino_mark: n.3,
            created: n.4,
        }
    })
}

fn reply() -> impl Strategy<Value = MetaReply> {
    let location = prop_oneof![
        Just(ObjectLocation::Memory),
        path().prop_map(|p| ObjectLocation::Local { root: p.into() }),
        (path(), any::<Option<String>>(), path(), path()).prop_map(
            |(bucket, endpoint, region, prefix)| ObjectLocation::S3(S3Location {
                bucket,
                endpoint,
                region,
                prefix
            })
        ),
    ];
    prop_oneof![
        (
            location,
            path(),
            any::<(u32, u64, u32, u64, i64)>(),
            any::<(u64, Option<i64>)>()
        )
            .prop_map(|(location, id, n, leases)| {
                MetaReply::Info(VolumeInfo {
                    home: "/srv/vol".into(),
                    volume_id: id,
                    format_version: n.0,
                    root_ino: n.1,
                    location,
                    block_size: n.2,
                    commit_version: n.3,
                    created: n.4,
                    reader_leases: leases.0,
                    reader_leases_since: leases.1,
                })
            }),
        attr().prop_map(MetaReply::Attr),
        (
            prop::collection::vec((any::<Vec<u8>>(), attr()), 0..3),
            any::<Option<Vec<u8>>>()
        )
            .prop_map(|(entries, next)| MetaReply::Page(DirPage {
                entries: entries
                    .into_iter()
                    .map(|(name, attr)| DirEntryPlus { name, attr })
                    .collect(),
                next
            })),
        any::<Vec<u8>>().prop_map(MetaReply::Target),
        Just(MetaReply::Done),
        any::<u64>().prop_map(MetaReply::Count),
        (attr(), body()).prop_map(|(attr, body)| MetaReply::Body { attr, body }),
        any::<u64>().prop_map(MetaReply::Upload),
        (attr(), prop::option::of(body()), 0..1000usize).prop_map(|(attr, replaced, n)| {
            MetaReply::Published(PublishOutcome {
                attr,
                replaced,
                reused_blocks: n,
            })
        }),
        prop::collection::vec(any::<(u64, i64, i64)>(), 0..3).prop_map(|v| MetaReply::Staged(
            v.into_iter()
                .map(|(upload, created, deadline)| StagingRecord {
                    upload,
                    created,
                    deadline
                })
                .collect()
        )),
        prop::collection::vec(
            (
                any::<(u64, u32)>(),
                prop::collection::vec(block(), 0..3),
                any::<i64>()
            ),
            0..3
        )
        .prop_map(|v| MetaReply::Gc(
            v.into_iter()
                .map(|((commit_version, seq), blocks, queued_at)| GcEntry {
                    id: GcId {
                        commit_version,
                        seq
                    },
                    blocks,
                    queued_at
                })
                .collect()
        )),
        (
            prop::collection::vec(block(), 0..4),
            any::<Option<Vec<u8>>>()
        )
            .prop_map(|(blocks, next)| MetaReply::Blocks { blocks, next }),
        snapshot_info().prop_map(MetaReply::Snapshot),
        prop::collection::vec(snapshot_info(), 0..3).prop_map(MetaReply::Snapshots),
        (any::<u64>(), any::<Option<Vec<u8>>>())
            .prop_map(|(deleted, next)| MetaReply::Pruned { deleted, next }),
    ]
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..8)
}

/// The inode-level ops of the FUSE mount.
fn inode_op() -> impl Strategy<Value = MetaOp> {
    prop_oneof![
        (any::<u64>(), name()).prop_map(|(parent, name)| MetaOp::Lookup { parent, name }),
        any::<u64>().prop_map(|ino| MetaOp::GetAttr { ino }),
        (any::<u64>(), name(), owner()).prop_map(|(parent, name, owner)| MetaOp::MkdirAt {
            parent,
            name,
            owner
        }),
        (any::<u64>(), name(), owner(), any::<bool>()).prop_map(
            |(parent, name, owner, exclusive)| MetaOp::CreateAt {
                parent,
                name,
                owner,
                exclusive
            }
        ),
        (any::<u64>(), name(), any::<Vec<u8>>(), owner()).prop_map(
            |(parent, name, target, owner)| MetaOp::SymlinkAt {
                parent,
                name,
                target,
                owner
            }
        ),
        (any::<u64>(), any::<u64>(), name()).prop_map(|(ino, new_parent, new_name)| {
            MetaOp::LinkAt {
                ino,
                new_parent,
                new_name,
            }
        }),
        (any::<u64>(), name()).prop_map(|(parent, name)| MetaOp::UnlinkAt { parent, name }),
        (any::<u64>(), name()).prop_map(|(parent, name)| MetaOp::RmdirAt { parent, name }),
        (any::<u64>(), name(), any::<u64>(), name(), any::<bool>()).prop_map(
            |(parent, name, new_parent, new_name, replace)| MetaOp::RenameAt {
                parent,
                name,
                new_parent,
                new_name,
                replace
            }
        ),
        (
            any::<u64>(),
            any::<(Option<u32>, Option<u32>, Option<u32>)>(),
            any::<(Option<u64>, Option<i64>, Option<i64>)>()
        )
            .prop_map(|(ino, (mode, uid, gid), (size, atime, mtime))| {
                MetaOp::SetAttrIno {
                    ino,
                    change: SetAttr {
                        mode,
                        uid,
                        gid,
                        size,
                        atime,
                        mtime,
                    },
                }
            }),
        any::<u64>().prop_map(|ino| MetaOp::ReadlinkIno { ino }),
        (
            any::<u64>(),
            body(),
            any::<u64>(),
            any::<Option<u64>>(),
            (
                any::<Option<u32>>(),
                any::<Option<u32>>(),
                any::<Option<i64>>()
            )
        )
            .prop_map(|(ino, body, upload, if_generation, (mode, uid, mtime))| {
                MetaOp::PublishIno {
                    ino,
                    body,
                    upload,
                    if_generation,
                    attrs: SetAttr {
                        mode,
                        uid,
                        mtime,
                        ..SetAttr::default()
                    },
                }
            }),
    ]
}

proptest! {
    #[test]
    fn inode_ops_round_trip(op in inode_op()) {
        let bytes = encode_op(op.clone()).encode_to_vec();
        let back = decode_op(pb::Op::decode(bytes.as_slice()).unwrap()).unwrap();
        prop_assert_eq!(back, op);
    }

    #[test]
    fn ops_round_trip(op in op()) {
        let bytes = encode_op(op.clone()).encode_to_vec();
        let back = decode_op(pb::Op::decode(bytes.as_slice()).unwrap()).unwrap();
        prop_assert_eq!(back, op);
    }

    #[test]
    fn replies_round_trip(reply in reply()) {
        let bytes = encode_reply(reply.clone()).encode_to_vec();
        let back = decode_reply(pb::Reply::decode(bytes.as_slice()).unwrap()).unwrap();
        prop_assert_eq!(back, reply);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in any::<Vec<u8>>()) {
        if let Ok(op) = pb::Op::decode(bytes.as_slice()) {
            let _ = decode_op(op);
        }
        if let Ok(r) = pb::Reply::decode(bytes.as_slice()) {
            let _ = decode_reply(r);
        }
    }
}

#[test]
fn every_error_variant_round_trips_through_a_status() {
    let all = [
        Error::NotFound("/a".into()),
        Error::Exists("/a".into()),
        Error::NotADirectory("/a".into()),
        Error::IsADirectory("/a".into()),
        Error::NotEmpty("/a".into()),
        Error::NotASymlink("/a".into()),
        Error::NameTooLong(300),
        Error::InvalidName {
            name: "..".into(),
            reason: "`.` and `..` are not names",
        },
        Error::InvalidPath {
            path: "/../x".into(),
            reason: "escapes the volume root",
        },
        Error::InvalidArgument("x".into()),
        Error::IntoOwnSubtree {
            src: "/a".into(),
            dst: "/a/b".into(),
        },
        Error::GenerationMismatch {
            path: "/f".into(),
            expected: 1,
            actual: 2,
        },
        Error::NoVolume("/v".into()),
        Error::UnsupportedFormat {
            found: 9,
            supported: 1,
        },
        Error::Busy("b".into()),
        Error::ChecksumMismatch { key: "k".into() },
        Error::MissingBlock("k".into()),
        Error::ObjectStore("s".into()),
        Error::Corrupt("c".into()),
        Error::Metadata("m".into()),
        Error::Io("i".into()),
        Error::Unauthenticated("u".into()),
        Error::WatchCompacted {
            requested: 3,
            oldest: 9,
        },
    ];
    for e in all {
        assert_eq!(error_from_status(&status_from_error(&e)), e);
        assert_eq!(decode_error(encode_error(&e)), e);
    }
}

#[test]
fn missing_fields_are_invalid_argument() {
    let cases = [
        pb::Op { op: None },
        pb::Op {
            op: Some(pb::op::Op::Mkdir(pb::MkdirOp {
                path: "/a".into(),
                owner: None,
                parents: false,
            })),
        },
        pb::Op {
            op: Some(pb::op::Op::Publish(pb::PublishOp {
                path: "/a".into(),
                body: Some(pb::Body {
                    digest: vec![1, 2, 3],
                    ..Default::default()
                }),
                upload: 1,
                if_generation: None,
                owner: Some(pb::Owner::default()),
            })),
        },
    ];
    for op in cases {
        assert!(matches!(decode_op(op), Err(Error::InvalidArgument(_))));
    }
    let bad_kind = pb::Reply {
        reply: Some(pb::reply::Reply::Attr(pb::Attr {
            kind: 42,
            ..Default::default()
        })),
    };
    assert!(matches!(
        decode_reply(bad_kind),
        Err(Error::InvalidArgument(_))
    ));
}

#[test]
fn statuses_without_details_map_by_code() {
    let s = tonic::Status::unauthenticated("no token");
    assert!(matches!(error_from_status(&s), Error::Unauthenticated(_)));
    let s = tonic::Status::resource_exhausted("too big");
    assert!(matches!(error_from_status(&s), Error::InvalidArgument(_)));
    let s = tonic::Status::unavailable("down");
    assert!(matches!(error_from_status(&s), Error::Io(_)));
}
