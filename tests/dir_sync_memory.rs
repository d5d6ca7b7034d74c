//! The heap a `dir` sync takes does not grow with the number of files: its cold, changed and
//! no-op syncs of 2,000 and of 20,000 files (in folders of 50) peak within a few bytes per
//! file of each other. The heap is counted exactly by this binary's allocator, and this file
//! holds one test, so nothing else allocates meanwhile.

mod common;

use std::path::Path;

use common::heap::peak_of;

use mirrorbox::store::{IngestMode, Store, StoreOptions};
use mirrorbox::sync::dir::DirOptions;

#[global_allocator]
static ALLOCATOR: common::heap::Counting = common::heap::Counting;

fn write_files(root: &Path, files: usize, version: u32) {
    for i in 0..files {
        let folder = root.join(format!("pool/main/{}/f{}", i % 7, i / 50));
        std::fs::create_dir_all(&folder).unwrap();
        let name = folder.join(format!("pkg{i}_1.0_amd64.deb"));
        std::fs::write(name, format!("file {i} version {version}\n")).unwrap();
    }
}

/// The peaks of a cold sync, a sync after a tenth of the files changed, and a no-op sync.
fn peaks(files: usize) -> [usize; 3] {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    write_files(&root, files, 0);
    let options = StoreOptions {
        fsync: false,
        ingest: IngestMode::Copy,
    };
    let store = Store::open(&dir.path().join("data"), &options).unwrap();
    let kind = DirOptions {
        path: root.clone(),
        follow_symlinks_into: Vec::new(),
    };
    let sync = || {
        let report = mirrorbox::sync::run(&store, "s", 3, &kind).unwrap();
        assert_eq!(report.counts.files, files as u64);
        report.changed
    };
    let cold = peak_of(|| assert!(sync())).0;
    write_files(&root, files / 10, 1);
    let changed = peak_of(|| assert!(sync())).0;
    let no_op = peak_of(|| assert!(!sync())).0;
    [cold, changed, no_op]
}

#[test]
fn the_heap_of_a_dir_sync_does_not_grow_with_its_files() {
    let (few, many) = (2_000, 20_000);
    let small = peaks(few);
    let big = peaks(many);
    for (at, name) in ["cold", "changed", "no-op"].iter().enumerate() {
        let per_file = big[at].saturating_sub(small[at]) as f64 / (many - few) as f64;
        eprintln!(
            "{name} sync: heap peak {} B for {few} files, {} B for {many}: {per_file:.1} B per added file",
            small[at], big[at]
        );
        assert!(
            per_file < 32.0,
            "{name} sync: the heap grows by {per_file:.1} B per file"
        );
    }
}
