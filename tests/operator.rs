//! An operator's planning and housekeeping: `sync --dry-run` (what a sync would fetch, with
//! nothing stored), `snapshots rm` (drop a retained snapshot, here or in the running server)
//! and the unique bytes `snapshots` shows (what removing a snapshot or a source would free).

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::{pattern, sha256_hex, Site};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every file and folder under `dir`, with the hash of each file's bytes: equal before and
/// after only if nothing was added, removed or rewritten.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for path in entries {
            let name = path.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                out.push(format!("{name}/"));
                walk(root, &path, out);
            } else if meta.file_type().is_socket() {
                out.push(format!("{name} (socket)"));
            } else {
                out.push(format!(
                    "{name} {}",
                    sha256_hex(&std::fs::read(&path).unwrap())
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out
}

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 150_000),
        Pkg::new("charlie", "0.3", 3_000),
    ]
}

fn apt_site(upstream: &Upstream, key: &Path) -> Site {
    let line = format!("deb {} bookworm main", upstream.url("/"));
    Site::with(false, &common::apt_source(&line, key, ""))
}

/// The numbers of `deb: would fetch N files (X bytes) new, M files (Y bytes) re-used …`.
fn planned(output: &str) -> (u64, u64) {
    planned_for("deb", output)
}

fn planned_for(source: &str, output: &str) -> (u64, u64) {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("{source}: would fetch ")))
        .unwrap_or_else(|| panic!("no plan for `{source}` in: {output}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(|w| w.parse().unwrap())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn dry_run_plans_exactly_what_the_next_sync_fetches_and_stores_nothing() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key());
    let deb_bytes = |pkgs: &[Pkg]| -> u64 {
        pkgs.iter()
            .map(|pkg| {
                let path = repo.root().join(repo.deb_path("bookworm", "main", pkg));
                std::fs::metadata(path).unwrap().len()
            })
            .sum()
    };

    // Before the first sync: everything is new, and no data dir is made.
    let out = site.cli(&["sync", "--dry-run", "deb"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        planned(&text(&out)),
        (3, deb_bytes(&packages())),
        "{}",
        text(&out)
    );
    assert!(!site.data().exists(), "a dry run made the data dir");
    let out = site.cli(&["sync", "deb"]);
    assert!(out.status.success(), "{}", text(&out));

    // Nothing changed upstream: nothing to fetch.
    let out = site.cli(&["sync", "--dry-run", "deb"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(planned(&text(&out)), (0, 0), "{}", text(&out));

    // Two new packages upstream (a newer Release date).
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut more = packages();
    more.push(Pkg::new("delta", "1.0", 50_000));
    more.push(Pkg::new("echo", "4.2", 7_000));
    repo.suite("bookworm", "main", &more, false, None);
    let new_bytes = deb_bytes(&more[3..]);

    let before = tree(&site.data());
    let out = site.cli(&["sync", "--dry-run", "deb"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert_eq!(planned(&output), (2, new_bytes), "{output}");
    let reused = format!("3 files ({} bytes) re-used", deb_bytes(&packages()));
    assert!(
        output.contains(&reused),
        "the old packages are re-used: {output}"
    );
    assert_eq!(tree(&site.data()), before, "a dry run changed the data dir");

    // While a server holds the data dir, a dry run still plans (and changes nothing).
    let server = site.start_without_sync();
    let before = tree(&site.data());
    let out = site.cli(&["sync", "--dry-run", "deb"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}\n{}", server.log_text());
    assert_eq!(planned(&output), (2, new_bytes), "{output}");
    assert_eq!(tree(&site.data()), before, "a dry run changed the data dir");
    drop(server);

    // The real sync fetches what was planned.
    let out = site.cli(&["sync", "deb"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains(&format!("stored 2 new files, {new_bytes} bytes")),
        "{output}"
    );
}

/// A `files` source `mirror` of `url`.
fn files_site(url: &str, keys: &str) -> Site {
    Site::with(
        false,
        &format!("[[source]]\nid = \"mirror\"\nkind = \"files\"\nmount = \"/mirror\"\nurl = \"{url}\"\n{keys}\n"),
    )
}

/// Writes `bytes` at `root/path`, dated `day` days after a fixed date (If-Modified-Since is
/// then decided by the test, not by the clock).
fn put(root: &Path, path: &str, bytes: &[u8], day: u64) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000 + day * 86_400);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// Python's `http.server` on a folder: directory listings, HEAD and If-Modified-Since.
struct Python(std::process::Child, String);

impl Python {
    fn serve(root: &Path) -> Python {
        use std::io::BufRead;
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
                "--directory",
            ])
            .arg(root)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("python3 is installed");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split("port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("http.server said {line:?}"))
            .to_string();
        Python(child, format!("http://127.0.0.1:{port}/"))
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dry_run_plans_a_file_tree_from_its_listing_without_fetching_bodies() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let root = upstream_dir.path();
    put(root, "a.iso", &pattern(10_000, 1), 1);
    put(root, "sub/b.bin", &pattern(3_000, 2), 1);
    let python = Python::serve(root);
    let site = files_site(&python.1, "");

    // Sizes come from HEAD: no file body is asked for.
    let out = site.cli(&["sync", "--dry-run", "mirror"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        planned_for("mirror", &text(&out)),
        (2, 13_000),
        "{}",
        text(&out)
    );
    assert!(!site.data().exists(), "a dry run made the data dir");
    let out = site.cli(&["sync", "mirror"]);
    assert!(out.status.success(), "{}", text(&out));

    // One file rewritten (newer date), one added.
    put(root, "a.iso", &pattern(12_000, 3), 2);
    put(root, "c.iso", &pattern(4_000, 4), 2);
    let before = tree(&site.data());
    let out = site.cli(&["sync", "--dry-run", "mirror"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert_eq!(planned_for("mirror", &output), (2, 16_000), "{output}");
    assert!(output.contains("1 files (3000 bytes) re-used"), "{output}");
    assert_eq!(tree(&site.data()), before, "a dry run changed the data dir");
    let out = site.cli(&["sync", "mirror"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(
        output.contains("stored 2 new files, 16000 bytes"),
        "{output}"
    );
}

#[test]
fn dry_run_of_a_checksum_index_fetches_the_index_only() {
    let upstream_dir = tempfile::tempdir().unwrap();
    let root = upstream_dir.path();
    let big = pattern(200_000, 7);
    let sums = format!("{}  big.iso\n", sha256_hex(&big));
    put(root, "iso/big.iso", &big, 1);
    put(root, "iso/SHA256SUMS", sums.as_bytes(), 1);
    let upstream = Upstream::serve(root);
    let site = files_site(&upstream.url("/"), "index = \"iso/SHA256SUMS\"");
    let out = site.cli(&["sync", "--dry-run", "mirror"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert_eq!(planned_for("mirror", &output), (1, 200_000), "{output}");
    assert!(output.contains("1 metadata files"), "{output}");
    // The checksum file crossed the wire; the image did not (its size came from HEAD).
    let sent = upstream
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(sent, sums.len() as u64, "{:?}", upstream.log());
    assert!(!site.data().exists(), "a dry run made the data dir");
}

#[test]
fn dry_run_of_a_dir_source_hashes_and_stores_nothing() {
    let site = Site::new();
    site.store_keys("ingest = \"copy\"");
    std::fs::write(site.public().join("kept"), pattern(1_000, 1)).unwrap();
    assert!(site.cli(&["sync", "site"]).status.success());
    std::fs::write(site.public().join("new"), pattern(2_500, 2)).unwrap();
    let before = tree(&site.data());
    let out = site.cli(&["sync", "--dry-run", "site"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert_eq!(planned_for("site", &output), (1, 2_500), "{output}");
    assert!(output.contains("1 files (1000 bytes) re-used"), "{output}");
    assert_eq!(tree(&site.data()), before, "a dry run changed the data dir");
    let out = site.cli(&["sync", "site"]);
    assert!(
        text(&out).contains("stored 1 new files, 2500 bytes"),
        "{}",
        text(&out)
    );
}

#[test]
fn dry_run_refuses_kinds_it_cannot_plan() {
    let images = tempfile::tempdir().unwrap();
    let site = Site::with(
        false,
        &format!(
            "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/puavo\"\nimage_dir = \"{}\"\nurlbase = \"http://images.example\"\n",
            images.path().display()
        ),
    );
    let out = site.cli(&["sync", "--dry-run", "images"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("`images` is a `puavo` source"),
        "{}",
        text(&out)
    );
    // Asked for every source: the dir source is planned, the Puavo one noted.
    let out = site.cli(&["sync", "--dry-run"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("images: not planned"), "{}", text(&out));
    assert_eq!(planned_for("site", &text(&out)), (0, 0), "{}", text(&out));
    assert!(!site.data().exists(), "a dry run made the data dir");
}

/// One row of `mirrorbox snapshots`.
#[derive(Debug, Clone)]
struct Row {
    source: String,
    id: String,
    unique: u64,
    current: bool,
}

fn rows(site: &Site) -> (Vec<Row>, String) {
    let out = site.cli(&["snapshots"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    let mut rows = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines().skip(1) {
        if line.trim().is_empty() {
            break; // the table ends; the per-source lines follow
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        // source, id, created (6 words), files, bytes, unique, [*]
        rows.push(Row {
            source: fields[0].to_string(),
            id: fields[1].to_string(),
            unique: fields[10].parse().unwrap(),
            current: fields.get(11) == Some(&"*"),
        });
    }
    (rows, output)
}

fn source_unique(output: &str, source: &str) -> u64 {
    let line = output
        .lines()
        .find(|l| l.starts_with(&format!("  {source}: ")))
        .unwrap_or_else(|| panic!("no summary of {source}: {output}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "bytes").unwrap();
    words[at - 1].parse().unwrap()
}

/// Size of the stored manifest whose id starts with `short`.
fn manifest_size(site: &Site, short: &str) -> u64 {
    let path = site
        .data()
        .join("objects/sha256")
        .join(&short[..2])
        .read_dir()
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with(short))
        .unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn gc_freed(output: &str) -> u64 {
    let words: Vec<&str> = output.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "bytes),").unwrap();
    words[at - 1].trim_start_matches('(').parse().unwrap()
}

#[test]
fn snapshots_rm_frees_exactly_the_unique_bytes_and_refuses_current_and_pinned() {
    // A second source shares one file with `site`: those bytes are nobody's alone.
    let site = Site::with(false, "");
    let other = site.dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let config = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{config}\n[[source]]\nid = \"other\"\nkind = \"dir\"\nmount = \"/other\"\npath = \"{}\"\n",
            other.display()
        ),
    )
    .unwrap();
    site.store_keys("ingest = \"copy\"");
    let public = site.public();
    std::fs::write(other.join("shared"), pattern(2_000, 9)).unwrap();
    std::fs::write(public.join("shared"), pattern(2_000, 9)).unwrap();
    std::fs::write(public.join("a"), pattern(1_000, 1)).unwrap();
    assert!(site.cli(&["sync"]).status.success());
    std::fs::write(public.join("a"), pattern(3_000, 2)).unwrap();
    assert!(site.cli(&["sync", "site"]).status.success());
    std::fs::write(public.join("b"), pattern(500, 3)).unwrap();
    assert!(site.cli(&["sync", "site"]).status.success());

    let (all, output) = rows(&site);
    let mine: Vec<Row> = all.iter().filter(|r| r.source == "site").cloned().collect();
    assert_eq!(mine.len(), 3, "{output}");
    let (first, second, third) = (&mine[0], &mine[1], &mine[2]);
    assert!(third.current, "{output}");
    // By hand: the first snapshot alone holds the 1000-byte `a`; the second holds nothing
    // the third lacks; the third alone holds `b`. Each also holds its own manifest.
    assert_eq!(
        first.unique,
        1_000 + manifest_size(&site, &first.id),
        "{output}"
    );
    assert_eq!(second.unique, manifest_size(&site, &second.id), "{output}");
    assert_eq!(
        third.unique,
        500 + manifest_size(&site, &third.id),
        "{output}"
    );
    // The source alone: both versions of `a`, `b` and its three manifests, not `shared`.
    let manifests: u64 = mine.iter().map(|r| manifest_size(&site, &r.id)).sum();
    assert_eq!(
        source_unique(&output, "site"),
        1_000 + 3_000 + 500 + manifests,
        "{output}"
    );
    let other_row = all.iter().find(|r| r.source == "other").unwrap();
    assert_eq!(
        source_unique(&output, "other"),
        manifest_size(&site, &other_row.id),
        "{output}"
    );

    // The current snapshot and a pinned one are refused.
    let out = site.cli(&["snapshots", "rm", "site", &third.id]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is current"), "{}", text(&out));
    assert!(site.cli(&["pin", "site", &second.id]).status.success());
    let out = site.cli(&["snapshots", "rm", "site", &second.id[..8]]);
    assert!(!out.status.success());
    assert!(text(&out).contains("is pinned"), "{}", text(&out));
    assert!(site.cli(&["unpin", "site"]).status.success());
    assert_eq!(rows(&site).0.len(), 4, "nothing was removed");

    // An old one goes (by prefix); GC then frees exactly its unique bytes.
    let out = site.cli(&["snapshots", "rm", "site", &first.id[..6]]);
    assert!(out.status.success(), "{}", text(&out));
    let (left, output) = rows(&site);
    assert!(!left.iter().any(|r| r.id == first.id), "{output}");
    assert_eq!(left.len(), 3, "{output}");
    let out = site.cli(&["gc"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(gc_freed(&text(&out)), first.unique, "{}", text(&out));

    // Through a running server: served no more at once; its GC frees the unique bytes.
    let server = site.start_without_sync();
    let snapshot_url = server.url(&format!("/.snapshots/site/{}/a", second.id));
    assert_eq!(common::status_code(&snapshot_url), "200");
    let out = site.cli(&["snapshots", "rm", "site", &second.id]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(common::status_code(&snapshot_url), "404");
    let out = site.cli(&["gc"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(gc_freed(&text(&out)), second.unique, "{}", text(&out));
    let out = site.cli(&["snapshots", "site"]);
    assert!(
        out.status.success(),
        "plain `snapshots SOURCE` still works: {}",
        text(&out)
    );
    assert_eq!(
        text(&out)
            .lines()
            .filter(|l| l.starts_with("site "))
            .count(),
        1
    );
    let status = common::curl(&[&server.url("/.status.json")]).stdout;
    let status: serde_json::Value = serde_json::from_slice(&status).unwrap();
    let unique = status["sources"][0]["unique_bytes"].as_u64();
    assert_eq!(unique, Some(3_000 + 500 + manifest_size(&site, &third.id)));
}
