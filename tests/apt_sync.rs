//! apt mirroring end to end: generated repositories (dpkg-deb, apt-ftparchive, gpg) served on
//! 127.0.0.1, synced by mirrorbox, and used by the real `apt-get` through mirrorbox.

mod common;

use std::path::Path;
use std::process::Command;

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::{Fault, Upstream};
use common::Site;

/// A site whose config has an apt source `deb` at `/debian` for `suite main`.
fn apt_site(upstream: &Upstream, key: &Path, suite: &str, extra: &str) -> Site {
    let line = format!("deb {} {suite} main", upstream.url("/"));
    Site::with(false, &common::apt_source(&line, key, extra))
}

/// `mirrorbox sync deb` without a server: (success, output).
fn sync(site: &Site) -> (bool, String) {
    site.cli_text(&["sync", "deb"])
}

/// A site with one apt source `id` at `mount` for a sources.list `line`, synced once, and
/// its server (started without a scan).
fn synced_site(id: &str, mount: &str, line: &str, key: &Path) -> (Site, common::Server) {
    let source = format!(
        "[[source]]\nid = \"{id}\"\nkind = \"apt\"\nmount = \"{mount}\"\nrepository = \"{line}\"\nkeys = [\"{}\"]\n",
        key.display()
    );
    let site = Site::with(false, &source);
    let server = site.start_without_sync();
    let out = site.cli(&["sync", id]);
    assert!(out.status.success(), "{out:?}");
    (site, server)
}

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 150_000),
        Pkg::new("charlie", "0.3", 3_000),
    ]
}

fn real_apt_round_trip(layout: Layout) {
    let repo = AptRepo::new(layout);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "bookworm", "");
    let server = site.start_without_sync();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}\n{}", server.log_text());
    let line = format!(
        "deb [signed-by={}] {} bookworm main",
        repo.key().display(),
        server.url("/debian")
    );
    for by_hash in [false, true] {
        let client = AptClient::new(&line);
        let mut update = vec!["update"];
        let mut install = vec!["install", "--download-only", "-y", "alpha", "bravo"];
        if by_hash {
            update.splice(0..0, ["-o", "Acquire::By-Hash=force"]);
            install.splice(0..0, ["-o", "Acquire::By-Hash=force"]);
        }
        let (ok, text) = client.run(&update);
        assert!(ok, "apt-get update (by-hash {by_hash}): {text}");
        let (ok, text) = client.run(&install);
        assert!(ok, "apt-get install (by-hash {by_hash}): {text}");
        for pkg in &packages()[..2] {
            let got = std::fs::read(client.archive(&pkg.file_name())).unwrap();
            let want =
                std::fs::read(repo.root().join(repo.deb_path("bookworm", "main", pkg))).unwrap();
            assert!(got == want, "{} differs", pkg.file_name());
        }
    }
}

#[test]
fn real_apt_through_mirrorbox_debian_layout() {
    real_apt_round_trip(Layout::Debian);
}

#[test]
fn real_apt_through_mirrorbox_proxmox_layout() {
    real_apt_round_trip(Layout::Proxmox);
}

#[test]
fn a_no_op_sync_makes_one_conditional_request() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "bookworm", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert!(text.contains("unchanged"), "{text}");
    assert_eq!(
        upstream.log(),
        vec![("/dists/bookworm/InRelease".to_string(), 304)]
    );
}

/// A no-op sync reads the current snapshot only as a stream, but to its end: damage anywhere
/// in it (here its last byte, after every entry) fails the sync with an error naming it, before
/// the upstream is asked anything, and nothing is published.
#[test]
fn a_no_op_sync_over_a_damaged_current_snapshot_fails_naming_it() {
    use std::os::unix::fs::PermissionsExt;
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "bookworm", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let refs = site.data().join("refs/deb");
    let current = std::fs::read_to_string(refs.join("current")).unwrap();
    let current = current.trim();
    let object = site
        .data()
        .join("objects/sha256")
        .join(&current[..2])
        .join(current);
    let mut bytes = std::fs::read(&object).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&object, bytes).unwrap();
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(text.contains(&current[..12]), "{text}");
    assert_eq!(upstream.log(), vec![]);
    let after = std::fs::read_to_string(refs.join("current")).unwrap();
    assert_eq!(after.trim(), current);
}

/// Breaks the upstream in one way, checks the sync fails with `expect` in its message and the
/// previous snapshot stays current.
fn failing_sync(break_it: impl FnOnce(&AptRepo, &Upstream), expect: &str) {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "bookworm", "retries = 1");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let before = String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a newer Release Date
    break_it(&repo, &upstream);
    let (ok, text) = sync(&site);
    assert!(!ok, "sync should fail ({expect}): {text}");
    assert!(text.contains(expect), "expected `{expect}` in: {text}");
    let after = String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned();
    assert_eq!(before, after, "the previous snapshot must stay current");
    let verify = site.cli(&["verify"]);
    assert!(verify.status.success(), "{verify:?}");
}

fn more_packages() -> Vec<Pkg> {
    let mut list = packages();
    list.push(Pkg::new("delta", "1.0", 50_000));
    list
}

#[test]
fn a_corrupted_package_fails_the_sync() {
    failing_sync(
        |repo, _| {
            repo.suite("bookworm", "main", &more_packages(), false, None);
            let deb = repo
                .root()
                .join(repo.deb_path("bookworm", "main", &more_packages()[3]));
            let mut bytes = std::fs::read(&deb).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&deb, bytes).unwrap();
        },
        "sha256",
    );
}

#[test]
fn a_truncated_index_fails_the_sync() {
    failing_sync(
        |repo, _| {
            repo.suite("bookworm", "main", &more_packages(), false, None);
            for name in ["Packages", "Packages.gz", "Packages.xz"] {
                let index = repo
                    .root()
                    .join("dists/bookworm/main/binary-amd64")
                    .join(name);
                let bytes = std::fs::read(&index).unwrap();
                std::fs::write(&index, &bytes[..bytes.len() / 2]).unwrap();
            }
        },
        "upstream changed during the sync",
    );
}

#[test]
fn a_bad_signature_fails_the_sync() {
    failing_sync(
        |repo, _| {
            repo.suite("bookworm", "main", &more_packages(), false, None);
            let inrelease = repo.root().join("dists/bookworm/InRelease");
            let text = std::fs::read_to_string(&inrelease)
                .unwrap()
                .replace("Origin: Test", "Origin: Evil");
            std::fs::write(&inrelease, text).unwrap();
        },
        "bad signature",
    );
}

#[test]
fn a_signature_by_an_unconfigured_key_fails_the_sync() {
    failing_sync(
        |repo, _| {
            repo.suite("bookworm", "main", &more_packages(), false, None);
            let stranger = common::gpg::Gpg::new("stranger", "ed25519");
            stranger.sign_release(&repo.root().join("dists/bookworm/Release"));
        },
        "not signed by a configured key",
    );
}

#[test]
fn a_replayed_older_inrelease_fails_the_sync() {
    failing_sync(
        |repo, _| {
            repo.suite(
                "bookworm",
                "main",
                &more_packages(),
                false,
                Some("Mon, 01 Jan 2024 00:00:00 UTC"),
            );
        },
        "older",
    );
}

#[test]
fn a_persistent_server_error_fails_the_sync() {
    failing_sync(
        |repo, upstream| {
            repo.suite("bookworm", "main", &more_packages(), false, None);
            let path = format!(
                "/{}",
                repo.deb_path("bookworm", "main", &more_packages()[3])
            );
            upstream.fault(
                &path,
                &[
                    Fault::Status(500, None),
                    Fault::Status(500, None),
                    Fault::Status(500, None),
                ],
            );
        },
        "HTTP 500",
    );
}

#[test]
fn bursts_of_503_with_retry_after_and_cut_connections_are_survived() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    upstream.fault(
        "/dists/bookworm/InRelease",
        &[Fault::Status(503, Some(1)), Fault::Status(503, Some(1))],
    );
    let big = format!("/{}", repo.deb_path("bookworm", "main", &packages()[1]));
    upstream.fault(
        &big,
        &[
            Fault::Status(429, Some(1)),
            Fault::Cut(50_000),
            Fault::Cut(30_000),
        ],
    );
    let site = apt_site(&upstream, &repo.key(), "bookworm", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    // The cut download resumed with Range requests instead of starting over.
    let log = upstream.log();
    let big_requests: Vec<u16> = log
        .iter()
        .filter(|(p, _)| *p == big)
        .map(|(_, s)| *s)
        .collect();
    assert_eq!(big_requests, vec![429, 200, 206, 206], "{log:?}");
    assert!(site.cli(&["verify"]).status.success());
}

#[test]
fn two_suites_sharing_packages_store_them_once() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    repo.suite("trixie", "main", &more_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let key = repo.key();
    let extra = format!(
        "[[source]]\nid = \"deb-trixie\"\nkind = \"apt\"\nmount = \"/debian\"\nrepository = \"deb {} trixie main\"\narchitectures = [\"amd64\"]\nkeys = [\"{}\"]\n",
        upstream.url("/"),
        key.display()
    );
    let site = apt_site(&upstream, &key, "bookworm", &extra);
    // Through a running server both suites sync at once and race for the shared packages.
    let server = site.start_without_sync();
    upstream.set_delay(std::time::Duration::from_millis(40));
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "{out:?}");
    upstream.set_delay(std::time::Duration::ZERO);
    let shared = format!("/{}", repo.deb_path("bookworm", "main", &packages()[1]));
    let fetched = upstream
        .log()
        .iter()
        .filter(|(p, s)| *p == shared && *s == 200)
        .count();
    assert_eq!(
        fetched,
        1,
        "a shared package is downloaded once: {:?}",
        upstream.log()
    );
    // Every .deb object exists once: 4 distinct packages across both suites.
    let mut debs = 0;
    for fan in std::fs::read_dir(site.data().join("objects/sha256"))
        .unwrap()
        .flatten()
    {
        for object in std::fs::read_dir(fan.path()).unwrap().flatten() {
            let bytes = std::fs::read(object.path()).unwrap();
            if bytes.starts_with(b"!<arch>\ndebian-binary") {
                debs += 1;
            }
        }
    }
    assert_eq!(debs, 4);
    assert!(site.cli(&["verify"]).status.success());
    // And both suites appear under one mount.
    for suite in ["bookworm", "trixie"] {
        let out = common::curl(&[
            "-sf",
            &server.url(&format!("/debian/dists/{suite}/InRelease")),
        ]);
        assert!(out.status.success(), "{suite}");
    }
}

#[test]
fn a_client_with_older_indices_still_downloads_after_a_resync() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), true, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "bookworm", "");
    let server = site.start_without_sync();
    assert!(sync(&site).0);
    let line = format!(
        "deb [signed-by={}] {} bookworm main",
        repo.key().display(),
        server.url("/debian")
    );
    let client = AptClient::new(&line);
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "{text}");
    let old_index = std::fs::read(
        repo.root()
            .join("dists/bookworm/main/binary-amd64/Packages.xz"),
    )
    .unwrap();

    // Upstream moves on: alpha 1.0 is replaced by 2.0 and its file is gone upstream.
    std::fs::remove_file(
        repo.root()
            .join(repo.deb_path("bookworm", "main", &packages()[0])),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut newer = packages();
    newer[0] = Pkg::new("alpha", "2.0", 25_000);
    repo.suite("bookworm", "main", &newer, true, None);
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");

    // The client still holds the old indices and asks for alpha 1.0: it is still served.
    let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha"]);
    assert!(ok, "{text}");
    assert!(client.archive("alpha_1.0_amd64.deb").exists());
    // The old index stays reachable by hash, next to the new one.
    let old_hash = common::sha256_hex(&old_index);
    let out = common::curl(&[
        "-sf",
        &server.url(&format!(
            "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/{old_hash}"
        )),
    ]);
    assert!(out.status.success() && out.stdout == old_index);
    // A fresh client sees the new version.
    let fresh = AptClient::new(&line);
    assert!(fresh.run(&["update"]).0);
    let (ok, text) = fresh.run(&["install", "--download-only", "-y", "alpha"]);
    assert!(ok, "{text}");
    assert!(fresh.archive("alpha_2.0_amd64.deb").exists());
}

#[test]
fn kill_9_mid_sync_then_a_sync_that_does_not_download_again() {
    let repo = AptRepo::new(Layout::Debian);
    let big: Vec<Pkg> = (0..8)
        .map(|i| Pkg::new(&format!("big{i}"), "1.0", 2_000_000))
        .collect();
    repo.suite("bookworm", "main", &big, false, None);
    let upstream = Upstream::serve(repo.root());
    upstream.set_delay(std::time::Duration::from_millis(150));
    let site = apt_site(
        &upstream,
        &repo.key(),
        "bookworm",
        "parallel = 1\nbandwidth = \"4M\"",
    );
    let mut child = Command::new(common::BIN)
        .args(["sync", "--config"])
        .arg(&site.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until a few packages have been fetched completely and one is under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let debs = upstream
            .log()
            .iter()
            .filter(|(p, _)| p.ends_with(".deb"))
            .count();
        if debs >= 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "sync made no progress: {:?}",
            upstream.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    let first: Vec<String> = upstream
        .log()
        .iter()
        .filter(|(p, _)| p.ends_with(".deb"))
        .map(|(p, _)| p.clone())
        .collect();
    upstream.set_delay(std::time::Duration::ZERO);
    upstream.reset_counters();

    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let second = upstream.log();
    // Packages finished before the kill are not requested again; the one cut off resumes.
    let finished: Vec<&String> = first[..first.len() - 1].iter().collect();
    for (path, status) in &second {
        assert!(
            !finished.contains(&path),
            "{path} downloaded again ({status})"
        );
    }
    // The one under way at the kill resumes from where it stopped (or had just finished).
    let resumed = first.last().unwrap();
    assert!(
        second
            .iter()
            .filter(|(p, _)| p == resumed)
            .all(|(_, s)| *s == 206),
        "{resumed} started over: {second:?}"
    );
    let all_debs: u64 = big
        .iter()
        .map(|p| {
            std::fs::metadata(repo.root().join(repo.deb_path("bookworm", "main", p)))
                .unwrap()
                .len()
        })
        .sum();
    let fetched = upstream
        .body_bytes
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        fetched < all_debs * 6 / 8,
        "second sync fetched {fetched} of {all_debs} bytes"
    );
    assert!(site.cli(&["verify"]).status.success());
}

#[test]
fn a_flat_repository_works_with_real_apt() {
    let repo = AptRepo::new(Layout::Debian);
    // Build packages into the pool, then lay out a flat repository beside them.
    repo.suite("bookworm", "main", &packages(), false, None);
    let flat = repo.root().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    for pkg in packages() {
        std::fs::copy(
            repo.root().join(repo.deb_path("bookworm", "main", &pkg)),
            flat.join(pkg.file_name()),
        )
        .unwrap();
    }
    let run = |args: &[&str]| {
        let out = Command::new("apt-ftparchive")
            .current_dir(&flat)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    };
    std::fs::write(flat.join("Packages"), run(&["packages", "."])).unwrap();
    let release = run(&["release", "."]);
    std::fs::write(flat.join("Release"), release).unwrap();
    repo.gpg.sign_release(&flat.join("Release"));
    let upstream = Upstream::serve(repo.root());
    let (_site, server) = synced_site(
        "flat",
        "/flat",
        &format!("deb {} ./", upstream.url("/flat")),
        &repo.key(),
    );
    let client = AptClient::new(&format!(
        "deb [signed-by={}] {} ./",
        repo.key().display(),
        server.url("/flat")
    ));
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "{text}");
    let (ok, text) = client.run(&["install", "--download-only", "-y", "charlie"]);
    assert!(ok, "{text}");
    assert!(client.archive("charlie_0.3_amd64.deb").exists());
}

#[test]
fn sync_on_a_terminal_shows_progress() {
    let repo = AptRepo::new(Layout::Debian);
    let big: Vec<Pkg> = (0..4)
        .map(|i| Pkg::new(&format!("p{i}"), "1.0", 1_000_000))
        .collect();
    repo.suite("bookworm", "main", &big, false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(
        &upstream,
        &repo.key(),
        "bookworm",
        "parallel = 1\nbandwidth = \"2M\"",
    );
    // `script` gives the command a real pseudo-terminal.
    let command = format!(
        "{} sync --config {} deb",
        common::BIN,
        site.config.display()
    );
    let out = Command::new("script")
        .args(["-qefc", &command, "/dev/null"])
        .output()
        .expect("script (util-linux)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("deb: ") && text.contains("files,") && text.contains("MiB/s, ETA"),
        "{text}"
    );
    // Without a terminal: no progress line.
    let (ok, plain) = sync(&site);
    assert!(ok && !plain.contains("MiB/s"), "{plain}");
}

#[test]
fn an_upstream_changing_mid_sync_restarts_from_inrelease() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    // The first time, every index variant comes back with other bytes (a mirror mid-update).
    for name in ["Packages", "Packages.gz", "Packages.xz"] {
        let path = format!("/dists/bookworm/main/binary-amd64/{name}");
        let len = std::fs::metadata(repo.root().join(&path[1..]))
            .unwrap()
            .len() as usize;
        upstream.fault(&path, &[Fault::Replace(common::pattern(len, 99))]);
    }
    let site = apt_site(&upstream, &repo.key(), "bookworm", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let inrelease = upstream
        .log()
        .iter()
        .filter(|(p, _)| p == "/dists/bookworm/InRelease")
        .count();
    assert_eq!(inrelease, 2, "{:?}", upstream.log());
    assert!(site.cli(&["verify"]).status.success());
}

#[test]
fn basic_auth_and_extra_headers_reach_the_upstream() {
    let repo = AptRepo::new(Layout::Proxmox);
    repo.suite("bookworm", "pve-enterprise", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    upstream.require_header("authorization", "Basic c3Vic2NyaWJlcjpzM2NyM3Q="); // subscriber:s3cr3t
    let source = format!(
        "[[source]]\nid = \"ent\"\nkind = \"apt\"\nmount = \"/pve\"\nrepository = \"deb {} bookworm pve-enterprise\"\nkeys = [\"{}\"]\narchitectures = [\"amd64\"]\nretries = 0\n",
        upstream.url("/"),
        repo.key().display()
    );
    let without = Site::with(false, &source);
    let out = without.cli(&["sync", "ent"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("HTTP 401"),
        "{out:?}"
    );
    let with = Site::with(false, &format!("{source}username = \"subscriber\"\npassword = \"s3cr3t\"\nheaders = {{ \"X-Test\" = \"1\" }}\n"));
    let out = with.cli(&["sync", "ent"]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn the_schedule_syncs_by_itself_and_the_status_page_tells() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "bookworm", "every = \"2s\"");
    let server = site.start();
    let status = |server: &common::Server| {
        let out = common::curl(&["-sf", &server.url("/.status.json")]);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let first = loop {
        let s = status(&server);
        let deb = s["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "deb")
            .unwrap()
            .clone();
        if deb["current"].is_string() {
            break deb;
        }
        assert!(std::time::Instant::now() < deadline, "never synced: {s}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(first["last_run"]["ok"], true);
    assert!(first["next_run"].is_i64());
    // The upstream changes; the next scheduled run publishes it without anyone asking.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    repo.suite("bookworm", "main", &more_packages(), false, None);
    loop {
        let s = status(&server);
        let deb = s["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "deb")
            .unwrap()
            .clone();
        if deb["current"] != first["current"] {
            assert_eq!(deb["last_run"]["ok"], true);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "scheduled sync never published: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // A failing upstream shows up with its error.
    std::fs::remove_file(repo.root().join("dists/bookworm/InRelease")).unwrap();
    std::fs::remove_file(repo.root().join("dists/bookworm/Release.gpg")).unwrap();
    loop {
        let s = status(&server);
        let deb = s["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["id"] == "deb")
            .unwrap()
            .clone();
        if deb["last_run"]["ok"] == false {
            assert!(
                deb["last_run"]["error"]
                    .as_str()
                    .unwrap()
                    .contains("Release.gpg"),
                "{deb}"
            );
            let html = common::curl(&["-sf", &server.url("/.status")]);
            assert!(String::from_utf8_lossy(&html.stdout).contains("failed"));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "failure never shown: {s}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn triggers_during_a_run_are_coalesced() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    upstream.set_delay(std::time::Duration::from_millis(250));
    let site = apt_site(&upstream, &repo.key(), "bookworm", "parallel = 1");
    let _server = site.start_without_sync();
    let spawn = || {
        Command::new(common::BIN)
            .args(["sync", "--config"])
            .arg(&site.config)
            .arg("deb")
            .output()
    };
    std::thread::scope(|scope| {
        let first = scope.spawn(spawn);
        std::thread::sleep(std::time::Duration::from_millis(400));
        let rest: Vec<_> = (0..3).map(|_| scope.spawn(spawn)).collect();
        for handle in std::iter::once(first).chain(rest) {
            let out = handle.join().unwrap().unwrap();
            assert!(out.status.success(), "{out:?}");
        }
    });
    // One run, plus one run for the three triggers that came while it ran.
    let runs = upstream
        .log()
        .iter()
        .filter(|(p, _)| p == "/dists/bookworm/InRelease")
        .count();
    assert_eq!(runs, 2, "{:?}", upstream.log());
}

#[test]
fn deb_src_sources_are_mirrored_for_apt_get_source() {
    let repo = AptRepo::new(Layout::Debian);
    // A native source package made by dpkg-source, and its Sources index by apt-ftparchive.
    let pool = repo.root().join("pool/main/h/hello-src");
    let tree = pool.join("hello-src-1.0");
    std::fs::create_dir_all(tree.join("debian/source")).unwrap();
    std::fs::write(tree.join("debian/source/format"), "3.0 (native)\n").unwrap();
    std::fs::write(tree.join("debian/control"), "Source: hello-src\nSection: utils\nPriority: optional\nMaintainer: Test <test@example.org>\n\nPackage: hello-src\nArchitecture: all\nDescription: test\n").unwrap();
    std::fs::write(tree.join("debian/changelog"), "hello-src (1.0) unstable; urgency=low\n\n  * Test.\n\n -- Test <test@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n").unwrap();
    std::fs::write(
        tree.join("debian/rules"),
        "#!/usr/bin/make -f\n%:\n\tdh $@\n",
    )
    .unwrap();
    std::fs::write(tree.join("README"), common::pattern(5000, 3)).unwrap();
    let out = Command::new("dpkg-source")
        .current_dir(&pool)
        .args(["-b", "hello-src-1.0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::remove_dir_all(&tree).unwrap();
    let source_dir = repo.root().join("dists/bookworm/main/source");
    std::fs::create_dir_all(&source_dir).unwrap();
    let sources = Command::new("apt-ftparchive")
        .current_dir(repo.root())
        .args(["sources", "pool/main"])
        .output()
        .unwrap();
    assert!(sources.status.success());
    std::fs::write(source_dir.join("Sources"), &sources.stdout).unwrap();
    Command::new("gzip")
        .args(["-9nk"])
        .arg(source_dir.join("Sources"))
        .status()
        .unwrap();
    repo.suite("bookworm", "main", &packages(), false, None); // writes and signs the Release

    let upstream = Upstream::serve(repo.root());
    let line = format!("deb-src {} bookworm main", upstream.url("/"));
    let (_site, server) = synced_site("src", "/debian", &line, &repo.key());
    let client = AptClient::new(&format!(
        "deb-src [signed-by={}] {} bookworm main",
        repo.key().display(),
        server.url("/debian")
    ));
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "{text}");
    let work = tempfile::tempdir().unwrap();
    let out = client
        .command()
        .current_dir(work.path())
        .args(["source", "--download-only", "hello-src"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    for name in ["hello-src_1.0.dsc", "hello-src_1.0.tar.xz"] {
        let got = std::fs::read(work.path().join(name)).unwrap();
        assert_eq!(got, std::fs::read(pool.join(name)).unwrap(), "{name}");
    }
    // Binary packages were not fetched: this source carries sources only.
    assert!(!upstream.log().iter().any(|(p, _)| p.ends_with(".deb")));
}

#[test]
fn a_configured_proxy_carries_every_request() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    // The upstream doubles as the proxy; the repository's host does not resolve at all.
    let proxy = Upstream::serve(repo.root());
    let source = format!(
        "[[source]]\nid = \"deb\"\nkind = \"apt\"\nmount = \"/debian\"\nrepository = \"deb http://mirror.invalid/debian bookworm main\"\nkeys = [\"{}\"]\nproxy = \"{}\"\nretries = 0\n",
        repo.key().display(),
        proxy.url("")
    );
    let site = Site::with(false, &source);
    // The repository lives at /debian on the (fake) host: serve the fixture there.
    std::os::unix::fs::symlink(repo.root(), repo.root().join("debian")).unwrap();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let log = proxy.log();
    assert!(
        log.iter().any(|(p, _)| p == "proxied:mirror.invalid"),
        "{log:?}"
    );
    assert!(
        log.iter().any(|(p, s)| p.ends_with(".deb") && *s == 200),
        "{log:?}"
    );
}
