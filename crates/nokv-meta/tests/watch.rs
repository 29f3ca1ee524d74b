//! The watch log: one typed event per change, in the change's command,
//! resumable by seq across reopen, trimmed with a clear compacted error.

mod common;

use common::*;
use nokv_meta::{execute, Durability, MetaOp, MetaReply, Volume};
use nokv_types::{Error, EventKind, NokvPath, WatchEvent};

fn events(vol: &Volume, from: u64, prefix: &str) -> (Vec<WatchEvent>, u64) {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let page = vol
            .watch_page(next, &NokvPath::parse(prefix).unwrap(), 3)
            .unwrap();
        if page.next == next {
            return (out, next);
        }
        next = page.next;
        out.extend(page.events);
    }
}

fn summary(evs: &[WatchEvent]) -> Vec<String> {
    evs.iter()
        .map(|e| match &e.old_path {
            Some(old) => format!("{} {} -> {}", e.kind.as_str(), old, e.path),
            None => format!("{} {}", e.kind.as_str(), e.path),
        })
        .collect()
}

#[test]
fn every_change_has_its_event_and_resume_sees_each_once() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("vol");
    let vol = Volume::init(
        &home,
        nokv_meta::InitOptions::new(nokv_types::ObjectLocation::Memory),
        opts(Durability::Sync),
    )
    .unwrap();
    let start = vol.watch_head();
    let op = |o: MetaOp| execute(&vol, o).unwrap();
    op(MetaOp::Mkdir {
        path: "/runs/a".into(),
        owner: dir_owner(),
        parents: true,
    });
    op(MetaOp::Create {
        path: "/runs/a/f".into(),
        owner: owner(),
        exclusive: true,
    });
    op(MetaOp::SetAttr {
        path: "/runs/a/f".into(),
        change: nokv_types::SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    });
    op(MetaOp::Rename {
        src: "/runs/a/f".into(),
        dst: "/runs/a/g".into(),
        replace: false,
    });
    op(MetaOp::Create {
        path: "/other".into(),
        owner: owner(),
        exclusive: true,
    });
    op(MetaOp::Rename {
        src: "/other".into(),
        dst: "/runs/a/g".into(),
        replace: true,
    });
    op(MetaOp::Symlink {
        path: "/runs/l".into(),
        target: b"a/g".to_vec(),
        owner: owner(),
    });
    op(MetaOp::Unlink {
        path: "/runs/l".into(),
    });
    let (all, head) = events(&vol, start, "/");
    assert_eq!(
        summary(&all),
        [
            "created /runs",
            "created /runs/a",
            "created /runs/a/f",
            "attr_changed /runs/a/f",
            "renamed /runs/a/f -> /runs/a/g",
            "created /other",
            "removed /runs/a/g",
            "renamed /other -> /runs/a/g",
            "created /runs/l",
            "removed /runs/l",
        ]
    );
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));
    assert!(all
        .windows(2)
        .all(|w| w[0].commit_version <= w[1].commit_version));
    // A subtree filter keeps renames that cross into it.
    let (sub, _) = events(&vol, start, "/runs/a");
    assert_eq!(sub.len(), 6, "{:?}", summary(&sub));
    assert!(summary(&sub).contains(&"renamed /other -> /runs/a/g".to_string()));

    // Resume after a restart from a cursor in the middle: exactly the rest.
    let cursor = all[4].seq + 1;
    drop(vol);
    let vol = Volume::open(&home, opts(Durability::Sync)).unwrap();
    let (rest, _) = events(&vol, cursor, "/");
    assert_eq!(rest, all[5..].to_vec());
    execute(
        &vol,
        MetaOp::Create {
            path: "/late".into(),
            owner: owner(),
            exclusive: true,
        },
    )
    .unwrap();
    let (late, _) = events(&vol, head, "/");
    assert_eq!(summary(&late), ["created /late"]);

    // Trim everything but the last commit: old cursors are compacted.
    let reply = execute(&vol, MetaOp::TrimWatch { keep_versions: 1 }).unwrap();
    assert!(matches!(reply, MetaReply::Count(n) if n >= 10), "{reply:?}");
    let err = vol.watch_page(start, &NokvPath::root(), 10).unwrap_err();
    match err {
        Error::WatchCompacted { requested, oldest } => {
            assert_eq!(requested, start);
            assert!(oldest > start);
            let (kept, _) = events(&vol, oldest, "/");
            assert_eq!(summary(&kept), ["created /late"]);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_failed_command_emits_nothing() {
    let (_d, vol) = new_volume(Durability::Async);
    let start = vol.watch_head();
    let _ = execute(
        &vol,
        MetaOp::Rmdir {
            path: "/missing".into(),
        },
    );
    let _ = execute(
        &vol,
        MetaOp::Create {
            path: "/x/y".into(),
            owner: owner(),
            exclusive: true,
        },
    );
    let (evs, _) = events(&vol, start, "/");
    assert!(evs.is_empty(), "{:?}", summary(&evs));
    let _ = EventKind::Created;
}

#[test]
fn events_name_the_directories_their_names_are_in() {
    let (_d, vol) = new_volume(Durability::Async);
    let start = vol.watch_head();
    let op = |o: MetaOp| execute(&vol, o).unwrap();
    let ino = |p: &str| {
        vol.resolve(&NokvPath::parse(p).unwrap(), false)
            .unwrap()
            .ino
    };
    op(MetaOp::Mkdir {
        path: "/a".into(),
        owner: dir_owner(),
        parents: false,
    });
    op(MetaOp::Mkdir {
        path: "/b".into(),
        owner: dir_owner(),
        parents: false,
    });
    let (a, b) = (ino("/a"), ino("/b"));
    op(MetaOp::Create {
        path: "/a/f".into(),
        owner: owner(),
        exclusive: true,
    });
    op(MetaOp::Create {
        path: "/b/g".into(),
        owner: owner(),
        exclusive: true,
    });
    op(MetaOp::Link {
        existing: "/b/g".into(),
        new: "/a/h".into(),
    });
    // A rename over /b/g: the target's removal, then the move.
    op(MetaOp::Rename {
        src: "/a/f".into(),
        dst: "/b/g".into(),
        replace: true,
    });
    op(MetaOp::SetAttr {
        path: "/b/g".into(),
        change: nokv_types::SetAttr {
            mode: Some(0o600),
            ..Default::default()
        },
    });
    op(MetaOp::Unlink {
        path: "/a/h".into(),
    });
    let (evs, _) = events(&vol, start, "/");
    let got: Vec<(String, u64, Option<u64>)> = evs
        .iter()
        .map(|e| {
            (
                summary(std::slice::from_ref(e))[0].clone(),
                e.parent,
                e.old_parent,
            )
        })
        .collect();
    let root = nokv_types::ROOT_INO;
    assert_eq!(
        got,
        vec![
            ("created /a".to_string(), root, None),
            ("created /b".to_string(), root, None),
            ("created /a/f".to_string(), a, None),
            ("created /b/g".to_string(), b, None),
            ("created /a/h".to_string(), a, None),
            ("removed /b/g".to_string(), b, None),
            ("renamed /a/f -> /b/g".to_string(), b, Some(a)),
            ("attr_changed /b/g".to_string(), b, None),
            ("removed /a/h".to_string(), a, None),
        ]
    );
    assert_eq!(evs[1].name(), Some("b"));
    assert_eq!(evs[6].old_name(), Some("f"));
}
