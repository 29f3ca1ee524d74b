//! Snapshot history on a real volume: cases the model test reaches only
//! by chance.

mod common;

use common::*;
use nokv_meta::Durability;
use nokv_types::{FileKind, ROOT_INO};

/// The history records of `f1` share their key prefix with those of
/// `f10`: a record of `f10` must not pass for one of `f1` (found by the
/// crash campaign: `f1` vanished from a snapshot once `f10` had changed
/// after it).
#[test]
fn a_name_that_prefixes_another_keeps_its_own_history() {
    let (_d, vol) = new_volume(Durability::Async);
    for name in ["f1", "f10", "d3", "d30"] {
        vol.create(ROOT_INO, name.as_bytes(), owner(), true)
            .unwrap();
    }
    vol.snapshot_create(&p("/"), "s").unwrap();
    // Change the longer names first, then the shorter ones.
    vol.unlink(ROOT_INO, b"f10").unwrap();
    vol.unlink(ROOT_INO, b"f1").unwrap();
    vol.rename(
        ROOT_INO,
        b"d30",
        ROOT_INO,
        b"x",
        nokv_meta::RenameMode::NoReplace,
    )
    .unwrap();
    vol.rename(
        ROOT_INO,
        b"d3",
        ROOT_INO,
        b"y",
        nokv_meta::RenameMode::NoReplace,
    )
    .unwrap();
    let root = vol.snapshot_root("s").unwrap();
    let page = vol.readdirplus_at("s", root.ino, None, 100).unwrap();
    let names: Vec<String> = page.entries.iter().map(|e| e.name_lossy()).collect();
    assert_eq!(names, ["d3", "d30", "f1", "f10"]);
    for name in ["f1", "f10", "d3", "d30"] {
        let a = vol.lookup_at("s", root.ino, name.as_bytes()).unwrap();
        assert_eq!(a.kind, FileKind::File, "{name}");
    }
    assert_eq!(names_live(&vol), ["x", "y"]);
}

fn names_live(vol: &nokv_meta::Volume) -> Vec<String> {
    vol.readdirplus(ROOT_INO, None, 100)
        .unwrap()
        .entries
        .iter()
        .map(|e| e.name_lossy())
        .collect()
}
