//! Writing into the store: new objects hashed as their bytes go to a temp file and renamed into
//! place under their hash, and small files (refs) replaced atomically.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use sha2::{Digest, Sha256};

use super::layout::{self, ObjectName};
use super::place::Placed;
use super::{err, ObjectId, Store, StoreError, Stored, CHUNK};

/// How [`Store::place_bytes`] found or left the object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placement {
    /// Written by this call.
    Created,
    /// There already, of the right size (noted for the next flush; not checked further).
    Existing,
}

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
        let id = ObjectId(Sha256::digest(bytes).into());
        self.place_bytes(&id, bytes, false)?;
        Ok(id)
    }

    /// Stores `bytes`, whose sha256 is `id`, unless the object is there already: straight under
    /// its final name where the system allows (see `place`), else through a temp file in
    /// `tmp/`. An object there already but of another size is what a power loss left of an
    /// object never flushed: it is quarantined and ours takes its place. Nothing is fsynced
    /// here (see `durable`). `likely_new`: the caller expects no such object (a file of a
    /// cold sync), so the bytes are written first and the name tried: a taken name is the
    /// existence check, and the lookup beforehand is saved where it would find nothing.
    pub(super) fn place_bytes(
        &self,
        id: &ObjectId,
        bytes: &[u8],
        likely_new: bool,
    ) -> Result<Placement, StoreError> {
        if self.is_scratch() {
            // The objects beneath count as held: the general way knows them.
            return self.place_through_tmp(id, bytes);
        }
        let name = ObjectName::of(id);
        let fan = layout::fan_out(id);
        let path = || self.object_path(id);
        let mut look_first = !likely_new;
        // Again after a torn object was moved out of the way or a racing writer won the name.
        for _ in 0..3 {
            if look_first {
                let existing = self.placer.stat(&name);
                if let Some(existing) = existing.map_err(|e| err("stat", &path())(e))? {
                    if existing.st_size as u64 == bytes.len() as u64 {
                        self.note_unsynced(id);
                        return Ok(Placement::Existing);
                    }
                    self.quarantine_torn(id)?;
                }
            }
            look_first = true;
            let pending = self.begin_unsynced()?;
            let placed = self
                .placer
                .place(&name, fan, bytes)
                .map_err(|e| err("store object", &path())(e))?;
            match placed {
                Placed::Created => {
                    self.created.fetch_add(1, Ordering::Relaxed);
                    pending.placed(*id);
                    return Ok(Placement::Created);
                }
                Placed::Taken => continue,
                Placed::Unsupported => {
                    drop(pending);
                    return self.place_through_tmp(id, bytes);
                }
            }
        }
        Err(StoreError {
            action: "store object",
            path: path(),
            source: io::Error::other("another object kept appearing under its name"),
        })
    }

    /// [`Store::place_bytes`] by a temp file in `tmp/` renamed into place.
    fn place_through_tmp(&self, id: &ObjectId, bytes: &[u8]) -> Result<Placement, StoreError> {
        let tmp = self.tmp_path("w");
        let written = File::create(&tmp)
            .and_then(|mut file| file.write_all(bytes))
            .map_err(err("write", &tmp));
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        match self.commit(&tmp, id)? {
            true => Ok(Placement::Created),
            false => Ok(Placement::Existing),
        }
    }

    /// Moves a damaged object (of the wrong size) out of the way; gone already is as good.
    pub(super) fn quarantine_torn(&self, id: &ObjectId) -> Result<(), StoreError> {
        match self.quarantine(id) {
            Ok(to) => {
                tracing::warn!(object = %id, quarantined = %to.display(), "a torn object (wrong size)");
                Ok(())
            }
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
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
        let pending = match self.begin_unsynced() {
            Ok(pending) => pending,
            Err(e) => {
                let _ = fs::remove_file(tmp);
                return Err(e);
            }
        };
        let name = ObjectName::of(id);
        if let Err(e) = self.placer.rename_into(tmp, &name, layout::fan_out(id)) {
            let _ = fs::remove_file(tmp);
            return Err(err("rename into place", &target)(e));
        }
        self.created.fetch_add(1, Ordering::Relaxed);
        pending.placed(*id);
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
    let mut size = 0u64;
    with_chunk_buffer(|buffer| loop {
        let n = file.read(buffer).map_err(err("read", path))?;
        if n == 0 {
            return Ok(());
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    })?;
    Ok((ObjectId(hasher.finalize().into()), size))
}

thread_local! {
    /// One [`CHUNK`] per thread that reads files for the store, kept: allocating (and zeroing)
    /// a fresh one per file costs more than reading a small file.
    static CHUNK_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's chunk buffer ([`CHUNK`] bytes), or a fresh one if it is in use
/// further up the stack.
pub(super) fn with_chunk_buffer<T>(f: impl FnOnce(&mut [u8]) -> T) -> T {
    CHUNK_BUFFER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buffer) => {
            if buffer.len() < CHUNK {
                buffer.resize(CHUNK, 0);
            }
            f(&mut buffer[..CHUNK])
        }
        Err(_) => f(&mut vec![0u8; CHUNK]),
    })
}

/// Makes a rename in `dir` durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::atomic_file::sync_dir(dir).map_err(err("fsync directory", dir))
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::store::{IngestMode, StoreOptions};

    fn store(dir: &Path, fsync: bool) -> Store {
        let options = StoreOptions {
            fsync,
            ingest: IngestMode::Copy,
        };
        Store::open(dir, &options).unwrap()
    }

    /// Every file under `objects/` is an object whose bytes match its name, and `tmp/` is
    /// empty: no temp file, no half-written object left anywhere.
    pub(crate) fn assert_only_sound_objects(dir: &Path) -> usize {
        let mut count = 0;
        layout::for_each_object(&dir.join("objects/sha256"), |object| {
            let (actual, _) = hash_file(&object.entry.path()).unwrap();
            assert_eq!(actual, object.id, "{}", object.entry.path().display());
            count += 1;
            Ok(())
        })
        .unwrap();
        for fan in fs::read_dir(dir.join("objects/sha256")).unwrap() {
            for entry in fs::read_dir(fan.unwrap().path()).unwrap() {
                let name = entry.unwrap().file_name();
                assert!(
                    name.to_str().unwrap().parse::<ObjectId>().is_ok(),
                    "a stray file {name:?} among the objects"
                );
            }
        }
        assert_eq!(fs::read_dir(dir.join("tmp")).unwrap().count(), 0);
        count
    }

    #[test]
    fn a_torn_object_is_quarantined_and_stored_afresh() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), true);
        let id = store.put_bytes(b"whole bytes").unwrap();
        // What a power loss leaves of an object never flushed: its name, no bytes.
        fs::write(store.object_path(&id), b"").unwrap();
        assert_eq!(store.put_bytes(b"whole bytes").unwrap(), id);
        assert_eq!(store.read(&id).unwrap(), b"whole bytes");
        assert!(dir.path().join("quarantine").join(id.to_hex()).exists());
        assert_only_sound_objects(dir.path());
    }

    #[test]
    fn without_unnamed_files_objects_go_through_tmp() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), true);
        store.placer.without_unnamed_files();
        let a = store.put_bytes(b"through tmp").unwrap();
        assert_eq!(store.put_bytes(b"through tmp").unwrap(), a);
        assert_eq!(store.read(&a).unwrap(), b"through tmp");
        let id = store.put_bytes(b"torn").unwrap();
        fs::write(store.object_path(&id), b"").unwrap();
        assert_eq!(store.put_bytes(b"torn").unwrap(), id);
        assert_eq!(store.read(&id).unwrap(), b"torn");
        assert_eq!(store.objects_created(), 3);
        assert_eq!(store.unsynced_objects(), 4);
        store.make_durable().unwrap();
        assert_eq!(assert_only_sound_objects(dir.path()), 2);
    }

    #[test]
    fn many_threads_storing_the_same_and_different_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), true);
        let ids: Vec<Vec<ObjectId>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..8)
                .map(|t| {
                    let store = &store;
                    scope.spawn(move || {
                        (0..300)
                            .map(|i| {
                                // Half shared by every thread, half this thread's own.
                                let bytes = match i % 2 {
                                    0 => format!("shared {i}"),
                                    _ => format!("thread {t} object {i}"),
                                };
                                let id = store.put_bytes(bytes.as_bytes()).unwrap();
                                assert_eq!(store.read(&id).unwrap(), bytes.as_bytes());
                                id
                            })
                            .collect()
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).collect()
        });
        for (t, ids) in ids.iter().enumerate() {
            for (i, id) in ids.iter().enumerate() {
                if i % 2 == 0 {
                    assert_eq!(*id, ObjectId(Sha256::digest(format!("shared {i}")).into()));
                } else {
                    let own = format!("thread {t} object {i}");
                    assert_eq!(*id, ObjectId(Sha256::digest(own).into()));
                }
            }
        }
        assert_eq!(
            store.objects_created(),
            150 + 8 * 150,
            "each object written once"
        );
        assert!(dir.path().join("unsynced").exists());
        store.make_durable().unwrap();
        assert!(!dir.path().join("unsynced").exists());
        assert_eq!(assert_only_sound_objects(dir.path()), 150 + 8 * 150);
    }
}
