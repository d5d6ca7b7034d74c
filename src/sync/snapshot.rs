//! A new snapshot as a sync makes it: entries taken one at a time in path order, compared
//! with the previous snapshot on the way, kept on disk (see `spill`), and written as a
//! manifest only when something differs. A no-op sync of a million files thus writes no
//! object and holds no entry in memory.

use std::collections::HashSet;
use std::fs;

use super::kind::Kind;
use super::spill::{Check, Spill};
use super::SyncError;
use crate::manifest::binary::{Compression, Header, ManifestWriter};
use crate::manifest::{Entry, Manifest, Selection, StoredEntries};
use crate::store::{ObjectId, Store, StoreError};

/// The entries of the snapshot being made.
pub struct NewEntries<'a> {
    kind: &'a dyn Kind,
    spill: Spill,
    bytes: u64,
    /// Every entry so far equals the previous snapshot's at the same position (path, object
    /// and date), and the previous snapshot had no entry that was left out.
    same: bool,
    previous_selection: Option<Selection>,
    trusted: bool,
    /// The kind said the previous snapshot stands as it is ([`NewEntries::keep_previous`]):
    /// its id, files and bytes. No entry was handed over.
    kept: Option<Kept>,
}

/// The previous snapshot, kept whole without its entries being handed over.
struct Kept {
    id: ObjectId,
    files: u64,
    bytes: u64,
}

impl<'a> NewEntries<'a> {
    /// `previous`: whether there is a previous snapshot to be the same as.
    pub fn new(store: &Store, kind: &'a dyn Kind, previous: bool) -> NewEntries<'a> {
        NewEntries {
            kind,
            spill: Spill::new(store),
            bytes: 0,
            same: previous,
            previous_selection: None,
            trusted: false,
            kept: None,
        }
    }

    /// The snapshot is the previous one, `previous` (holding `files` files of `bytes` bytes in
    /// all, as counted from it), with its entries unchanged: none is handed over, so nothing is
    /// held or spilled. Publishing then keeps the current snapshot, or (with a new selection)
    /// copies its entries from the store into a new manifest. Replaces any entry pushed so far.
    pub fn keep_previous(
        &mut self,
        previous: ObjectId,
        selection: Option<Selection>,
        files: u64,
        bytes: u64,
    ) -> Result<(), SyncError> {
        self.clear(true)?;
        self.previous_selection = selection;
        self.kept = Some(Kept {
            id: previous,
            files,
            bytes,
        });
        Ok(())
    }

    /// Adds the next entry (paths strictly increasing); its `immutable` flag is the kind's.
    pub fn push(&mut self, mut entry: Entry, check: Check) -> Result<(), SyncError> {
        entry.immutable = self.kind.is_immutable(&entry.path);
        self.bytes += entry.size;
        self.trusted |= check == Check::Trusted;
        self.spill
            .push(&entry, check)
            .map_err(|source| self.spill_error(source))
    }

    /// The snapshot differs from the previous one (an entry changed, came or went).
    pub fn differs(&mut self) {
        self.same = false;
    }

    /// What chose the previous snapshot's files: a new selection is published even when it
    /// chose the same files.
    pub fn set_previous_selection(&mut self, selection: Option<Selection>) {
        self.previous_selection = selection;
    }

    /// Forgets every entry, for a scan that starts over.
    pub fn clear(&mut self, previous: bool) -> Result<(), SyncError> {
        self.spill
            .clear()
            .map_err(|source| self.spill_error(source))?;
        self.bytes = 0;
        self.same = previous;
        self.trusted = false;
        self.kept = None;
        Ok(())
    }

    /// Takes the entries of a kind that makes them all at once, in any order: sorted, each
    /// path once (the first), compared with `previous` position by position.
    pub fn push_all(
        &mut self,
        mut entries: Vec<Entry>,
        previous: Option<&Manifest>,
    ) -> Result<(), SyncError> {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        let before = previous.map_or(&[][..], |m| m.entries.as_slice());
        self.set_previous_selection(previous.and_then(|m| m.selection.clone()));
        if before.len() != entries.len() {
            self.differs();
        }
        for (at, entry) in entries.into_iter().enumerate() {
            if !before.get(at).is_some_and(|p| same_file(p, &entry)) {
                self.differs();
            }
            self.push(entry, Check::Needed)?;
        }
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.spill.len() + self.kept.as_ref().map_or(0, |k| k.files)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn total_bytes(&self) -> u64 {
        self.bytes + self.kept.as_ref().map_or(0, |k| k.bytes)
    }

    fn spill_error(&self, source: std::io::Error) -> SyncError {
        SyncError::Store(StoreError {
            action: "keep the new entries in",
            path: self.spill.folder().to_path_buf(),
            source,
        })
    }
}

/// The same file at the same path, as far as clients can tell: its bytes and its date.
pub fn same_file(a: &Entry, b: &Entry) -> bool {
    a.path == b.path && a.object == b.object && a.mtime == b.mtime
}

/// Whether the new entries publish just what the previous snapshot did, with the same
/// selection.
pub fn unchanged(new: &NewEntries<'_>, selection: &Option<Selection>) -> bool {
    new.same && new.previous_selection == *selection
}

/// Writes the new entries as a manifest object (`header.entries` is set here), after making
/// sure every object it names is stored. Returns its id.
pub fn save(store: &Store, new: NewEntries<'_>, mut header: Header) -> Result<ObjectId, SyncError> {
    let quarantined = if new.trusted {
        quarantined(store)
    } else {
        Some(HashSet::new())
    };
    header.entries = new.len();
    let read_failed = |source| {
        SyncError::Store(StoreError {
            action: "read the new entries back from",
            path: store.root().join("tmp"),
            source,
        })
    };
    let write_failed = |source| {
        SyncError::Store(StoreError {
            action: "write manifest into",
            path: store.root().join("tmp"),
            source,
        })
    };
    if let Some(kept) = &new.kept {
        return save_kept(store, new.kind, kept, header);
    }
    let entries = new.spill.read_back().map_err(read_failed)?;
    let mut out =
        ManifestWriter::new(store.writer()?, &header, Compression::Zstd).map_err(write_failed)?;
    for item in entries {
        let (entry, check) = item.map_err(read_failed)?;
        let look = match check {
            Check::Done => false,
            Check::Needed => true,
            // Moved to quarantine since the sync started, or the quarantine was unreadable.
            Check::Trusted => quarantined
                .as_ref()
                .is_none_or(|ids| ids.contains(&entry.object)),
        };
        // Every object must be stored before the snapshot can name it.
        if look && !store.contains(&entry.object) {
            return Err(SyncError::Store(StoreError {
                action: "publish (object missing)",
                path: store.object_path(&entry.object),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }));
        }
        out.push(&entry).map_err(write_failed)?;
    }
    Ok(out.finish().map_err(write_failed)?.finish()?.id)
}

/// The kept previous snapshot's entries under a new header (a selection recorded anew): read
/// back from the store as a stream, each object checked like an entry of unknown state. The
/// new manifest is finished only after the old one has been read to its end and matched its id,
/// so damage to it leaves no new object behind.
fn save_kept(
    store: &Store,
    kind: &dyn Kind,
    kept: &Kept,
    mut header: Header,
) -> Result<ObjectId, SyncError> {
    let write_failed = |source| {
        SyncError::Store(StoreError {
            action: "write manifest into",
            path: store.root().join("tmp"),
            source,
        })
    };
    header.entries = kept.files;
    let mut out =
        ManifestWriter::new(store.writer()?, &header, Compression::Zstd).map_err(write_failed)?;
    for entry in StoredEntries::open(store, &kept.id)? {
        let mut entry = entry?;
        entry.immutable = kind.is_immutable(&entry.path);
        if !store.contains(&entry.object) {
            return Err(SyncError::Store(StoreError {
                action: "publish (object missing)",
                path: store.object_path(&entry.object),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            }));
        }
        out.push(&entry).map_err(write_failed)?;
    }
    Ok(out.finish().map_err(write_failed)?.finish()?.id)
}

/// The ids of the objects in quarantine: one `readdir` of a folder that is nearly always
/// empty or absent. `None` when it cannot be read (or for a dry run's scratch store).
pub fn quarantined(store: &Store) -> Option<HashSet<ObjectId>> {
    if store.is_scratch() {
        return None;
    }
    let folder = store.root().join("quarantine");
    let listing = match fs::read_dir(&folder) {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(HashSet::new()),
        Err(e) => {
            tracing::warn!(path = %folder.display(), error = %e, "cannot read the quarantine; every reused object is checked");
            return None;
        }
    };
    let mut ids = HashSet::new();
    for item in listing {
        let item = item.ok()?;
        // Names are object ids; anything else there is not an object of ours.
        if let Some(id) = item.file_name().to_str().and_then(|n| n.parse().ok()) {
            ids.insert(id);
        }
    }
    Some(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IngestMode, StoreOptions};
    use crate::sync::dir::DirOptions;

    fn selection(description: &str) -> Option<Selection> {
        Some(Selection {
            description: description.into(),
            left_out: Vec::new(),
            unserved: Vec::new(),
        })
    }

    #[test]
    fn a_kept_snapshot_counts_its_files_and_is_copied_only_for_a_new_selection() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            fsync: false,
            ingest: IngestMode::Copy,
        };
        let store = Store::open(dir.path(), &options).unwrap();
        let entries = ["a.txt", "b/c.txt"]
            .iter()
            .map(|path| {
                let object = store.put_bytes(path.as_bytes()).unwrap();
                Entry {
                    size: path.len() as u64,
                    ..Entry::plain(path, object)
                }
            })
            .collect();
        let mut previous = Manifest::new("s", 1, entries);
        previous.selection = selection("old");
        let id = previous.save(&store).unwrap();
        let kind = DirOptions {
            path: dir.path().to_path_buf(),
            follow_symlinks_into: Vec::new(),
        };
        let kept = || {
            let mut new = NewEntries::new(&store, &kind, true);
            new.keep_previous(id, previous.selection.clone(), 2, 12)
                .unwrap();
            new
        };
        let new = kept();
        assert_eq!((new.len(), new.total_bytes()), (2, 12));
        assert!(unchanged(&new, &selection("old")));
        assert!(!unchanged(&new, &selection("new")));
        let header = Header {
            selection: selection("new"),
            ..previous.header()
        };
        let copied = save(&store, kept(), header).unwrap();
        let copied = Manifest::load(&store, &copied).unwrap();
        assert!(copied.same_content(&previous));
        assert_eq!(copied.selection, selection("new"));
    }
}
