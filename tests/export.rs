//! `mirrorbox export`: the current snapshots written to a folder as an offline medium, used by
//! the real `apt-get` through a `file://` source and by a second mirrorbox as a `dir` source;
//! incremental exports, `--check`, and an export killed half way.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::{curl, pattern, sha256_hex, Site};

// ---- fixtures -----------------------------------------------------------------------------

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 150_000),
        Pkg::new("charlie", "0.3", 3_000),
    ]
}

/// An apt upstream with `bookworm main` and a site whose apt source `deb` at `/debian`
/// mirrors it, synced once.
struct AptFixture {
    repo: AptRepo,
    _upstream: Upstream,
    site: Site,
}

fn synced_apt() -> AptFixture {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb {} bookworm main", upstream.url("/"));
    let site = Site::with(false, &common::apt_source(&line, &repo.key(), ""));
    sync(&site, "deb");
    AptFixture {
        repo,
        _upstream: upstream,
        site,
    }
}

fn sync(site: &Site, source: &str) {
    let out = site.cli(&["sync", source]);
    assert!(out.status.success(), "sync {source}: {}", text(&out));
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `mirrorbox export DIR ARGS…`, which must succeed; what it printed.
fn export(site: &Site, dir: &Path, args: &[&str]) -> String {
    let mut all = vec!["export", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let out = site.cli(&all);
    assert!(out.status.success(), "export: {}", text(&out));
    text(&out)
}

/// `mirrorbox export --check DIR`: exit status and output.
fn check(site: &Site, dir: &Path) -> (i32, String) {
    let out = site.cli(&["export", "--check", dir.to_str().unwrap()]);
    (out.status.code().unwrap_or(-1), text(&out))
}

/// Every file of the medium except its own bookkeeping, by path: sha256, inode, mtime.
fn walk(dir: &Path) -> BTreeMap<String, (String, u64, i64)> {
    fn visit(root: &Path, at: &Path, out: &mut BTreeMap<String, (String, u64, i64)>) {
        for entry in std::fs::read_dir(at).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            if meta.is_dir() {
                visit(root, &path, out);
            } else if !rel.starts_with(".mirrorbox-export.") {
                let sha = sha256_hex(&std::fs::read(&path).unwrap());
                out.insert(rel, (sha, meta.ino(), meta.mtime()));
            }
        }
    }
    let mut out = BTreeMap::new();
    visit(dir, dir, &mut out);
    out
}

/// The `+`/`-`/`~` lines of an export's report, as (marker, path).
fn reported(report: &str) -> Vec<(char, String)> {
    report
        .lines()
        .filter_map(|line| {
            let marker = line.chars().next()?;
            let rest = line.strip_prefix(['+', '-', '~'])?.trim_start();
            let path = rest.rsplit_once(" (")?.0;
            Some((marker, path.to_string()))
        })
        .collect()
}

/// A site whose `dir` source `site` (at `/files`) holds `files` (path, bytes), synced.
fn dir_site(files: &[(&str, Vec<u8>)], extra: &str) -> Site {
    let site = Site::with(false, extra);
    for (path, bytes) in files {
        let at = site.public().join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, bytes).unwrap();
    }
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "sync: {}", text(&out));
    site
}

// ---- apt and a second mirrorbox read the medium ----------------------------------------

/// apt-get with the medium as a `file://` source: update reads the exported indices and the
/// signature, and a package comes off the medium byte for byte.
#[test]
fn apt_installs_from_the_exported_medium() {
    let fixture = synced_apt();
    let medium = tempfile::tempdir().unwrap();
    let report = export(&fixture.site, medium.path(), &[]);
    assert!(report.contains("exported "), "{report}");
    let line = format!(
        "deb [signed-by={}] file://{}/debian bookworm main",
        fixture.repo.key().display(),
        medium.path().display()
    );
    let client = AptClient::new(&line);
    let (ok, out) = client.run(&["update"]);
    assert!(ok, "apt-get update: {out}");
    // apt uses a file: source in place instead of copying it into its cache; `apt-get
    // download` copies it into the working folder.
    let into = tempfile::tempdir().unwrap();
    let out = client
        .command()
        .args(["download", "bravo"])
        .current_dir(into.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "apt-get download: {}", text(&out));
    let pkg = &packages()[1];
    let got = std::fs::read(into.path().join(pkg.file_name())).unwrap();
    let want = std::fs::read(
        fixture
            .repo
            .root()
            .join(fixture.repo.deb_path("bookworm", "main", pkg)),
    )
    .unwrap();
    assert!(got == want, "{} differs", pkg.file_name());
}

/// Another mirrorbox with a `dir` source on the medium (exported while the first one runs)
/// serves what the first one serves.
#[test]
fn a_dir_source_on_the_medium_serves_the_same_bytes() {
    let fixture = synced_apt();
    // Exported while the first mirrorbox serves: export does not need the data-dir lock.
    let first = fixture.site.start_without_sync();
    let medium = tempfile::tempdir().unwrap();
    export(&fixture.site, medium.path(), &[]);
    let second = Site::with(
        false,
        &format!(
            "[[source]]\nid = \"usb\"\nkind = \"dir\"\nmount = \"/debian\"\npath = \"{}\"\n",
            medium.path().join("debian").display()
        ),
    );
    sync(&second, "usb");
    let second = second.start_without_sync();
    let files = walk(medium.path());
    assert!(files.len() > 5, "{files:?}");
    for path in files.keys() {
        let url_path = format!("/{path}");
        let a = curl(&["-f", &first.url(&url_path)]);
        let b = curl(&["-f", &second.url(&url_path)]);
        assert!(a.status.success() && b.status.success(), "{path}");
        assert!(a.stdout == b.stdout, "{path} differs");
    }
}

// ---- incremental --------------------------------------------------------------------------

/// A second export after the upstream changed writes exactly the changed files, reports
/// exactly them, leaves the others as they were (same inode, same date) and removes the
/// stale ones.
#[test]
fn a_second_export_writes_and_reports_only_what_changed() {
    let fixture = synced_apt();
    let medium = tempfile::tempdir().unwrap();
    let first = export(&fixture.site, medium.path(), &[]);
    let before = walk(medium.path());
    assert!(
        reported(&first).iter().all(|(m, _)| *m == '+'),
        "a first export only adds: {first}"
    );
    assert_eq!(reported(&first).len(), before.len(), "{first}");

    // A newer Release date, bravo upgraded, charlie dropped.
    std::thread::sleep(Duration::from_millis(1100));
    let mut newer = packages();
    newer[1] = Pkg::new("bravo", "2.2", 150_000);
    newer.pop();
    fixture.repo.suite("bookworm", "main", &newer, false, None);
    sync(&fixture.site, "deb");

    let second = export(&fixture.site, medium.path(), &[]);
    let after = walk(medium.path());
    let mut expected = Vec::new();
    for (path, (sha, _, _)) in &after {
        match before.get(path) {
            None => expected.push(('+', path.clone())),
            Some((old, _, _)) if old != sha => expected.push(('~', path.clone())),
            Some(_) => {}
        }
    }
    for path in before.keys().filter(|p| !after.contains_key(*p)) {
        expected.push(('-', path.clone()));
    }
    expected.sort_by(|a, b| a.1.cmp(&b.1));
    assert_eq!(reported(&second), expected, "{second}");
    assert!(
        expected
            .iter()
            .any(|(m, p)| *m == '-' && p.contains("charlie")),
        "{second}"
    );
    assert!(
        expected
            .iter()
            .any(|(m, p)| *m == '+' && p.contains("bravo_2.2")),
        "{second}"
    );
    let mut untouched = 0;
    for (path, (sha, inode, mtime)) in &before {
        match after.get(path) {
            Some((new_sha, new_inode, new_mtime)) if new_sha == sha => {
                assert_eq!(
                    (inode, mtime),
                    (new_inode, new_mtime),
                    "{path} was rewritten"
                );
                untouched += 1;
            }
            Some(_) => {}
            None => assert!(!medium.path().join(path).exists(), "{path} is stale"),
        }
    }
    assert!(untouched > 0);
    let (status, out) = check(&fixture.site, medium.path());
    assert_eq!(status, 0, "{out}");

    // Nothing changed since: nothing written.
    let third = export(&fixture.site, medium.path(), &[]);
    assert!(reported(&third).is_empty(), "{third}");
    assert!(third.contains("wrote 0 files, 0 bytes"), "{third}");
    assert_eq!(walk(medium.path()), after);
}

// ---- check --------------------------------------------------------------------------------

/// `--check` finds a file whose bytes changed and a file that is gone, and exits non-zero.
#[test]
fn check_reports_a_damaged_and_a_missing_file() {
    let site = dir_site(
        &[
            ("a.iso", pattern(100_000, 1)),
            ("sub/b.txt", b"bravo".to_vec()),
            ("sub/c.txt", b"charlie".to_vec()),
        ],
        "",
    );
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");
    assert!(out.contains("checked 3 files"), "{out}");

    let damaged = medium.path().join("files/a.iso");
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[50_000] ^= 1;
    std::fs::write(&damaged, bytes).unwrap();
    // An edit an hour later: an export trusts a file of the right size and date (as rsync
    // does), so only `--check` would see damage that kept both.
    let later =
        std::fs::metadata(&damaged).unwrap().modified().unwrap() + Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&damaged)
        .unwrap()
        .set_modified(later)
        .unwrap();
    std::fs::remove_file(medium.path().join("files/sub/c.txt")).unwrap();
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("damaged: files/a.iso: sha256"), "{out}");
    assert!(out.contains("missing: files/sub/c.txt"), "{out}");
    assert!(!out.contains("sub/b.txt"), "{out}");

    // The next export puts both back: the damaged file's date moved, so it was re-hashed.
    let report = export(&site, medium.path(), &[]);
    assert!(report.contains("wrote 2 files"), "{report}");
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");
}

/// A folder that never held an export is an error, not an empty success.
#[test]
fn check_of_a_folder_without_an_export_is_an_error() {
    let site = Site::new();
    let empty = tempfile::tempdir().unwrap();
    let (status, out) = check(&site, empty.path());
    assert_eq!(status, 2, "{out}");
    assert!(out.contains(".mirrorbox-export.json"), "{out}");
}

// ---- interruption -------------------------------------------------------------------------

/// Kill -9 of an export under way: no file under a real name is half written, `--check`
/// says the export was interrupted, and the next export finishes the job.
#[test]
fn an_export_killed_half_way_leaves_no_half_file_and_the_next_one_finishes() {
    let files: Vec<(String, Vec<u8>)> = (0..16)
        .map(|n| (format!("big/{n:02}.img"), pattern(2_000_000, n)))
        .collect();
    let borrowed: Vec<(&str, Vec<u8>)> =
        files.iter().map(|(p, b)| (p.as_str(), b.clone())).collect();
    let site = dir_site(&borrowed, "");
    let medium = tempfile::tempdir().unwrap();

    let mut child = Command::new(common::BIN)
        .arg("export")
        .arg("--config")
        .arg(&site.config)
        .arg(medium.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed as soon as the first file is in place, with most still to copy.
    let first_in_place = medium.path().join("files/big/00.img");
    let marker = medium.path().join(".mirrorbox-export.incomplete");
    while !(marker.exists() && first_in_place.exists()) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the export ended before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let mut real_names = 0;
    for (path, (sha, _, _)) in walk(medium.path()) {
        if path.ends_with(".mirrorbox-part") {
            continue;
        }
        let want = files
            .iter()
            .find(|(p, _)| format!("files/{p}") == path)
            .unwrap_or_else(|| panic!("unexpected file {path}"));
        assert_eq!(sha, sha256_hex(&want.1), "{path} is half written");
        real_names += 1;
    }
    assert!(real_names < files.len(), "the export was not interrupted");
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 1, "{out}");
    assert!(out.contains("was interrupted"), "{out}");

    // The source loses the file the killed export had put in place: the next export knows
    // it from the marker and removes it, though no finished export ever listed it.
    std::fs::remove_file(site.public().join("big/00.img")).unwrap();
    sync(&site, "site");
    let report = export(&site, medium.path(), &[]);
    assert!(
        report.contains("finished an export that had been interrupted"),
        "{report}"
    );
    let after = walk(medium.path());
    assert_eq!(after.len(), files.len() - 1, "{after:?}");
    assert!(!first_in_place.exists());
    for (path, bytes) in &files[1..] {
        let (sha, _, _) = &after[&format!("files/{path}")];
        assert_eq!(*sha, sha256_hex(bytes), "{path}");
    }
    assert!(!marker.exists());
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");
}

// ---- refusals -----------------------------------------------------------------------------

/// A medium inside the data directory is refused.
#[test]
fn a_medium_inside_the_data_dir_is_refused() {
    let site = dir_site(&[("a", b"a".to_vec())], "");
    let inside: PathBuf = site.data().join("usb");
    let out = site.cli(&["export", inside.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("inside the data directory"),
        "{}",
        text(&out)
    );
}

/// A file of one source where another source has a folder: the export names both.
#[test]
fn a_file_where_another_source_has_a_folder_names_both_sources() {
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("inner"), b"x").unwrap();
    let site = dir_site(
        &[("clash", b"a file".to_vec())],
        &format!(
            "[[source]]\nid = \"other\"\nkind = \"dir\"\nmount = \"/files/clash\"\npath = \"{}\"\n",
            other.path().display()
        ),
    );
    let medium = tempfile::tempdir().unwrap();
    let out = site.cli(&["export", medium.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let message = text(&out);
    assert!(
        message.contains("`files/clash` is a file of source `site`")
            && message.contains("folder of source `other`"),
        "{message}"
    );
}

// ---- a part of the sources --------------------------------------------------------------

/// `export DIR SOURCE` updates that source on the medium and leaves the others as they are.
#[test]
fn exporting_one_source_leaves_the_others_on_the_medium() {
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("o.txt"), b"other 1").unwrap();
    let site = dir_site(
        &[("s.txt", b"site 1".to_vec())],
        &format!(
            "[[source]]\nid = \"other\"\nkind = \"dir\"\nmount = \"/other\"\npath = \"{}\"\n",
            other.path().display()
        ),
    );
    let medium = tempfile::tempdir().unwrap();
    export(&site, medium.path(), &[]);
    std::fs::write(site.public().join("s.txt"), b"site 2").unwrap();
    std::fs::write(other.path().join("o.txt"), b"other 2").unwrap();
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "{}", text(&out));

    let report = export(&site, medium.path(), &["site"]);
    assert_eq!(
        reported(&report),
        [('~', "files/s.txt".to_string())],
        "{report}"
    );
    assert_eq!(
        std::fs::read(medium.path().join("files/s.txt")).unwrap(),
        b"site 2"
    );
    assert_eq!(
        std::fs::read(medium.path().join("other/o.txt")).unwrap(),
        b"other 1"
    );
    let (status, out) = check(&site, medium.path());
    assert_eq!(status, 0, "{out}");

    let report = export(&site, medium.path(), &[]);
    assert_eq!(
        reported(&report),
        [('~', "other/o.txt".to_string())],
        "{report}"
    );
}

/// A named source that was never synced has nothing to export: an error, not an empty medium.
#[test]
fn a_named_source_without_a_snapshot_is_refused() {
    let site = Site::new();
    let medium = tempfile::tempdir().unwrap();
    let out = site.cli(&["export", medium.path().to_str().unwrap(), "site"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("source `site` has no snapshot yet"),
        "{}",
        text(&out)
    );
    assert!(!medium.path().join(".mirrorbox-export.incomplete").exists());
}

// ---- a hostile medium ---------------------------------------------------------------------

#[path = "export/hostile.rs"]
mod hostile;
