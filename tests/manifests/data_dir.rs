//! A data directory across the change of format: JSON manifests of an older mirrorbox keep
//! their snapshots, URLs, pins and diffs; a manifest write that dies or fails leaves the old
//! snapshot; a cut manifest object is reported with its id. Against the real binary.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::common::{curl, sha256_hex, Server, Site, BIN};

/// Stores `bytes` in `data`'s object store the way any mirrorbox does; returns the id.
fn put_object(data: &Path, bytes: &[u8]) -> String {
    let hex = sha256_hex(bytes);
    let path = data.join("objects/sha256").join(&hex[..2]).join(&hex);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    hex
}

fn current(site: &Site) -> String {
    std::fs::read_to_string(site.data().join("refs/site/current"))
        .unwrap()
        .trim()
        .to_string()
}

fn object_bytes(site: &Site, hex: &str) -> Vec<u8> {
    std::fs::read(site.data().join("objects/sha256").join(&hex[..2]).join(hex)).unwrap()
}

fn get(server: &Server, path: &str) -> String {
    let out = curl(&["-sf", &server.url(path)]);
    assert!(out.status.success(), "GET {path}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn a_data_directory_of_json_manifests_keeps_its_snapshots_and_new_ones_are_binary() {
    let site = Site::new();
    std::fs::write(site.public().join("a.txt"), "alpha").unwrap();
    std::fs::write(site.public().join("b.txt"), "bravo").unwrap();

    // The data directory as an older mirrorbox left it: objects, a JSON manifest, refs.
    let data = site.data();
    let a = put_object(&data, b"alpha");
    let b = put_object(&data, b"bravo");
    let json = format!(
        r#"{{"format":1,"source":"site","created":1700000000,"entries":[{{"path":"a.txt","object":"{a}","size":5,"mtime":1600000000}},{{"path":"b.txt","object":"{b}","size":5,"mtime":1600000000}}],"immutability_recorded":true}}"#
    );
    let old = put_object(&data, json.as_bytes());
    std::fs::create_dir_all(data.join("refs/site")).unwrap();
    std::fs::write(data.join("refs/site/current"), format!("{old}\n")).unwrap();
    std::fs::write(data.join("refs/site/snapshots"), format!("{old}\n")).unwrap();
    let old_url = format!("/.snapshots/site/{}", &old[..16]);

    let (ok, text) = site.cli_text(&["snapshots"]);
    assert!(ok && text.contains(&old[..16]), "{text}");
    {
        let server = site.start_without_sync();
        assert_eq!(get(&server, "/files/a.txt"), "alpha");
        assert_eq!(get(&server, &format!("{old_url}/b.txt")), "bravo");
    }

    // The next sync that changes something publishes a binary manifest beside the old one.
    std::fs::write(site.public().join("b.txt"), "bravo two").unwrap();
    let (ok, text) = site.cli_text(&["sync"]);
    assert!(ok && text.contains("published"), "{text}");
    let new = current(&site);
    assert_ne!(new, old);
    assert!(object_bytes(&site, &new).starts_with(b"mbxman"));
    assert_eq!(
        object_bytes(&site, &old),
        json.as_bytes(),
        "the old one is kept as it was"
    );

    let (ok, text) = site.cli_text(&["snapshots"]);
    assert!(
        ok && text.contains(&old[..16]) && text.contains(&new[..16]),
        "{text}"
    );
    let (ok, text) = site.cli_text(&["diff", "site", &old[..16], &new[..16]]);
    assert!(
        ok && text.contains("b.txt") && !text.contains("a.txt"),
        "{text}"
    );

    {
        let server = site.start_without_sync();
        assert_eq!(get(&server, "/files/b.txt"), "bravo two");
        assert_eq!(get(&server, &format!("{old_url}/b.txt")), "bravo");
    }
    let (ok, text) = site.cli_text(&["verify"]);
    assert!(ok, "{text}");

    // The old snapshot can still be pinned (a rollback) by the id it always had.
    let (ok, text) = site.cli_text(&["pin", "site", &old[..16]]);
    assert!(ok, "{text}");
    assert_eq!(current(&site), old);
    let server = site.start_without_sync();
    assert_eq!(get(&server, "/files/b.txt"), "bravo");
    assert_eq!(
        get(&server, &format!("/.snapshots/site/{}/b.txt", &new[..16])),
        "bravo two"
    );
}

/// Runs `mirrorbox sync` with files larger than `max_file` forbidden. The first write past
/// it kills the process (SIGXFSZ), like a crash; with `survive` the signal is ignored and the
/// write fails instead (EFBIG), like a full disk.
fn sync_with_file_size_limit(site: &Site, max_file: u64, survive: bool) -> std::process::Output {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(BIN);
    command.args(["sync", "--config"]).arg(&site.config);
    // SAFETY: between fork and exec the closure only makes two async-signal-safe calls.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: max_file,
                rlim_max: max_file,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if survive {
                libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            }
            Ok(())
        });
    }
    command.output().expect("run mirrorbox")
}

/// A site whose every file is new at each version: 3,000 files of a few bytes, stored by
/// copy, so that only the manifest (about 100 KiB) is larger than 64 KiB.
fn many_small_files() -> Site {
    let site = Site::with(false, "");
    let config = std::fs::read_to_string(&site.config).unwrap();
    let config = config.replace("fsync = false", "fsync = false\ningest = \"copy\"");
    std::fs::write(&site.config, config).unwrap();
    let write_files = |site: &Site, version: &str| {
        for i in 0..3000 {
            let path = site.public().join(format!("f{i:04}.txt"));
            std::fs::write(path, format!("{version} {i}")).unwrap();
        }
    };
    write_files(&site, "one");
    let (ok, text) = site.cli_text(&["sync"]);
    assert!(ok, "{text}");
    let current = current(&site);
    assert!(object_bytes(&site, &current).len() > 64 * 1024);
    write_files(&site, "two");
    site
}

/// Manifests being written, whole or in part, in the data directory's temp folder.
fn manifests_in_tmp(site: &Site) -> Vec<Vec<u8>> {
    std::fs::read_dir(site.data().join("tmp"))
        .unwrap()
        .filter_map(|e| std::fs::read(e.unwrap().path()).ok())
        .filter(|bytes| bytes.starts_with(b"mbxman"))
        .collect()
}

#[test]
fn a_sync_killed_while_writing_its_manifest_leaves_the_old_snapshot() {
    use std::os::unix::process::ExitStatusExt;
    let site = many_small_files();
    let old = current(&site);

    let out = sync_with_file_size_limit(&site, 64 * 1024, false);
    assert_eq!(out.status.signal(), Some(libc::SIGXFSZ), "{out:?}");
    // What it was writing when it died: the new manifest, cut at the limit.
    let cut = manifests_in_tmp(&site);
    assert_eq!(cut.len(), 1);
    assert_eq!(cut[0].len(), 64 * 1024);
    assert_eq!(current(&site), old, "the old snapshot stays current");
    let listed = std::fs::read_to_string(site.data().join("refs/site/snapshots")).unwrap();
    assert_eq!(listed.trim(), old);

    let (ok, text) = site.cli_text(&["verify"]);
    assert!(ok, "{text}");
    let server = site.start_without_sync();
    assert_eq!(get(&server, "/files/f0042.txt"), "one 42");
    drop(server);

    let (ok, text) = site.cli_text(&["sync"]);
    assert!(ok && text.contains("published"), "{text}");
    let server = site.start_without_sync();
    assert_eq!(get(&server, "/files/f0042.txt"), "two 42");
}

#[test]
fn a_manifest_that_cannot_be_written_fails_the_sync_and_leaves_nothing_behind() {
    let site = many_small_files();
    let old = current(&site);

    let out = sync_with_file_size_limit(&site, 64 * 1024, true);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("write manifest"), "{text}");
    assert!(
        manifests_in_tmp(&site).is_empty(),
        "the partial manifest is removed"
    );
    assert_eq!(current(&site), old, "the old snapshot stays current");
    let (ok, text) = site.cli_text(&["snapshots"]);
    assert!(ok && text.contains(&old[..16]), "{text}");
}

#[test]
fn a_truncated_manifest_object_is_reported_with_its_id() {
    let site = Site::new();
    std::fs::write(site.public().join("a.txt"), "alpha").unwrap();
    let (ok, text) = site.cli_text(&["sync"]);
    assert!(ok, "{text}");
    let id = current(&site);
    let path = site.data().join("objects/sha256").join(&id[..2]).join(&id);
    let bytes = std::fs::read(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    let (ok, text) = site.cli_text(&["snapshots"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(&format!("manifest {id} is damaged")),
        "{text}"
    );
}
