//! Crash safety: `kill -9` of `mirrorbox sync` at random points during ingest, again and
//! again. After each, `mirrorbox verify` finds nothing wrong, and the snapshot that was current
//! before (or a complete new one, if the sync finished first) is what is published.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pattern, Client, Site, BIN};
use sha2::{Digest, Sha256};

const FILES: usize = 24;
const SIZE: usize = 1_500_000;

fn version_data(file: usize, version: u64) -> Vec<u8> {
    pattern(SIZE + file, version * 100 + file as u64)
}

fn write_version(site: &Site, version: u64) {
    for file in 0..FILES {
        let path = site.public().join(format!("f{file:02}.bin"));
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, version_data(file, version)).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
    }
}

/// `(current id, file count)` from `mirrorbox snapshots`.
fn current_snapshot(site: &Site) -> String {
    let out = site.cli(&["snapshots"]);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let line = text
        .lines()
        .find(|l| l.trim_end().ends_with('*'))
        .unwrap_or_else(|| panic!("no current snapshot in {text}"));
    line.split_whitespace().nth(1).unwrap().to_string()
}

#[test]
fn kill_9_during_sync_never_damages_the_store() {
    // Copy (not link) ingest with fsync: the slowest path, so kills land mid-ingest.
    let site = Site::with(false, "");
    let config = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("fsync = false", "fsync = true\ningest = \"copy\"");
    std::fs::write(&site.config, config).unwrap();

    write_version(&site, 0);
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "{out:?}");
    let mut current = current_snapshot(&site);
    let mut current_version = 0;
    let mut completed = 0;
    let mut interrupted = 0;

    let mut seed = 0x9e3779b97f4a7c15u64;
    for version in 1..=10u64 {
        write_version(&site, version);
        let mut child = Command::new(BIN)
            .args(["sync", "--config"])
            .arg(&site.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 5 + seed % 400;
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let status = child.wait().unwrap();

        let verify = site.cli(&["verify"]);
        assert!(
            verify.status.success(),
            "after kill at {delay} ms: verify failed: {}",
            String::from_utf8_lossy(&verify.stdout)
        );
        assert!(
            String::from_utf8_lossy(&verify.stdout).contains("0 damaged (quarantined), 0 problems")
        );
        let now = current_snapshot(&site);
        if now != current {
            // The sync got to publish before the kill: then it must be the whole new version.
            completed += 1;
            current = now;
            current_version = version;
        } else {
            interrupted += 1;
        }
        let _ = status;
    }
    assert!(
        interrupted >= 3,
        "kills landed mid-sync only {interrupted} times"
    );

    // The published snapshot is served whole, at its current and its pinned URL.
    let server = site.start_without_sync();
    let mut client = Client::connect(server.http).unwrap();
    for file in 0..FILES {
        let expected = version_data(file, current_version);
        for path in [
            format!("/files/f{file:02}.bin"),
            format!("/.snapshots/site/{current}/f{file:02}.bin"),
        ] {
            let (status, _, body) = client.get(&path).unwrap();
            assert_eq!(status, 200, "{path}");
            assert!(body == expected, "{path}: wrong content");
        }
    }
    // Leftovers of the killed writes were cleared at start.
    assert_eq!(
        std::fs::read_dir(site.data().join("tmp")).unwrap().count(),
        0
    );
    eprintln!("{interrupted} syncs killed mid-way, {completed} completed before the kill");
}

/// The small files of a package pool: `n` files from number `first` on, each its own bytes.
fn write_small_files(site: &Site, first: usize, n: usize) {
    for i in first..first + n {
        let path = site
            .public()
            .join(format!("pool/main/{}/pkg{}/pkg{i}.deb", i % 7, i / 5));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, format!("small file {i}\n").repeat(1 + i % 13)).unwrap();
    }
}

/// Every object folder holds objects only: a name that is not 64 hex digits would be a write
/// left half-done.
fn assert_only_objects(site: &Site) {
    let objects = site.data().join("objects/sha256");
    for fan in std::fs::read_dir(&objects).unwrap() {
        for entry in std::fs::read_dir(fan.unwrap().path()).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit()),
                "a stray file among the objects: {name}"
            );
        }
    }
}

/// `(path, sha256)` of every file the current snapshot publishes, through `mirrorbox export`.
fn published_files(site: &Site) -> Vec<(String, String)> {
    let medium = site.dir.path().join("medium");
    let _ = std::fs::remove_dir_all(&medium);
    let out = site.cli(&["export", medium.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read(medium.join(".mirrorbox-export.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&text).unwrap();
    let mut files: Vec<(String, String)> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let path = f["path"].as_str().unwrap();
            let path = path.strip_prefix("files/").unwrap_or(path).to_string();
            (path, f["sha256"].as_str().unwrap().to_string())
        })
        .collect();
    files.sort();
    files
}

/// What the tree holds: `(path, sha256)` of every file under `public/`.
fn tree_files(site: &Site) -> Vec<(String, String)> {
    fn walk(root: &std::path::Path, dir: &std::path::Path, files: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
                continue;
            }
            let digest = Sha256::digest(std::fs::read(&path).unwrap());
            let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            let relative = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            files.push((relative, hex));
        }
    }
    let mut files = Vec::new();
    walk(&site.public(), &site.public(), &mut files);
    files.sort();
    files
}

#[test]
fn kill_9_during_cold_syncs_of_many_small_files() {
    // Copy ingest with fsync: objects placed under their final names, made durable in one
    // batch before the ref moves. Each round adds new files, so every sync has work to do.
    const BATCH: usize = 1_500;
    const ROUNDS: usize = 6;
    let site = Site::with(false, "");
    let config = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("fsync = false", "fsync = true\ningest = \"copy\"");
    std::fs::write(&site.config, config).unwrap();

    let mut seed = 0x2545f4914f6cdd1du64;
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        write_small_files(&site, round * BATCH, BATCH);
        let mut child = Command::new(BIN)
            .args(["sync", "--config"])
            .arg(&site.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let delay = 10 + seed % 300;
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        let verify = site.cli(&["verify"]);
        let text = String::from_utf8_lossy(&verify.stdout);
        assert!(
            verify.status.success() && text.contains("0 damaged (quarantined), 0 problems"),
            "round {round}, kill at {delay} ms: {text}"
        );
        assert_only_objects(&site);
    }
    assert!(
        interrupted >= 3,
        "kills landed mid-sync only {interrupted} times"
    );

    // A sync after the kills completes and publishes the whole tree, right.
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "{out:?}");
    let verify = site.cli(&["verify"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("0 damaged (quarantined), 0 problems"));
    assert_only_objects(&site);
    assert_eq!(published_files(&site), tree_files(&site));
    assert_eq!(
        std::fs::read_dir(site.data().join("tmp")).unwrap().count(),
        0
    );
    assert!(
        !site.data().join("unsynced").exists(),
        "the batch was flushed and its marker removed"
    );
    eprintln!("{interrupted} of {ROUNDS} cold syncs killed mid-way");
}
