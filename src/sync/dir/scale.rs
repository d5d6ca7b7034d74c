//! What a cold sync, a no-op sync and a GC of many small files cost, in time and in memory
//! per entry: printed, not asserted (figures depend on the machine). Run with
//! `MIRRORBOX_SCALE_FILES=200000 cargo test --release --lib sync::dir::scale -- --ignored
//! --nocapture`; the tree and the data dir go in a temp folder (`TMPDIR` decides where).

use std::fs;
use std::path::Path;
use std::time::Instant;

use super::{scan, DirOptions};
use crate::manifest::{Manifest, Manifests};
use crate::store::{gc, GcGate, IngestMode, Store, StoreOptions};
use crate::sync::SyncReport;

use crate::counting_alloc::{heap, reset_peak};

/// Runs `work` and prints its time, rate and the heap it took per file (peak and kept).
fn phase<T>(name: &str, files: usize, work: impl FnOnce() -> T) -> T {
    let (before, _) = heap();
    reset_peak();
    let started = Instant::now();
    let result = work();
    let elapsed = started.elapsed();
    let (after, peak) = heap();
    let per = |bytes: usize| bytes.saturating_sub(before) as f64 / files as f64;
    eprintln!(
        "{name}: {files} files in {elapsed:.2?} ({:.0} files/s), heap peak {:.0} B/file, kept {:.0} B/file",
        files as f64 / elapsed.as_secs_f64(),
        per(peak),
        per(after)
    );
    result
}

fn write_tree(root: &Path, files: usize) {
    for i in 0..files {
        let dir = root.join(format!(
            "pool/main/{}/pkg{}",
            (b'a' + (i % 26) as u8) as char,
            i / 4
        ));
        fs::create_dir_all(&dir).unwrap();
        let name = format!("pkg{}_{}_amd64.deb", i / 4, i % 4);
        fs::write(dir.join(name), format!("package {i}\n")).unwrap();
    }
}

#[test]
#[ignore = "a measurement: prints figures, asserts none"]
fn cost_per_file_of_scan_rescan_and_gc() {
    let files = std::env::var("MIRRORBOX_SCALE_FILES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    write_tree(&root, files);
    let options = StoreOptions {
        fsync: true,
        ingest: IngestMode::Auto,
    };
    let store = Store::open(&dir.path().join("data"), &options).unwrap();
    let kind = DirOptions {
        path: root.clone(),
        follow_symlinks_into: Vec::new(),
    };
    eprintln!(
        "an entry in memory: {} B + its path",
        std::mem::size_of::<crate::manifest::Entry>()
    );

    // The tree is on disk before the scan starts, as a mirrored tree would be.
    let _ = std::process::Command::new("sync").status();
    let cold = phase(
        "cold sync (fsync = true; objects flushed, manifest saved, ref written)",
        files,
        || crate::sync::run(&store, "s", 3, &kind).unwrap(),
    );
    assert_eq!(cold.counts.files_stored as usize, files);
    let noop = phase("no-op sync (previous snapshot streamed)", files, || {
        crate::sync::run(&store, "s", 3, &kind).unwrap()
    });
    assert!(!noop.changed);
    assert_eq!(noop.counts.files_stored, 0, "only the cold sync stored");
    let id = store.read_refs("s").unwrap().current.unwrap();
    let previous = phase("load previous manifest whole (a dry run)", files, || {
        Manifest::load(&store, &id).unwrap()
    });
    let entries = phase("no-op scan into memory (a dry run)", files, || {
        scan(
            &store,
            &root,
            &[],
            Some(&previous),
            &mut SyncReport::default(),
        )
        .unwrap()
    });
    assert_eq!(entries.len(), files);
    drop((entries, previous));
    let started = Instant::now();
    let find = std::process::Command::new("find")
        .arg(&root)
        .args(["-printf", "%s %T@\n"])
        .output()
        .unwrap();
    eprintln!(
        "find {} -printf '%s %T@\\n': {:.2?} ({} lines)",
        root.display(),
        started.elapsed(),
        find.stdout.iter().filter(|b| **b == b'\n').count()
    );
    let gate = GcGate::new();
    let swept = phase("gc (mark and sweep)", files, || {
        let live = gc::mark(&store, &Manifests).unwrap();
        gc::sweep(&store, &live, &gate.exclusive()).unwrap()
    });
    assert_eq!(swept.removed, 0);
}
