//! Namespace semantics on a real on-disk holt volume.

mod common;

use common::*;
use nokv_meta::{Durability, RenameMode};
use nokv_types::{Error, FileKind, SetAttr, ROOT_INO};

#[test]
fn mkdir_create_lookup_and_nlink() {
    let (_d, vol) = new_volume(Durability::Async);
    let a = vol.mkdir(ROOT_INO, b"a", dir_owner()).unwrap();
    assert_eq!(a.kind, FileKind::Dir);
    assert_eq!(a.nlink, 2);
    assert_eq!(vol.getattr(ROOT_INO).unwrap().nlink, 3);
    vol.mkdir(a.ino, b"b", dir_owner()).unwrap();
    assert_eq!(vol.getattr(a.ino).unwrap().nlink, 3);
    let f = vol.create(a.ino, b"f", owner(), true).unwrap();
    assert_eq!(f.kind, FileKind::File);
    assert_eq!(f.nlink, 1);
    assert_eq!(f.mode, 0o644);
    assert_eq!(vol.lookup(a.ino, b"f").unwrap(), f);
    assert_eq!(vol.getattr(f.ino).unwrap(), f);
    // exclusive create of an existing name fails; non-exclusive returns it
    assert!(matches!(
        vol.create(a.ino, b"f", owner(), true),
        Err(Error::Exists(_))
    ));
    assert_eq!(vol.create(a.ino, b"f", owner(), false).unwrap().ino, f.ino);
    assert!(matches!(
        vol.mkdir(a.ino, b"f", dir_owner()),
        Err(Error::Exists(_))
    ));
    // inode numbers are unique
    assert_ne!(a.ino, f.ino);
    assert_eq!(
        vol.getattr(a.ino).unwrap().nlink,
        3,
        "a file does not change nlink"
    );
}

#[test]
fn bad_names_are_refused_and_change_nothing() {
    let (_d, vol) = new_volume(Durability::Async);
    let before = vol.info().commit_version;
    for bad in [&b""[..], b".", b"..", b"a/b", b"a\0b", &[b'x'; 256]] {
        assert!(vol.mkdir(ROOT_INO, bad, dir_owner()).is_err(), "{bad:?}");
        assert!(vol.create(ROOT_INO, bad, owner(), true).is_err());
    }
    assert!(matches!(
        vol.create(ROOT_INO, &[b'x'; 256], owner(), true),
        Err(Error::NameTooLong(256))
    ));
    assert_eq!(
        vol.info().commit_version,
        before,
        "failed commands commit nothing"
    );
    assert!(names(&vol, ROOT_INO).is_empty());
    // a create under a file is refused
    let f = vol.create(ROOT_INO, b"f", owner(), true).unwrap();
    assert!(matches!(
        vol.create(f.ino, b"x", owner(), true),
        Err(Error::NotADirectory(_))
    ));
    assert!(matches!(
        vol.create(999_999, b"x", owner(), true),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn commit_versions_increase_per_command() {
    let (_d, vol) = new_volume(Durability::Async);
    let v0 = vol.info().commit_version;
    vol.mkdir(ROOT_INO, b"a", dir_owner()).unwrap();
    let v1 = vol.info().commit_version;
    vol.create(ROOT_INO, b"b", owner(), true).unwrap();
    let v2 = vol.info().commit_version;
    assert!(v0 < v1 && v1 < v2, "{v0} {v1} {v2}");
    assert_eq!(v2, v1 + 1);
}

#[test]
fn readdir_pages_resume_and_plus_has_attrs() {
    let (_d, vol) = new_volume(Durability::Async);
    let d = mkdirs(&vol, "/d");
    let mut expect = Vec::new();
    for i in 0..10 {
        let name = format!("f{i:02}");
        vol.create(d, name.as_bytes(), owner(), true).unwrap();
        expect.push(name);
    }
    vol.mkdir(d, b"sub", dir_owner()).unwrap();
    expect.push("sub".into());
    assert_eq!(names(&vol, d), expect);
    let page = vol.readdirplus(d, None, 100).unwrap();
    assert_eq!(page.entries.len(), 11);
    assert!(page.next.is_none());
    assert_eq!(page.entries[10].attr.kind, FileKind::Dir);
    assert_eq!(page.entries[0].attr, vol.lookup(d, b"f00").unwrap());
    // resume after a name that has since been removed
    vol.unlink(d, b"f03").unwrap();
    let rest = vol.readdir(d, Some(b"f03"), 100).unwrap();
    assert_eq!(rest.entries[0].name, b"f04");
    // readdir of a file fails
    let f = vol.lookup(d, b"f00").unwrap();
    assert!(matches!(
        vol.readdir(f.ino, None, 10),
        Err(Error::NotADirectory(_))
    ));
}

#[test]
fn symlinks_and_readlink_and_resolution() {
    let (_d, vol) = new_volume(Durability::Async);
    let a = mkdirs(&vol, "/a/b");
    vol.create(a, b"file", owner(), true).unwrap();
    let root_a = vol.lookup(ROOT_INO, b"a").unwrap().ino;
    let l = vol.symlink(ROOT_INO, b"link", b"a/b", owner()).unwrap();
    assert_eq!(l.kind, FileKind::Symlink);
    assert_eq!(l.size, 3);
    assert_eq!(vol.readlink(l.ino).unwrap(), b"a/b");
    assert!(matches!(vol.readlink(a), Err(Error::NotASymlink(_))));
    // stat follows, lstat does not
    assert_eq!(vol.resolve(&p("/link"), true).unwrap().ino, a);
    assert_eq!(vol.resolve(&p("/link"), false).unwrap().ino, l.ino);
    assert_eq!(
        vol.resolve(&p("/link/file"), false).unwrap().kind,
        FileKind::File
    );
    vol.symlink(a, b"up", b"../..", owner()).unwrap();
    assert_eq!(vol.resolve(&p("/a/b/up/a"), true).unwrap().ino, root_a);
    vol.symlink(a, b"abs", b"/a", owner()).unwrap();
    assert_eq!(vol.resolve(&p("/a/b/abs"), true).unwrap().ino, root_a);
    // loops end with an error
    vol.symlink(ROOT_INO, b"loop1", b"loop2", owner()).unwrap();
    vol.symlink(ROOT_INO, b"loop2", b"loop1", owner()).unwrap();
    assert!(vol.resolve(&p("/loop1"), true).is_err());
    assert!(vol.symlink(ROOT_INO, b"bad", b"", owner()).is_err());
    assert!(matches!(
        vol.resolve(&p("/a/b/file/x"), true),
        Err(Error::NotADirectory(_))
    ));
    assert!(matches!(
        vol.resolve(&p("/nope"), true),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn hard_links_keep_nlink_right() {
    let (_d, vol) = new_volume(Durability::Async);
    let d = mkdirs(&vol, "/d");
    let f = vol.create(d, b"f", owner(), true).unwrap();
    let l = vol.link(f.ino, ROOT_INO, b"g").unwrap();
    assert_eq!(l.ino, f.ino);
    assert_eq!(l.nlink, 2);
    assert_eq!(vol.lookup(d, b"f").unwrap().nlink, 2);
    assert_eq!(vol.lookup(ROOT_INO, b"g").unwrap().nlink, 2);
    vol.link(f.ino, d, b"h").unwrap();
    assert_eq!(vol.getattr(f.ino).unwrap().nlink, 3);
    // attribute changes are seen through every name
    vol.setattr(
        f.ino,
        SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(vol.lookup(ROOT_INO, b"g").unwrap().mode, 0o600);
    assert_eq!(
        vol.readdirplus(d, None, 10).unwrap().entries[0].attr.mode,
        0o600
    );
    vol.unlink(d, b"f").unwrap();
    assert_eq!(vol.getattr(f.ino).unwrap().nlink, 2);
    vol.rename(d, b"h", d, b"h2", RenameMode::NoReplace)
        .unwrap();
    assert_eq!(vol.lookup(d, b"h2").unwrap().nlink, 2);
    vol.unlink(ROOT_INO, b"g").unwrap();
    assert_eq!(vol.getattr(f.ino).unwrap().nlink, 1);
    vol.unlink(d, b"h2").unwrap();
    assert!(matches!(vol.getattr(f.ino), Err(Error::NotFound(_))));
    // directories cannot be hard-linked
    assert!(vol.link(d, ROOT_INO, b"dd").is_err());
}

#[test]
fn unlink_and_rmdir_rules() {
    let (_d, vol) = new_volume(Durability::Async);
    let d = mkdirs(&vol, "/d/e");
    let dd = vol.lookup(ROOT_INO, b"d").unwrap().ino;
    assert!(matches!(
        vol.unlink(ROOT_INO, b"d"),
        Err(Error::IsADirectory(_))
    ));
    assert!(matches!(vol.rmdir(ROOT_INO, b"d"), Err(Error::NotEmpty(_))));
    vol.create(d, b"f", owner(), true).unwrap();
    assert!(matches!(vol.rmdir(d, b"f"), Err(Error::NotADirectory(_))));
    assert!(matches!(vol.rmdir(dd, b"e"), Err(Error::NotEmpty(_))));
    vol.unlink(d, b"f").unwrap();
    assert!(matches!(vol.unlink(d, b"f"), Err(Error::NotFound(_))));
    vol.rmdir(dd, b"e").unwrap();
    assert_eq!(vol.getattr(dd).unwrap().nlink, 2);
    vol.rmdir(ROOT_INO, b"d").unwrap();
    assert_eq!(vol.getattr(ROOT_INO).unwrap().nlink, 2);
    assert!(names(&vol, ROOT_INO).is_empty());
}

#[test]
fn rename_semantics() {
    let (_d, vol) = new_volume(Durability::Async);
    let a = mkdirs(&vol, "/a");
    let b = mkdirs(&vol, "/b");
    let f = vol.create(a, b"f", owner(), true).unwrap();
    let g = vol.create(b, b"g", owner(), true).unwrap();
    // no-replace refuses an existing destination
    assert!(matches!(
        vol.rename(a, b"f", b, b"g", RenameMode::NoReplace),
        Err(Error::Exists(_))
    ));
    // replace drops the old destination inode
    vol.rename(a, b"f", b, b"g", RenameMode::Replace).unwrap();
    assert_eq!(vol.lookup(b, b"g").unwrap().ino, f.ino);
    assert!(matches!(vol.getattr(g.ino), Err(Error::NotFound(_))));
    assert!(matches!(vol.lookup(a, b"f"), Err(Error::NotFound(_))));
    // getattr by inode still works after the move (back-pointer updated)
    assert_eq!(vol.getattr(f.ino).unwrap().ino, f.ino);
    // directory moves keep the subtree and fix parents' nlink
    let sub = mkdirs(&vol, "/a/sub/deep/deeper");
    let asub = vol.lookup(a, b"sub").unwrap().ino;
    vol.rename(a, b"sub", b, b"sub2", RenameMode::NoReplace)
        .unwrap();
    assert_eq!(
        vol.resolve(&p("/b/sub2/deep/deeper"), true).unwrap().ino,
        sub
    );
    assert_eq!(vol.getattr(a).unwrap().nlink, 2);
    assert_eq!(vol.getattr(b).unwrap().nlink, 3);
    // into its own subtree is refused
    let deep = vol.resolve(&p("/b/sub2/deep"), true).unwrap().ino;
    assert!(matches!(
        vol.rename(b, b"sub2", deep, b"x", RenameMode::NoReplace),
        Err(Error::IntoOwnSubtree { .. })
    ));
    assert!(matches!(
        vol.rename(b, b"sub2", asub, b"x", RenameMode::NoReplace),
        Err(Error::IntoOwnSubtree { .. })
    ));
    // kind mismatches on replace
    vol.mkdir(a, b"emptydir", dir_owner()).unwrap();
    assert!(matches!(
        vol.rename(b, b"g", a, b"emptydir", RenameMode::Replace),
        Err(Error::IsADirectory(_))
    ));
    assert!(matches!(
        vol.rename(a, b"emptydir", b, b"g", RenameMode::Replace),
        Err(Error::NotADirectory(_))
    ));
    // a directory replaces an empty directory, not a full one
    assert!(matches!(
        vol.rename(a, b"emptydir", b, b"sub2", RenameMode::Replace),
        Err(Error::NotEmpty(_))
    ));
    vol.mkdir(b, b"empty2", dir_owner()).unwrap();
    let b_nlink = vol.getattr(b).unwrap().nlink;
    vol.rename(a, b"emptydir", b, b"empty2", RenameMode::Replace)
        .unwrap();
    assert_eq!(vol.getattr(b).unwrap().nlink, b_nlink);
    assert_eq!(vol.getattr(a).unwrap().nlink, 2);
    // rename to itself is a no-op; missing source is NotFound
    vol.rename(b, b"g", b, b"g", RenameMode::NoReplace).unwrap();
    assert!(matches!(
        vol.rename(a, b"zz", b, b"q", RenameMode::NoReplace),
        Err(Error::NotFound(_))
    ));
}

#[test]
fn directory_rename_is_one_key_whatever_the_subtree() {
    let (_d, vol) = new_volume(Durability::Async);
    let big = mkdirs(&vol, "/big");
    for i in 0..2000 {
        vol.create(big, format!("f{i}").as_bytes(), owner(), true)
            .unwrap();
    }
    let v = vol.info().commit_version;
    vol.rename(ROOT_INO, b"big", ROOT_INO, b"moved", RenameMode::NoReplace)
        .unwrap();
    assert_eq!(vol.info().commit_version, v + 1);
    assert_eq!(
        vol.resolve(&p("/moved/f1999"), true).unwrap().kind,
        FileKind::File
    );
    assert_eq!(names(&vol, big).len(), 2000);
}

#[test]
fn setattr_changes_and_validates() {
    let (_d, vol) = new_volume(Durability::Async);
    let f = vol.create(ROOT_INO, b"f", owner(), true).unwrap();
    let a = vol
        .setattr(
            f.ino,
            SetAttr {
                mode: Some(0o4755),
                uid: Some(7),
                gid: Some(8),
                atime: Some(11),
                mtime: Some(12),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        (a.mode, a.uid, a.gid, a.atime, a.mtime),
        (0o4755, 7, 8, 11, 12)
    );
    assert!(a.ctime >= f.ctime);
    assert_eq!(vol.getattr(f.ino).unwrap(), a);
    assert!(vol
        .setattr(
            f.ino,
            SetAttr {
                mode: Some(0o170000),
                ..Default::default()
            }
        )
        .is_err());
    assert_eq!(
        vol.getattr(f.ino).unwrap(),
        a,
        "a refused setattr changes nothing"
    );
    let d = vol.mkdir(ROOT_INO, b"d", dir_owner()).unwrap();
    assert!(matches!(
        vol.setattr(
            d.ino,
            SetAttr {
                size: Some(0),
                ..Default::default()
            }
        ),
        Err(Error::IsADirectory(_))
    ));
}

#[test]
fn concurrent_creates_of_one_name_have_one_winner() {
    let (_d, vol) = new_volume(Durability::Sync);
    let d = mkdirs(&vol, "/race");
    let wins: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let vol = vol.clone();
                s.spawn(move || {
                    let mut wins = 0;
                    for i in 0..50 {
                        match vol.create(d, format!("n{i}").as_bytes(), owner(), true) {
                            Ok(_) => wins += 1,
                            Err(Error::Exists(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                    wins
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 50);
    assert_eq!(names(&vol, d).len(), 50);
}

#[test]
fn many_short_names_keep_working() {
    // Regression: tiny records (short names → tiny inode back-pointers)
    // used to exhaust holt's per-frame slot table after ~10k creates.
    let (_d, vol) = new_volume(Durability::Async);
    let d = mkdirs(&vol, "/d");
    for i in 0..30_000 {
        vol.create(d, format!("{i}").as_bytes(), owner(), true)
            .unwrap_or_else(|e| panic!("create {i}: {e}"));
    }
    assert_eq!(vol.readdir(d, None, 40_000).unwrap().entries.len(), 30_000);
    vol.checkpoint().unwrap();
}
