//! apt repositories laid out like Debian's: dep11 and translations narrowed to the configured
//! architectures and languages, the Debian-Security archive (`Components: updates/main` with
//! indices under `main/`), and debian-installer images verified through `SHA256SUMS`. Each
//! one is generated and signed locally, served on 127.0.0.1, synced by mirrorbox and used
//! through it by the real `apt-get` or `curl`.

mod common;

use std::path::Path;

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg, ReleaseFields};
use common::upstream::Upstream;
use common::Site;

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 50_000),
    ]
}

/// A site with one apt source `deb` at `/debian` for a sources.list `line`.
fn apt_site(line: &str, key: &Path, extra: &str) -> Site {
    let source = format!(
        "[[source]]\nid = \"deb\"\nkind = \"apt\"\nmount = \"/debian\"\nrepository = \"{line}\"\nkeys = [\"{}\"]\n{extra}\n",
        key.display()
    );
    Site::with(false, &source)
}

/// `mirrorbox sync deb` without a server: (success, output).
fn sync(site: &Site) -> (bool, String) {
    site.cli_text(&["sync", "deb"])
}

/// A Translation file apt can read: one stanza per package.
fn translation(language: &str) -> Vec<u8> {
    packages()
        .iter()
        .map(|p| {
            format!(
                "Package: {}\nDescription-md5: {}\nDescription-{language}: {} in {language}\n\n",
                p.name,
                "0".repeat(32),
                p.name
            )
        })
        .collect::<String>()
        .into_bytes()
}

/// apt targets for dep11 metadata and icons, under the names the appstream package gives
/// them and enabled here, whatever a host's appstream configuration says.
fn dep11_targets() -> Vec<String> {
    let mut options = Vec::new();
    for (target, key, short) in [
        (
            "DEP-11",
            "$(COMPONENT)/dep11/Components-$(NATIVE_ARCHITECTURE).yml",
            "Components-$(NATIVE_ARCHITECTURE)",
        ),
        (
            "DEP-11-icons-small",
            "$(COMPONENT)/dep11/icons-48x48.tar",
            "icons-48x48",
        ),
    ] {
        let at = format!("Acquire::IndexTargets::deb::{target}");
        options.extend([
            "-o".to_string(),
            format!("{at}::MetaKey={key}"),
            "-o".to_string(),
            format!("{at}::ShortDescription={short}"),
            "-o".to_string(),
            format!("{at}::Description=$(RELEASE)/$(COMPONENT) {short}"),
            "-o".to_string(),
            format!("{at}::DefaultEnabled=true"),
        ]);
    }
    options
}

#[test]
fn dep11_and_translations_follow_the_configured_architectures_and_languages() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    for arch in ["amd64", "arm64", "i386", "all"] {
        let yaml = format!("File: DEP-11\nVersion: '0.12'\nOrigin: test-{arch}\n");
        repo.put_index(
            &format!("dists/bookworm/main/dep11/Components-{arch}.yml"),
            yaml.as_bytes(),
        );
    }
    for size in ["48x48", "64x64", "128x128"] {
        repo.put_index(
            &format!("dists/bookworm/main/dep11/icons-{size}.tar"),
            &common::pattern(4096, size.len() as u64),
        );
    }
    for language in ["en", "fi", "de", "pt_BR"] {
        repo.put_index(
            &format!("dists/bookworm/main/i18n/Translation-{language}"),
            &translation(language),
        );
    }
    repo.sign_dist(
        "bookworm",
        &ReleaseFields {
            origin: "Test",
            label: "Test",
            suite: "bookworm",
            codename: "bookworm",
            architectures: "all amd64 arm64 i386",
            components: "main",
            patterns: &[],
            by_hash: false,
        },
    );
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(
        &format!("deb {} bookworm main", upstream.url("/")),
        &repo.key(),
        "architectures = [\"amd64\"]\nlanguages = [\"en\", \"fi\"]",
    );
    let server = site.start_without_sync();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");

    let requested: Vec<String> = upstream.log().into_iter().map(|(p, _)| p).collect();
    let asked = |needle: &str| requested.iter().filter(|p| p.contains(needle)).count();
    for carried in [
        "Components-amd64.yml",
        "Components-all.yml",
        "icons-48x48.tar",
        "icons-128x128.tar",
        "Translation-en",
        "Translation-fi",
    ] {
        assert!(asked(carried) > 0, "{carried} not fetched: {requested:?}");
    }
    for left in [
        "Components-arm64",
        "Components-i386",
        "Translation-de",
        "Translation-pt_BR",
    ] {
        assert_eq!(asked(left), 0, "{left} fetched: {requested:?}");
    }

    let line = format!(
        "deb [signed-by={}] {} bookworm main",
        repo.key().display(),
        server.url("/debian")
    );
    let client = AptClient::new(&line);
    let mut update: Vec<String> = vec!["-o".into(), "Acquire::Languages=en,fi".into()];
    update.extend(dep11_targets());
    update.push("update".into());
    let args: Vec<&str> = update.iter().map(String::as_str).collect();
    let (ok, text) = client.run(&args);
    assert!(ok, "apt-get update: {text}");
    for wanted in [
        "Translation-en",
        "Translation-fi",
        "Components-amd64",
        "icons-48x48",
    ] {
        assert!(text.contains(wanted), "apt did not get {wanted}: {text}");
    }
}

#[test]
fn the_debian_security_layout_mirrors_with_main_or_updates_main() {
    let repo = AptRepo::new(Layout::Debian);
    repo.debian_security("bookworm-security", &packages());
    let upstream = Upstream::serve(repo.root());
    let client_line = |url: &str| {
        format!(
            "deb [signed-by={}] {url} bookworm-security main",
            repo.key().display()
        )
    };
    // The fixture is what apt expects from security.debian.org.
    let direct = AptClient::new(&client_line(&upstream.url("/")));
    let (ok, text) = direct.run(&["update"]);
    assert!(ok, "apt-get update against the upstream itself: {text}");

    for written in ["main", "updates/main"] {
        let site = apt_site(
            &format!("deb {} bookworm-security {written}", upstream.url("/")),
            &repo.key(),
            "architectures = [\"amd64\"]",
        );
        let server = site.start_without_sync();
        let (ok, text) = sync(&site);
        assert!(ok, "component `{written}`: {text}");
        let client = AptClient::new(&client_line(&server.url("/debian")));
        let (ok, text) = client.run(&["update"]);
        assert!(ok, "component `{written}`: apt-get update: {text}");
        let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha", "bravo"]);
        assert!(ok, "component `{written}`: apt-get install: {text}");
        for pkg in packages() {
            let got = std::fs::read(client.archive(&pkg.file_name())).unwrap();
            let want = std::fs::read(repo.root().join(format!(
                "pool/updates/main/{}/{}/{}",
                &pkg.name[..1],
                pkg.name,
                pkg.file_name()
            )))
            .unwrap();
            assert!(
                got == want,
                "component `{written}`: {} differs",
                pkg.file_name()
            );
        }
    }
}

fn installer_images() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("netboot/netboot.tar.gz", common::pattern(30_000, 1)),
        (
            "netboot/debian-installer/amd64/linux",
            common::pattern(9_000, 2),
        ),
        ("cdrom/vmlinuz", common::pattern(12_000, 3)),
        ("cdrom/initrd.gz", common::pattern(20_000, 4)),
    ]
}

/// A suite with packages and an installer tree for amd64 (`current` → `20230607+deb12u11`).
fn installer_repo() -> AptRepo {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let images = installer_images();
    let images: Vec<(&str, &[u8])> = images.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    repo.installer("bookworm", "amd64", "20230607+deb12u11", &images);
    repo
}

#[test]
fn installer_images_are_mirrored_and_checked_against_sha256sums() {
    let repo = installer_repo();
    let release = std::fs::read_to_string(repo.root().join("dists/bookworm/Release")).unwrap();
    for listed in [
        "main/installer-amd64/current/images/SHA256SUMS",
        "main/installer-amd64/20230607+deb12u11/images/SHA256SUMS",
    ] {
        assert!(release.contains(listed), "{listed} not in the Release");
    }
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb {} bookworm main", upstream.url("/"));
    let site = apt_site(
        &line,
        &repo.key(),
        "architectures = [\"amd64\", \"all\"]\ninstaller = true",
    );
    let server = site.start_without_sync();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    for version in ["current", "20230607+deb12u11"] {
        let dir = format!("/debian/dists/bookworm/main/installer-amd64/{version}/images");
        for (name, bytes) in installer_images() {
            let out = common::curl(&["-f", &server.url(&format!("{dir}/{name}"))]);
            assert!(out.status.success(), "{dir}/{name}: {out:?}");
            assert!(out.stdout == bytes, "{dir}/{name} differs");
        }
        let sums = common::curl(&["-f", &server.url(&format!("{dir}/SHA256SUMS"))]);
        assert!(sums.status.success(), "{dir}/SHA256SUMS: {sums:?}");
    }

    // An architecture without installer images is a configuration mistake, said clearly.
    let site = apt_site(
        &line,
        &repo.key(),
        "architectures = [\"amd64\", \"arm64\"]\ninstaller = true",
    );
    let (ok, text) = sync(&site);
    assert!(
        !ok,
        "a missing arm64 installer should fail the sync: {text}"
    );
    assert!(
        text.contains("main/installer-arm64/current/images/SHA256SUMS"),
        "{text}"
    );
}

#[test]
fn a_tampered_installer_image_fails_the_sync_naming_it() {
    let repo = installer_repo();
    let image = repo
        .root()
        .join("dists/bookworm/main/installer-amd64/20230607+deb12u11/images/cdrom/vmlinuz");
    let mut bytes = std::fs::read(&image).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&image, bytes).unwrap();
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(
        &format!("deb {} bookworm main", upstream.url("/")),
        &repo.key(),
        "architectures = [\"amd64\"]\ninstaller = true\nretries = 1",
    );
    let (ok, text) = sync(&site);
    assert!(!ok, "the sync should fail: {text}");
    assert!(
        text.contains("images/cdrom/vmlinuz") && text.contains("SHA256SUMS"),
        "{text}"
    );
    let snapshots = String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned();
    assert_eq!(
        snapshots.lines().filter(|l| l.starts_with("deb ")).count(),
        0,
        "nothing published: {snapshots}"
    );
}
