//! Mark and sweep: every object reachable from a ref (and from views still in use) stays.
//!
//! Memory is bounded by the live objects, 32 bytes each: the mark streams each manifest and
//! keeps one sorted list without repeats (see [`ObjectSet`]); the sweep walks the objects
//! directory and searches that list.

use std::collections::HashMap;
use std::fs;

use super::layout::for_each_object;
use super::{err, GcGuard, ObjectId, SnapshotReader, Store, StoreError};

#[derive(Debug, Default, Clone, Copy)]
pub struct GcReport {
    pub kept: u64,
    pub removed: u64,
    pub bytes_freed: u64,
}

/// A set of objects as one sorted array without repeats: 32 bytes per object (a hash set
/// costs about twice that), searched by bisection. Objects are added in batches: an object
/// the set already has costs nothing, a new one is appended, and [`ObjectSet::settle`]
/// sorts the batch in. Snapshots of a source share most objects, so a batch (one manifest)
/// adds few and the array stays close to the distinct objects.
#[derive(Debug, Default)]
pub struct ObjectSet {
    objects: Vec<ObjectId>,
    /// `objects[..sorted]` is sorted without repeats; the rest is the batch being added.
    sorted: usize,
}

impl ObjectSet {
    /// Adds `object` to the batch unless the set has it already.
    pub fn add(&mut self, object: ObjectId) {
        if self.objects[..self.sorted].binary_search(&object).is_err() {
            self.objects.push(object);
        }
    }

    /// Sorts the batch in (and drops its repeats).
    pub fn settle(&mut self) {
        if self.objects.len() > self.sorted {
            self.objects.sort_unstable();
            self.objects.dedup();
            self.sorted = self.objects.len();
        }
    }

    /// Forgets the batch not yet settled (a snapshot that could not be read to its end).
    pub fn discard_batch(&mut self) {
        self.objects.truncate(self.sorted);
    }

    /// The settled objects, sorted.
    pub fn as_slice(&self) -> &[ObjectId] {
        &self.objects[..self.sorted]
    }

    /// Whether `object` is in the set (added and settled).
    pub fn contains(&self, object: &ObjectId) -> bool {
        self.objects[..self.sorted].binary_search(object).is_ok()
    }

    pub fn len(&self) -> usize {
        self.sorted
    }

    pub fn is_empty(&self) -> bool {
        self.sorted == 0
    }
}

/// Collects the objects every ref of every source names: manifests and what they list (read
/// by `snapshots`, one entry at a time), and the objects a source holds for its next sync
/// (`refs/<source>/held`). Fails rather than return a partial set: a sweep after a partial
/// mark would delete live data.
pub fn mark<R: SnapshotReader>(store: &Store, snapshots: &R) -> Result<ObjectSet, R::Error> {
    let mut live = ObjectSet::default();
    for source in store.sources_with_refs()? {
        let refs = store.read_refs(&source)?;
        store
            .read_held(&source)
            .into_iter()
            .for_each(|o| live.add(o));
        let mut manifests: Vec<ObjectId> = refs.snapshots.clone();
        manifests.extend(refs.current);
        for id in manifests {
            live.settle();
            if live.contains(&id) {
                continue;
            }
            live.add(id);
            snapshots.for_each_file(store, &id, &mut |_, object| live.add(*object))?;
        }
    }
    live.settle();
    Ok(live)
}

/// Removes every object not in `live`. The guard proves no sync in this process is storing
/// objects that no ref names yet; other processes are kept out by the data-dir lock.
pub fn sweep(
    store: &Store,
    live: &ObjectSet,
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
    unique_streamed(store, &mut |id, each| {
        for (object, size) in files_of(id)? {
            each(object, size);
        }
        Ok(())
    })
}

/// Calls the second argument with the (object, size) of every file of a snapshot.
pub type EachFile<'a, E> =
    dyn FnMut(&ObjectId, &mut dyn FnMut(ObjectId, u64)) -> Result<(), E> + 'a;

/// [`unique`] with the files of each snapshot handed over one at a time (streamed from its
/// manifest), so no snapshot's file list is held.
pub fn unique_streamed<E: From<StoreError>>(
    store: &Store,
    each_file: &mut EachFile<'_, E>,
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
            each_file(&id, &mut |object, size| note(object, size, holder))?;
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

    /// Three snapshots that share most objects: the mark holds each object once (32 bytes
    /// each), not once per snapshot naming it.
    #[test]
    fn the_mark_holds_each_live_object_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), IngestMode::Copy);
        let object = |n: u32| {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&n.to_be_bytes());
            ObjectId(id)
        };
        let snapshot = |generation: u32| -> Vec<(String, ObjectId)> {
            (0..1000u32)
                .map(|n| {
                    let changed = if n % 10 == 0 { generation * 1000 } else { 0 };
                    (format!("f{n}"), object(n + changed))
                })
                .collect()
        };
        let ids: Vec<ObjectId> = (0..3u8)
            .map(|n| store.put_bytes(&[b's', n]).unwrap())
            .collect();
        let listed = Listed(
            ids.iter()
                .zip(0..)
                .map(|(id, g)| (*id, snapshot(g)))
                .collect(),
        );
        let refs = SourceRefs {
            current: Some(ids[2]),
            snapshots: ids.clone(),
            pinned: None,
        };
        store.write_refs("s", &refs).unwrap();
        let live = mark(&store, &listed).unwrap();
        // 1000 objects, 100 more per later snapshot, and the three manifests.
        assert_eq!(live.len(), 1000 + 100 + 100 + 3);
        assert!(live.contains(&object(2010)) && live.contains(&ids[1]));
        assert!(!live.contains(&object(5000)));
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
