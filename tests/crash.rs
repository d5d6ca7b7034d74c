//! Crash safety: `kill -9` of `mirrorbox sync` at random points during ingest, again and
//! again. After each, `mirrorbox verify` finds nothing wrong, and the snapshot that was current
//! before (or a complete new one, if the sync finished first) is what is published.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pattern, Client, Site, BIN};

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
