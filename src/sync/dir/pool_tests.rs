//! The walk with files read by a pool of threads gives what the walk reading each file itself
//! gives: the same entries in the same order, the same reports, the same first error; and it
//! never holds more than its window.

use std::collections::HashSet;
use std::fs;
use std::path::{Path, PathBuf};

use super::cursor::Cursor;
use super::pool::{with_pool_window, WINDOW};
use super::reuse::Trust;
use super::walk::{Out, Walk, WalkError};
use super::DirOptions;
use crate::manifest::{Entry, Manifest};
use crate::store::tests::store;
use crate::store::{IngestMode, Store};
use crate::sync::confine::Confinement;
use crate::sync::{SyncError, SyncReport};

/// A walk of `root` against `previous` with `workers` threads reading files, at time `now`.
fn walk(
    store: &Store,
    root: &Path,
    into: &[PathBuf],
    previous: &[Entry],
    workers: usize,
) -> (Result<Vec<Entry>, String>, SyncReport) {
    let confine = Confinement::new(root, into).unwrap();
    let mut report = SyncReport::default();
    let walk = Walk {
        store,
        confine: &confine,
        trust: &Trust::nothing(),
        previous: Cursor::new(Box::new(previous.iter().cloned().map(Ok))),
        ancestors: HashSet::new(),
        out: Out::Collect(Vec::new()),
        now: 1_700_000_000,
        report: &mut report,
        workers,
    };
    let result = walk.run().map_err(|e| match e {
        WalkError::Sync(e) => e.to_string(),
        WalkError::Unsorted(_) => "unsorted".to_string(),
    });
    (result, report)
}

/// A small pseudo-random generator (xorshift), seeded: the same tree every run.
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A tree of `files` files in nested folders (some large enough to stream), a symlink to a
/// file and one to a folder (both inside), a dangling symlink and a FIFO (both skipped).
fn random_tree(root: &Path, files: usize, random: &mut Random) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    for i in 0..files {
        let depth = random.below(4);
        let mut path = root.to_path_buf();
        for _ in 0..depth {
            path.push(format!("d{}", random.below(5)));
        }
        path.push(format!("f{i}.{}", random.below(3)));
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let size = match random.below(50) {
            0 => 300_000 + random.below(300_000) as usize,
            _ => random.below(400) as usize,
        };
        let byte = random.below(256) as u8;
        fs::write(&path, vec![byte; size]).unwrap();
        paths.push(path);
    }
    std::os::unix::fs::symlink(&paths[0], root.join("link-to-file")).unwrap();
    std::os::unix::fs::symlink(root.join("d1"), root.join("link-to-folder")).unwrap();
    std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();
    let fifo = root.join("d2/fifo");
    fs::create_dir_all(fifo.parent().unwrap()).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
    paths
}

#[test]
fn a_walk_with_a_pool_gives_what_a_walk_alone_gives() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    // More files to ingest than the window holds, so the walk waits for a full window too.
    let paths = random_tree(&root, 2 * WINDOW + 100, &mut random);
    let alone = store(&dir.path().join("alone"), IngestMode::Copy);
    let pooled = store(&dir.path().join("pooled"), IngestMode::Copy);

    let (first, first_report) = walk(&alone, &root, &[], &[], 1);
    let first = first.unwrap();
    let (again, again_report) = walk(&pooled, &root, &[], &[], 3);
    assert_eq!(again.unwrap(), first, "a cold walk");
    assert_eq!(format!("{again_report:?}"), format!("{first_report:?}"));
    assert!(first.iter().any(|e| e.path.starts_with("link-to-folder/")));
    assert!(first.iter().any(|e| e.path == "link-to-file"));

    // Some files changed, some new, most unchanged: reused in between the ingested ones.
    for path in paths.iter().step_by(7) {
        fs::write(path, format!("changed {}", path.display())).unwrap();
    }
    fs::write(root.join("d3/new"), b"new").unwrap();
    let (second, second_report) = walk(&alone, &root, &[], &first, 1);
    let (pooled_second, pooled_report) = walk(&pooled, &root, &[], &first, 3);
    let second = second.unwrap();
    assert_eq!(pooled_second.unwrap(), second, "a walk against a snapshot");
    assert_eq!(format!("{pooled_report:?}"), format!("{second_report:?}"));
    assert!(second_report.counts.files_stored > 0);
    assert!((second_report.counts.files_stored as usize) < paths.len() / 3);
    for entry in second.iter().step_by(13) {
        let bytes = fs::read(root.join(&entry.path)).unwrap();
        assert_eq!(pooled.read(&entry.object).unwrap(), bytes, "{}", entry.path);
    }
}

/// A file that cannot be read: mode 000, or as root (who may read any file) a write-only
/// kernel setting reached through a symlink. Returns the folders links may lead into, and the
/// name an error about the file gives (the file itself, not the link).
fn unreadable(path: &Path) -> (Vec<PathBuf>, &'static str) {
    if std::os::unix::fs::MetadataExt::uid(&fs::metadata("/proc/self").unwrap()) == 0 {
        std::os::unix::fs::symlink("/proc/sys/vm/drop_caches", path).unwrap();
        (
            vec![PathBuf::from("/proc/sys/vm")],
            "/proc/sys/vm/drop_caches",
        )
    } else {
        fs::write(path, b"secret").unwrap();
        let mut permissions = fs::metadata(path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o000);
        fs::set_permissions(path, permissions).unwrap();
        (Vec::new(), "/unreadable")
    }
}

#[test]
fn an_unreadable_file_fails_the_walk_as_it_would_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let mut random = Random(7);
    random_tree(&root, 600, &mut random);
    // Met in the middle of the walk, with files to ingest before and after it.
    let (into, name) = unreadable(&root.join("d2/unreadable"));
    let alone = store(&dir.path().join("alone"), IngestMode::Copy);
    let pooled = store(&dir.path().join("pooled"), IngestMode::Copy);
    let (failed, _) = walk(&alone, &root, &into, &[], 1);
    let (pooled_failed, _) = walk(&pooled, &root, &into, &[], 3);
    let message = failed.unwrap_err();
    assert!(message.contains(name), "{message}");
    assert_eq!(pooled_failed.unwrap_err(), message);
}

/// A sync that fails on a file names it, and the snapshot published before stays.
#[test]
fn a_failed_sync_names_the_file_and_keeps_the_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tree");
    let mut random = Random(11);
    random_tree(&root, 400, &mut random);
    let store = store(&dir.path().join("data"), IngestMode::Copy);
    let mut kind = DirOptions {
        path: root.clone(),
        follow_symlinks_into: Vec::new(),
    };
    let first = crate::sync::run(&store, "s", 3, &kind).unwrap();
    let published = store.read_refs("s").unwrap().current;
    let short = first.snapshot.unwrap();
    assert!(published.unwrap().to_hex().starts_with(&short), "{short}");

    let (into, name) = unreadable(&root.join("d1/unreadable"));
    kind.follow_symlinks_into = into;
    fs::write(root.join("d0/changed"), b"a file to store").unwrap();
    let failed = crate::sync::run(&store, "s", 3, &kind).unwrap_err();
    assert!(matches!(failed, SyncError::Store(_)), "{failed:?}");
    assert!(failed.to_string().contains(name), "{failed}");
    assert_eq!(store.read_refs("s").unwrap().current, published);
    let manifest = Manifest::load(&store, &published.unwrap()).unwrap();
    assert!(!manifest.entries.iter().any(|e| e.path.contains("changed")));
}

/// The window never holds more than its limit, however slow its first item.
#[test]
fn the_window_holds_at_most_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir.path().join("data"), IngestMode::Copy);
    let files: Vec<PathBuf> = (0..100)
        .map(|i| {
            let path = dir.path().join(format!("f{i}"));
            let size = if i % 10 == 0 { 1_000_000 } else { 10 };
            fs::write(&path, vec![i as u8; size]).unwrap();
            path
        })
        .collect();
    let limit = 4;
    let (taken, most) = with_pool_window(&store, 3, limit, |pool| {
        let (mut taken, mut most) = (Vec::new(), 0);
        for (i, path) in files.iter().enumerate() {
            if i % 3 == 0 {
                pool.ready(i);
            } else {
                pool.ingest(i, path.clone());
            }
            most = most.max(pool.waiting());
            while let Some((i, ingested)) = pool.next(false) {
                assert_eq!(ingested.is_some(), i % 3 != 0);
                if let Some(ingested) = ingested {
                    assert_eq!(
                        ingested.unwrap().size,
                        fs::metadata(&files[i]).unwrap().len()
                    );
                }
                taken.push(i);
            }
            assert!(pool.waiting() < limit, "{} waiting", pool.waiting());
        }
        while let Some((i, _)) = pool.next(true) {
            taken.push(i);
        }
        (taken, most)
    });
    assert_eq!(taken, (0..100).collect::<Vec<_>>(), "taken in order");
    assert!(most <= limit, "{most} items at once");
}

/// A store that may hard-link ingests on the walk's thread: two links of one inode at once
/// would move the ctime an object's stamp recorded (see `pool::workers`).
#[test]
fn only_a_copying_store_gets_workers() {
    let dir = tempfile::tempdir().unwrap();
    let linking = store(&dir.path().join("auto"), IngestMode::Auto);
    assert_eq!(super::pool::workers(&linking), 1);
    let copying = store(&dir.path().join("copy"), IngestMode::Copy);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(super::pool::workers(&copying), cores.min(4));
}
