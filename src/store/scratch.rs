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
use std::os::fd::OwnedFd;
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

/// The layers of a scratch store: its own objects (fetched into it to plan) over the real
/// store's, read only. A dry run asks whether each file an index names is held, so each look
/// is one `statat` from an open folder rather than a walk of the whole path, and a prefix
/// folder the real store lacks answers "not held" with no look at all (for an empty store:
/// never a look beneath).
#[derive(Debug)]
pub(super) struct Beneath {
    /// The scratch's own `objects/sha256`, open.
    above: OwnedFd,
    /// The real store's `objects/sha256` (for paths of objects read from it).
    below_path: PathBuf,
    /// That folder, open; `None` when the real store has none (it holds nothing).
    below: Option<OwnedFd>,
    /// Which two-digit prefix folders the real store had when the dry run began. A real sync
    /// writes an object before any ref names it, and the refs were copied before this was
    /// read, so every object those refs name is found.
    prefixes: [bool; 256],
}

impl Beneath {
    /// Opens the layers: `above` is the scratch's objects folder, `below` the real store's.
    fn open(above: &Path, below: PathBuf) -> Result<Beneath, StoreError> {
        let above_fd = open_dir(above)
            .map_err(err("open", above))?
            .ok_or_else(|| err("open", above)(std::io::ErrorKind::NotFound.into()))?;
        let below_fd = open_dir(&below).map_err(err("open", &below))?;
        let prefixes = match below_fd {
            Some(_) => prefix_folders(&below)?,
            None => [false; 256],
        };
        Ok(Beneath {
            above: above_fd,
            below_path: below,
            below: below_fd,
            prefixes,
        })
    }

    /// Whether the scratch itself holds `id`.
    pub(super) fn held_above(&self, id: &ObjectId) -> bool {
        is_file_at(&self.above, id)
    }

    /// Whether the real store holds `id`.
    pub(super) fn held_below(&self, id: &ObjectId) -> bool {
        match &self.below {
            Some(dir) if self.prefixes[usize::from(id.0[0])] => is_file_at(dir, id),
            _ => false,
        }
    }

    /// Whether either layer holds `id`.
    pub(super) fn holds(&self, id: &ObjectId) -> bool {
        self.held_above(id) || self.held_below(id)
    }

    /// Where `id` is: `own` (its path in the scratch) unless only the real store holds it.
    pub(super) fn path_of(&self, id: &ObjectId, own: PathBuf) -> PathBuf {
        if !self.held_above(id) && self.held_below(id) {
            layout::object_path(&self.below_path, id)
        } else {
            own
        }
    }
}

/// Which two-digit prefix folders objects folder `dir` has.
fn prefix_folders(dir: &Path) -> Result<[bool; 256], StoreError> {
    let mut prefixes = [false; 256];
    for entry in fs::read_dir(dir).map_err(err("read", dir))? {
        let entry = entry.map_err(err("read", dir))?;
        let name = entry.file_name();
        let prefix = name
            .to_str()
            .filter(|n| n.len() == 2)
            .and_then(|n| u8::from_str_radix(n, 16).ok());
        if let Some(prefix) = prefix {
            prefixes[usize::from(prefix)] = true;
        }
    }
    Ok(prefixes)
}

/// A scratch store once the sync against it is done: nothing writes it any more, so the
/// prefix folders it has are read once and a look for an object under any other (nearly
/// every file a plan counts: the scratch holds only indices) needs no call at all.
pub struct Settled<'a> {
    store: &'a Store,
    above: [bool; 256],
}

impl Settled<'_> {
    /// [`Store::held_above`], for the settled scratch.
    pub fn held_above(&self, id: &ObjectId) -> bool {
        self.above[usize::from(id.0[0])] && self.store.held_above(id)
    }

    /// [`Store::held_beneath`].
    pub fn held_beneath(&self, id: &ObjectId) -> bool {
        self.store.held_beneath(id)
    }
}

impl Scratch {
    /// The scratch as it is now, for counting what it holds; call once nothing writes it.
    pub fn settled(&self) -> Result<Settled<'_>, StoreError> {
        Ok(Settled {
            store: &self.store,
            above: prefix_folders(self.store.objects_dir())?,
        })
    }
}

/// `path` opened as a folder to look up from; `None` if it does not exist.
fn open_dir(path: &Path) -> std::io::Result<Option<OwnedFd>> {
    use rustix::fs::{Mode, OFlags};
    match rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether object `id` is a regular file under objects folder `dir` (links followed, as
/// `Path::is_file`); any failure to look counts as not there.
fn is_file_at(dir: &OwnedFd, id: &ObjectId) -> bool {
    // `ab/abcd…`: built on the stack; the lookup starts at `dir`.
    let mut name = [0u8; 67];
    hex::encode_to_slice(id.0, &mut name[3..]).expect("64 digits for 32 bytes");
    name.copy_within(3..5, 0);
    name[2] = b'/';
    let Ok(name) = std::str::from_utf8(&name) else {
        return false;
    };
    rustix::fs::statat(dir, name, rustix::fs::AtFlags::empty())
        .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_file())
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
        let beneath = Beneath::open(
            scratch.store.objects_dir(),
            data_dir.join("objects").join("sha256"),
        )?;
        scratch.store.beneath = Some(beneath);
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
        match &self.beneath {
            Some(beneath) => beneath.held_above(id),
            None => layout::object_path(&self.objects, id).is_file(),
        }
    }

    /// Whether the real store beneath a scratch store holds `id` (for a real store: itself).
    pub fn held_beneath(&self, id: &ObjectId) -> bool {
        match &self.beneath {
            Some(beneath) => beneath.held_below(id),
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

    /// Looks beneath skip the prefix folders the real store lacks: they must still find every
    /// object it holds, in any prefix, and nothing it does not hold.
    #[test]
    fn looks_beneath_find_exactly_what_the_real_store_holds() {
        let options = StoreOptions {
            fsync: false,
            ingest: IngestMode::Copy,
        };
        // No store at all, then an empty one: nothing beneath, what the scratch fetched is held.
        let real_dir = tempfile::tempdir().unwrap();
        let absent = Store::scratch_over(real_dir.path(), &["s"], &options).unwrap();
        let fetched = absent.put_bytes(b"fetched").unwrap();
        assert!(absent.contains(&fetched) && absent.held_above(&fetched));
        assert!(!absent.held_beneath(&fetched));
        assert_eq!(absent.read(&fetched).unwrap(), b"fetched");
        let real = store(real_dir.path(), IngestMode::Copy);
        let empty = Store::scratch_over(real_dir.path(), &["s"], &options).unwrap();
        assert!(!empty.contains(&fetched) && !empty.held_beneath(&fetched));
        // A real store holding objects under many prefixes.
        let held: Vec<ObjectId> = (0..64u32)
            .map(|i| real.put_bytes(format!("held {i}").as_bytes()).unwrap())
            .collect();
        let other = ObjectId([0x5a; 32]);
        let scratch = Store::scratch_over(real_dir.path(), &["s"], &options).unwrap();
        for id in &held {
            assert!(scratch.held_beneath(id) && scratch.contains(id), "{id}");
            assert!(!scratch.held_above(id));
            assert_eq!(scratch.object_path(id), real.object_path(id));
        }
        // Not held, with a prefix the real store has and with one it lacks.
        let mut same_prefix = other;
        same_prefix.0[0] = held[0].0[0];
        let mut free_prefix = other;
        free_prefix.0[0] = (0..=255u8)
            .find(|p| held.iter().all(|id| id.0[0] != *p))
            .unwrap();
        for id in [other, same_prefix, free_prefix] {
            assert!(!scratch.held_beneath(&id) && !scratch.contains(&id), "{id}");
        }
        // Something only the scratch holds is found above, not beneath.
        let mine = scratch.put_bytes(b"fetched into the scratch").unwrap();
        assert!(scratch.held_above(&mine) && !scratch.held_beneath(&mine));
        assert!(scratch.contains(&mine) && !real.contains(&mine));
    }

    /// A settled scratch finds exactly what it and the store beneath hold.
    #[test]
    fn a_settled_scratch_finds_what_it_holds() {
        let real_dir = tempfile::tempdir().unwrap();
        let real = store(real_dir.path(), IngestMode::Copy);
        let below = real.put_bytes(b"below").unwrap();
        let options = StoreOptions {
            fsync: false,
            ingest: IngestMode::Copy,
        };
        let scratch = Store::scratch_over(real_dir.path(), &["s"], &options).unwrap();
        let above: Vec<ObjectId> = (0..16u32)
            .map(|i| scratch.put_bytes(format!("index {i}").as_bytes()).unwrap())
            .collect();
        let settled = scratch.settled().unwrap();
        for id in &above {
            assert!(settled.held_above(id) && !settled.held_beneath(id), "{id}");
        }
        assert!(settled.held_beneath(&below) && !settled.held_above(&below));
        let mut same_prefix = ObjectId([0x5a; 32]);
        same_prefix.0[0] = above[0].0[0];
        for id in [ObjectId([0x5a; 32]), same_prefix] {
            assert!(
                !settled.held_above(&id) && !settled.held_beneath(&id),
                "{id}"
            );
        }
    }
}
