//! The heap of a cold apt sync stays within a small bound per package file: the files its
//! Packages name are held once, compactly, the downloads are made as connections free up (not
//! one task per file up front), and the entries go to the new snapshot in path order as they
//! are made. Two archives of 2,000 and 20,000 packages are synced cold, each into a store of
//! its own; the difference of the two peaks, over the 18,000 added packages, must stay under
//! [`BOUND`] bytes a package. The heap is counted exactly by this binary's allocator, and this
//! file holds one test, so nothing else allocates meanwhile (but the small upstream server's
//! threads, which hold no entry).

mod common;

use common::aptrepo::{AptRepo, Layout as RepoLayout, ReleaseFields};
use common::heap::peak_of;
use common::upstream::Upstream;
use mirrorbox::manifest::Manifest;
use mirrorbox::store::{IngestMode, Store, StoreOptions};
use mirrorbox::sync::SourceKind;
use sha2::{Digest, Sha256};

#[global_allocator]
static ALLOCATOR: common::heap::Counting = common::heap::Counting;

/// Heap bytes a cold sync may add per package file. The list of files takes about 150 bytes a
/// file; this allocator counts a buffer that grows as its old and new copies both (a real
/// `realloc` often grows in place), so the counted peak is up to twice that. Holding a task per
/// file up front, or the entries as separate strings next to the parsed list, costs several
/// times more.
const BOUND: f64 = 400.0;

/// Writes suite `suite` with `count` packages of a few distinct bytes each, its Packages
/// written directly, as an archive tool would, and its Release signed. As on Debian's mirrors,
/// the uncompressed Packages is listed but not served (the test server reads each file it
/// serves into memory, on the heap this test counts).
fn suite(repo: &AptRepo, suite: &str, count: usize) {
    let mut packages = String::new();
    for n in 0..count {
        let name = format!("{suite}{n:06}");
        let path = format!("pool/main/{}/{name}/{name}_1.0-{n}_amd64.deb", &suite[..1]);
        let body = format!("package {name}, {n} of {count}\n").repeat(1 + n % 5);
        repo.put(&path, body.as_bytes());
        let sha256 = hex(&Sha256::digest(body.as_bytes()));
        packages.push_str(&format!(
            "Package: {name}\nVersion: 1.0-{n}\nArchitecture: amd64\nSection: utils\nDescription: test package {n}\nFilename: {path}\nSize: {}\nSHA256: {sha256}\n\n",
            body.len()
        ));
    }
    repo.put_index(
        &format!("dists/{suite}/main/binary-amd64/Packages"),
        packages.as_bytes(),
    );
    repo.sign_dist(
        suite,
        &ReleaseFields {
            origin: "Test",
            label: "Test",
            suite,
            codename: suite,
            architectures: "amd64",
            components: "main",
            patterns: &[],
            by_hash: false,
        },
    );
    std::fs::remove_file(
        repo.root()
            .join(format!("dists/{suite}/main/binary-amd64/Packages")),
    )
    .unwrap();
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn the_heap_of_a_cold_apt_sync_stays_within_a_bound_per_package() {
    let repo = AptRepo::new(RepoLayout::Debian);
    let (few, many) = (2_000, 20_000);
    suite(&repo, "small", few);
    suite(&repo, "large", many);
    let upstream = Upstream::serve(repo.root());
    let options = StoreOptions {
        fsync: false,
        ingest: IngestMode::Copy,
    };
    let mut peaks = Vec::new();
    for (name, count) in [("small", few), ("large", many)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("data"), &options).unwrap();
        let mut table = toml::Table::new();
        let line = format!("deb {} {name} main", upstream.url("/"));
        table.insert("repository".into(), line.into());
        table.insert("architectures".into(), vec!["amd64".to_string()].into());
        let key = repo.key().display().to_string();
        table.insert("keys".into(), vec![key].into());
        let kind = SourceKind::parse("apt", table).unwrap();
        let (peak, report) = peak_of(|| mirrorbox::sync::run(&store, name, 3, kind.get()));
        let report = report.unwrap();
        assert!(report.changed, "{report}");
        assert_eq!(report.counts.files_stored, count as u64, "{report}");
        // Every package, and the Release files and indices, are in the snapshot.
        let current = store.read_refs(name).unwrap().current.unwrap();
        let manifest = Manifest::load(&store, &current).unwrap();
        let pool = (manifest.entries.iter())
            .filter(|e| e.path.starts_with("pool/"))
            .count();
        assert_eq!(pool, count);
        assert!(manifest
            .entries
            .iter()
            .any(|e| e.path == format!("dists/{name}/InRelease")));
        peaks.push(peak);
    }
    let per_package = peaks[1].saturating_sub(peaks[0]) as f64 / (many - few) as f64;
    eprintln!(
        "cold apt sync: heap peak {} B with {few} packages, {} B with {many}: {per_package:.0} B per added package",
        peaks[0], peaks[1]
    );
    assert!(
        per_package < BOUND,
        "the heap of a cold apt sync grows by {per_package:.0} B per package (bound {BOUND} B)"
    );
}
