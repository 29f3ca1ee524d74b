#![allow(dead_code)]
use nokv_meta::{Durability, InitOptions, OpenOptions, Owner, Volume};
use nokv_types::{NokvPath, ObjectLocation};

pub fn owner() -> Owner {
    Owner {
        mode: 0o644,
        uid: 1000,
        gid: 1000,
    }
}

pub fn dir_owner() -> Owner {
    Owner {
        mode: 0o755,
        uid: 1000,
        gid: 1000,
    }
}

pub fn opts(durability: Durability) -> OpenOptions {
    OpenOptions {
        durability,
        ..OpenOptions::default()
    }
}

pub fn new_volume(durability: Durability) -> (tempfile::TempDir, Volume) {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("vol");
    let blocks = dir.path().join("blocks");
    let vol = Volume::init(
        &home,
        InitOptions::new(ObjectLocation::Local { root: blocks }),
        opts(durability),
    )
    .unwrap();
    (dir, vol)
}

pub fn p(s: &str) -> NokvPath {
    NokvPath::parse(s).unwrap()
}

pub fn mkdirs(vol: &Volume, path: &str) -> u64 {
    let mut cur = nokv_types::ROOT_INO;
    for c in p(path).components() {
        cur = match vol.lookup(cur, c) {
            Ok(a) => a.ino,
            Err(_) => vol.mkdir(cur, c, dir_owner()).unwrap().ino,
        };
    }
    cur
}

pub fn names(vol: &Volume, dir: u64) -> Vec<String> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = vol.readdir(dir, after.as_deref(), 3).unwrap();
        out.extend(page.entries.iter().map(|e| e.name_lossy()));
        match page.next {
            Some(n) => after = Some(n),
            None => return out,
        }
    }
}
