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

pub mod gc;
mod lock;
mod object;
pub mod refs;
mod stamp;
pub mod verify;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

pub use lock::{DataLock, LockError};
pub use object::ObjectId;
pub use stamp::Stamp;

use crate::config::{IngestMode, StoreConfig};

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
    tmp: PathBuf,
    quarantine: PathBuf,
    refs: PathBuf,
    fsync: bool,
    ingest: IngestMode,
    tmp_counter: AtomicU64,
    /// Objects this process added to `objects/`: a sync that failed after this moved has
    /// left garbage behind (see `App::sync_source`).
    created: AtomicU64,
    /// Downloads under way, so two syncs never write the same partial file at once.
    downloads: std::sync::Mutex<
        std::collections::HashMap<ObjectId, std::sync::Arc<tokio::sync::Mutex<()>>>,
    >,
}

impl Store {
    /// Opens (creating if needed) the store in `data_dir`. The caller holds the `DataLock`.
    pub fn open(data_dir: &Path, config: &StoreConfig) -> Result<Store, StoreError> {
        let store = Store {
            root: data_dir.to_path_buf(),
            objects: data_dir.join("objects").join("sha256"),
            tmp: data_dir.join("tmp"),
            quarantine: data_dir.join("quarantine"),
            refs: data_dir.join("refs"),
            fsync: config.fsync,
            ingest: config.ingest,
            tmp_counter: AtomicU64::new(0),
            created: AtomicU64::new(0),
            downloads: Default::default(),
        };
        for dir in [&store.objects, &store.tmp, &store.refs] {
            fs::create_dir_all(dir).map_err(err("create directory", dir))?;
        }
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

    pub fn fsync(&self) -> bool {
        self.fsync
    }

    /// How many objects this process has added so far (a counter only ever going up).
    pub fn objects_created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// Removes what interrupted writes left in `tmp/`, except partial downloads (they resume).
    /// Call only while holding the lock.
    pub fn clean_tmp(&self) -> Result<usize, StoreError> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.tmp).map_err(err("read", &self.tmp))? {
            let entry = entry.map_err(err("read", &self.tmp))?;
            let path = entry.path();
            if entry.file_name() == "partial" {
                removed += self.clean_stale_partials(&path);
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

    /// Partial downloads untouched for a week will not be resumed: their upstream moved on.
    fn clean_stale_partials(&self, dir: &Path) -> usize {
        const STALE: std::time::Duration = std::time::Duration::from_secs(7 * 86400);
        let mut removed = 0;
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let stale = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age > STALE);
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    pub fn object_path(&self, id: &ObjectId) -> PathBuf {
        let hex = id.to_hex();
        self.objects.join(&hex[..2]).join(hex)
    }

    pub fn contains(&self, id: &ObjectId) -> bool {
        self.object_path(id).is_file()
    }

    /// A fresh name in `tmp/`, unique within this process (the lock makes it unique overall).
    pub fn tmp_path(&self, hint: &str) -> PathBuf {
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("{}-{n}-{hint}", std::process::id()))
    }

    /// Starts writing a new object; bytes are hashed as they are written.
    pub fn writer(&self) -> Result<ObjectWriter<'_>, StoreError> {
        let path = self.tmp_path("w");
        let file = File::create(&path).map_err(err("create", &path))?;
        Ok(ObjectWriter {
            store: self,
            file: Some(file),
            path,
            hasher: Sha256::new(),
            size: 0,
        })
    }

    /// Waits until no one else in this process downloads object `id`, and claims it; the
    /// claim ends when the returned guard is dropped.
    pub async fn claim_download(&self, id: &ObjectId) -> DownloadClaim<'_> {
        let lock = self
            .downloads
            .lock()
            .expect("not poisoned")
            .entry(*id)
            .or_default()
            .clone();
        let guard = lock.clone().lock_owned().await;
        DownloadClaim {
            store: self,
            id: *id,
            _guard: guard,
            lock,
        }
    }

    /// Opens (or continues) a download of an object whose hash is known in advance. What an
    /// interrupted earlier attempt wrote is kept in `tmp/partial/` and hashed again here, so
    /// the download resumes where it stopped.
    pub fn partial(&self, expected: &ObjectId) -> Result<PartialWriter<'_>, StoreError> {
        let dir = self.tmp.join("partial");
        fs::create_dir_all(&dir).map_err(err("create directory", &dir))?;
        let path = dir.join(expected.to_hex());
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err("open", &path))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buffer).map_err(err("read", &path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
        }
        Ok(PartialWriter {
            store: self,
            file,
            path,
            hasher,
            size,
            expected: *expected,
        })
    }

    /// Stores a byte slice (manifests, generated files).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ObjectId, StoreError> {
        let mut writer = self.writer()?;
        writer
            .write_all(bytes)
            .map_err(err("write", &writer.path.clone()))?;
        Ok(writer.finish()?.id)
    }

    /// Reads a whole object into memory. Only for small objects such as manifests.
    pub fn read(&self, id: &ObjectId) -> Result<Vec<u8>, StoreError> {
        let path = self.object_path(id);
        fs::read(&path).map_err(err("read object", &path))
    }

    /// Moves a finished temp file into place as object `id`, unless it is there already.
    /// The temp file is gone afterwards in every case: on a full disk the fan-out directory
    /// may not be creatable, and a temp file left behind would keep the disk full.
    fn commit(&self, tmp: &Path, id: &ObjectId) -> Result<bool, StoreError> {
        let target = self.object_path(id);
        if target.exists() {
            let _ = fs::remove_file(tmp);
            return Ok(false);
        }
        let dir = target.parent().expect("object paths have a parent");
        let placed = fs::create_dir_all(dir)
            .map_err(err("create directory", dir))
            .and_then(|()| fs::rename(tmp, &target).map_err(err("rename into place", &target)));
        if let Err(e) = placed {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        self.created.fetch_add(1, Ordering::Relaxed);
        if self.fsync {
            sync_dir(dir)?;
        }
        Ok(true)
    }

    /// Puts a local file into the store without doubling disk use where the filesystem allows:
    /// a reflink (copy-on-write clone, immune to later changes of the original), else a hard
    /// link (stamped, see [`Stored::stamp`]), else a copy. The bytes are hashed exactly once.
    pub fn ingest_file(&self, source: &Path) -> Result<Stored, StoreError> {
        // Links, clones and copies are of the file itself, never of a symlink to it.
        let resolved = fs::canonicalize(source).map_err(err("resolve", source))?;
        let source = resolved.as_path();
        let before = fs::metadata(source).map_err(err("stat", source))?;
        if self.ingest == IngestMode::Auto {
            if let Some(stored) = self.ingest_by_reflink(source, &before)? {
                return Ok(stored);
            }
            if let Some(stored) = self.ingest_by_hard_link(source, &before)? {
                return Ok(stored);
            }
        }
        self.ingest_by_copy(source, &before)
    }

    /// Clone, then hash the clone: the clone cannot change under us, so its hash is exact.
    fn ingest_by_reflink(
        &self,
        source: &Path,
        before: &fs::Metadata,
    ) -> Result<Option<Stored>, StoreError> {
        let input = File::open(source).map_err(err("open", source))?;
        let tmp = self.tmp_path("clone");
        let output = File::create(&tmp).map_err(err("create", &tmp))?;
        if rustix::fs::ioctl_ficlone(&output, &input).is_err() {
            let _ = fs::remove_file(&tmp);
            return Ok(None);
        }
        if self.fsync {
            output.sync_all().map_err(err("fsync", &tmp))?;
        }
        let (id, size) = hash_file(&tmp)?;
        if size != before.len() {
            let _ = fs::remove_file(&tmp);
            return Err(changed_while_reading(source));
        }
        let created = self.commit(&tmp, &id)?;
        Ok(Some(Stored {
            id,
            size,
            method: if created {
                IngestMethod::Reflink
            } else {
                IngestMethod::Existing
            },
            stamp: None,
        }))
    }

    /// Hash the original, link it, and check the original did not move meanwhile.
    fn ingest_by_hard_link(
        &self,
        source: &Path,
        before: &fs::Metadata,
    ) -> Result<Option<Stored>, StoreError> {
        let (id, size) = hash_file(source)?;
        let after = fs::metadata(source).map_err(err("stat", source))?;
        if !same_content_stamp(before, &after) || size != before.len() {
            return Err(changed_while_reading(source));
        }
        if let Some(stored) = self.reuse_existing(id, size)? {
            return Ok(Some(stored));
        }
        let tmp = self.tmp_path("link");
        if fs::hard_link(source, &tmp).is_err() {
            return Ok(None);
        }
        let linked = fs::metadata(&tmp).map_err(err("stat", &tmp))?;
        if !same_content_stamp(before, &linked) {
            let _ = fs::remove_file(&tmp);
            return Err(changed_while_reading(source));
        }
        if !self.commit(&tmp, &id)? {
            // Raced with another writer of the same bytes; theirs is as good as ours.
            return self.reuse_existing(id, size);
        }
        // Stamped after the rename, which moves the ctime.
        let object = self.object_path(&id);
        let placed = fs::metadata(&object).map_err(err("stat", &object))?;
        if !same_content_stamp(before, &placed) {
            return Err(changed_while_reading(source));
        }
        Ok(Some(Stored {
            id,
            size,
            method: IngestMethod::HardLink,
            stamp: Some(Stamp::of(&placed)),
        }))
    }

    fn ingest_by_copy(&self, source: &Path, before: &fs::Metadata) -> Result<Stored, StoreError> {
        let mut input = File::open(source).map_err(err("open", source))?;
        let mut writer = self.writer()?;
        let mut buffer = vec![0u8; CHUNK];
        loop {
            let n = input.read(&mut buffer).map_err(err("read", source))?;
            if n == 0 {
                break;
            }
            let path = writer.path.clone();
            writer
                .write_all(&buffer[..n])
                .map_err(err("write", &path))?;
        }
        let after = fs::metadata(source).map_err(err("stat", source))?;
        if !same_content_stamp(before, &after) || writer.size != before.len() {
            writer.abort();
            return Err(changed_while_reading(source));
        }
        let stored = writer.finish()?;
        if stored.method != IngestMethod::Existing {
            return Ok(stored);
        }
        match self.reuse_existing(stored.id, stored.size)? {
            Some(existing) => Ok(existing),
            // The old object was damaged and is quarantined now: store our good copy.
            None => self.ingest_by_copy(source, before),
        }
    }

    /// An object we are about to name again, if it is there and sound. If it shares its inode
    /// with an outside file, that file may have been rewritten since: re-hash before trusting
    /// it, and quarantine it if it no longer matches its name (then `None`: store it afresh).
    fn reuse_existing(&self, id: ObjectId, size: u64) -> Result<Option<Stored>, StoreError> {
        let path = self.object_path(&id);
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(err("stat", &path)(e)),
        };
        let stamp = if meta.nlink() > 1 {
            let (actual, actual_size) = hash_file(&path)?;
            if actual != id || actual_size != size {
                let to = self.quarantine(&id)?;
                tracing::warn!(
                    object = %id,
                    quarantined = %to.display(),
                    "a hard-linked original of this object was modified in place"
                );
                return Ok(None);
            }
            Some(Stamp::of(&meta))
        } else {
            None
        };
        Ok(Some(Stored {
            id,
            size,
            method: IngestMethod::Existing,
            stamp,
        }))
    }

    /// Moves a damaged object out of `objects/` so it is never served or reused again.
    pub fn quarantine(&self, id: &ObjectId) -> Result<PathBuf, StoreError> {
        fs::create_dir_all(&self.quarantine).map_err(err("create directory", &self.quarantine))?;
        let from = self.object_path(id);
        let to = self.quarantine.join(id.to_hex());
        fs::rename(&from, &to).map_err(err("quarantine", &from))?;
        Ok(to)
    }

    /// Writes a small file atomically: temp file, fsync, rename, fsync of the directory.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let dir = path.parent().expect("ref paths have a parent");
        fs::create_dir_all(dir).map_err(err("create directory", dir))?;
        let tmp = dir.join(format!(
            ".{}.{}.tmp",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("ref"),
            std::process::id()
        ));
        let written = File::create(&tmp)
            .map_err(err("create", &tmp))
            .and_then(|mut file| {
                file.write_all(bytes).map_err(err("write", &tmp))?;
                if self.fsync {
                    file.sync_all().map_err(err("fsync", &tmp))?;
                }
                Ok(())
            })
            .and_then(|()| fs::rename(&tmp, path).map_err(err("rename into place", path)));
        if let Err(e) = written {
            // A half-written temp file must not outlive the failure (it would hold the very
            // space whose lack made the write fail).
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        if self.fsync {
            sync_dir(dir)?;
        }
        Ok(())
    }
}

fn changed_while_reading(path: &Path) -> StoreError {
    StoreError {
        action: "ingest",
        path: path.to_path_buf(),
        source: io::Error::other("the file changed while it was being read; try again"),
    }
}

/// Size and mtime, the cheap signs that a file's content changed.
fn same_content_stamp(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    a.len() == b.len() && mtime_ns(a) == mtime_ns(b)
}

pub fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

/// Hashes a file in large chunks; returns its id and size.
pub fn hash_file(path: &Path) -> Result<(ObjectId, u64), StoreError> {
    let mut file = File::open(path).map_err(err("open", path))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer).map_err(err("read", path))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((ObjectId(hasher.finalize().into()), size))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .open(dir)
        .map_err(err("open directory", dir))?;
    file.sync_all().map_err(err("fsync directory", dir))
}

/// Held while downloading one object (see [`Store::claim_download`]).
pub struct DownloadClaim<'a> {
    store: &'a Store,
    id: ObjectId,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    lock: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Drop for DownloadClaim<'_> {
    fn drop(&mut self) {
        let mut downloads = self.store.downloads.lock().expect("not poisoned");
        // The map, this claim and the guard's own handle: nobody else waits for it.
        if std::sync::Arc::strong_count(&self.lock) <= 3 {
            downloads.remove(&self.id);
        }
    }
}

/// A download with a known hash: appends to `tmp/partial/<hash>`, hashing as it goes.
pub struct PartialWriter<'a> {
    store: &'a Store,
    file: File,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
    expected: ObjectId,
}

impl PartialWriter<'_> {
    /// Bytes already there (from earlier attempts and this one).
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn write_chunk(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.file
            .write_all(bytes)
            .map_err(err("write", &self.path))?;
        self.hasher.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Starts over (the server ignored our Range, or the partial was wrong).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        self.file.set_len(0).map_err(err("truncate", &self.path))?;
        self.hasher = Sha256::new();
        self.size = 0;
        Ok(())
    }

    /// Checks the hash and moves the object into place. On a mismatch the partial file is
    /// removed (so the next attempt starts clean) and the actual hash is returned as the error.
    pub fn finish(self) -> Result<Result<Stored, ObjectId>, StoreError> {
        let actual = ObjectId(self.hasher.clone().finalize().into());
        if actual != self.expected {
            let _ = fs::remove_file(&self.path);
            return Ok(Err(actual));
        }
        if self.store.fsync {
            self.file.sync_all().map_err(err("fsync", &self.path))?;
        }
        let created = self.store.commit(&self.path, &actual)?;
        Ok(Ok(Stored::written(actual, self.size, created)))
    }

    /// Forgets the partial data.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// A new object being written: bytes go to a temp file and through the hasher at once.
pub struct ObjectWriter<'a> {
    store: &'a Store,
    file: Option<File>,
    path: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl ObjectWriter<'_> {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Finishes the object: fsync (if configured), then rename into place under its hash.
    pub fn finish(mut self) -> Result<Stored, StoreError> {
        let file = self.file.take().expect("finish is called once");
        if self.store.fsync {
            file.sync_all().map_err(err("fsync", &self.path))?;
        }
        drop(file);
        let id = ObjectId(std::mem::take(&mut self.hasher).finalize().into());
        let created = self.store.commit(&self.path, &id)?;
        Ok(Stored::written(id, self.size, created))
    }

    /// Drops the partial object.
    pub fn abort(mut self) {
        self.file.take();
        let _ = fs::remove_file(&self.path);
    }
}

impl Write for ObjectWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let file = self.file.as_mut().expect("writer is open");
        let n = file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for ObjectWriter<'_> {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, ingest: IngestMode) -> Store {
        Store::open(
            dir,
            &StoreConfig {
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

    #[test]
    fn ingest_copy_and_link() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input.bin");
        fs::write(&input, vec![7u8; 300_000]).unwrap();
        for mode in [IngestMode::Copy, IngestMode::Auto] {
            let data = dir.path().join(format!("data-{mode:?}"));
            let store = store(&data, mode);
            let stored = store.ingest_file(&input).unwrap();
            assert_eq!(stored.size, 300_000);
            assert_eq!(
                fs::read(store.object_path(&stored.id)).unwrap().len(),
                300_000
            );
            if mode == IngestMode::Copy {
                assert_eq!(stored.method, IngestMethod::Copy);
                assert!(stored.stamp.is_none());
            } else {
                assert_ne!(
                    stored.method,
                    IngestMethod::Copy,
                    "same filesystem: no copy"
                );
            }
            let again = store.ingest_file(&input).unwrap();
            assert_eq!(again.id, stored.id);
            assert_eq!(again.method, IngestMethod::Existing);
        }
    }

    #[test]
    fn modified_hard_linked_original_is_not_reused() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("input.bin");
        fs::write(&input, b"version one").unwrap();
        let store = store(&dir.path().join("data"), IngestMode::Auto);
        let first = store.ingest_file(&input).unwrap();
        if first.method != IngestMethod::HardLink {
            return; // reflink filesystem: the clone is immune anyway
        }
        // Rewrite in place (same inode), as `cp new old` does.
        fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&input)
            .unwrap()
            .write_all(b"version two")
            .unwrap();
        let copy = dir.path().join("copy-of-one");
        fs::write(&copy, b"version one").unwrap();
        let again = store.ingest_file(&copy).unwrap();
        assert_eq!(again.id, first.id);
        assert_ne!(
            again.method,
            IngestMethod::Existing,
            "the damaged object is not reused"
        );
        assert_eq!(
            fs::read(store.object_path(&first.id)).unwrap(),
            b"version one"
        );
    }
}
