//! Durability in batches: objects are renamed into `objects/` without an fsync each, and are
//! made durable together, once, before any ref moves (see [`Store::make_durable`]).
//!
//! One fsync per small file (and one more for its folder) caps a sync of a tree of small
//! files at a few thousand files per second on most disks. A snapshot only needs its objects
//! durable by the time a ref names it, so the store notes which objects it made visible and
//! flushes them all before writing a ref: with `syncfs(2)` for a large batch (one call for the
//! whole filesystem), else with `fdatasync` of each file and `fsync` of each fan-out folder
//! from a few threads at once. A crash before the flush leaves objects no ref names, which GC
//! removes. Objects are visible before they are durable, so a power loss can leave one torn
//! (empty or short) under its name, where a later sync would take it for stored: the first
//! object of a batch is preceded by a durable marker file, `DATA_DIR/unsynced`, removed when
//! the batch is flushed. A start that finds the marker re-hashes every object changed since
//! it was written and quarantines those that do not match their name (see
//! [`Store::recover_unsynced`]); no other object can be torn.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use std::os::unix::fs::MetadataExt;

use super::layout::{self, for_each_object};
use super::{err, hash_file, write::sync_dir, ObjectId, Store, StoreError};

/// The marker of a batch under way, in the data dir (not `tmp/`, which a start empties).
const MARKER: &str = "unsynced";

/// From this many objects on, one `syncfs` is cheaper than an fsync per object.
const SYNCFS_FROM: usize = 512;

/// How many fsyncs are in flight at once for a small batch (they wait on the disk, not the
/// CPU, so more than the cores).
const FSYNC_THREADS: usize = 8;

/// Objects made visible but not yet known durable.
#[derive(Debug, Default)]
pub(super) struct Unsynced {
    batch: Mutex<Batch>,
    /// Held for a whole flush, so a second flusher waits until the first one's batch (which
    /// may hold its objects) is durable, instead of finding the list empty and going on.
    flushing: Mutex<()>,
}

/// What the next flush has to make durable.
#[derive(Debug, Default)]
struct Batch {
    /// The objects noted, while there are fewer than [`SYNCFS_FROM`]: past that one `syncfs`
    /// flushes them all, so their ids are not kept (a cold sync of a million files would
    /// hold 32 MB of them for nothing).
    ids: Vec<ObjectId>,
    /// How many objects were noted, `ids` or not.
    count: usize,
    /// The marker is on disk (durably).
    marked: bool,
    /// Objects between [`Store::begin_unsynced`] and their naming: covered by the marker,
    /// which must stay until they are noted and flushed too.
    writing: usize,
}

impl Batch {
    fn note(&mut self, id: ObjectId) {
        self.count += 1;
        if self.count < SYNCFS_FROM {
            self.ids.push(id);
        } else if !self.ids.is_empty() {
            self.ids = Vec::new();
        }
    }

    /// Puts back what a failed flush took.
    fn restore(&mut self, ids: Vec<ObjectId>, count: usize) {
        self.count += count;
        if self.count < SYNCFS_FROM {
            self.ids.extend(ids);
        } else {
            self.ids = Vec::new();
        }
    }
}

impl Unsynced {
    /// Notes that object `id` is in `objects/` and may not be durable yet.
    pub(super) fn note(&self, id: ObjectId) {
        self.batch.lock().expect("not poisoned").note(id);
    }

    /// How many objects wait for the next flush.
    pub(super) fn len(&self) -> usize {
        self.batch.lock().expect("not poisoned").count
    }
}

/// An object about to be named in `objects/` without an fsync (see [`Store::begin_unsynced`]):
/// [`PendingObject::placed`] notes it for the next flush; dropped unused, it was not placed.
pub(super) struct PendingObject<'a> {
    unsynced: Option<&'a Unsynced>,
}

impl PendingObject<'_> {
    /// The object is in place: noted for the next [`Store::make_durable`].
    pub(super) fn placed(mut self, id: ObjectId) {
        if let Some(unsynced) = self.unsynced.take() {
            let mut batch = unsynced.batch.lock().expect("not poisoned");
            batch.note(id);
            batch.writing -= 1;
        }
    }
}

impl Drop for PendingObject<'_> {
    fn drop(&mut self) {
        if let Some(unsynced) = self.unsynced.take() {
            unsynced.batch.lock().expect("not poisoned").writing -= 1;
        }
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
        let (ids, count) = {
            let mut batch = self.unsynced.batch.lock().expect("not poisoned");
            (
                std::mem::take(&mut batch.ids),
                std::mem::take(&mut batch.count),
            )
        };
        if count == 0 {
            return Ok(());
        }
        let flushed = if count >= SYNCFS_FROM {
            sync_filesystem(&self.objects)
        } else {
            sync_each(&self.objects, &ids)
        };
        let mut batch = self.unsynced.batch.lock().expect("not poisoned");
        if flushed.is_err() {
            batch.restore(ids, count);
            return flushed;
        }
        // Only when no object waits or is being written: those are covered by the marker
        // still. If the removal is lost, the next start re-hashes recent objects for nothing.
        if batch.count == 0 && batch.writing == 0 && batch.marked {
            let marker = self.root.join(MARKER);
            fs::remove_file(&marker).map_err(err("remove", &marker))?;
            batch.marked = false;
        }
        Ok(())
    }

    /// Called before an object is named in `objects/` without an fsync: the first of a batch
    /// writes the marker, durably, so a crash from now on is found at the next start. The
    /// marker stays until the object is noted ([`PendingObject::placed`]) and flushed.
    pub(super) fn begin_unsynced(&self) -> Result<PendingObject<'_>, StoreError> {
        if !self.fsync {
            return Ok(PendingObject { unsynced: None });
        }
        let mut batch = self.unsynced.batch.lock().expect("not poisoned");
        if !batch.marked {
            let marker = self.root.join(MARKER);
            File::create(&marker)
                .and_then(|file| file.sync_all())
                .map_err(err("write", &marker))?;
            sync_dir(&self.root)?;
            batch.marked = true;
        }
        batch.writing += 1;
        Ok(PendingObject {
            unsynced: Some(&self.unsynced),
        })
    }

    /// After a crash during a batch (the marker is there): re-hashes every object whose
    /// inode changed since the marker was written (a rename moves the ctime) and quarantines
    /// those whose bytes do not match their name, then removes the marker. Returns how many
    /// were quarantined. Call only while holding the data-dir lock, before any sync.
    pub fn recover_unsynced(&self) -> Result<usize, StoreError> {
        let marker = self.root.join(MARKER);
        let since = match fs::metadata(&marker) {
            Ok(meta) => meta.mtime() - 2,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(err("stat", &marker)(e)),
        };
        let mut recent = Vec::new();
        for_each_object(&self.objects, |object| {
            let meta = object
                .entry
                .metadata()
                .map_err(err("stat", &object.entry.path()))?;
            if meta.ctime() >= since {
                recent.push(object.id);
            }
            Ok(())
        })?;
        let mut quarantined = 0;
        for id in recent {
            let (actual, _) = hash_file(&layout::object_path(&self.objects, &id))?;
            if actual != id {
                let to = self.quarantine(&id)?;
                tracing::warn!(object = %id, quarantined = %to.display(), "torn by a crash before it was flushed");
                quarantined += 1;
            }
        }
        // The sound ones may still be in the page cache only (the process died, the machine
        // did not): flushed before the marker goes, as no later flush knows of them.
        if self.fsync {
            sync_filesystem(&self.objects)?;
        }
        fs::remove_file(&marker).map_err(err("remove", &marker))?;
        Ok(quarantined)
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
    fn a_start_after_a_crash_quarantines_torn_objects_only() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join(MARKER);
        let (good, torn, flushed) = {
            let store = store(dir.path(), true);
            let flushed = store.put_bytes(b"flushed before").unwrap();
            store.make_durable().unwrap();
            assert!(!marker.exists(), "removed once the batch is durable");
            let good = store.put_bytes(b"written in full").unwrap();
            let torn = store.put_bytes(b"cut short by a power loss").unwrap();
            assert!(
                marker.exists(),
                "written before the first object of a batch"
            );
            (good, torn, flushed)
        }; // the crash: no flush
        fs::write(
            layout::object_path(&dir.path().join("objects/sha256"), &torn),
            b"",
        )
        .unwrap();
        let store = store(dir.path(), true);
        assert_eq!(store.recover_unsynced().unwrap(), 1);
        assert!(!store.contains(&torn));
        assert!(store.contains(&good) && store.contains(&flushed));
        assert!(!marker.exists());
        assert_eq!(
            store.recover_unsynced().unwrap(),
            0,
            "nothing to do without the marker"
        );
    }

    #[test]
    fn without_fsync_nothing_is_noted() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), false);
        store.put_bytes(b"x").unwrap();
        assert_eq!(store.unsynced_objects(), 0);
        assert!(!dir.path().join(MARKER).exists());
    }
}
