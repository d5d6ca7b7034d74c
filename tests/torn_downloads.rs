//! An object hard-linked to its original (`ingest = "auto"` on one filesystem) whose original is
//! rewritten in place while a client downloads it: the download must fail (a cut transfer),
//! never complete with a mix of old and new bytes under the old ETag.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{pattern, Site};

#[test]
fn rewriting_a_hard_linked_original_cuts_a_download_under_way() {
    let site = Site::new();
    site.store_keys("ingest = \"auto\"");
    let original = site.public().join("big.img");
    let old = pattern(24 * 1024 * 1024, 61);
    std::fs::write(&original, &old).unwrap();
    let server = site.start();
    // The scenario needs a hard link (no reflink support on the test filesystem).
    let links = std::fs::metadata(&original).unwrap().nlink();
    assert_eq!(links, 2, "the original was not hard-linked into the store");

    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("big.img");
    let mut curl = Command::new("curl")
        .args(["-s", "-S", "--max-time", "120", "--limit-rate", "2M", "-o"])
        .arg(&target)
        .arg(server.url("/files/big.img"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("curl is installed");
    // Once the first bytes are in, rewrite the original in place: same size, no truncation.
    while std::fs::metadata(&target).map_or(0, |m| m.len()) < 256 * 1024 {
        assert!(curl.try_wait().unwrap().is_none(), "curl ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    let new = pattern(old.len(), 62);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&original)
        .unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&new).unwrap();
    file.sync_all().unwrap();
    drop(file);

    let result = curl.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr);
    let got = std::fs::read(&target).unwrap_or_default();
    assert!(
        matches!(result.status.code(), Some(18) | Some(56)),
        "curl exit {:?} ({stderr}), {} bytes received, equal to old: {}, to new: {}",
        result.status.code(),
        got.len(),
        got == old,
        got == new
    );
    assert!(got.len() < old.len(), "a cut transfer is short");
    assert!(
        server.log_contains("changed while it was sent"),
        "{}",
        server.log_text()
    );
}

#[test]
fn a_rewrite_that_restores_the_mtime_is_still_seen() {
    let site = Site::new();
    site.store_keys("ingest = \"auto\"");
    let original = site.public().join("data.bin");
    let old = pattern(1024 * 1024, 63);
    std::fs::write(&original, &old).unwrap();
    let server = site.start();
    assert_eq!(std::fs::metadata(&original).unwrap().nlink(), 2);
    let first = common::curl(&["-f", &server.url("/files/data.bin")]);
    assert!(first.stdout == old, "first download: {:?}", first.status);

    // Rewrite in place, then put the old mtime back (as `rsync -a --inplace` would).
    let times = site.dir.path().join("times");
    std::fs::write(&times, "").unwrap();
    let touch = |args: &[&std::path::Path]| {
        let status = Command::new("touch").arg("-r").args(args).status().unwrap();
        assert!(status.success());
    };
    touch(&[&original, &times]);
    let new = pattern(old.len(), 64);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(&original)
        .unwrap();
    file.write_all(&new).unwrap();
    drop(file);
    touch(&[&times, &original]);

    let second = common::curl(&[
        "-w",
        "%{http_code}",
        "-o",
        "/dev/null",
        &server.url("/files/data.bin"),
    ]);
    assert_eq!(String::from_utf8_lossy(&second.stdout), "500");
}

#[test]
fn replacing_the_original_by_a_rename_keeps_the_published_object_servable() {
    let site = Site::new();
    site.store_keys("ingest = \"auto\"");
    let original = site.public().join("data.bin");
    let old = pattern(1024 * 1024, 65);
    std::fs::write(&original, &old).unwrap();
    let server = site.start();
    assert_eq!(std::fs::metadata(&original).unwrap().nlink(), 2);
    // The careful way: a new file renamed over the original (the object keeps the old inode,
    // whose link count, and so ctime, changes).
    let tmp = site.public().join("data.bin.partial");
    std::fs::write(&tmp, pattern(old.len(), 66)).unwrap();
    std::fs::rename(&tmp, &original).unwrap();
    // Until the next sync the published snapshot still names the old bytes, and serves them.
    let out = common::curl(&["-f", &server.url("/files/data.bin")]);
    assert!(out.status.success(), "{out:?}\n{}", server.log_text());
    assert!(out.stdout == old, "old bytes expected");
}
