//! A medium that comes back from an offline site may have been prepared by someone hostile:
//! links where the export expects files or folders, a FIFO, a crafted manifest or marker, a
//! second name for one file. The export writes and removes only below its folder and only
//! what it wrote; `--check` never opens what is not a plain file.

use std::fs;
use std::os::unix::fs::{symlink, OpenOptionsExt};
use std::time::{Duration, UNIX_EPOCH};

use serde_json::{json, Value};

use super::*;

const MARKER: &str = ".mirrorbox-export.incomplete";
const MANIFEST: &str = ".mirrorbox-export.json";

/// Changes the medium's manifest (or marker) as a hostile hand would.
fn edit(medium: &Path, name: &str, change: impl FnOnce(&mut Value)) {
    let path = medium.join(name);
    let mut json: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    change(&mut json);
    let files = json["files"].as_array_mut().unwrap();
    files.sort_by_key(|f| f["path"].as_str().unwrap().to_string());
    fs::write(&path, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

fn entry(path: &str, source: &str, bytes: &[u8], mtime: i64) -> Value {
    json!({"path": path, "source": source, "sha256": sha256_hex(bytes), "size": bytes.len(), "mtime": mtime})
}

/// `mirrorbox export DIR ARGS…`, which must fail: what it printed.
fn export_fails(site: &Site, dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["export", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = site.cli(&all);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    text(&out)
}

/// A link at a temp name (of a file, and of the marker) is removed, not written through.
#[test]
fn a_link_at_a_temp_name_is_replaced_not_followed() {
    let site = dir_site(&[("a.txt", b"alpha".to_vec())], "");
    let medium = tempfile::tempdir().unwrap();
    let victims = tempfile::tempdir().unwrap();
    let (one, two) = (victims.path().join("one"), victims.path().join("two"));
    fs::write(&one, b"precious one").unwrap();
    fs::write(&two, b"precious two").unwrap();
    fs::create_dir(medium.path().join("files")).unwrap();
    symlink(
        &one,
        medium.path().join(format!(".{MARKER}.mirrorbox-part")),
    )
    .unwrap();
    symlink(&two, medium.path().join("files/.a.txt.mirrorbox-part")).unwrap();

    export(&site, medium.path(), &[]);
    assert_eq!(fs::read(&one).unwrap(), b"precious one");
    assert_eq!(fs::read(&two).unwrap(), b"precious two");
    let placed = medium.path().join("files/a.txt");
    assert!(fs::symlink_metadata(&placed).unwrap().is_file());
    assert_eq!(fs::read(&placed).unwrap(), b"alpha");
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");
}

/// A manifest listing `evil/x` as a stale file, with `evil` a link out of the medium: the
/// export stops, names the link, and the file it points at stays.
#[test]
fn a_stale_file_behind_a_linked_folder_is_not_removed() {
    let site = dir_site(&[("a.txt", b"alpha".to_vec())], "");
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("x"), b"not the medium's").unwrap();
    symlink(outside.path(), medium.path().join("files/evil")).unwrap();
    edit(medium.path(), MANIFEST, |m| {
        let x = entry("files/evil/x", "site", b"not the medium's", 0);
        m["files"].as_array_mut().unwrap().push(x);
    });

    let out = export_fails(&site, medium.path(), &[]);
    assert!(
        out.contains("files/evil is a symlink on the medium: refusing to follow it"),
        "{out}"
    );
    assert!(outside.path().join("x").is_file());
}

/// A linked folder where the export puts a file: not read, not dated, not written through.
#[test]
fn a_planned_file_behind_a_linked_folder_is_not_touched() {
    let site = dir_site(&[("sub/b.txt", b"bravo".to_vec())], "");
    let medium = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let theirs = outside.path().join("b.txt");
    fs::write(&theirs, b"bravo").unwrap();
    let old = UNIX_EPOCH + Duration::from_secs(1_000_000);
    fs::File::options()
        .write(true)
        .open(&theirs)
        .unwrap()
        .set_modified(old)
        .unwrap();
    fs::create_dir(medium.path().join("files")).unwrap();
    symlink(outside.path(), medium.path().join("files/sub")).unwrap();

    let out = export_fails(&site, medium.path(), &[]);
    assert!(
        out.contains("files/sub is a symlink on the medium: refusing to follow it"),
        "{out}"
    );
    assert_eq!(fs::metadata(&theirs).unwrap().modified().unwrap(), old);
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 1);
}

/// `--check` reports a linked file, a linked folder and a FIFO as damaged, and opens none of
/// them (a FIFO nobody writes to would hang it).
#[test]
fn check_reports_links_and_fifos_as_damaged_without_opening_them() {
    let site = dir_site(
        &[
            ("a.txt", b"alpha".to_vec()),
            ("sub/b.txt", b"bravo".to_vec()),
            ("c.txt", b"charlie".to_vec()),
        ],
        "",
    );
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    let outside = tempfile::tempdir().unwrap();
    let files = medium.path().join("files");
    fs::rename(files.join("a.txt"), outside.path().join("a.txt")).unwrap();
    symlink(outside.path().join("a.txt"), files.join("a.txt")).unwrap();
    fs::rename(files.join("sub"), outside.path().join("sub")).unwrap();
    symlink(outside.path().join("sub"), files.join("sub")).unwrap();
    let fifo = files.join("c.txt");
    fs::remove_file(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Opening a FIFO for writing waits for a reader: this one ends when `--check` opens it,
    // or when the test does below.
    let writer = {
        let fifo = fifo.clone();
        std::thread::spawn(move || drop(fs::File::options().write(true).open(fifo)))
    };

    let (status, out) = check(&site, medium.path());
    drop(
        fs::File::options()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo),
    );
    writer.join().unwrap();
    assert_eq!(status, 1, "{out}");
    assert!(
        out.contains("damaged: files/a.txt: a symlink, not a regular file"),
        "{out}"
    );
    assert!(
        out.contains("damaged: files/sub/b.txt: files/sub is a symlink"),
        "{out}"
    );
    assert!(
        out.contains("damaged: files/c.txt: a FIFO, not a regular file"),
        "{out}"
    );
}

/// Two interrupted exports in a row: the second one's marker still lists what the first one
/// may have written, so the export that finishes removes a file only the first one planned
/// and re-hashes a file the first one may have replaced with bytes of the same size and date.
#[test]
fn a_marker_carries_forward_what_an_earlier_interrupted_export_touched() {
    let site = dir_site(&[("a.txt", b"alpha-1".to_vec())], "");
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    let files = medium.path().join("files");

    // Run 1, interrupted: it planned other bytes for a.txt and a new file, and wrote both.
    let manifest: Value =
        serde_json::from_slice(&fs::read(medium.path().join(MANIFEST)).unwrap()).unwrap();
    let mtime = manifest["files"][0]["mtime"].as_i64().unwrap();
    fs::copy(medium.path().join(MANIFEST), medium.path().join(MARKER)).unwrap();
    edit(medium.path(), MARKER, |m| {
        m["files"] = json!([
            entry("files/a.txt", "site", b"alpha-2", mtime),
            entry("files/new1", "site", b"new one", 0),
        ]);
    });
    fs::write(files.join("a.txt"), b"alpha-2").unwrap();
    let date = UNIX_EPOCH + Duration::from_secs(mtime as u64);
    fs::File::options()
        .write(true)
        .open(files.join("a.txt"))
        .unwrap()
        .set_modified(date)
        .unwrap();
    fs::write(files.join("new1"), b"new one").unwrap();

    // Run 2, interrupted before it reaches a.txt: a file it did not write is in its way.
    fs::create_dir(site.public().join("0")).unwrap();
    fs::write(site.public().join("0/x"), b"zero").unwrap();
    sync(&site, "site");
    fs::write(files.join("0"), b"someone's").unwrap();
    let out = export_fails(&site, medium.path(), &[]);
    assert!(out.contains("is a file the export did not write"), "{out}");

    // Run 3 finishes.
    fs::remove_file(files.join("0")).unwrap();
    let report = export(&site, medium.path(), &[]);
    assert!(report.contains("interrupted"), "{report}");
    assert!(!files.join("new1").exists(), "{report}");
    assert_eq!(fs::read(files.join("a.txt")).unwrap(), b"alpha-1");
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");
}

/// A rename that changes only case, on a medium that ignores case (FAT, exFAT), where both
/// names are one file: simulated with a hard link, the old name is not removed with the new.
#[test]
fn a_stale_path_that_is_the_same_file_as_a_planned_one_stays() {
    let site = dir_site(&[("Foo.txt", b"same bytes".to_vec())], "");
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    fs::rename(site.public().join("Foo.txt"), site.public().join("foo.txt")).unwrap();
    sync(&site, "site");
    let files = medium.path().join("files");
    fs::hard_link(files.join("Foo.txt"), files.join("foo.txt")).unwrap();

    export(&site, medium.path(), &[]);
    assert!(
        files.join("Foo.txt").exists(),
        "the planned file was removed"
    );
    assert_eq!(fs::read(files.join("foo.txt")).unwrap(), b"same bytes");
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");
}

/// A medium folder that holds the data directory is refused, as one inside it is.
#[test]
fn a_medium_holding_the_data_dir_is_refused() {
    let site = dir_site(&[("a", b"a".to_vec())], "");
    let out = export_fails(&site, site.dir.path(), &[]);
    assert!(out.contains("holds the data directory"), "{out}");
    assert!(!site.dir.path().join(MARKER).exists());
}

/// A manifest listing the medium's own marker as a file of a source the export leaves alone
/// is refused with its name, instead of wedging every later export.
#[test]
fn a_manifest_naming_the_marker_as_a_file_is_refused() {
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join("o.txt"), b"other").unwrap();
    let site = dir_site(
        &[("s.txt", b"site".to_vec())],
        &format!(
            "[[source]]\nid = \"other\"\nkind = \"dir\"\nmount = \"/other\"\npath = \"{}\"\n",
            other.path().display()
        ),
    );
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    edit(medium.path(), MANIFEST, |m| {
        let crafted = entry(MARKER, "other", b"crafted", 0);
        m["files"].as_array_mut().unwrap().push(crafted);
    });

    let out = export_fails(&site, medium.path(), &["site"]);
    assert!(
        out.contains(&format!("{MANIFEST} names `{MARKER}`")),
        "{out}"
    );
}
