//! Downloads whose hash is known in advance: written to `tmp/partial/<hash>` so an interrupted
//! download resumes where it stopped, and claimed so two syncs of one process never write the
//! same partial file at once.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::write::with_chunk_buffer;
use super::{err, ObjectId, Store, StoreError, Stored};

/// Downloads under way in this process, by object (see [`Store::claim_download`]).
pub(super) type Downloads =
    std::sync::Mutex<std::collections::HashMap<ObjectId, Arc<tokio::sync::Mutex<()>>>>;

impl Store {
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
        with_chunk_buffer(|buffer| loop {
            let n = file.read(buffer).map_err(err("read", &path))?;
            if n == 0 {
                return Ok(());
            }
            hasher.update(&buffer[..n]);
            size += n as u64;
        })?;
        Ok(PartialWriter {
            store: self,
            file,
            path,
            hasher,
            size,
            expected: *expected,
        })
    }
}

/// Partial downloads untouched for a week will not be resumed: their upstream moved on.
/// Returns how many were removed.
pub(super) fn clean_stale_partials(dir: &Path) -> usize {
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

/// Held while downloading one object (see [`Store::claim_download`]).
pub struct DownloadClaim<'a> {
    store: &'a Store,
    id: ObjectId,
    _guard: tokio::sync::OwnedMutexGuard<()>,
    lock: Arc<tokio::sync::Mutex<()>>,
}

impl Drop for DownloadClaim<'_> {
    fn drop(&mut self) {
        let mut downloads = self.store.downloads.lock().expect("not poisoned");
        // The map, this claim and the guard's own handle: nobody else waits for it.
        if Arc::strong_count(&self.lock) <= 3 {
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
    /// No fsync of its own: the object is made durable with the rest of its sync before a ref
    /// names it, and the `unsynced` marker covers it meanwhile (see `durable`).
    pub fn finish(self) -> Result<Result<Stored, ObjectId>, StoreError> {
        let actual = ObjectId(self.hasher.clone().finalize().into());
        if actual != self.expected {
            let _ = fs::remove_file(&self.path);
            return Ok(Err(actual));
        }
        drop(self.file);
        let created = self.store.commit(&self.path, &actual)?;
        Ok(Ok(Stored::written(actual, self.size, created)))
    }

    /// Forgets the partial data.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.path);
    }
}
