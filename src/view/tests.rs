use super::*;
use crate::manifest::Entry;

fn entry(path: &str, byte: u8, mtime: i64) -> Entry {
    Entry {
        path: path.into(),
        object: ObjectId([byte; 32]),
        size: 1,
        mtime,
        stamp: None,
        origin: None,
        immutable: false,
    }
}

fn source(id: &str, mount: &str, entries: Vec<Entry>) -> SourceSnapshots {
    let manifest = Arc::new(Manifest::new(id, 0, entries));
    SourceSnapshots {
        id: id.into(),
        mount: mount.into(),
        current: Some(manifest.clone()),
        retained: vec![(ObjectId([9; 32]), manifest)],
        fill_in: false,
    }
}

#[test]
fn retained_packages_and_by_hash_fill_in_current_paths() {
    let old = Arc::new(Manifest::new(
        "a",
        0,
        vec![
            entry("dists/x/InRelease", 1, 0),
            entry("dists/x/main/binary-amd64/by-hash/SHA256/old", 2, 0),
            entry("pool/main/a/a_1_amd64.deb", 3, 0),
        ],
    ));
    let new = Arc::new(Manifest::new(
        "a",
        1,
        vec![
            entry("dists/x/InRelease", 4, 1),
            entry("pool/main/a/a_2_amd64.deb", 5, 1),
        ],
    ));
    let view = View::build(&[SourceSnapshots {
        id: "a".into(),
        mount: "/d".into(),
        current: Some(new.clone()),
        retained: vec![(ObjectId([7; 32]), old), (ObjectId([8; 32]), new)],
        fill_in: true,
    }]);
    assert!(
        matches!(view.get("/d/dists/x/InRelease"), Some(Node::File(f)) if f.object == ObjectId([4; 32]))
    );
    assert!(view
        .get("/d/dists/x/main/binary-amd64/by-hash/SHA256/old")
        .is_some());
    assert!(view.get("/d/pool/main/a/a_1_amd64.deb").is_some());
    assert!(view.get("/d/pool/main/a/a_2_amd64.deb").is_some());
    assert!(view.conflicts.is_empty());
}

#[test]
fn shared_mount_makes_one_tree() {
    let view = View::build(&[
        source(
            "a",
            "/debian/pve",
            vec![entry("dists/bookworm/Release", 1, 10)],
        ),
        source(
            "b",
            "/debian/pve",
            vec![entry("dists/bullseye/Release", 2, 20)],
        ),
    ]);
    assert_eq!(view.get("/debian/pve/dists"), Some(Node::Dir));
    let dists = view.dir("/debian/pve/dists").expect("dists is a directory");
    let names: Vec<&str> = dists.children.iter().map(|c| &*c.name).collect();
    assert_eq!(names, ["bookworm", "bullseye"]);
    assert_eq!(dists.mtime, 20);
    assert!(
        matches!(view.get("/debian/pve/dists/bookworm/Release"), Some(Node::File(f)) if f.mtime == 10)
    );
    let root = view.dir("/").expect("root is a directory");
    let names: Vec<&str> = root.children.iter().map(|c| &*c.name).collect();
    assert_eq!(names, [".snapshots", "debian"]);
    assert!(view
        .get("/.snapshots/a/0909090909090909/dists/bookworm/Release")
        .is_some());
    assert!(view.conflicts.is_empty());
}

#[test]
fn first_source_wins_a_conflict() {
    let view = View::build(&[
        source("a", "/x", vec![entry("f", 1, 0)]),
        source("b", "/x", vec![entry("f", 2, 0)]),
    ]);
    assert!(matches!(view.get("/x/f"), Some(Node::File(f)) if f.object == ObjectId([1; 32])));
    assert_eq!(view.conflicts, vec!["/x/f".to_string()]);
}

#[test]
fn root_mount() {
    let view = View::build(&[source("a", "", vec![entry("index.html", 1, 0)])]);
    assert!(matches!(view.get("/index.html"), Some(Node::File(_))));
}

#[test]
fn retired_views_keep_their_objects_alive_while_used() {
    let handle = ViewHandle::new(View::build(&[source("a", "/x", vec![entry("f", 1, 0)])]));
    let held = handle.load();
    handle.publish(View::build(&[source("a", "/x", vec![entry("f", 2, 0)])]));
    let live = |handle: &ViewHandle| {
        let mut live = Vec::new();
        handle.each_live_object(|object| live.push(object));
        live
    };
    assert!(live(&handle).contains(&ObjectId([1; 32])));
    drop(held);
    assert!(!live(&handle).contains(&ObjectId([1; 32])));
}

#[test]
fn keys_not_in_view_form_name_nothing() {
    let view = View::build(&[source("a", "/x", vec![entry("d/f", 1, 0)])]);
    assert_eq!(view.get("/x/d"), Some(Node::Dir));
    for key in ["", "x/d", "/x/d/", "/x/", "/x//d", "//x/d"] {
        assert_eq!(view.get(key), None, "{key:?}");
        assert!(view.dir(key).is_none(), "{key:?}");
    }
}
