//! The app builds a view only when it serves, and a damaged manifest never replaces the view.

use std::fs;
use std::path::Path;

use super::App;
use crate::config::Config;
use crate::counting_alloc::allocations;
use crate::store::refs::SourceRefs;

/// A data dir with one `dir` source over `tree`.
fn config(dir: &Path) -> Config {
    let text = format!(
        "data_dir = \"{}\"\n[store]\nfsync = false\n[[source]]\nid = \"t\"\nkind = \"dir\"\nmount = \"/t\"\npath = \"{}\"\nkeep = 3\n",
        dir.join("data").display(),
        dir.join("tree").display()
    );
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

fn write_tree(dir: &Path, files: usize, generation: usize) {
    for i in 0..files {
        let folder = dir.join(format!("tree/pool/p{}", i / 8));
        fs::create_dir_all(&folder).unwrap();
        let changed = if i % 10 == 0 { generation } else { 0 };
        fs::write(folder.join(format!("f{i}.deb")), format!("{i} {changed}")).unwrap();
    }
}

/// A data dir of `files` entries with `snapshots` snapshots, as `mirrorbox sync` leaves it.
fn synced(dir: &Path, files: usize, snapshots: usize) {
    let app = App::open(config(dir)).unwrap();
    for generation in 0..snapshots {
        write_tree(dir, files, generation);
        app.sync_source("t").unwrap();
    }
}

#[test]
fn commands_build_no_view_serving_does() {
    let dir = tempfile::tempdir().unwrap();
    synced(dir.path(), 50, 3);
    let app = App::open(config(dir.path())).unwrap();
    write_tree(dir.path(), 50, 7);
    app.sync_source("t").unwrap();
    app.gc().unwrap();
    assert!(
        app.view.load().is_empty(),
        "a command process builds no view"
    );
    app.serve_view().unwrap();
    assert!(app.view.load().get("/t/pool/p0/f0.deb").is_some());
}

/// What opening the data dir for a command costs does not grow with the entries: no view, no
/// manifest read. Allocations on this thread are counted (exact, unlike bytes, which other
/// tests running at once would disturb).
#[test]
fn opening_for_a_command_costs_the_same_for_1k_and_10k_entries() {
    let open_allocations = |files: usize| {
        let dir = tempfile::tempdir().unwrap();
        synced(dir.path(), files, 1);
        let config = config(dir.path());
        let mut app = None;
        let made = allocations(|| app = Some(App::open(config).unwrap()));
        drop(app);
        made
    };
    let (small, large) = (open_allocations(1_000), open_allocations(10_000));
    assert!(
        large <= small + 100,
        "allocations of App::open: {small} at 1k entries, {large} at 10k"
    );
}

#[test]
fn a_manifest_damaged_at_its_end_fails_the_build_and_the_old_view_stays() {
    let dir = tempfile::tempdir().unwrap();
    synced(dir.path(), 40, 3);
    let app = App::open(config(dir.path())).unwrap();
    let refs = app.store.read_refs("t").unwrap();
    let (oldest, newest) = (refs.snapshots[0], refs.current.unwrap());
    // Serve the oldest snapshot alone first.
    let older = SourceRefs {
        current: Some(oldest),
        snapshots: vec![oldest],
        pinned: None,
    };
    app.store.write_refs("t", &older).unwrap();
    app.serve_view().unwrap();
    let served = |app: &App| app.view.load().get("/t/pool/p0/f0.deb").unwrap();
    let before = served(&app);
    // The newest manifest loses its last byte's value: readable up to the end, where its
    // hash no longer matches.
    let path = app.store.object_path(&newest);
    let mut bytes = fs::read(&path).unwrap();
    *bytes.last_mut().unwrap() ^= 0x01;
    let mut permissions = fs::metadata(&path).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    fs::set_permissions(&path, permissions).unwrap();
    fs::write(&path, &bytes).unwrap();
    app.store.write_refs("t", &refs).unwrap();
    let error = app.refresh_view().unwrap_err().to_string();
    assert!(error.contains("damaged"), "{error}");
    assert_eq!(served(&app), before, "the previous view stays published");
}

/// The status page's "held alone" bytes, counted from the view's files, equal those counted
/// from the manifests.
#[test]
fn unique_bytes_from_the_view_equal_those_from_the_manifests() {
    let dir = tempfile::tempdir().unwrap();
    synced(dir.path(), 60, 3);
    let app = App::open(config(dir.path())).unwrap();
    app.serve_view().unwrap();
    app.track_unique();
    let from_view = app.unique.lock().unwrap().clone();
    let mut from_manifests = |id: &crate::store::ObjectId, each: &mut dyn FnMut(_, u64)| {
        for entry in crate::manifest::StoredEntries::open(&app.store, id)? {
            let entry = entry?;
            each(entry.object, entry.size);
        }
        Ok::<_, crate::manifest::ManifestError>(())
    };
    let expected = crate::store::gc::unique_streamed(&app.store, &mut from_manifests).unwrap();
    assert_eq!(from_view, expected);
    assert!(expected.source("t") > 0);
}
