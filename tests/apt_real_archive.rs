//! Real Debian metadata, not fixtures: the InRelease files and Packages indices `apt-get update`
//! left in /var/lib/apt/lists (signed by Debian's keys, laid out as the real archives are:
//! bookworm-security's `Components: updates/main` over `main/…` paths, Releases listing
//! Contents, Translation and dep11 files) are served by a local upstream that has none of the
//! other files. mirrorbox must verify Debian's signatures under its signature policy, mirror the
//! indices, publish with warnings for what the upstream does not serve, keep its report short
//! when thousands of package files are left out, and real apt-get must read the result.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::aptclient::AptClient;
use common::upstream::Upstream;
use common::Site;

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
const LISTS: &str = "/var/lib/apt/lists";

/// One archive apt keeps lists of: where it lives and its main/binary-amd64 Packages text.
struct Archive {
    /// `debian-security`, `debian`.
    path: String,
    suite: String,
    inrelease: PathBuf,
    packages: Vec<u8>,
}

/// `deb.debian.org_debian-security_dists_bookworm-security_InRelease` → its archive, if apt
/// also kept that Release's `main/binary-amd64/Packages` (in whatever compression apt chose)
/// and the text still matches the hash the InRelease lists (a list updated by pdiffs is).
fn archive(inrelease: &Path) -> Option<Archive> {
    let name = inrelease.file_name()?.to_str()?;
    let stem = name.strip_suffix("_InRelease")?;
    let (before, suite) = stem.split_once("_dists_")?;
    let (_host, path) = before.split_once('_')?;
    let text = std::fs::read_to_string(inrelease).ok()?;
    if !text.lines().any(|l| l == "Origin: Debian") {
        return None;
    }
    let base = format!("{LISTS}/{stem}_main_binary-amd64_Packages");
    let packages = [
        ("", None),
        (".lz4", Some("lz4")),
        (".gz", Some("gzip")),
        (".xz", Some("xz")),
        (".zst", Some("zstd")),
    ]
    .into_iter()
    .find_map(|(extension, tool)| {
        let file = format!("{base}{extension}");
        if !Path::new(&file).exists() {
            return None;
        }
        match tool {
            None => std::fs::read(&file).ok(),
            Some(tool) => {
                let out = Command::new(tool).args(["-dc", &file]).output().ok()?;
                out.status.success().then_some(out.stdout)
            }
        }
    })?;
    let (hash, size) = (common::sha256_hex(&packages), packages.len().to_string());
    let listed = |line: &str| {
        let words: Vec<&str> = line.split_whitespace().collect();
        words == [hash.as_str(), size.as_str(), "main/binary-amd64/Packages"]
    };
    text.lines().any(listed).then(|| Archive {
        path: path.replace('_', "/"),
        suite: suite.replace('_', "/"),
        inrelease: inrelease.to_path_buf(),
        packages,
    })
}

/// Archives small enough to mirror here (the full bookworm main has 60,000 packages: its
/// left-out pool files alone would be 60,000 requests).
fn small_archives() -> Vec<Archive> {
    let mut found: Vec<Archive> = std::fs::read_dir(LISTS)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| archive(&e.path()))
                .filter(|a| a.packages.len() < 16 << 20)
                .collect()
        })
        .unwrap_or_default();
    found.sort_by(|a, b| a.inrelease.cmp(&b.inrelease));
    found
}

#[test]
fn real_debian_releases_mirror_with_warnings_and_apt_get_reads_them() {
    let archives = small_archives();
    assert!(
        !archives.is_empty(),
        "no Debian InRelease with a matching main/binary-amd64 Packages in {LISTS}: run `apt-get update` first (tests/run.sh does)"
    );
    let root = tempfile::tempdir().unwrap();
    for a in &archives {
        let dist = root.path().join(&a.path).join("dists").join(&a.suite);
        std::fs::create_dir_all(dist.join("main/binary-amd64")).unwrap();
        std::fs::copy(&a.inrelease, dist.join("InRelease")).unwrap();
        std::fs::write(dist.join("main/binary-amd64/Packages"), &a.packages).unwrap();
    }
    let upstream = Upstream::serve(root.path());
    let mut sources = String::new();
    for (n, a) in archives.iter().enumerate() {
        let release = std::fs::read_to_string(&a.inrelease).unwrap();
        // The security archive's components are `updates/main`: write it as its Release does.
        let component = if release.contains("Components: updates/main") {
            "updates/main"
        } else {
            "main"
        };
        sources.push_str(&format!(
            "[[source]]\nid = \"real{n}\"\nkind = \"apt\"\nmount = \"/{}\"\nrepository = \"deb {} {} {component}\"\narchitectures = [\"amd64\"]\nkeys = [\"{DEBIAN_KEYRING}\"]\nindices = [\"i18n\", \"contents\", \"dep11\", \"cnf\"]\nignore_errors = true\nretries = 0\n\n",
            a.path,
            upstream.url(&format!("/{}", a.path)),
            a.suite,
        ));
    }
    let site = Site::with(false, &sources);
    for (n, a) in archives.iter().enumerate() {
        let id = format!("real{n}");
        let (ok, text) = site.cli_text(&["sync", &id]);
        assert!(ok, "{}: {text}", a.suite);
        // What the upstream lacks is named, and thousands of left-out files stay a short report.
        assert!(
            text.contains("is listed in the Release but the upstream serves no variant"),
            "{text}"
        );
        let warnings = text.lines().filter(|l| l.starts_with("  warning:")).count();
        assert!(warnings <= 20, "{warnings} warning lines: {text}");
        let packages = String::from_utf8_lossy(&a.packages)
            .lines()
            .filter(|l| l.starts_with("Package: "))
            .count();
        if packages >= 20 {
            assert!(text.contains("more problems like these"), "{text}");
        }
    }
    let server = site.start_without_sync();
    for a in &archives {
        let line = format!(
            "deb [signed-by={DEBIAN_KEYRING}] {} {} main",
            server.url(&format!("/{}/", a.path)),
            a.suite
        );
        let client = AptClient::new(&line);
        let (ok, text) = client.run(&["update"]);
        assert!(ok, "{line}: {text}");
        // A package of the real index is fetched from the mirror's pool.
        let first = String::from_utf8_lossy(&a.packages)
            .lines()
            .find_map(|l| l.strip_prefix("Package: ").map(str::to_string))
            .unwrap();
        let (ok, text) = client.run(&["download", "--print-uris", &first]);
        let pool = server.url(&format!("/{}/pool/", a.path));
        assert!(ok && text.contains(&format!("'{pool}")), "{first}: {text}");
    }
}
