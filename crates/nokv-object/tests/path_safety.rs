//! The local-directory backend never reads, writes, lists or deletes
//! outside its root, whatever key it is handed: `..`, absolute paths,
//! odd separators, or a symlink planted inside the root.

use bytes::Bytes;
use nokv_object::{BlockStore, BlockStoreOptions, StoreCredentials};
use nokv_types::{Error, ObjectLocation};

struct Fixture {
    _tmp: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
    store: BlockStore,
}

const SECRET: &[u8] = b"outside the root: must never be read";

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), SECRET).unwrap();
    let store = BlockStore::open(
        &ObjectLocation::Local { root: root.clone() },
        &StoreCredentials::default(),
        BlockStoreOptions::default(),
    )
    .unwrap();
    Fixture {
        _tmp: tmp,
        root,
        outside,
        store,
    }
}

/// Every file under `dir` (not following symlinks).
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                todo.push(e.path());
            } else {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

const HOSTILE: &[&str] = &[
    "../escape",
    "../outside/secret",
    "blocks/../../outside/secret",
    "a/../../outside/secret",
    "/etc/passwd",
    "//outside/secret",
    "/../outside/secret",
    "./../outside/secret",
    "blocks/./../../outside/secret",
    "..",
    ".",
    "",
    "blocks/\0/x",
    "%2e%2e/outside/secret",
    "blocks/%2F..%2F..%2Foutside/secret",
    "..\\outside\\secret",
];

#[tokio::test]
async fn hostile_keys_never_leave_the_root() {
    let f = fixture();
    let before_outside = files(&f.outside);
    let parent_before: Vec<_> = std::fs::read_dir(f.root.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    for key in HOSTILE {
        let put = f.store.put_block(key, Bytes::from_static(b"x")).await;
        if let Err(e) = &put {
            assert!(
                matches!(e, Error::InvalidArgument(_) | Error::ObjectStore(_)),
                "{key:?}: {e:?}"
            );
        }
        match f.store.get_raw(key).await {
            Ok(bytes) => assert_ne!(bytes.as_ref(), SECRET, "{key:?} read outside the root"),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
        let _ = f.store.delete(key).await;
        let _ = f.store.list_keys(key).await;
    }
    // Nothing outside changed, nothing new beside the root.
    assert_eq!(files(&f.outside), before_outside);
    assert_eq!(
        std::fs::read(f.outside.join("secret")).unwrap(),
        SECRET,
        "the outside file is intact"
    );
    let mut parent_after: Vec<_> = std::fs::read_dir(f.root.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    parent_after.sort();
    let mut parent_before = parent_before;
    parent_before.sort();
    assert_eq!(parent_after, parent_before);
    // Whatever was accepted landed inside the root.
    for p in files(&f.root) {
        assert!(p.starts_with(&f.root), "{}", p.display());
    }
}

#[tokio::test]
async fn a_symlink_inside_the_root_is_not_followed() {
    let f = fixture();
    f.store
        .put_block(
            "blocks/aa/0000000000000001/00000000",
            Bytes::from_static(b"ok"),
        )
        .await
        .unwrap();
    // A symlinked directory and a symlinked file planted in the root.
    std::os::unix::fs::symlink(&f.outside, f.root.join("blocks/evil")).unwrap();
    std::os::unix::fs::symlink(f.outside.join("secret"), f.root.join("blocks/aa/link")).unwrap();

    for key in ["blocks/evil/secret", "blocks/aa/link"] {
        match f.store.get_raw(key).await {
            Ok(bytes) => panic!("{key}: read {} bytes through a symlink", bytes.len()),
            Err(e) => assert!(
                matches!(e, Error::InvalidArgument(_)),
                "{key}: a clear refusal, got {e:?}"
            ),
        }
        let err = f.store.delete(key).await.unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{key}: {err:?}");
    }
    let err = f
        .store
        .put_block("blocks/evil/planted", Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
    assert!(
        !f.outside.join("planted").exists(),
        "wrote outside the root"
    );

    // Listing (what fsck --delete-leaked acts on) does not walk out.
    let keys: Vec<String> = f
        .store
        .list_keys("blocks/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["blocks/aa/0000000000000001/00000000"], "{keys:?}");
    assert_eq!(std::fs::read(f.outside.join("secret")).unwrap(), SECRET);
    // The legitimate block still works.
    assert_eq!(
        f.store
            .get_raw("blocks/aa/0000000000000001/00000000")
            .await
            .unwrap()
            .as_ref(),
        b"ok"
    );
}
