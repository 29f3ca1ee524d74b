//! Property test: random sequences of namespace operations on a real
//! on-disk volume agree with a simple in-memory model of POSIX
//! semantics, outcome by outcome (which operation fails, and with which
//! error) and state by state (every path, kind, link count and file
//! mode). Snapshots of random subtrees are created and retired in
//! between; after every operation, every live snapshot reads exactly
//! the state the model had when it was taken, and history no live
//! snapshot needs is pruned.

mod common;

use std::collections::BTreeMap;

use common::*;
use nokv_meta::{Durability, RenameMode, Volume};
use nokv_types::{Error, FileKind, NokvPath};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Mkdir(String),
    Create(String),
    Unlink(String),
    Rmdir(String),
    Rename(String, String, bool),
    Link(String, String),
    Chmod(String, u32),
    Snap(String),
    Retire(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Dir,
    File(u32),
}

#[derive(Debug, Default)]
struct Model {
    nodes: BTreeMap<String, Node>,
    nlink: BTreeMap<u32, u32>,
    mode: BTreeMap<u32, u32>,
    next_file: u32,
}

/// What a tree looks like: path -> (kind, nlink, mode of files).
type State = BTreeMap<String, (FileKind, u32, u32)>;

/// Which error an operation gives; `None` for success.
type Outcome = Option<&'static str>;

fn kind_of(e: &Error) -> &'static str {
    match e {
        Error::NotFound(_) => "NotFound",
        Error::Exists(_) => "Exists",
        Error::NotADirectory(_) => "NotADirectory",
        Error::IsADirectory(_) => "IsADirectory",
        Error::NotEmpty(_) => "NotEmpty",
        Error::IntoOwnSubtree { .. } => "IntoOwnSubtree",
        other => panic!("unexpected error {other}"),
    }
}

fn parent_of(path: &str) -> String {
    match path.rfind('/') {
        Some(0) | None => "/".into(),
        Some(i) => path[..i].into(),
    }
}

impl Model {
    fn get(&self, path: &str) -> Option<Node> {
        if path == "/" {
            return Some(Node::Dir);
        }
        self.nodes.get(path).copied()
    }

    /// The errors of resolving the parent directory of `path`.
    fn check_parent(&self, path: &str) -> Outcome {
        let parent = parent_of(path);
        let mut cur = String::new();
        for c in parent.split('/').filter(|c| !c.is_empty()) {
            cur.push('/');
            cur.push_str(c);
            match self.get(&cur) {
                None => return Some("NotFound"),
                Some(Node::File(_)) => return Some("NotADirectory"),
                Some(Node::Dir) => {}
            }
        }
        None
    }

    fn children(&self, dir: &str) -> Vec<String> {
        let prefix = if dir == "/" {
            "/".to_string()
        } else {
            format!("{dir}/")
        };
        self.nodes
            .keys()
            .filter(|k| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
            .cloned()
            .collect()
    }

    fn drop_file(&mut self, id: u32) {
        let n = self.nlink.get_mut(&id).expect("live file");
        *n -= 1;
        if *n == 0 {
            self.nlink.remove(&id);
            self.mode.remove(&id);
        }
    }

    fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Chmod(p, mode) => {
                if let Some(e) = self.check_parent(p) {
                    return Some(e);
                }
                match self.get(p) {
                    None => Some("NotFound"),
                    Some(Node::Dir) => None, // not run on directories
                    Some(Node::File(id)) => {
                        self.mode.insert(id, *mode);
                        None
                    }
                }
            }
            Op::Snap(p) => {
                if let Some(e) = self.check_parent(p) {
                    return Some(e);
                }
                match self.get(p) {
                    None => Some("NotFound"),
                    Some(_) => None,
                }
            }
            Op::Retire(_) => None,
            Op::Mkdir(p) | Op::Create(p) => {
                if let Some(e) = self.check_parent(p) {
                    return Some(e);
                }
                if self.get(p).is_some() {
                    return Some("Exists");
                }
                let node = if matches!(op, Op::Mkdir(_)) {
                    Node::Dir
                } else {
                    self.next_file += 1;
                    self.nlink.insert(self.next_file, 1);
                    self.mode.insert(self.next_file, 0o644);
                    Node::File(self.next_file)
                };
                self.nodes.insert(p.clone(), node);
                None
            }
            Op::Unlink(p) => {
                if let Some(e) = self.check_parent(p) {
                    return Some(e);
                }
                match self.get(p) {
                    None => Some("NotFound"),
                    Some(Node::Dir) => Some("IsADirectory"),
                    Some(Node::File(id)) => {
                        self.nodes.remove(p);
                        self.drop_file(id);
                        None
                    }
                }
            }
            Op::Rmdir(p) => {
                if let Some(e) = self.check_parent(p) {
                    return Some(e);
                }
                match self.get(p) {
                    None => Some("NotFound"),
                    Some(Node::File(_)) => Some("NotADirectory"),
                    Some(Node::Dir) if !self.children(p).is_empty() => Some("NotEmpty"),
                    Some(Node::Dir) => {
                        self.nodes.remove(p);
                        None
                    }
                }
            }
            Op::Link(src, dst) => {
                if let Some(e) = self.check_parent(src) {
                    return Some(e);
                }
                let Some(node) = self.get(src) else {
                    return Some("NotFound");
                };
                if let Some(e) = self.check_parent(dst) {
                    return Some(e);
                }
                let Node::File(id) = node else {
                    return Some("IsADirectory");
                };
                if self.get(dst).is_some() {
                    return Some("Exists");
                }
                *self.nlink.get_mut(&id).expect("live") += 1;
                self.nodes.insert(dst.clone(), node);
                None
            }
            Op::Rename(src, dst, replace) => {
                if let Some(e) = self.check_parent(src) {
                    return Some(e);
                }
                if let Some(e) = self.check_parent(dst) {
                    return Some(e);
                }
                let Some(node) = self.get(src) else {
                    return Some("NotFound");
                };
                if src == dst {
                    return None;
                }
                if node == Node::Dir
                    && (parent_of(dst) == *src || dst.starts_with(&format!("{src}/")))
                {
                    return Some("IntoOwnSubtree");
                }
                if let Some(existing) = self.get(dst) {
                    if !replace {
                        return Some("Exists");
                    }
                    if let (Node::File(a), Node::File(b)) = (node, existing) {
                        if a == b {
                            return None; // two names of one file
                        }
                    }
                    match (node, existing) {
                        (Node::Dir, Node::File(_)) => return Some("NotADirectory"),
                        (Node::File(_), Node::Dir) => return Some("IsADirectory"),
                        (Node::Dir, Node::Dir) if !self.children(dst).is_empty() => {
                            return Some("NotEmpty")
                        }
                        (_, Node::File(id)) => {
                            self.nodes.remove(dst);
                            self.drop_file(id);
                        }
                        _ => {
                            self.nodes.remove(dst);
                        }
                    }
                }
                let moved: Vec<(String, Node)> = self
                    .nodes
                    .iter()
                    .filter(|(k, _)| *k == src || k.starts_with(&format!("{src}/")))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                for (k, v) in moved {
                    self.nodes.remove(&k);
                    self.nodes.insert(format!("{dst}{}", &k[src.len()..]), v);
                }
                None
            }
        }
    }
}

fn run_op(vol: &Volume, op: &Op, name: &str) -> Outcome {
    let p = |s: &str| NokvPath::parse(s).unwrap();
    let r = match op {
        Op::Chmod(x, mode) => match vol.stat_path(&p(x), false) {
            Ok(a) if a.kind == FileKind::Dir => Ok(()),
            _ => vol
                .setattr_path(
                    &p(x),
                    nokv_types::SetAttr {
                        mode: Some(*mode),
                        ..Default::default()
                    },
                )
                .map(|_| ()),
        },
        Op::Snap(x) => vol.snapshot_create(&p(x), name).map(|_| ()),
        Op::Retire(_) => vol.snapshot_retire(name).map(|_| ()),
        Op::Mkdir(x) => vol.mkdir_path(&p(x), dir_owner(), false).map(|_| ()),
        Op::Create(x) => vol.create_path(&p(x), owner(), true).map(|_| ()),
        Op::Unlink(x) => vol.unlink_path(&p(x)),
        Op::Rmdir(x) => vol.rmdir_path(&p(x)),
        Op::Link(a, b) => vol.link_path(&p(a), &p(b)).map(|_| ()),
        Op::Rename(a, b, replace) => {
            let mode = if *replace {
                RenameMode::Replace
            } else {
                RenameMode::NoReplace
            };
            vol.rename_path(&p(a), &p(b), mode)
        }
    };
    r.err().map(|e| kind_of(&e))
}

fn row(a: &nokv_types::Attr) -> (FileKind, u32, u32) {
    let mode = if a.kind == FileKind::File { a.mode } else { 0 };
    (a.kind, a.nlink, mode)
}

/// Every path of the volume (or of snapshot `at`, relative to its root;
/// the root itself as "") with kind, link count and mode. Listings are
/// paged in pages of 2 to exercise the snapshot merge of live entries
/// and history.
fn state(vol: &Volume, at: Option<&str>) -> State {
    let mut out = BTreeMap::new();
    let root = match at {
        None => vol.getattr(nokv_types::ROOT_INO).unwrap(),
        Some(s) => vol.snapshot_root(s).unwrap(),
    };
    if at.is_some() {
        out.insert(String::new(), row(&root));
    }
    if root.kind != FileKind::Dir {
        return out;
    }
    let mut stack = vec![(String::new(), root.ino)];
    while let Some((dir, ino)) = stack.pop() {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = match at {
                None => vol.readdirplus(ino, after.as_deref(), 2).unwrap(),
                Some(s) => vol.readdirplus_at(s, ino, after.as_deref(), 2).unwrap(),
            };
            for e in page.entries {
                let path = format!("{dir}/{}", e.name_lossy());
                if e.attr.kind == FileKind::Dir {
                    stack.push((path.clone(), e.attr.ino));
                }
                out.insert(path, row(&e.attr));
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    out
}

fn node_row(model: &Model, path: &str, node: Node) -> (FileKind, u32, u32) {
    match node {
        Node::Dir => {
            let subdirs = model
                .children(path)
                .iter()
                .filter(|c| model.get(c) == Some(Node::Dir))
                .count() as u32;
            (FileKind::Dir, 2 + subdirs, 0)
        }
        Node::File(id) => (FileKind::File, model.nlink[&id], model.mode[&id]),
    }
}

fn expected(model: &Model) -> State {
    model
        .nodes
        .iter()
        .map(|(path, node)| (path.clone(), node_row(model, path, *node)))
        .collect()
}

/// What a snapshot of `root` taken now must read: paths relative to it.
fn expected_at(model: &Model, root: &str) -> State {
    let mut out = BTreeMap::new();
    let Some(node) = model.get(root) else {
        return out;
    };
    out.insert(String::new(), node_row(model, root, node));
    let base = root.trim_end_matches('/');
    for (path, node) in &model.nodes {
        if let Some(rest) = path.strip_prefix(base).filter(|r| r.starts_with('/')) {
            out.insert(rest.to_string(), node_row(model, path, *node));
        }
    }
    out
}

fn path_strategy() -> impl Strategy<Value = String> {
    // "a" is a prefix of "ab": their history records share a key prefix.
    prop::collection::vec(prop::sample::select(vec!["a", "b", "ab"]), 1..=3)
        .prop_map(|parts| format!("/{}", parts.join("/")))
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => path_strategy().prop_map(Op::Mkdir),
        3 => path_strategy().prop_map(Op::Create),
        1 => path_strategy().prop_map(Op::Unlink),
        1 => path_strategy().prop_map(Op::Rmdir),
        2 => (path_strategy(), path_strategy(), any::<bool>()).prop_map(|(a, b, r)| Op::Rename(a, b, r)),
        1 => (path_strategy(), path_strategy()).prop_map(|(a, b)| Op::Link(a, b)),
        1 => (path_strategy(), 0o400u32..0o777).prop_map(|(a, m)| Op::Chmod(a, m)),
        1 => prop_oneof![Just("/".to_string()), path_strategy()].prop_map(Op::Snap),
        1 => any::<usize>().prop_map(Op::Retire),
    ]
}

/// Deletes all history no live snapshot needs.
fn prune(vol: &Volume) -> u64 {
    let mut after = None;
    let mut total = 0;
    loop {
        let reply = nokv_meta::execute(vol, nokv_meta::MetaOp::PruneHistory { after, limit: 3 });
        match reply.unwrap() {
            nokv_meta::MetaReply::Pruned { deleted, next } => {
                total += deleted;
                match next {
                    Some(n) => after = Some(n),
                    None => return total,
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn namespace_matches_model(ops in prop::collection::vec(op_strategy(), 1..60)) {
        let (_d, vol) = new_volume(Durability::Async);
        let mut model = Model::default();
        // Live snapshots: name -> what they must read.
        let mut live: Vec<(String, State)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            let mut name = format!("s{i}");
            if let Op::Retire(k) = op {
                if live.is_empty() {
                    continue;
                }
                name = live.remove(k % live.len()).0;
            }
            let want = model.apply(op);
            let got = run_op(&vol, op, &name);
            prop_assert_eq!(got, want, "op {} {:?}", i, op);
            match op {
                Op::Snap(root) if want.is_none() => live.push((name, expected_at(&model, root))),
                Op::Retire(_) => {
                    prune(&vol);
                }
                _ => {}
            }
            prop_assert_eq!(state(&vol, None), expected(&model), "after op {} {:?}", i, op);
            for (snap, want) in &live {
                prop_assert_eq!(&state(&vol, Some(snap)), want, "snapshot {} after op {} {:?}", snap, i, op);
            }
        }
        // Retiring everything leaves no history behind.
        for (snap, _) in live.drain(..) {
            vol.snapshot_retire(&snap).unwrap();
        }
        prune(&vol);
        prop_assert_eq!(vol.snapshots().len(), 0);
        prop_assert_eq!(vol.history_records().unwrap(), 0);
    }
}
