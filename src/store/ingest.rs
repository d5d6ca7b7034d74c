//! Ingest of local files (dir sources, images): a reflink where the filesystem can clone, else
//! a hard link, else a copy, so a mirror of a local tree does not double its disk use.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::write::{with_chunk_buffer, Placement};
use super::{err, hash_file, local, IngestMethod, IngestMode, ObjectId, Stamp, Store, StoreError};
use super::{Stored, CHUNK};

impl Store {
    /// Puts a local file into the store without doubling disk use where the filesystem allows:
    /// a reflink (copy-on-write clone, immune to later changes of the original), else a hard
    /// link (stamped, see [`Stored::stamp`]), else a copy. The bytes are hashed exactly once.
    pub fn ingest_file(&self, source: &Path) -> Result<Stored, StoreError> {
        // Links, clones and copies are of the file itself, never of a symlink to it.
        let resolved = fs::canonicalize(source).map_err(err("resolve", source))?;
        self.ingest_resolved(&resolved)
    }

    /// [`Store::ingest_file`] of a path known to hold no symlink (a walk that resolved every
    /// link it followed): no `realpath`, which costs a stat per path component.
    pub fn ingest_resolved(&self, source: &Path) -> Result<Stored, StoreError> {
        if self.is_scratch() {
            return self.ingest_planned(source);
        }
        if self.ingest == IngestMode::Copy {
            return self.ingest_by_copy(source);
        }
        // Not followed: a file swapped for a symlink since it was resolved is refused, so
        // no link ever lands in the store.
        let before = fs::symlink_metadata(source).map_err(err("stat", source))?;
        if !before.is_file() {
            return Err(changed_while_reading(source));
        }
        if let Some(stored) = self.ingest_by_reflink(source, &before)? {
            return Ok(stored);
        }
        if let Some(stored) = self.ingest_by_hard_link(source, &before)? {
            return Ok(stored);
        }
        self.ingest_by_copy(source)
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
        drop(output);
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

    /// Copies the file's bytes into a new object. A file of up to one chunk (most files of a
    /// package pool) is read whole into a reused buffer and placed under its final name at
    /// once (see `place`); a larger one streams through a temp file. The file is opened once,
    /// not through a symlink, and refused if its size or mtime moved while it was read.
    fn ingest_by_copy(&self, source: &Path) -> Result<Stored, StoreError> {
        // Twice at most: an existing object found damaged is quarantined and stored afresh.
        for _ in 0..2 {
            let (file, before) = local::open(source)?;
            let size = before.size;
            let (id, placement) = if size <= CHUNK as u64 {
                with_chunk_buffer(|buffer| {
                    let bytes = local::read_small(&file, &before, source, buffer)?;
                    let id = ObjectId(Sha256::digest(bytes).into());
                    Ok::<_, StoreError>((id, self.place_bytes(&id, bytes, true)?))
                })?
            } else {
                self.copy_streaming(&file, &before, source)?
            };
            if placement == Placement::Created {
                return Ok(Stored::written(id, size, true));
            }
            if let Some(existing) = self.reuse_existing(id, size)? {
                return Ok(existing);
            }
        }
        Err(StoreError {
            action: "ingest",
            path: source.to_path_buf(),
            source: io::Error::other("the object of these bytes was damaged again and again"),
        })
    }

    /// A large file through an [`super::ObjectWriter`], chunk by chunk.
    fn copy_streaming(
        &self,
        file: &File,
        before: &local::Seen,
        source: &Path,
    ) -> Result<(ObjectId, Placement), StoreError> {
        let mut writer = self.writer()?;
        let mut input = file;
        with_chunk_buffer(|buffer| -> Result<(), StoreError> {
            loop {
                let n = input.read(buffer).map_err(err("read", source))?;
                if n == 0 {
                    return Ok(());
                }
                let path = writer.path.clone();
                writer
                    .write_all(&buffer[..n])
                    .map_err(err("write", &path))?;
            }
        })?;
        if local::seen(file, source)? != *before || writer.size() != before.size {
            writer.abort();
            return Err(changed_while_reading(source));
        }
        let stored = writer.finish()?;
        let placement = match stored.method {
            IngestMethod::Existing => Placement::Existing,
            _ => Placement::Created,
        };
        Ok((stored.id, placement))
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
        if meta.len() != size {
            // What a power loss left of an object never flushed: store it afresh.
            let to = self.quarantine(&id)?;
            tracing::warn!(object = %id, quarantined = %to.display(), "a torn object (wrong size)");
            return Ok(None);
        }
        self.note_unsynced(&id);
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
}

pub(super) fn changed_while_reading(path: &Path) -> StoreError {
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

/// A file's mtime in nanoseconds, as manifests record a local file's origin.
pub fn mtime_ns(meta: &fs::Metadata) -> i64 {
    meta.mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(meta.mtime_nsec())
}

#[cfg(test)]
mod tests {
    use super::super::tests::store;
    use super::*;

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

    /// Several threads ingest the same files and files of their own at once, as a parallel
    /// walk does: every object is right, each written once, and nothing is left over.
    #[test]
    fn concurrent_ingest_of_the_same_and_different_files() {
        for unnamed_files in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let tree = dir.path().join("tree");
            fs::create_dir(&tree).unwrap();
            let content = |name: &str| format!("the bytes of {name}\n").repeat(1 + name.len() % 9);
            let shared: Vec<String> = (0..100).map(|i| format!("shared-{i}")).collect();
            for name in &shared {
                fs::write(tree.join(name), content(name)).unwrap();
            }
            // One large file (streamed, not read whole), shared too.
            fs::write(tree.join("large"), vec![9u8; CHUNK * 2 + 17]).unwrap();
            let data = dir.path().join("data");
            let store = store(&data, IngestMode::Copy);
            if !unnamed_files {
                store.placer.without_unnamed_files();
            }
            std::thread::scope(|scope| {
                for t in 0..4 {
                    let (store, tree, shared) = (&store, &tree, &shared);
                    scope.spawn(move || {
                        for (i, name) in shared.iter().enumerate() {
                            let own = format!("own-{t}-{i}");
                            fs::write(tree.join(&own), content(&own)).unwrap();
                            for name in [name, &own] {
                                let stored = store.ingest_resolved(&tree.join(name)).unwrap();
                                let bytes = content(name);
                                assert_eq!(stored.size, bytes.len() as u64);
                                assert_eq!(stored.id, ObjectId(Sha256::digest(&bytes).into()));
                            }
                        }
                        let large = store.ingest_resolved(&tree.join("large")).unwrap();
                        assert_eq!(large.size, (CHUNK * 2 + 17) as u64);
                    });
                }
            });
            let objects = super::super::write::tests::assert_only_sound_objects(&data);
            assert_eq!(objects, 100 + 4 * 100 + 1);
            if unnamed_files {
                // Racing writers of one object: one wins, the others take its object.
                assert_eq!(store.objects_created(), objects as u64);
            }
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
