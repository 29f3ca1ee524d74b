//! The inode-level SDK (what the FUSE mount uses) on a real volume, on
//! both block-store backends: names by (parent, name), publish by inode
//! with block reuse, and the publish rules (staging, reused blocks of
//! the current generation only, generation guard).

use nokv_client::{
    Client, ClientOptions, Durability, Error, InitOptions, MetaOp, MetaReply, Owner, RenameMode,
    SetAttr,
};
use nokv_testkit::{backend_tests, Backend};

const BS: u32 = 64 * 1024;
const ROOT: u64 = 1;

backend_tests!(
    names_by_inode,
    publish_by_inode_reuses_blocks_and_follows_renames
);

async fn client(backend: Backend) -> (tempfile::TempDir, Client) {
    let dir = tempfile::tempdir().unwrap();
    let (location, credentials) = backend.location(dir.path());
    let mut init = InitOptions::new(location);
    init.block_size = BS;
    let opts = ClientOptions {
        durability: Durability::Async,
        credentials,
        ..ClientOptions::default()
    };
    let c = Client::init(&dir.path().join("vol"), init, opts)
        .await
        .unwrap();
    (dir, c)
}

fn owner(mode: u32) -> Owner {
    Owner {
        mode,
        uid: 7,
        gid: 8,
    }
}

async fn names_by_inode(backend: Backend) {
    let (_d, c) = client(backend).await;
    let dir = c.mkdir_at(ROOT, b"d", owner(0o750)).await.unwrap();
    assert_eq!((dir.mode, dir.uid, dir.gid), (0o750, 7, 8));
    let f = c
        .create_at(dir.ino, b"f", owner(0o640), true)
        .await
        .unwrap();
    assert!(matches!(
        c.create_at(dir.ino, b"f", owner(0o640), true).await,
        Err(Error::Exists(_))
    ));
    // Non-exclusive create returns the existing file.
    assert_eq!(
        c.create_at(dir.ino, b"f", owner(0o600), false)
            .await
            .unwrap()
            .ino,
        f.ino
    );
    assert_eq!(c.lookup(dir.ino, b"f").await.unwrap().ino, f.ino);
    assert_eq!(c.getattr(f.ino).await.unwrap().mode, 0o640);
    let s = c
        .symlink_at(ROOT, b"s", b"d/f", owner(0o777))
        .await
        .unwrap();
    assert_eq!(c.readlink_ino(s.ino).await.unwrap(), b"d/f");
    let l = c.link_at(f.ino, ROOT, b"hard").await.unwrap();
    assert_eq!((l.ino, l.nlink), (f.ino, 2));
    let a = c
        .setattr_ino(
            f.ino,
            SetAttr {
                mode: Some(0o604),
                mtime: Some(1_000),
                ..SetAttr::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((a.mode, a.mtime), (0o604, 1_000));
    // RENAME_NOREPLACE refuses, replace replaces.
    let g = c.create_at(ROOT, b"g", owner(0o644), true).await.unwrap();
    assert!(matches!(
        c.rename_at(ROOT, b"g", ROOT, b"hard", RenameMode::NoReplace)
            .await,
        Err(Error::Exists(_))
    ));
    c.rename_at(ROOT, b"g", ROOT, b"hard", RenameMode::Replace)
        .await
        .unwrap();
    assert_eq!(c.lookup(ROOT, b"hard").await.unwrap().ino, g.ino);
    assert_eq!(c.getattr(f.ino).await.unwrap().nlink, 1);
    assert!(matches!(
        c.rmdir_at(ROOT, b"d").await,
        Err(Error::NotEmpty(_))
    ));
    c.unlink_at(dir.ino, b"f").await.unwrap();
    c.rmdir_at(ROOT, b"d").await.unwrap();
    assert!(matches!(
        c.lookup(ROOT, b"d").await,
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        c.lookup(ROOT, b"a/b").await,
        Err(Error::InvalidName { .. })
    ));
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(13) ^ seed)
        .collect()
}

async fn publish_by_inode_reuses_blocks_and_follows_renames(backend: Backend) {
    let (_d, c) = client(backend).await;
    let f = c
        .create_at(ROOT, b"ckpt", owner(0o644), true)
        .await
        .unwrap();
    let mut bytes = data(3 * BS as usize, 1);
    let first = c
        .publish_ino(f.ino, bytes.as_slice(), None, Some(0), None)
        .await
        .unwrap();
    assert_eq!((first.attr.generation, first.uploaded_blocks), (1, 3));

    // Renamed while "open": the publish still lands on the same inode.
    let dir = c.mkdir_at(ROOT, b"moved", owner(0o755)).await.unwrap();
    c.rename_at(ROOT, b"ckpt", dir.ino, b"ckpt", RenameMode::NoReplace)
        .await
        .unwrap();
    bytes[BS as usize + 5] ^= 0xff;
    let second = c
        .publish_ino(f.ino, bytes.as_slice(), Some(&first.body), None, None)
        .await
        .unwrap();
    assert_eq!(second.attr.generation, 2);
    assert_eq!((second.reused_blocks, second.uploaded_blocks), (2, 1));
    assert_eq!(
        c.read("/moved/ckpt").await.unwrap().as_ref(),
        bytes.as_slice()
    );

    // What a writer did to the open file (`tar x`: chown, chmod, the
    // original mtime) is set with the new generation; the change time is
    // still the commit's.
    let before = nokv_client::now_nanos();
    let old_mtime = 1_153_704_088_000_000_000;
    let attrs = SetAttr {
        mode: Some(0o4750),
        uid: Some(1234),
        gid: Some(56),
        mtime: Some(old_mtime),
        ..SetAttr::default()
    };
    // Bad attributes are refused and change nothing.
    for bad in [
        SetAttr {
            size: Some(1),
            ..attrs.clone()
        },
        SetAttr {
            mode: Some(0o170_000),
            ..attrs.clone()
        },
    ] {
        let e = c
            .publish_ino_staged(f.ino, &b"x"[..], None, None, Some(2), bad)
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    }
    assert_eq!(c.getattr(f.ino).await.unwrap().generation, 2);
    let third = c
        .publish_ino_staged(
            f.ino,
            bytes.as_slice(),
            Some(&second.body),
            None,
            Some(2),
            attrs,
        )
        .await
        .unwrap();
    let a = &third.attr;
    assert_eq!(
        (a.generation, a.mtime, a.mode, a.uid, a.gid),
        (3, old_mtime, 0o4750, 1234, 56)
    );
    assert!(a.ctime >= before, "{a:?}");
    assert_eq!(&c.getattr(f.ino).await.unwrap(), a);
    // Without one, the commit time.
    let fourth = c
        .publish_ino(f.ino, bytes.as_slice(), Some(&third.body), Some(3), None)
        .await
        .unwrap();
    assert!(fourth.attr.mtime >= before, "{:?}", fourth.attr);

    // A stale generation guard is refused, nothing changes.
    let e = c
        .publish_ino(f.ino, &b"x"[..], None, Some(1), None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::GenerationMismatch { .. }), "{e}");

    // Reusing blocks of generation 1 (no longer current: they may be on
    // the GC queue) is refused by the metadata layer itself.
    let results = c
        .batch(vec![MetaOp::BeginUpload { deadline: i64::MAX }])
        .await;
    let Ok(MetaReply::Upload(upload)) = results[0].clone() else {
        panic!("begin_upload: {:?}", results[0])
    };
    let stale = c
        .batch(vec![MetaOp::PublishIno {
            ino: f.ino,
            body: first.body.clone(),
            upload,
            if_generation: None,
            attrs: SetAttr::default(),
        }])
        .await;
    assert!(
        matches!(stale[0], Err(Error::GenerationMismatch { .. })),
        "{:?}",
        stale[0]
    );
    assert_eq!(c.getattr(f.ino).await.unwrap().generation, 4);

    // Directories and missing inodes are refused.
    let e = c
        .publish_ino(dir.ino, &b"x"[..], None, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::IsADirectory(_)), "{e}");
    c.unlink_at(dir.ino, b"ckpt").await.unwrap();
    let e = c
        .publish_ino(f.ino, &b"x"[..], None, None, None)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound(_)), "{e}");
}
