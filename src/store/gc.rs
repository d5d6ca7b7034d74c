//! Mark and sweep: every object reachable from a ref (and from views still in use) stays.

use std::collections::{HashMap, HashSet};
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

/// Bytes only one snapshot holds (what removing it frees at the next GC) and bytes only one
/// source's snapshots hold (what removing the source frees), a snapshot's own manifest
/// included. An object shared between snapshots of one source counts for the source only; one
/// shared between sources counts for neither. Objects a source holds for its next sync
/// (`held`) count for the source. Computed from manifests, so it costs one pass over the
/// entries: callers do it when snapshots change, never per request.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Unique {
    pub sources: HashMap<String, u64>,
    pub snapshots: HashMap<(String, ObjectId), u64>,
}

impl Unique {
    pub fn source(&self, source: &str) -> u64 {
        self.sources.get(source).copied().unwrap_or(0)
    }

    pub fn snapshot(&self, source: &str, id: &ObjectId) -> u64 {
        self.snapshots
            .get(&(source.to_string(), *id))
            .copied()
            .unwrap_or(0)
    }
}

/// Who holds an object: one snapshot (source and snapshot numbers; `HELD` for a source's
/// held list), several snapshots of one source, or several sources.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    Snapshot(usize, usize),
    Source(usize),
    Shared,
}

const HELD: usize = usize::MAX;

/// The (object, size) of every file of a snapshot.
pub type SnapshotFiles = Vec<(ObjectId, u64)>;

/// Computes [`Unique`] for every source with refs. `files_of` gives the (object, size) of
/// every file of a snapshot (its manifest, read by the caller, who may have it in memory).
pub fn unique<E: From<StoreError>>(
    store: &Store,
    files_of: &mut dyn FnMut(&ObjectId) -> Result<SnapshotFiles, E>,
) -> Result<Unique, E> {
    let size_on_disk = |id: &ObjectId| fs::metadata(store.object_path(id)).map_or(0, |m| m.len());
    let mut holders: HashMap<ObjectId, (Holder, u64)> = HashMap::new();
    let mut note = |object: ObjectId, size: u64, holder: Holder| {
        let slot = holders.entry(object).or_insert((holder, size));
        slot.0 = match (slot.0, holder) {
            (a, b) if a == b => a,
            (Holder::Snapshot(s, _) | Holder::Source(s), Holder::Snapshot(t, _)) if s == t => {
                Holder::Source(s)
            }
            _ => Holder::Shared,
        };
    };
    let sources = store.sources_with_refs()?;
    let mut snapshots: Vec<(usize, ObjectId)> = Vec::new();
    for (number, source) in sources.iter().enumerate() {
        let refs = store.read_refs(source)?;
        let mut ids = refs.snapshots.clone();
        ids.extend(refs.current.filter(|c| !refs.snapshots.contains(c)));
        for id in ids {
            let holder = Holder::Snapshot(number, snapshots.len());
            snapshots.push((number, id));
            note(id, size_on_disk(&id), holder);
            for (object, size) in files_of(&id)? {
                note(object, size, holder);
            }
        }
        for object in store.read_held(source) {
            note(
                object,
                size_on_disk(&object),
                Holder::Snapshot(number, HELD),
            );
        }
    }
    let mut unique = Unique::default();
    for source in &sources {
        unique.sources.insert(source.clone(), 0);
    }
    for (source, id) in &snapshots {
        unique.snapshots.insert((sources[*source].clone(), *id), 0);
    }
    for (holder, size) in holders.into_values() {
        let source = match holder {
            Holder::Snapshot(source, snapshot) => {
                if let Some((_, id)) = snapshots.get(snapshot) {
                    *unique
                        .snapshots
                        .get_mut(&(sources[source].clone(), *id))
                        .expect("every snapshot has a slot") += size;
                }
                source
            }
            Holder::Source(source) => source,
            Holder::Shared => continue,
        };
        *unique
            .sources
            .get_mut(&sources[source])
            .expect("every source has a slot") += size;
    }
    Ok(unique)
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

    #[test]
    fn unique_bytes_count_what_only_one_snapshot_or_source_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), IngestMode::Copy);
        let object = |byte: u8| ObjectId([byte; 32]);
        // Snapshots are plain objects here; their sizes on disk are 2, 2 and 3 bytes.
        let (one, two, three) = (
            store.put_bytes(b"s1").unwrap(),
            store.put_bytes(b"s2").unwrap(),
            store.put_bytes(b"s3!").unwrap(),
        );
        let files: HashMap<ObjectId, Vec<(ObjectId, u64)>> = HashMap::from([
            // `a` has 1 and 2; 1 only in `one`, 2 in both (a source's alone), 3 shared with `b`.
            (one, vec![(object(1), 100), (object(2), 20), (object(3), 7)]),
            (two, vec![(object(2), 20), (object(2), 20), (object(4), 50)]),
            (three, vec![(object(3), 7), (object(5), 9)]),
        ]);
        let refs = |current, snapshots| SourceRefs {
            current: Some(current),
            snapshots,
            pinned: None,
        };
        store.write_refs("a", &refs(two, vec![one, two])).unwrap();
        store.write_refs("b", &refs(three, vec![three])).unwrap();
        let unique = unique(&store, &mut |id| Ok::<_, StoreError>(files[id].clone())).unwrap();
        assert_eq!(unique.snapshot("a", &one), 100 + 2);
        assert_eq!(unique.snapshot("a", &two), 50 + 2);
        assert_eq!(unique.snapshot("b", &three), 9 + 3);
        assert_eq!(unique.source("a"), 100 + 20 + 50 + 2 + 2);
        assert_eq!(unique.source("b"), 9 + 3);
    }
}
