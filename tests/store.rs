//! The store seen from the command line: the data-dir lock, config errors, verify and
//! quarantine, GC, local ingest that does not double disk use, and files changed in place.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{pattern, Client, Site};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_second_process_on_the_same_data_dir_is_refused_or_delegates() {
    let site = Site::new();
    std::fs::write(site.public().join("a"), b"a").unwrap();
    let server = site.start();
    // `gc` cannot take the lock, so it asks the server through the admin socket.
    let out = site.cli(&["gc"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains("removed"), "{out:?}");
    // A second server is refused with a message that says why.
    let second = std::process::Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        stderr(&second).contains("in use by another mirrorbox process"),
        "{}",
        stderr(&second)
    );
    assert!(
        stderr(&second).contains(&format!("pid {}", server.child.id())),
        "{}",
        stderr(&second)
    );
}

#[test]
fn bad_config_names_file_source_and_key() {
    let site = Site::new();
    let text = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("kind = \"dir\"", "kind = \"dir\"\nkepp = 3");
    std::fs::write(&site.config, text).unwrap();
    let out = site.cli(&["check-config"]);
    assert_eq!(out.status.code(), Some(2));
    let message = stderr(&out);
    assert!(message.contains("mirrorbox.toml"), "{message}");
    assert!(message.contains("source `site`"), "{message}");
    assert!(message.contains("kepp"), "{message}");
}

#[test]
fn check_config_prints_what_is_served_where() {
    let site = Site::new();
    let out = site.cli(&["check-config"]);
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout(&out).contains("source site (dir): served at /files/"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn verify_quarantines_a_damaged_object_and_the_next_sync_repairs_it() {
    let site = Site::new();
    site.store_keys("ingest = \"copy\"");
    let data = pattern(300_000, 5);
    std::fs::write(site.public().join("file.bin"), &data).unwrap();
    assert!(site.cli(&["sync"]).status.success());
    let clean = site.cli(&["verify"]);
    assert!(clean.status.success(), "{clean:?}");
    // Flip one byte of the stored object.
    let hash = common::sha256_hex(&data);
    let object = site
        .data()
        .join("objects/sha256")
        .join(&hash[..2])
        .join(&hash);
    let mut bytes = std::fs::read(&object).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let damaged = site.cli(&["verify"]);
    assert_eq!(damaged.status.code(), Some(1), "{damaged:?}");
    assert!(
        stdout(&damaged).contains(&format!("damaged: {hash}")),
        "{}",
        stdout(&damaged)
    );
    assert!(site.data().join("quarantine").join(&hash).exists());
    // Now the snapshot names a missing object: verify says so.
    let missing = site.cli(&["verify"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stdout(&missing).contains("not stored"),
        "{}",
        stdout(&missing)
    );
    // The file is still in the directory: the next sync stores it again.
    let sync = site.cli(&["sync"]);
    assert!(sync.status.success(), "{sync:?}");
    assert!(site.cli(&["verify"]).status.success());
    assert_eq!(std::fs::read(&object).unwrap(), data);
}

#[test]
fn gc_removes_what_no_retained_snapshot_names() {
    let site = Site::new();
    let text = std::fs::read_to_string(&site.config)
        .unwrap()
        .replace("kind = \"dir\"", "kind = \"dir\"\nkeep = 2");
    std::fs::write(&site.config, text).unwrap();
    site.store_keys("ingest = \"copy\"");
    let mut hashes = Vec::new();
    for version in 0..4u64 {
        let data = pattern(10_000, version);
        hashes.push(common::sha256_hex(&data));
        std::fs::write(site.public().join("f"), &data).unwrap();
        let out = site.cli(&["sync"]);
        assert!(out.status.success(), "{out:?}");
    }
    let exists = |hash: &String| {
        site.data()
            .join("objects/sha256")
            .join(&hash[..2])
            .join(hash)
            .exists()
    };
    // keep = 2: versions 2 and 3 stay, 0 and 1 were collected after their snapshots expired.
    assert!(!exists(&hashes[0]) && !exists(&hashes[1]));
    assert!(exists(&hashes[2]) && exists(&hashes[3]));
    let snapshots = stdout(&site.cli(&["snapshots"]));
    assert_eq!(
        snapshots.lines().filter(|l| l.starts_with("site")).count(),
        2,
        "{snapshots}"
    );
}

#[test]
fn local_files_are_not_copied_and_in_place_changes_are_never_served_under_the_old_hash() {
    in_place_change(2_000_000);
}

#[test]
fn small_files_served_from_memory_are_checked_for_in_place_changes_too() {
    in_place_change(1_000);
}

fn in_place_change(size: usize) {
    let site = Site::new();
    let path = site.public().join("image.img");
    let old = pattern(size, 1);
    std::fs::write(&path, &old).unwrap();
    let server = site.start();
    let hash = common::sha256_hex(&old);
    let object = site
        .data()
        .join("objects/sha256")
        .join(&hash[..2])
        .join(&hash);
    let meta = std::fs::metadata(&object).unwrap();
    let reflinked = meta.ino() != std::fs::metadata(&path).unwrap().ino();
    if !reflinked {
        // Same filesystem, no reflink: a hard link, so no second copy of the bytes.
        assert_eq!(meta.nlink(), 2);
    }
    let mut client = Client::connect(server.http).unwrap();
    let (status, _, body) = client.get("/files/image.img").unwrap();
    assert_eq!((status, body == old), (200, true));

    // Rewrite the original in place (same inode), as `cp new old` does.
    let new = pattern(size, 2);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, &new))
        .unwrap();
    let mut client = Client::connect(server.http).unwrap();
    let (status, headers, body) = client.get("/files/image.img").unwrap();
    if reflinked {
        assert_eq!(
            (status, body == old),
            (200, true),
            "a reflink is a private copy"
        );
    } else {
        assert_eq!(
            status, 500,
            "changed bytes must not be served under the old ETag"
        );
        assert!(!headers
            .iter()
            .any(|(k, v)| k == "etag" && v.contains(&hash[..32])));
        assert!(server.log_contains("changed on disk since it was stored"));
    }
    // After a sync the new content is published under its own hash.
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "{out:?}");
    let (status, headers, body) = client.get("/files/image.img").unwrap();
    assert_eq!(status, 200);
    assert!(body == new);
    let etag = &headers.iter().find(|(k, _)| k == "etag").unwrap().1;
    assert!(etag.contains(&common::sha256_hex(&new)[..32]));
    // And verify flags the stale old object (its bytes no longer match its name).
    if !reflinked {
        let out = site.cli(&["verify"]);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
}
