//! Sync, GC and verify of many small files: a `dir` sync publishes exactly the tree as walked
//! (checked against a reference made here by walking the tree), a `kill -9` during a cold sync
//! with `fsync = true` leaves a store that verifies clean and syncs on, and GC removes exactly
//! the objects that no ref names. Small N; `benches/scale.sh` measures the full size.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use common::{Site, BIN};
use sha2::{Digest, Sha256};

/// Files in the generated tree.
const FILES: usize = 5_000;

/// Names whose order as path strings differs from their order as walked folder by folder
/// (`a.txt` < `a/…` < `a0` as strings, `.` and `-` sort before `/`).
const TRICKY: &[&str] = &[
    "a.txt", "a/x", "a/y.deb", "a-b/c", "a0", "a b/c d", "a/b.c/d", "a/b/c", "a/b-c",
];

/// (path, sha256 hex, size, mtime) of one published file.
type Row = (String, String, u64, i64);

fn content(i: usize, version: u64) -> Vec<u8> {
    format!("file {i} version {version}\n")
        .repeat(1 + i % 7)
        .into_bytes()
}

fn tree_path(i: usize) -> String {
    format!(
        "pool/main/{}/pkg{}/pkg{}_{}_amd64.deb",
        (b'a' + (i % 26) as u8) as char,
        i % 300,
        i,
        i % 5
    )
}

/// Writes `path` under `root` with `bytes` and a fixed past mtime (so dates are exact).
fn put(root: &Path, path: &str, bytes: &[u8], mtime: i64) {
    let full = root.join(path);
    std::fs::create_dir_all(full.parent().unwrap()).unwrap();
    std::fs::write(&full, bytes).unwrap();
    let time = UNIX_EPOCH + Duration::from_secs(mtime as u64);
    std::fs::File::options()
        .write(true)
        .open(&full)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

fn write_tree(root: &Path, files: usize) {
    for i in 0..files {
        put(
            root,
            &tree_path(i),
            &content(i, 0),
            1_600_000_000 + i as i64,
        );
    }
    for (i, name) in TRICKY.iter().enumerate() {
        put(root, name, name.as_bytes(), 1_500_000_000 + i as i64);
    }
}

/// The reference: every regular file under `root`, found by a plain recursive walk, sorted
/// by path as a string, with its sha256, size and mtime.
fn reference(root: &Path) -> Vec<Row> {
    fn walk(root: &Path, dir: &Path, rows: &mut Vec<Row>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                walk(root, &entry.path(), rows);
                continue;
            }
            let bytes = std::fs::read(entry.path()).unwrap();
            let path = entry.path();
            let relative = path.strip_prefix(root).unwrap().to_str().unwrap();
            let mtime = meta.modified().unwrap().duration_since(UNIX_EPOCH).unwrap();
            rows.push((
                relative.to_string(),
                hex(&Sha256::digest(&bytes)),
                bytes.len() as u64,
                mtime.as_secs() as i64,
            ));
        }
    }
    let mut rows = Vec::new();
    walk(root, root, &mut rows);
    rows.sort();
    rows
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What the current snapshot publishes, read back through `mirrorbox export` (its manifest
/// lists every file's sha256, size and date as published).
fn published(site: &Site) -> Vec<Row> {
    let medium = site.dir.path().join("medium");
    let _ = std::fs::remove_dir_all(&medium);
    let out = site.cli(&["export", medium.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read(medium.join(".mirrorbox-export.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let mut rows: Vec<Row> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            (
                path.strip_prefix("files/").unwrap_or(path).to_string(),
                f["sha256"].as_str().unwrap().to_string(),
                f["size"].as_u64().unwrap(),
                f["mtime"].as_i64().unwrap(),
            )
        })
        .collect();
    rows.sort();
    rows
}

fn assert_same(published: &[Row], reference: &[Row]) {
    assert_eq!(published.len(), reference.len(), "file count");
    for (p, r) in published.iter().zip(reference) {
        assert_eq!(p, r);
    }
}

fn sync(site: &Site) -> String {
    let (ok, text) = site.cli_text(&["sync"]);
    assert!(ok, "{text}");
    text
}

fn verify_clean(site: &Site, when: &str) {
    let out = site.cli(&["verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{when}: verify failed: {text}");
    assert!(
        text.contains("0 damaged (quarantined), 0 problems"),
        "{when}: {text}"
    );
}

fn configure(site: &Site, store: &str, keep: Option<u32>) {
    let mut config = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("fsync = false", store);
    if let Some(keep) = keep {
        config = config.replace("kind = \"dir\"", &format!("kind = \"dir\"\nkeep = {keep}"));
    }
    std::fs::write(&site.config, config).unwrap();
}

fn objects_on_disk(data: &Path) -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for fan in std::fs::read_dir(data.join("objects/sha256")).unwrap() {
        for object in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            ids.insert(object.unwrap().file_name().into_string().unwrap());
        }
    }
    ids
}

/// Every 64-digit hex word in the files under `dir` (the ids refs name).
fn ids_in(dir: &Path, ids: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            ids_in(&path, ids);
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for word in text.split(|c: char| !c.is_ascii_hexdigit()) {
            if word.len() == 64 {
                ids.insert(word.to_ascii_lowercase());
            }
        }
    }
}

#[test]
fn dir_sync_publishes_the_tree_as_walked() {
    let site = Site::new();
    configure(&site, "fsync = true", None);
    let public = site.public();
    write_tree(&public, FILES);

    let started = Instant::now();
    sync(&site);
    let cold = started.elapsed();
    assert_same(&published(&site), &reference(&public));

    // Change some files, remove some, add some (tricky names among them), and sync again.
    for i in (0..FILES).step_by(97) {
        put(
            &public,
            &tree_path(i),
            &content(i, 1),
            1_700_000_000 + i as i64,
        );
    }
    for i in (5..FILES).step_by(89) {
        let _ = std::fs::remove_file(public.join(tree_path(i)));
    }
    for (i, name) in ["a/b.c/e", "a.txt0", "a/a", "b", "pool/main/a.deb"]
        .iter()
        .enumerate()
    {
        put(&public, name, name.as_bytes(), 1_650_000_000 + i as i64);
    }
    put(&public, "a.txt", b"changed", 1_700_000_000);
    let text = sync(&site);
    assert!(text.contains("published"), "{text}");
    assert_same(&published(&site), &reference(&public));

    let started = Instant::now();
    let text = sync(&site);
    let noop = started.elapsed();
    assert!(text.contains("unchanged"), "{text}");
    eprintln!(
        "{FILES} files: cold sync (fsync) {cold:?} ({:.0} files/s), no-op sync {noop:?}",
        FILES as f64 / cold.as_secs_f64()
    );
}

#[test]
fn kill_9_during_a_cold_sync_with_fsync_leaves_a_consistent_store() {
    let site = Site::new();
    configure(&site, "fsync = true\ningest = \"copy\"", None);
    let public = site.public();
    write_tree(&public, FILES);

    let mut interrupted = 0;
    for delay in [30u64, 120, 300, 700] {
        let mut child = Command::new(BIN)
            .args(["sync", "--config"])
            .arg(&site.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();
        if !status.success() {
            interrupted += 1;
        }
        verify_clean(&site, &format!("after a kill at {delay} ms"));
        if site.data().join("refs/site/current").exists() {
            // The sync published before the kill: then the snapshot is the whole tree.
            assert_same(&published(&site), &reference(&public));
            break;
        }
    }
    assert!(interrupted >= 1, "no kill landed during a sync");

    sync(&site);
    verify_clean(&site, "after the sync that completed");
    assert_same(&published(&site), &reference(&public));
}

#[test]
fn gc_removes_exactly_the_unreferenced_objects() {
    let site = Site::new();
    configure(&site, "fsync = true\ningest = \"copy\"", Some(1));
    let public = site.public();
    write_tree(&public, 500);
    sync(&site);
    // A new version of some files; with keep = 1 the old snapshot and its own files go.
    for i in (0..500).step_by(3) {
        put(
            &public,
            &tree_path(i),
            &content(i, 2),
            1_700_000_000 + i as i64,
        );
    }
    sync(&site);
    // Objects no ref names: what a sync killed before its publish stored, and a stray one.
    for i in 0..200 {
        put(&public, &format!("late/{i}"), &content(i, 3), 1_700_000_000);
    }
    let mut child = Command::new(BIN)
        .args(["sync", "--config"])
        .arg(&site.config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(150));
    let _ = child.kill();
    let _ = child.wait();
    let stray = b"no snapshot names this";
    let stray_id = hex(&Sha256::digest(stray));
    let fan = site.data().join("objects/sha256").join(&stray_id[..2]);
    std::fs::create_dir_all(&fan).unwrap();
    std::fs::write(fan.join(&stray_id), stray).unwrap();

    let mut live: BTreeSet<String> = published(&site).into_iter().map(|r| r.1).collect();
    ids_in(&site.data().join("refs"), &mut live);
    let before = objects_on_disk(&site.data());
    assert!(before.contains(&stray_id));
    let garbage: BTreeSet<String> = before.difference(&live).cloned().collect();
    assert!(!garbage.is_empty(), "garbage to collect: {garbage:?}");

    let (ok, text) = site.cli_text(&["gc"]);
    assert!(ok, "{text}");
    assert!(
        text.contains(&format!("removed {} objects", garbage.len())),
        "{text}"
    );
    assert_eq!(objects_on_disk(&site.data()), live);
    verify_clean(&site, "after gc");
}

/// A no-op sync publishes nothing and writes no object (unchanged files are not read, and
/// their objects are not looked at); but an object `verify` quarantined is not trusted: the
/// next sync stores its file again, and the file is served right.
#[test]
fn a_no_op_sync_writes_nothing_but_a_quarantined_object_is_stored_again() {
    let site = Site::new();
    configure(&site, "fsync = false\ningest = \"copy\"", None);
    let public = site.public();
    write_tree(&public, 300);
    sync(&site);
    let current = site.data().join("refs/site/current");
    let published_id = std::fs::read_to_string(&current).unwrap();
    let objects = objects_on_disk(&site.data());

    let text = sync(&site);
    assert!(
        text.contains("unchanged") && text.contains("stored 0 new files"),
        "{text}"
    );
    assert_eq!(objects_on_disk(&site.data()), objects, "no object written");
    assert_eq!(std::fs::read_to_string(&current).unwrap(), published_id);
    assert_eq!(
        std::fs::read_dir(site.data().join("tmp")).unwrap().count(),
        0
    );

    // The stored copy of one unchanged file is damaged; verify moves it to quarantine.
    let (path, id, _, _) = reference(&public).swap_remove(42);
    let object = site.data().join("objects/sha256").join(&id[..2]).join(&id);
    let mut permissions = std::fs::metadata(&object).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&object, permissions).unwrap();
    std::fs::write(&object, b"damaged").unwrap();
    let out = site.cli(&["verify"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 damaged (quarantined)"), "{text}");
    assert!(!object.exists(), "{path}: quarantined");

    let text = sync(&site);
    assert!(
        text.contains("stored 1 new files"),
        "{path} stored again: {text}"
    );
    assert!(object.exists());
    verify_clean(&site, "after the sync that stored it again");
    assert_same(&published(&site), &reference(&public));
}
