//! Mark and sweep: every object reachable from a ref (and from views still in use) stays.

use std::collections::HashSet;
use std::fs;

use super::layout::for_each_object;
use super::{err, GcGuard, ObjectId, SnapshotReader, Store, StoreError};

#[derive(Debug, Default, Clone, Copy)]
pub struct GcReport {
    pub kept: u64,
    pub removed: u64,
    pub bytes_freed: u64,
}

/// Collects the objects every ref of every source names: manifests and what they list (read
/// by `snapshots`), and the objects a source holds for its next sync (`refs/<source>/held`).
/// Fails rather than return a partial set: a sweep after a partial mark would delete live data.
pub fn mark<R: SnapshotReader>(
    store: &Store,
    snapshots: &R,
) -> Result<HashSet<ObjectId>, R::Error> {
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
            snapshots.for_each_file(store, &id, &mut |_, object| {
                live.insert(*object);
            })?;
        }
    }
    Ok(live)
}

/// Removes every object not in `live`. The guard proves no sync in this process is storing
/// objects that no ref names yet; other processes are kept out by the data-dir lock.
pub fn sweep(
    store: &Store,
    live: &HashSet<ObjectId>,
    _alone: &GcGuard<'_>,
) -> Result<GcReport, StoreError> {
    let mut report = GcReport::default();
    for_each_object(store.objects_dir(), |object| {
        if live.contains(&object.id) {
            report.kept += 1;
            return Ok(());
        }
        let path = object.entry.path();
        let size = object.entry.metadata().map(|m| m.len()).unwrap_or(0);
        match fs::remove_file(&path) {
            Ok(()) => {
                report.removed += 1;
                report.bytes_freed += size;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(err("remove", &path)(e)),
        }
        Ok(())
    })?;
    Ok(report)
}

impl std::fmt::Display for GcReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed {} objects ({} bytes), kept {}",
            self.removed, self.bytes_freed, self.kept
        )
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::store::refs::SourceRefs;
    use crate::store::tests::store;
    use crate::store::{GcGate, IngestMode};

    /// Snapshots as a plain map (the real reader is the manifest module's).
    struct Listed(HashMap<ObjectId, Vec<(String, ObjectId)>>);

    impl SnapshotReader for Listed {
        type Error = StoreError;

        fn for_each_file(
            &self,
            _store: &Store,
            id: &ObjectId,
            each: &mut dyn FnMut(&str, &ObjectId),
        ) -> Result<(), StoreError> {
            for (path, object) in self.0.get(id).into_iter().flatten() {
                each(path, object);
            }
            Ok(())
        }
    }

    #[test]
    fn unreferenced_objects_go_referenced_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), IngestMode::Copy);
        let kept = store.put_bytes(b"kept").unwrap();
        let garbage = store.put_bytes(b"garbage").unwrap();
        let id = store.put_bytes(b"a snapshot").unwrap();
        let snapshots = Listed(HashMap::from([(id, vec![("a".to_string(), kept)])]));
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
        let gate = GcGate::new();
        let live = mark(&store, &snapshots).unwrap();
        let report = sweep(&store, &live, &gate.exclusive()).unwrap();
        assert_eq!(report.removed, 1);
        assert_eq!(report.kept, 2);
        assert!(store.contains(&kept));
        assert!(store.contains(&id));
        assert!(!store.contains(&garbage));
    }
}
