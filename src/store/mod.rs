//! The content-addressed object store, and the refs that name published snapshots.
//!
//! ```text
//! DATA_DIR/
//!   lock                         one process per data dir (see `lock`)
//!   objects/sha256/ab/abcdef…    every file ever stored, named by its sha256, never modified
//!   refs/<source>/current        the manifest id the source publishes now
//!   refs/<source>/snapshots      retained manifest ids, oldest first, newest last
//!   refs/<source>/state.json     the last sync run (for the status page and the scheduler)
//!   tmp/                         writes in flight; same filesystem, so rename is atomic
//!   quarantine/                  objects `verify` found damaged
//! ```
//! An object becomes visible only by a rename after its hash is known, and a ref only by a
//! rename after its manifest is stored, so a crash at any moment leaves either the old or the
//! new state, plus some garbage in `tmp/` that the next start removes.
//!
//! The store knows nothing of the configuration file or the manifest format: it takes
//! [`StoreOptions`], and GC and verify read snapshots through a [`SnapshotReader`] that the
//! caller supplies. Its parts: [`layout`] (where an object lives), `write` (new objects and
//! atomic small files), `durable` (their fsyncs, batched before a ref moves), `ingest` (local files by reflink, hard link or copy), `partial`
//! (resumable downloads), [`refs`], [`gc`] and [`verify`] (which need a [`GcGuard`] of the
//! [`GcGate`]), and the data-dir lock.

mod durable;
mod gate;
pub mod gc;
mod ingest;
pub mod layout;
mod local;
mod lock;
mod object;
mod partial;
mod place;
pub mod refs;
mod scratch;
mod snapshots;
mod stamp;
pub mod verify;
mod write;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub use gate::{GcGate, GcGuard};
pub use ingest::mtime_ns;
pub use lock::{DataLock, LockError};
pub use object::ObjectId;
pub use partial::PartialWriter;
pub use snapshots::SnapshotReader;
pub use stamp::Stamp;
pub use write::hash_file;

/// How local files (dir sources, images) enter the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Reflink if the filesystem can, else hard link, else copy.
    Auto,
    /// Always copy: the store never shares an inode with a file outside it.
    Copy,
}

/// How the store writes (the `[store]` table of the configuration).
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// fsync objects and refs before they become visible (survives power loss, costs time).
    pub fsync: bool,
    pub ingest: IngestMode,
}

/// Reads and writes go in chunks this large: big enough to keep the disk and the hasher busy.
pub const CHUNK: usize = 256 * 1024;

/// A store error says what was being done and to which file.
#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct StoreError {
    pub action: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |source| StoreError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// How an ingested local file ended up in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMethod {
    /// The object already existed: nothing written.
    Existing,
    Reflink,
    HardLink,
    Copy,
}

/// The result of putting bytes into the store.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub id: ObjectId,
    pub size: u64,
    pub method: IngestMethod,
    /// For objects that share their inode with a file outside the store (hard links): the
    /// inode's mtime, ctime and number when it was known good. The server refuses to send the
    /// object, or cuts a response under way, if the inode has moved since, because then the
    /// bytes no longer match the name (see [`Stamp`]).
    pub stamp: Option<Stamp>,
}

impl Stored {
    /// An object this store wrote itself (`created`), or found already there.
    fn written(id: ObjectId, size: u64, created: bool) -> Stored {
        Stored {
            id,
            size,
            method: if created {
                IngestMethod::Copy
            } else {
                IngestMethod::Existing
            },
            stamp: None,
        }
    }
}

/// The object store of one data directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    objects: PathBuf,
    /// `objects` open, and its fan-out folders known to exist (see `place`).
    placer: place::Objects,
    tmp: PathBuf,
    quarantine: PathBuf,
    refs: PathBuf,
    fsync: bool,
    ingest: IngestMode,
    tmp_counter: AtomicU64,
    /// Objects this process added to `objects/`: a sync that failed after this moved has
    /// left garbage behind (see `App::sync_source`).
    created: AtomicU64,
    /// Objects made visible without an fsync, flushed together before a ref moves.
    unsynced: durable::Unsynced,
    /// Downloads under way, so two syncs never write the same partial file at once.
    downloads: partial::Downloads,
    /// A scratch store's real store, read only: objects found there count as held (see
    /// `scratch`). `None` for a real store.
    beneath: Option<scratch::Beneath>,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`. The caller holds the `DataLock`.
    pub fn open(data_dir: &Path, config: &StoreOptions) -> Result<Store, StoreError> {
        let objects = data_dir.join("objects").join("sha256");
        let (tmp, refs) = (data_dir.join("tmp"), data_dir.join("refs"));
        for dir in [&objects, &tmp, &refs] {
            fs::create_dir_all(dir).map_err(err("create directory", dir))?;
        }
        let store = Store {
            root: data_dir.to_path_buf(),
            placer: place::Objects::open(&objects, &tmp)
                .map_err(err("open directory", &objects))?,
            objects,
            tmp,
            quarantine: data_dir.join("quarantine"),
            refs,
            fsync: config.fsync,
            ingest: config.ingest,
            tmp_counter: AtomicU64::new(0),
            created: AtomicU64::new(0),
            unsynced: Default::default(),
            downloads: Default::default(),
            beneath: None,
        };
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn refs_dir(&self) -> &Path {
        &self.refs
    }

    pub fn objects_dir(&self) -> &Path {
        &self.objects
    }

    /// How local files enter this store (`[store] ingest`).
    pub fn ingest_mode(&self) -> IngestMode {
        self.ingest
    }

    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// How many objects this process has added so far (a counter only ever going up).
    pub fn objects_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Removes what interrupted writes left in `tmp/`, except partial downloads (they resume),
    /// and quarantines objects a crash tore before they were flushed (see `durable`).
    /// Call only while holding the lock.
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        let mut removed = self.recover_unsynced()?;
        for entry in fs::read_dir(&self.tmp).map_err(err("read", &self.tmp))? {
            let entry = entry.map_err(err("read", &self.tmp))?;
            let path = entry.path();
            if entry.file_name() == "partial" {
                removed += partial::clean_stale_partials(&path);
                continue;
            }
            let result = if entry.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            result.map_err(err("remove", &path))?;
            removed += 1;
        }
        Ok(removed)
    }

    /// Where object `id` is (or would be) on disk; see [`layout`].
    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        let own = layout::object_path(&self.objects, id);
        match &self.beneath {
            Some(beneath) => beneath.path_of(id, own),
            None => own,
        }
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        match &self.beneath {
            // A dry run asks this of every file an index names: see `scratch::Beneath`.
            Some(beneath) => beneath.holds(id),
            None => layout::object_path(&self.objects, id).is_file(),
        }
    }

    /// A fresh name in `tmp/`, unique within this process (the lock makes it unique overall).
    pub fn tmp_path(&self, hint: &str) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{n}-{hint}", std::process::id()))
    }

    /// Reads a whole object into memory. Only for small objects such as manifests.
    pub fn read(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        let path = self.object_path(id);
        fs::read(&path).map_err(err("read object", &path))
    }

    /// Moves a damaged object out of `objects/` so it is never served or reused again.
    pub fn quarantine(&self, id: &ObjectId) -> Result<PathBuf, StoreError> {
        if self.is_scratch() {
            // A dry run reads the real store beneath and must never move anything out of it.
            return Err(StoreError {
                action: "quarantine",
                path: self.object_path(id),
                source: io::Error::other("a dry run reports damage and moves nothing"),
            });
        }
        fs::create_dir_all(&self.quarantine).map_err(err("create directory", &self.quarantine))?;
        let from = self.object_path(id);
        let to = self.quarantine.join(id.to_hex());
        fs::rename(&from, &to).map_err(err("quarantine", &from))?;
        Ok(to)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A store in `dir` without fsync (tests need not survive power loss).
    pub(crate) fn store(dir: &Path, ingest: IngestMode) -> Store {
        Store::open(
            dir,
            &StoreOptions {
                fsync: false,
                ingest,
            },
        )
        .unwrap()
    }

    #[test]
    fn same_bytes_are_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), IngestMode::Copy);
        let a = store.put_bytes(b"hello").unwrap();
        let b = store.put_bytes(b"hello").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.to_hex(),
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(store.read(&a).unwrap(), b"hello");
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }
}
