//! Memory of a view at Debian size, printed (not asserted): ignored by default, run with
//! `VIEW_SCALE_ENTRIES=1000000 cargo test --release --lib view::scale_tests -- --ignored --nocapture`.
//!
//! One source, three retained snapshots (the newest current) of `pool/main/<l>/<pkg>/…deb`
//! paths; each snapshot replaces a tenth of the packages of the one before (a new version:
//! a new path and object), so nine in ten paths are shared between neighbours.

use std::sync::Arc;
use std::time::Instant;

use super::*;
use crate::manifest::Entry;

fn entries(count: usize, generation: usize) -> Vec<Entry> {
    (0..count)
        .map(|n| {
            // A tenth of the packages move to a new version in each generation.
            let version = if n % 10 < generation { generation } else { 0 };
            let package = format!("pkg{n:07}");
            let letter = &package[6..7];
            let mut object = [0u8; 32];
            object[..8].copy_from_slice(&(n as u64).to_le_bytes());
            object[8] = version as u8;
            Entry {
                path: format!("pool/main/{letter}/{package}/{package}_1.{version}-1_amd64.deb"),
                object: ObjectId(object),
                size: 1000 + n as u64,
                mtime: 1_700_000_000 + version as i64,
                stamp: None,
                origin: None,
                immutable: true,
            }
        })
        .collect()
}

/// Resident set size of this process, from `/proc/self/statm`.
fn rss_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

#[test]
#[ignore = "prints memory at scale; see the module doc for the command"]
fn memory_per_entry_at_scale() {
    let count: usize = std::env::var("VIEW_SCALE_ENTRIES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(200_000);
    let at_start = rss_bytes().unwrap_or(0);
    let retained: Vec<(ObjectId, Arc<Manifest>)> = (0..3)
        .map(|generation| {
            let manifest = Manifest::new("debian", generation as i64, entries(count, generation));
            (ObjectId([generation as u8 + 1; 32]), Arc::new(manifest))
        })
        .collect();
    let mut distinct: Vec<&str> = retained
        .iter()
        .flat_map(|(_, m)| m.entries.iter().map(|e| e.path.as_str()))
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let distinct = distinct.len();
    let small = |generation: usize| {
        let manifest = Arc::new(Manifest::new("small", 0, entries(1000, generation)));
        SourceSnapshots {
            id: "small".into(),
            mount: "/small".into(),
            current: Some(manifest.clone()),
            retained: vec![(ObjectId([generation as u8 + 100; 32]), manifest)],
            fill_in: false,
        }
    };
    let mut sources = vec![
        SourceSnapshots {
            id: "debian".into(),
            mount: "/debian".into(),
            current: Some(retained[2].1.clone()),
            retained,
            fill_in: true,
        },
        small(0),
    ];
    let before = rss_bytes().unwrap_or(0);
    let manifests = before.saturating_sub(at_start);
    let started = Instant::now();
    let view = View::build(&sources);
    let built = started.elapsed();
    let after = rss_bytes().unwrap_or(0);
    let keys: Vec<String> = sources[0]
        .current
        .iter()
        .flat_map(|m| &m.entries)
        .step_by(97)
        .map(|entry| format!("/debian/{}", entry.path))
        .collect();
    let lookups = Instant::now();
    let mut found = 0;
    for key in &keys {
        found += usize::from(view.get(key).is_some());
    }
    let per_lookup = lookups.elapsed() / found.max(1) as u32;
    let listing = Instant::now();
    let top = view.dir("/debian").expect("the mount is a directory");
    let listed = listing.elapsed();
    sources[1] = small(1);
    let swapping = Instant::now();
    let swapped = View::build_after(&sources, &view);
    let swap = swapping.elapsed();
    assert!(Arc::ptr_eq(&view.parts[0], &swapped.parts[0]));
    println!("entries per snapshot: {count}, snapshots: 3, distinct paths: {distinct}");
    println!(
        "view heap: {} bytes = {:.1} B per distinct path (target 200)",
        view.heap_bytes(),
        view.heap_bytes() as f64 / distinct as f64
    );
    println!(
        "RSS growth while building: {} bytes = {:.1} B per distinct path",
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / distinct as f64
    );
    println!(
        "manifests in memory (the input, for comparison): {:.1} B per distinct path",
        manifests as f64 / distinct as f64
    );
    println!("build: {built:?}; lookup: {per_lookup:?} each ({found} looked up)");
    println!(
        "listing the mount (a range scan of every layer): {listed:?}, {} children",
        top.children.len()
    );
    println!("new snapshot of another source swapped in: {swap:?} (this part reused)");
    assert!(found > 0);
}
