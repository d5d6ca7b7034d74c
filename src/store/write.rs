//! Writing into the store: new objects hashed as their bytes go to a temp file and renamed into
//! place under their hash, and small files (refs) replaced atomically.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::{err, ObjectId, Store, StoreError, Stored, CHUNK};

impl Store {
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

    /// Stores a byte slice (manifests, generated files).
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<ObjectId, StoreError> {
        let mut writer = self.writer()?;
        writer
            .write_all(bytes)
            .map_err(err("write", &writer.path.clone()))?;
        Ok(writer.finish()?.id)
    }

    /// Moves a finished temp file into place as object `id`, unless it is there already.
    /// The temp file is gone afterwards in every case: on a full disk the fan-out directory
    /// may not be creatable, and a temp file left behind would keep the disk full. Nothing is
    /// fsynced here: the object is noted, and made durable with the others of its snapshot
    /// before a ref names it (see `durable`). An object already there but of another size
    /// than ours is what a power loss left of an object never flushed: ours replaces it.
    pub(super) fn commit(&self, tmp: &Path, id: &ObjectId) -> Result<bool, StoreError> {
        let target = self.object_path(id);
        if let Ok(existing) = fs::metadata(&target) {
            let ours = fs::metadata(tmp).map_err(err("stat", tmp))?;
            if existing.len() == ours.len() {
                let _ = fs::remove_file(tmp);
                self.note_unsynced(id);
                return Ok(false);
            }
            tracing::warn!(object = %id, "a torn object (wrong size) is replaced");
        }
        let dir = target.parent().expect("object paths have a parent");
        if let Err(e) = self.mark_unsynced() {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        let placed = fs::create_dir_all(dir)
            .map_err(err("create directory", dir))
            .and_then(|()| fs::rename(tmp, &target).map_err(err("rename into place", &target)));
        if let Err(e) = placed {
            let _ = fs::remove_file(tmp);
            return Err(e);
        }
        self.created.fetch_add(1, Ordering::Relaxed);
        self.note_unsynced(id);
        Ok(true)
    }

    /// Writes a small file atomically: temp file, fsync, rename, fsync of the directory.
    /// Refs are written this way, so every object stored so far is made durable first.
    pub fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        self.make_durable()?;
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

/// Makes a rename in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .read(true)
        .open(dir)
        .map_err(err("open directory", dir))?;
    file.sync_all().map_err(err("fsync directory", dir))
}

/// A new object being written: bytes go to a temp file and through the hasher at once.
pub struct ObjectWriter<'a> {
    store: &'a Store,
    file: Option<File>,
    pub(super) path: PathBuf,
    hasher: Sha256,
    size: u64,
}

impl ObjectWriter<'_> {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Finishes the object: rename into place under its hash (made durable with the rest of
    /// its snapshot, see `durable`).
    pub fn finish(mut self) -> Result<Stored, StoreError> {
        drop(self.file.take().expect("finish is called once"));
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
