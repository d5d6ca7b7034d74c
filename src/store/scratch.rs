//! A scratch store laid over a real one, for `sync --dry-run`: a sync needs to fetch and read
//! an upstream's indices to know what it would download, but a dry run must leave the data
//! directory exactly as it was, and must work while a server holds it (no lock taken).
//!
//! So the sync runs against a store in a fresh temporary folder: what it writes (indices,
//! manifests, refs, state files) lands there and is deleted with it. Reads fall through to
//! the real store's objects, which are never written, renamed or removed from here: an object
//! found beneath counts as held, so nothing held is fetched again and the previous snapshot's
//! files read as they are. The source's refs are copied in at the start, so the sync compares
//! with the snapshot and upstream state the real store has.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::{
    err, hash_file, layout, IngestMethod, ObjectId, Store, StoreError, StoreOptions, Stored,
};

/// A scratch store; its folder is removed when it is dropped.
pub struct Scratch {
    store: Store,
    dir: PathBuf,
}

impl std::ops::Deref for Scratch {
    type Target = Store;

    fn deref(&self) -> &Store {
        &self.store
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `id` under the real store's objects, if it is there; else `own` (the scratch path).
pub(super) fn beneath_or(beneath: &Path, id: &ObjectId, own: PathBuf) -> PathBuf {
    let below = layout::object_path(beneath, id);
    if below.is_file() {
        below
    } else {
        own
    }
}

impl Store {
    /// A scratch store in a new folder under the system's temporary directory, over the
    /// store of `data_dir` (read only), with the refs of `sources` copied from it.
    pub fn scratch_over(
        data_dir: &Path,
        sources: &[&str],
        options: &StoreOptions,
    ) -> Result<Scratch, StoreError> {
        static MADE: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let dir = std::env::temp_dir().join(format!(
            "mirrorbox-dry-run-{}-{}-{nanos}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed)
        ));
        // Owner only: the indices fetched into it may come from a repository behind basic auth.
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(err("create directory", &dir))?;
        let options = StoreOptions {
            fsync: false,
            ..options.clone()
        };
        // From here on the folder goes with the scratch store, also on an error.
        let mut scratch = Scratch {
            store: Store::open(&dir, &options)?,
            dir,
        };
        let real_refs = data_dir.join("refs");
        for source in sources {
            copy_files(&real_refs.join(source), &scratch.refs_dir().join(source))?;
        }
        scratch.store.beneath = Some(data_dir.join("objects").join("sha256"));
        Ok(scratch)
    }

    /// True for a scratch store (see [`Store::scratch_over`]): syncs against it only plan.
    pub fn is_scratch(&self) -> bool {
        self.beneath.is_some()
    }

    /// What ingesting local file `source` would store, with nothing stored: a dry run of a
    /// local source hashes each file it would ingest and copies or links none.
    pub(super) fn ingest_planned(&self, source: &Path) -> Result<Stored, StoreError> {
        let (id, size) = hash_file(source)?;
        let method = match self.contains(&id) {
            true => IngestMethod::Existing,
            false => IngestMethod::Copy,
        };
        Ok(Stored {
            id,
            size,
            method,
            stamp: None,
        })
    }

    /// Whether the scratch itself holds `id` (fetched into it), whatever the store beneath it
    /// holds. Without a store beneath, whether the store holds it.
    pub fn held_above(&self, id: &ObjectId) -> bool {
        layout::object_path(&self.objects, id).is_file()
    }

    /// Whether the real store beneath a scratch store holds `id` (for a real store: itself).
    pub fn held_beneath(&self, id: &ObjectId) -> bool {
        match &self.beneath {
            Some(beneath) => layout::object_path(beneath, id).is_file(),
            None => self.contains(id),
        }
    }
}

/// Copies the files under `from` (a source's refs folder) to `to`; nothing if `from` is absent.
fn copy_files(from: &Path, to: &Path) -> Result<(), StoreError> {
    let entries = match fs::read_dir(from) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(err("read", from)(e)),
    };
    fs::create_dir_all(to).map_err(err("create directory", to))?;
    for entry in entries {
        let entry = entry.map_err(err("read", from))?;
        let path = entry.path();
        let target = to.join(entry.file_name());
        let kind = entry.file_type().map_err(err("stat", &path))?;
        if kind.is_dir() {
            copy_files(&path, &target)?;
        } else if kind.is_file() {
            fs::copy(&path, &target).map_err(err("copy", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store;
    use crate::store::IngestMode;

    #[test]
    fn reads_fall_through_and_writes_stay_in_the_scratch() {
        let real_dir = tempfile::tempdir().unwrap();
        let real = store(real_dir.path(), IngestMode::Copy);
        let held = real.put_bytes(b"held").unwrap();
        real.write_atomic(&real.refs_dir().join("s").join("current"), b"x\n")
            .unwrap();
        let options = StoreOptions {
            fsync: false,
            ingest: IngestMode::Copy,
        };
        let scratch = Store::scratch_over(real_dir.path(), &["s"], &options).unwrap();
        assert!(scratch.is_scratch() && !real.is_scratch());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&scratch.dir).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o777,
            0o700,
            "the scratch folder is the owner's only"
        );
        assert!(scratch.contains(&held) && scratch.held_beneath(&held));
        assert_eq!(scratch.read(&held).unwrap(), b"held");
        // Storing what is held beneath writes nothing; new bytes land in the scratch only.
        assert_eq!(scratch.put_bytes(b"held").unwrap(), held);
        let new = scratch.put_bytes(b"new").unwrap();
        // A local file is hashed, not stored.
        let local = real_dir.path().join("local");
        fs::write(&local, b"local file").unwrap();
        let planned = scratch.ingest_file(&local).unwrap();
        assert_eq!(planned.method, IngestMethod::Copy);
        assert!(!scratch.contains(&planned.id) && !real.contains(&planned.id));
        fs::write(&local, b"held").unwrap();
        assert_eq!(
            scratch.ingest_file(&local).unwrap().method,
            IngestMethod::Existing
        );
        assert!(scratch.contains(&new) && !scratch.held_beneath(&new));
        assert!(!real.contains(&new));
        assert_eq!(
            fs::read(scratch.refs_dir().join("s").join("current")).unwrap(),
            b"x\n"
        );
        let dir = scratch.root().to_path_buf();
        drop(scratch);
        assert!(!dir.exists(), "the scratch folder is removed");
    }
}
