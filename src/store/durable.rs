//! Durability in batches: objects are renamed into `objects/` without an fsync each, and are
//! made durable together, once, before any ref moves (see [`Store::make_durable`]).
//!
//! One fsync per small file (and one more for its folder) caps a sync of a tree of small
//! files at a few thousand files per second on most disks. A snapshot only needs its objects
//! durable by the time a ref names it, so the store notes which objects it made visible and
//! flushes them all before writing a ref: with `syncfs(2)` for a large batch (one call for the
//! whole filesystem), else with `fdatasync` of each file and `fsync` of each fan-out folder
//! from a few threads at once. A crash before the flush leaves objects no ref names, which GC
//! removes; an object torn by a power loss (shorter than it should be) is replaced when the
//! same bytes are stored again (see `Store::commit`), and `verify` finds any other damage.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::{err, layout, write::sync_dir, ObjectId, Store, StoreError};

/// From this many objects on, one `syncfs` is cheaper than an fsync per object.
const SYNCFS_FROM: usize = 512;

/// How many fsyncs are in flight at once for a small batch (they wait on the disk, not the
/// CPU, so more than the cores).
const FSYNC_THREADS: usize = 8;

/// Objects made visible but not yet known durable.
#[derive(Debug, Default)]
pub(super) struct Unsynced {
    ids: Mutex<Vec<ObjectId>>,
    /// Held for a whole flush, so a second flusher waits until the first one's batch (which
    /// may hold its objects) is durable, instead of finding the list empty and going on.
    flushing: Mutex<()>,
}

impl Unsynced {
    /// Notes that object `id` is in `objects/` and may not be durable yet.
    pub(super) fn note(&self, id: ObjectId) {
        self.ids.lock().expect("not poisoned").push(id);
    }

    /// How many objects wait for the next flush.
    pub(super) fn len(&self) -> usize {
        self.ids.lock().expect("not poisoned").len()
    }
}

impl Store {
    /// Makes every object this store made visible so far durable (no-op without `fsync`).
    /// Called before any ref or state file is written, so a ref never names an object that a
    /// power loss could take away. On failure the objects stay noted for the next flush.
    pub fn make_durable(&self) -> Result<(), StoreError> {
        if !self.fsync {
            return Ok(());
        }
        let _alone = self.unsynced.flushing.lock().expect("not poisoned");
        let ids = std::mem::take(&mut *self.unsynced.ids.lock().expect("not poisoned"));
        if ids.is_empty() {
            return Ok(());
        }
        let flushed = if ids.len() >= SYNCFS_FROM {
            sync_filesystem(&self.objects)
        } else {
            sync_each(&self.objects, &ids)
        };
        if flushed.is_err() {
            self.unsynced
                .ids
                .lock()
                .expect("not poisoned")
                .extend_from_slice(&ids);
        }
        flushed
    }

    /// Notes an object for the next [`Store::make_durable`] (only if the store fsyncs).
    pub(super) fn note_unsynced(&self, id: &ObjectId) {
        if self.fsync {
            self.unsynced.note(*id);
        }
    }

    /// How many objects wait for [`Store::make_durable`].
    pub fn unsynced_objects(&self) -> usize {
        self.unsynced.len()
    }
}

/// One `syncfs(2)` of the filesystem `objects_dir` is on: every file and folder written there.
fn sync_filesystem(objects_dir: &Path) -> Result<(), StoreError> {
    let dir = File::open(objects_dir).map_err(err("open directory", objects_dir))?;
    rustix::fs::syncfs(&dir).map_err(|e| err("syncfs", objects_dir)(std::io::Error::from(e)))
}

/// `fdatasync` of each object, then `fsync` of each fan-out folder that holds one, from a few
/// threads. An object gone meanwhile (quarantined) has nothing left to make durable.
fn sync_each(objects_dir: &Path, ids: &[ObjectId]) -> Result<(), StoreError> {
    let files: Vec<PathBuf> = ids
        .iter()
        .map(|id| layout::object_path(objects_dir, id))
        .collect();
    let folders: Vec<PathBuf> = files
        .iter()
        .filter_map(|f| f.parent().map(Path::to_path_buf))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    in_parallel(&files, |file| match File::open(file) {
        Ok(handle) => handle.sync_data().map_err(err("fsync", file)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(err("open", file)(e)),
    })?;
    in_parallel(&folders, |folder| sync_dir(folder))
}

/// Runs `each` over `items` from up to [`FSYNC_THREADS`] threads; the first error wins.
fn in_parallel<T: Sync>(
    items: &[T],
    each: impl Fn(&T) -> Result<(), StoreError> + Sync,
) -> Result<(), StoreError> {
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(None);
    let threads = FSYNC_THREADS.min(items.len());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(item) = items.get(next.fetch_add(1, Ordering::Relaxed)) {
                    if let Err(e) = each(item) {
                        failed.lock().expect("not poisoned").get_or_insert(e);
                        break;
                    }
                }
            });
        }
    });
    match failed.into_inner().expect("not poisoned") {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IngestMode, StoreOptions};

    fn store(dir: &Path, fsync: bool) -> Store {
        let options = StoreOptions {
            fsync,
            ingest: IngestMode::Copy,
        };
        Store::open(dir, &options).unwrap()
    }

    #[test]
    fn objects_wait_for_one_flush_before_a_ref_moves() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), true);
        let ids: Vec<ObjectId> = (0..20)
            .map(|i| store.put_bytes(format!("object {i}").as_bytes()).unwrap())
            .collect();
        // Stored again: still noted (it may be the leftover of a crash, never flushed).
        store.put_bytes(b"object 0").unwrap();
        assert_eq!(store.unsynced_objects(), 21);
        store
            .write_atomic(
                &dir.path().join("refs/s/current"),
                ids[0].to_hex().as_bytes(),
            )
            .unwrap();
        assert_eq!(store.unsynced_objects(), 0, "the ref write flushed them");
        store.make_durable().unwrap();
    }

    #[test]
    fn a_large_batch_is_flushed_too() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), true);
        for i in 0..SYNCFS_FROM + 3 {
            store.put_bytes(format!("object {i}").as_bytes()).unwrap();
        }
        assert_eq!(store.unsynced_objects(), SYNCFS_FROM + 3);
        store.make_durable().unwrap();
        assert_eq!(store.unsynced_objects(), 0);
    }

    #[test]
    fn without_fsync_nothing_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), false);
        store.put_bytes(b"x").unwrap();
        assert_eq!(store.unsynced_objects(), 0);
    }
}
