//! Ingest of local files (dir sources, images): a reflink where the filesystem can clone, else
//! a hard link, else a copy, so a mirror of a local tree does not double its disk use.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{err, hash_file, IngestMethod, IngestMode, ObjectId, Stamp, Store, StoreError};
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
        // Not followed: a file swapped for a symlink since it was resolved is refused, so
        // no link ever lands in the store.
        let before = fs::symlink_metadata(source).map_err(err("stat", source))?;
        if !before.is_file() {
            return Err(changed_while_reading(source));
        }
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
        if !same_content_stamp(before, &after) || writer.size() != before.len() {
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
