//! The heap of an apt sync that ends with "InRelease not modified" does not grow with the
//! number of packages: the current snapshot stands as it is, streamed once for its counts, never
//! held or copied. The snapshot is grown to 2,000 and to 20,000 extra pool entries; the no-op
//! syncs peak within a few bytes per entry of each other, and report every file and byte. The
//! heap is counted exactly by this binary's allocator, and this file holds one test, so nothing
//! else allocates meanwhile (but the small upstream server's thread, which holds no entry).

mod common;

use common::aptrepo::{AptRepo, Layout as RepoLayout, Pkg};
use common::heap::peak_of;
use common::upstream::Upstream;
use mirrorbox::manifest::{Entry, Manifest};
use mirrorbox::store::refs::SourceRefs;
use mirrorbox::store::{IngestMode, ObjectId, Store, StoreOptions};
use mirrorbox::sync::SourceKind;

#[global_allocator]
static ALLOCATOR: common::heap::Counting = common::heap::Counting;

/// Makes the current snapshot of `source` the `synced` one plus `extra` pool entries (objects
/// that need not exist: a no-op sync does not look at them), with the same selection.
/// Returns its files and bytes.
fn grow(store: &Store, source: &str, synced: &Manifest, extra: usize) -> (u64, u64) {
    let mut grown = synced.clone();
    for i in 0..extra {
        let mut id = [7u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        grown.entries.push(Entry {
            path: format!("pool/main/z/zz{i:06}/zz{i:06}_1.0_amd64.deb"),
            object: ObjectId(id),
            size: 1000 + i as u64,
            mtime: 1_700_000_000,
            stamp: None,
            origin: None,
            immutable: true,
        });
    }
    grown.entries.sort_by(|a, b| a.path.cmp(&b.path));
    let id = grown.save(store).unwrap();
    store
        .write_refs(
            source,
            &SourceRefs {
                current: Some(id),
                snapshots: vec![id],
                pinned: None,
            },
        )
        .unwrap();
    (grown.entries.len() as u64, grown.total_bytes())
}

#[test]
fn the_heap_of_a_no_op_apt_sync_does_not_grow_with_the_packages() {
    let repo = AptRepo::new(RepoLayout::Debian);
    let packages = [
        Pkg::new("alpha", "1.0", 2_000),
        Pkg::new("bravo", "2.1", 3_000),
    ];
    repo.suite("bookworm", "main", &packages, false, None);
    let upstream = Upstream::serve(repo.root());
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        fsync: false,
        ingest: IngestMode::Copy,
    };
    let store = Store::open(&dir.path().join("data"), &options).unwrap();
    let mut table = toml::Table::new();
    let line = format!("deb {} bookworm main", upstream.url("/"));
    table.insert("repository".into(), line.into());
    table.insert("architectures".into(), vec!["amd64".to_string()].into());
    let key = repo.key().display().to_string();
    table.insert("keys".into(), vec![key].into());
    let kind = SourceKind::parse("apt", table).unwrap();
    let sync = || mirrorbox::sync::run(&store, "deb", 3, kind.get()).unwrap();
    assert!(sync().changed, "the cold sync publishes");
    let synced = store.read_refs("deb").unwrap().current.unwrap();
    let synced = Manifest::load(&store, &synced).unwrap();

    let (few, many) = (2_000, 20_000);
    let mut peaks = Vec::new();
    for extra in [few, many] {
        let (files, bytes) = grow(&store, "deb", &synced, extra);
        upstream.reset_counters();
        let (peak, report) = peak_of(sync);
        assert!(!report.changed, "{report}");
        assert_eq!(
            (report.counts.files, report.counts.bytes),
            (files, bytes),
            "the summary line counts the kept snapshot: {report}"
        );
        assert_eq!(
            upstream.log(),
            vec![("/dists/bookworm/InRelease".to_string(), 304)]
        );
        peaks.push(peak);
    }
    let per_entry = peaks[1].saturating_sub(peaks[0]) as f64 / (many - few) as f64;
    eprintln!(
        "no-op apt sync: heap peak {} B with {few} extra entries, {} B with {many}: {per_entry:.1} B per added entry",
        peaks[0], peaks[1]
    );
    assert!(
        per_entry < 8.0,
        "the heap of a no-op apt sync grows by {per_entry:.1} B per entry"
    );
}
