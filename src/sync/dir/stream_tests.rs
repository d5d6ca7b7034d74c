//! A `dir` sync as `sync::run` drives it: the previous snapshot streamed, a no-op decided
//! without writing, and previous snapshots that are not in path order (hand-made, or JSON
//! from an older mirrorbox) still giving the right snapshot and keeping dates.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::DirOptions;
use crate::manifest::{save_entries, Entry, Manifest, Origin, StoredEntries};
use crate::store::refs::SourceRefs;
use crate::store::tests::store;
use crate::store::{mtime_ns, IngestMode, ObjectId, Store};

const PATHS: &[&str] = &["a b/c", "a.txt", "a/b/c", "a/b0", "a0", "b"];

fn tree(dir: &Path) -> PathBuf {
    let root = dir.join("tree");
    for path in PATHS {
        let file = root.join(path);
        fs::create_dir_all(file.parent().unwrap()).unwrap();
        fs::write(&file, path.as_bytes()).unwrap();
    }
    root
}

/// The entries a sync would have recorded for the tree, dated 7, in reverse path order.
fn recorded(store: &Store, root: &Path) -> Vec<Entry> {
    PATHS
        .iter()
        .rev()
        .map(|path| {
            let meta = fs::metadata(root.join(path)).unwrap();
            Entry {
                path: path.to_string(),
                object: store.put_bytes(path.as_bytes()).unwrap(),
                size: meta.len(),
                mtime: 7,
                stamp: None,
                origin: Some(Origin {
                    size: meta.len(),
                    mtime_ns: mtime_ns(&meta),
                    inode: meta.ino(),
                }),
                immutable: false,
            }
        })
        .collect()
}

fn make_current(store: &Store, id: ObjectId) {
    let refs = SourceRefs {
        current: Some(id),
        snapshots: vec![id],
        pinned: None,
    };
    store.write_refs("s", &refs).unwrap();
}

fn published(store: &Store) -> Vec<Entry> {
    let id = store.read_refs("s").unwrap().current.unwrap();
    StoredEntries::open(store, &id)
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn previous_snapshots_out_of_path_order_still_work() {
    for json in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = tree(dir.path());
        let store = store(&dir.path().join("data"), IngestMode::Copy);
        let entries = recorded(&store, &root);
        let manifest = Manifest {
            entries: entries.clone(),
            ..Manifest::new("s", 0, Vec::new())
        };
        let id = if json {
            store
                .put_bytes(&serde_json::to_vec(&manifest).unwrap())
                .unwrap()
        } else {
            save_entries(&store, &manifest.header(), &manifest.entries).unwrap()
        };
        make_current(&store, id);
        let kind = DirOptions {
            path: root.clone(),
            follow_symlinks_into: Vec::new(),
        };

        // The same files: nothing stored, nothing published.
        let report = crate::sync::run(&store, "s", 3, &kind).unwrap();
        assert!(!report.changed, "json {json}: {report}");
        assert_eq!(report.counts.files_stored, 0, "json {json}");
        assert_eq!(report.counts.files, PATHS.len() as u64);

        // One file changed: a sorted snapshot, every other file keeps its date.
        fs::write(root.join("a0"), b"changed").unwrap();
        let report = crate::sync::run(&store, "s", 3, &kind).unwrap();
        assert!(report.changed, "json {json}: {report}");
        let now = published(&store);
        let paths: Vec<&str> = now.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, PATHS, "json {json}");
        for entry in &now {
            assert_eq!(entry.mtime != 7, entry.path == "a0", "{entry:?}");
            let bytes = fs::read(root.join(&entry.path)).unwrap();
            assert_eq!(store.read(&entry.object).unwrap(), bytes);
        }
    }
}

/// A no-op sync decides that nothing changed without writing a manifest or any object; a
/// file that went away, or came, makes a new snapshot.
#[test]
fn a_no_op_sync_writes_nothing_and_a_removal_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let root = tree(dir.path());
    let store = store(&dir.path().join("data"), IngestMode::Copy);
    let kind = DirOptions {
        path: root.clone(),
        follow_symlinks_into: Vec::new(),
    };
    let first = crate::sync::run(&store, "s", 3, &kind).unwrap();
    assert!(first.changed);
    let created = store.objects_created();
    let again = crate::sync::run(&store, "s", 3, &kind).unwrap();
    assert!(!again.changed, "{again}");
    assert_eq!(again.snapshot, first.snapshot);
    assert_eq!(store.objects_created(), created, "no object written");

    fs::remove_file(root.join("b")).unwrap();
    let removed = crate::sync::run(&store, "s", 3, &kind).unwrap();
    assert!(removed.changed, "the last file went away: {removed}");
    assert_eq!(published(&store).len(), PATHS.len() - 1);
    fs::remove_file(root.join("a b/c")).unwrap();
    let removed = crate::sync::run(&store, "s", 3, &kind).unwrap();
    assert!(removed.changed, "the first file went away: {removed}");
    fs::write(root.join("c"), b"new").unwrap();
    let added = crate::sync::run(&store, "s", 3, &kind).unwrap();
    assert!(added.changed, "a file came: {added}");
    let paths: Vec<String> = published(&store).into_iter().map(|e| e.path).collect();
    assert_eq!(paths, ["a.txt", "a/b/c", "a/b0", "a0", "c"]);
}
