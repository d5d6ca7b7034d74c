//! apt sources follow their configuration and their upstream's gaps: a config edit is seen at
//! the next sync even when the upstream did not change, files left out are retried, indices
//! an upstream lists but does not serve are warned about, odd package file names are asked for
//! percent-encoded, and `verify_pool` refetches a damaged stored package.

mod common;

use std::path::Path;
use std::process::Command;

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::{Fault, Upstream};
use common::Site;

const INRELEASE: &str = "/dists/bookworm/InRelease";

/// A site with an apt source `deb` at `/debian` for `bookworm` and `components`.
fn apt_site(upstream: &Upstream, key: &Path, components: &str, extra: &str) -> Site {
    let line = format!("deb {} bookworm {components}", upstream.url("/"));
    Site::with(false, &common::apt_source(&line, key, extra))
}

/// `mirrorbox sync deb` without a server: (success, output).
fn sync(site: &Site) -> (bool, String) {
    site.cli_text(&["sync", "deb"])
}

/// The sources.list line for the mirror of `components`.
fn line(repo: &AptRepo, server: &common::Server, components: &str) -> String {
    format!(
        "deb [signed-by={}] {} bookworm {components}",
        repo.key().display(),
        server.url("/debian")
    )
}

/// Whether the upstream was asked for `path` and answered `status`.
fn asked(upstream: &Upstream, path: &str, status: u16) -> bool {
    upstream
        .log()
        .iter()
        .any(|(p, s)| p == path && *s == status)
}

fn main_packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 60_000),
    ]
}

fn test_packages() -> Vec<Pkg> {
    vec![Pkg::new("delta", "3.0", 10_000)]
}

#[test]
fn adding_and_removing_a_component_is_seen_without_an_upstream_change() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &main_packages(), false, None);
    repo.suite("bookworm", "pvetest", &test_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");

    // A second component, the upstream unchanged: one 304, then only what is new.
    site.edit_config("bookworm main\"", "bookworm main pvetest\"");
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(asked(&upstream, INRELEASE, 304), "{:?}", upstream.log());
    assert!(
        asked(&upstream, "/pool/pvetest/d/delta/delta_3.0_amd64.deb", 200),
        "{:?}",
        upstream.log()
    );
    assert!(
        !upstream.log().iter().any(|(p, _)| p.contains("alpha")),
        "stored packages are not fetched again: {:?}",
        upstream.log()
    );
    {
        let server = site.start_without_sync();
        let client = AptClient::new(&line(&repo, &server, "main pvetest"));
        let (ok, text) = client.run(&["update"]);
        assert!(ok, "apt-get update: {text}");
        let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha", "delta"]);
        assert!(ok, "apt-get install: {text}");
        assert!(client.archive("delta_3.0_amd64.deb").is_file());
    }

    // Nothing changed since: exactly one conditional request.
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("unchanged"), "{text}");
    assert_eq!(upstream.log(), vec![(INRELEASE.to_string(), 304)]);

    // The component removed again: published without it.
    site.edit_config("bookworm main pvetest\"", "bookworm main\"");
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    let server = site.start_without_sync();
    assert_eq!(
        common::status_code(&server.url("/debian/dists/bookworm/pvetest/binary-amd64/Packages.gz")),
        "404"
    );
    let client = AptClient::new(&line(&repo, &server, "main pvetest"));
    let (ok, text) = client.run(&["update"]);
    assert!(!ok && text.contains("pvetest"), "apt-get update: {text}");
    let client = AptClient::new(&line(&repo, &server, "main"));
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "apt-get update: {text}");
}

/// Writes a Packages index for `arch` naming one (made-up) package file, before the Release
/// is made, so the Release lists it.
fn add_architecture(repo: &AptRepo, arch: &str) -> (String, Vec<u8>) {
    let pool = format!("pool/main/i/india/india_1.0_{arch}.deb");
    let bytes = common::pattern(5_000, 42);
    std::fs::create_dir_all(repo.root().join(&pool).parent().unwrap()).unwrap();
    std::fs::write(repo.root().join(&pool), &bytes).unwrap();
    let dir = repo
        .root()
        .join(format!("dists/bookworm/main/binary-{arch}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Packages"),
        format!(
            "Package: india\nVersion: 1.0\nArchitecture: {arch}\nFilename: {pool}\nSize: {}\nSHA256: {}\n",
            bytes.len(),
            common::sha256_hex(&bytes)
        ),
    )
    .unwrap();
    (pool, bytes)
}

#[test]
fn adding_an_architecture_is_seen_without_an_upstream_change() {
    let repo = AptRepo::new(Layout::Debian);
    let (pool, bytes) = add_architecture(&repo, "i386");
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert!(!asked(&upstream, &format!("/{pool}"), 200));

    site.edit_config(
        "architectures = [\"amd64\"]",
        "architectures = [\"amd64\", \"i386\"]",
    );
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(asked(&upstream, INRELEASE, 304), "{:?}", upstream.log());
    let server = site.start_without_sync();
    let got = common::curl(&["-f", &server.url(&format!("/debian/{pool}"))]);
    assert!(got.status.success() && got.stdout == bytes, "{got:?}");
    assert_eq!(
        common::status_code(&server.url("/debian/dists/bookworm/main/binary-i386/Packages")),
        "200"
    );
}

#[test]
fn a_file_left_out_under_ignore_errors_is_fetched_once_the_upstream_serves_it() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let bravo = "/pool/main/b/bravo/bravo_2.1_amd64.deb";
    upstream.fault(bravo, &[Fault::Status(404, None)]);
    let site = apt_site(&upstream, &repo.key(), "main", "ignore_errors = true");
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(
        text.contains("bravo_2.1_amd64.deb"),
        "the left-out file is named: {text}"
    );
    {
        let server = site.start_without_sync();
        assert_eq!(
            common::status_code(&server.url(&format!("/debian{bravo}"))),
            "404"
        );
    }

    // The upstream serves it now (same Release): retried and published.
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(asked(&upstream, INRELEASE, 304), "{:?}", upstream.log());
    assert!(asked(&upstream, bravo, 200), "{:?}", upstream.log());
    {
        let server = site.start_without_sync();
        let got = common::curl(&["-f", &server.url(&format!("/debian{bravo}"))]);
        let want = std::fs::read(repo.root().join(bravo.trim_start_matches('/'))).unwrap();
        assert!(got.status.success() && got.stdout == want);
    }

    // Complete now: back to one conditional request.
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("unchanged"), "{text}");
    assert_eq!(upstream.log(), vec![(INRELEASE.to_string(), 304)]);
}

#[test]
fn listed_indices_the_upstream_does_not_serve_are_warned_about_and_the_rest_published() {
    let repo = AptRepo::new(Layout::Debian);
    let dist = repo.root().join("dists/bookworm/main");
    std::fs::create_dir_all(dist.join("i18n")).unwrap();
    std::fs::write(dist.join("i18n/Translation-en"), "Package: alpha\n").unwrap();
    let contents = dist.join("Contents-amd64");
    std::fs::write(&contents, "usr/share/alpha/data.bin utils/alpha\n").unwrap();
    assert!(Command::new("gzip")
        .arg("-9n")
        .arg(&contents)
        .status()
        .unwrap()
        .success());
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let release = std::fs::read_to_string(repo.root().join("dists/bookworm/Release")).unwrap();
    assert!(
        release.contains("main/Contents-amd64.gz") && release.contains("main/i18n/Translation-en"),
        "{release}"
    );
    std::fs::remove_file(dist.join("Contents-amd64.gz")).unwrap();
    std::fs::remove_file(dist.join("i18n/Translation-en")).unwrap();

    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "");
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    for missing in ["main/Contents-amd64", "main/i18n/Translation-en"] {
        let warning = format!("warning: index dists/bookworm/{missing} is listed");
        assert!(text.contains(&warning), "{missing} in: {text}");
    }
    let server = site.start_without_sync();
    let client = AptClient::new(&line(&repo, &server, "main"));
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "apt-get update: {text}");
    let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha"]);
    assert!(ok, "apt-get install: {text}");
    drop(server);

    // Nothing changed: one conditional request, and the gaps are still reported.
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("unchanged"), "{text}");
    assert_eq!(upstream.log(), vec![(INRELEASE.to_string(), 304)]);
    assert!(text.contains("main/Contents-amd64"), "{text}");

    // The server's own runs show them on the status page, as ok with problems.
    let server = site.start();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let out = common::curl(&["-sf", &server.url("/.status.json")]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let deb = status["sources"]
            .as_array()
            .and_then(|s| s.iter().find(|x| x["id"] == "deb"))
            .cloned()
            .unwrap_or_default();
        if deb["last_run"]["ok"] == true {
            let problems = deb["last_run"]["problems"].to_string();
            assert!(problems.contains("main/Contents-amd64"), "{deb}");
            assert!(problems.contains("main/i18n/Translation-en"), "{deb}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never ran: {status}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test]
fn a_missing_packages_index_fails_the_sync_naming_it() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "retries = 1");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let before = String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a newer Release Date
    let mut more = main_packages();
    more.push(Pkg::new("echo", "1.0", 1_000));
    repo.suite("bookworm", "main", &more, false, None);
    for ext in ["", ".gz", ".xz"] {
        let index = format!("dists/bookworm/main/binary-amd64/Packages{ext}");
        std::fs::remove_file(repo.root().join(index)).unwrap();
    }
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(text.contains("main/binary-amd64/Packages"), "{text}");
    let after = String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned();
    assert_eq!(before, after, "the previous snapshot stays current");
}

/// Moves a package file to `to` (relative to the root), names it so in Packages, and signs a
/// new Release.
fn rename_package_file(repo: &AptRepo, from: &str, to: &str) {
    let root = repo.root();
    std::fs::create_dir_all(root.join(to).parent().unwrap()).unwrap();
    std::fs::rename(root.join(from), root.join(to)).unwrap();
    let binary = root.join("dists/bookworm/main/binary-amd64");
    let text = std::fs::read_to_string(binary.join("Packages")).unwrap();
    let renamed = text.replace(&format!("Filename: {from}\n"), &format!("Filename: {to}\n"));
    assert_ne!(text, renamed);
    for ext in ["", ".gz", ".xz"] {
        let _ = std::fs::remove_file(binary.join(format!("Packages{ext}")));
    }
    std::fs::write(binary.join("Packages"), renamed).unwrap();
    for tool in ["gzip", "xz"] {
        let status = Command::new(tool)
            .arg("-k")
            .arg(binary.join("Packages"))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let dist = root.join("dists/bookworm");
    for name in ["Release", "InRelease", "Release.gpg"] {
        let _ = std::fs::remove_file(dist.join(name));
    }
    let out = Command::new("apt-ftparchive")
        .current_dir(root)
        .args([
            "-o",
            "APT::FTPArchive::Release::Suite=bookworm",
            "-o",
            "APT::FTPArchive::Release::Components=main",
            "release",
            "dists/bookworm",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    std::fs::write(dist.join("Release"), out.stdout).unwrap();
    repo.gpg.sign_release(&dist.join("Release"));
}

#[test]
fn package_file_names_are_percent_encoded_when_fetched() {
    let repo = AptRepo::new(Layout::Debian);
    let mut packages = main_packages();
    packages.push(Pkg::new("foxtrot", "1.0+b1~x", 2_000));
    repo.suite("bookworm", "main", &packages, false, None);
    let odd = "pool/main/a/al pha#1?%ä/alpha_1.0_amd64.deb";
    rename_package_file(&repo, "pool/main/a/alpha/alpha_1.0_amd64.deb", odd);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert!(
        asked(
            &upstream,
            "/pool/main/a/al%20pha%231%3F%25%C3%A4/alpha_1.0_amd64.deb",
            200
        ),
        "{:?}",
        upstream.log()
    );
    assert!(
        asked(
            &upstream,
            "/pool/main/f/foxtrot/foxtrot_1.0+b1~x_amd64.deb",
            200
        ),
        "`+` and `~` stay as they are: {:?}",
        upstream.log()
    );
    let server = site.start_without_sync();
    let got = common::curl(&[
        "-f",
        &server.url("/debian/pool/main/a/al%20pha%231%3F%25%C3%A4/alpha_1.0_amd64.deb"),
    ]);
    assert!(got.status.success(), "{got:?}");
    assert_eq!(got.stdout, std::fs::read(repo.root().join(odd)).unwrap());
}

#[test]
fn index_names_are_percent_encoded_like_package_file_names() {
    let repo = AptRepo::new(Layout::Debian);
    let odd = "dists/bookworm/main/i18n/Translation-x#y";
    repo.put(odd, b"Package: alpha\nDescription-x#y: a\n");
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let release = std::fs::read_to_string(repo.root().join("dists/bookworm/Release")).unwrap();
    assert!(release.contains("main/i18n/Translation-x#y"), "{release}");
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "");
    let (ok, text) = sync(&site);
    assert!(ok && !text.contains("Translation-x"), "{text}");
    let encoded = "/dists/bookworm/main/i18n/Translation-x%23y";
    assert!(asked(&upstream, encoded, 200), "{:?}", upstream.log());
    let server = site.start_without_sync();
    let got = common::curl(&["-f", &server.url(&format!("/debian{encoded}"))]);
    assert!(got.status.success(), "{got:?}");
}

#[test]
fn verify_pool_refetches_a_damaged_stored_package() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "verify_pool = true");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let bravo = "pool/main/b/bravo/bravo_2.1_amd64.deb";
    let want = std::fs::read(repo.root().join(bravo)).unwrap();
    let hex = common::sha256_hex(&want);
    let object = site
        .data()
        .join("objects/sha256")
        .join(&hex[..2])
        .join(&hex);
    assert!(object.is_file(), "{}", object.display());
    let mut damaged = want.clone();
    damaged[100] ^= 0xff;
    let mut permissions = std::fs::metadata(&object).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    permissions.set_readonly(false);
    std::fs::set_permissions(&object, permissions).unwrap();
    std::fs::write(&object, &damaged).unwrap();

    // The upstream moves on, so the sync plans its pool again and meets the damaged object.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let mut more = main_packages();
    more.push(Pkg::new("echo", "1.0", 1_000));
    repo.suite("bookworm", "main", &more, false, None);
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert!(
        asked(&upstream, &format!("/{bravo}"), 200),
        "{:?}",
        upstream.log()
    );
    assert_eq!(std::fs::read(&object).unwrap(), want);
    assert_eq!(
        std::fs::read(site.data().join("quarantine").join(&hex)).unwrap(),
        damaged
    );
    let server = site.start_without_sync();
    let got = common::curl(&["-f", &server.url(&format!("/debian/{bravo}"))]);
    assert!(got.status.success() && got.stdout == want);
}

#[test]
fn a_snapshot_made_before_selections_were_recorded_is_planned_again_once() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");

    // Make the current snapshot one of an older mirrorbox: its manifest without `selection`.
    let refs = site.data().join("refs/deb");
    let object = |hex: &str| site.data().join("objects/sha256").join(&hex[..2]).join(hex);
    let current = std::fs::read_to_string(refs.join("current")).unwrap();
    let store = mirrorbox::store::Store::open(
        &site.data(),
        &mirrorbox::store::StoreOptions {
            fsync: false,
            ingest: mirrorbox::store::IngestMode::Copy,
        },
    )
    .unwrap();
    let id = current.trim().parse().unwrap();
    let mut manifest = mirrorbox::manifest::Manifest::load(&store, &id).unwrap();
    assert!(manifest.selection.take().is_some(), "{manifest:?}");
    // An older mirrorbox wrote its manifests as JSON.
    let bytes = serde_json::to_vec(&manifest).unwrap();
    let old = common::sha256_hex(&bytes);
    std::fs::create_dir_all(object(&old).parent().unwrap()).unwrap();
    std::fs::write(object(&old), bytes).unwrap();
    std::fs::write(refs.join("current"), format!("{old}\n")).unwrap();
    std::fs::write(refs.join("snapshots"), format!("{old}\n")).unwrap();

    // Planned again from what is stored (no download), and the selection recorded.
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(text.contains("stored 0 new files"), "{text}");
    assert_eq!(upstream.log(), vec![(INRELEASE.to_string(), 304)]);
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("unchanged"), "{text}");
}

#[test]
fn a_package_filter_dropped_from_the_configuration_is_seen_without_an_upstream_change() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &main_packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key(), "main", "skip_packages = [\"bra*\"]");
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let bravo = "/pool/main/b/bravo/bravo_2.1_amd64.deb";
    assert!(!asked(&upstream, bravo, 200), "{:?}", upstream.log());

    site.edit_config("skip_packages = [\"bra*\"]", "skip_packages = []");
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(asked(&upstream, INRELEASE, 304), "{:?}", upstream.log());
    assert!(asked(&upstream, bravo, 200), "{:?}", upstream.log());
    let server = site.start_without_sync();
    assert_eq!(
        common::status_code(&server.url(&format!("/debian{bravo}"))),
        "200"
    );
}
