//! Mark and sweep: every object reachable from a ref (and from views still in use) stays.

use std::collections::HashSet;
use std::fs;

use super::{ObjectId, Store, StoreError};
use crate::manifest::{Manifest, ManifestError};

#[derive(Debug, Default, Clone, Copy)]
pub struct GcReport {
    pub kept: u64,
    pub removed: u64,
    pub bytes_freed: u64,
}

/// Collects the objects every ref of every source names: manifests and what they list, and
/// the objects a source holds for its next sync (`refs/<source>/held`).
/// Fails rather than return a partial set: a sweep after a partial mark would delete live data.
pub fn mark(store: &Store) -> Result<HashSet<ObjectId>, ManifestError> {
    let mut live = HashSet::new();
    for source in store.sources_with_refs()? {
        let refs = store.read_refs(&source)?;
        live.extend(store.read_held(&source));
        let mut manifests: Vec<ObjectId> = refs.snapshots.clone();
        manifests.extend(refs.current);
        for id in manifests {
            if !live.insert(id) {
                continue;
            }
            let manifest = Manifest::load(store, &id)?;
            live.extend(manifest.entries.iter().map(|e| e.object));
        }
    }
    Ok(live)
}

/// Removes every object not in `live`. The caller makes sure no sync is storing objects that
/// no ref names yet (in one process: the sync/GC lock; across processes: the data-dir lock).
pub fn sweep(store: &Store, live: &HashSet<ObjectId>) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    let root = store.objects_dir();
    for fan in fs::read_dir(root).map_err(super::err("read", root))? {
        let fan = fan.map_err(super::err("read", root))?.path();
        if !fan.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&fan).map_err(super::err("read", &fan))? {
            let entry = entry.map_err(super::err("read", &fan))?;
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<ObjectId>().ok())
            else {
                continue;
            };
            if live.contains(&id) {
                report.kept += 1;
                continue;
            }
            let path = entry.path();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            match fs::remove_file(&path) {
                Ok(()) => {
                    report.removed += 1;
                    report.bytes_freed += size;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(super::err("remove", &path)(e)),
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{IngestMode, StoreConfig};
    use crate::manifest::Entry;
    use crate::store::refs::SourceRefs;

    #[test]
    fn unreferenced_objects_go_referenced_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreConfig {
                fsync: false,
                ingest: IngestMode::Copy,
            },
        )
        .unwrap();
        let kept = store.put_bytes(b"kept").unwrap();
        let garbage = store.put_bytes(b"garbage").unwrap();
        let manifest = Manifest::new(
            "s",
            0,
            vec![Entry {
                path: "a".into(),
                object: kept,
                size: 4,
                mtime: 0,
                stamp: None,
                origin: None,
                immutable: false,
            }],
        );
        let id = manifest.save(&store).unwrap();
        store
            .write_refs(
                "s",
                &SourceRefs {
                    current: Some(id),
                    snapshots: vec![id],
                    pinned: None,
                },
            )
            .unwrap();
        let live = mark(&store).unwrap();
        let report = sweep(&store, &live).unwrap();
        assert_eq!(report.removed, 1);
        assert!(store.contains(&kept));
        assert!(store.contains(&id));
        assert!(!store.contains(&garbage));
    }
}
