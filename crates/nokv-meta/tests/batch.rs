//! `execute_batch`: ordered, not atomic, each op with its own result,
//! later ops see earlier ones, and changes share group commits.

mod common;

use common::*;
use nokv_meta::{execute, execute_batch, Durability, MetaOp, MetaReply};
use nokv_types::Error;

#[test]
fn batch_is_ordered_and_not_atomic() {
    let (_d, vol) = new_volume(Durability::Sync);
    let ops = vec![
        MetaOp::Mkdir {
            path: "/a".into(),
            owner: dir_owner(),
            parents: false,
        },
        MetaOp::Create {
            path: "/a/f".into(),
            owner: owner(),
            exclusive: true,
        },
        MetaOp::Create {
            path: "/a/f".into(),
            owner: owner(),
            exclusive: true,
        },
        MetaOp::Create {
            path: "/missing/f".into(),
            owner: owner(),
            exclusive: true,
        },
        MetaOp::Stat {
            path: "/a/f".into(),
            follow: true,
        },
        MetaOp::Rename {
            src: "/a/f".into(),
            dst: "/a/g".into(),
            replace: false,
        },
        MetaOp::Stat {
            path: "/a/g".into(),
            follow: false,
        },
    ];
    let results = execute_batch(&vol, ops);
    assert_eq!(results.len(), 7);
    assert!(matches!(results[0], Ok(MetaReply::Attr(_))));
    assert!(matches!(results[1], Ok(MetaReply::Attr(_))));
    assert!(
        matches!(results[2], Err(Error::Exists(_))),
        "{:?}",
        results[2]
    );
    assert!(
        matches!(results[3], Err(Error::NotFound(_))),
        "{:?}",
        results[3]
    );
    assert!(matches!(results[4], Ok(MetaReply::Attr(_))));
    assert!(matches!(results[5], Ok(MetaReply::Done)));
    assert!(matches!(results[6], Ok(MetaReply::Attr(_))));
    assert_eq!(names(&vol, vol.lookup(1, b"a").unwrap().ino), vec!["g"]);
}

#[test]
fn a_batch_of_creates_shares_commits() {
    let (_d, vol) = new_volume(Durability::Sync);
    execute(
        &vol,
        MetaOp::Mkdir {
            path: "/d".into(),
            owner: dir_owner(),
            parents: false,
        },
    )
    .unwrap();
    let v0 = vol.info().commit_version;
    let ops: Vec<MetaOp> = (0..1000)
        .map(|i| MetaOp::Create {
            path: format!("/d/f{i}"),
            owner: owner(),
            exclusive: true,
        })
        .collect();
    let start = std::time::Instant::now();
    let results = execute_batch(&vol, ops);
    let took = start.elapsed();
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(
        vol.info().commit_version,
        v0 + 1000,
        "one commit version per command"
    );
    // 1000 sync commands one by one would need 1000 fsyncs (~3-4 K/s on
    // this machine kind); grouped they take a handful.
    eprintln!("1000 batched sync creates took {took:?}");
}
