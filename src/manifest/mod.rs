//! Manifests: one snapshot of one source, a sorted list of (path, object, size, mtime).
//!
//! A manifest is stored as an object itself, so a snapshot id is the hash of its content.
//! New manifests are written in a compact binary format (`binary`); manifests written as
//! JSON by earlier versions are still read (`stored` says why they are never re-encoded).

pub mod binary;
mod diff;
mod stored;
pub(crate) mod varint;

#[cfg(test)]
pub use diff::PathChange;
pub use diff::{ChangeKind, ManifestDiff};
pub use stored::{save_entries, StoredEntries};

use serde::{Deserialize, Serialize};

use crate::store::{ObjectId, SnapshotReader, Store, StoreError};

/// The version of a manifest's fields, bumped when they change incompatibly. The binary
/// encoding has its own version ([`binary::VERSION`]).
pub const FORMAT: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub format: u32,
    pub source: String,
    /// Unix seconds when the snapshot was made.
    pub created: i64,
    /// Sorted by path, unique.
    pub entries: Vec<Entry>,
    /// Whether the entries' `immutable` flags were set by the sync. Snapshots made before
    /// the flag existed get it from their source kind's rule when they are loaded.
    #[serde(default)]
    pub immutability_recorded: bool,
    /// What decided which files this snapshot holds, for kinds whose configuration selects
    /// part of an upstream (apt). Absent in snapshots made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selection: Option<Selection>,
}

/// The configuration that chose a snapshot's files, and the files it could not get: a sync
/// whose upstream did not change still plans again when this differs from what it would
/// choose now, or when something was left out.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Selection {
    /// A canonical description of every option that decides which files are carried.
    pub description: String,
    /// Files (or index families) the upstream listed but did not serve, sorted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Problems about things the upstream lists but never served (an index family), sorted.
    /// Reported again by every sync, but not retried until the upstream or the selection
    /// changes: re-asking an upstream for what it does not have would make every sync plan
    /// again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unserved: Vec<String>,
}

/// One published file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    /// Relative to the mount, `/`-separated, no leading slash, no `.` or `..` segments.
    pub path: String,
    pub object: ObjectId,
    pub size: u64,
    /// Last-Modified in unix seconds: when this content was first published at this path.
    /// Stable for a path and content, never in the future, never moving backwards.
    pub mtime: i64,
    /// See [`crate::store::Stored::stamp`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stamp: Option<crate::store::Stamp>,
    /// Where the bytes came from, for cheap change detection on the next sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
    /// The bytes at this path can never change (a package, a by-hash index, a versioned
    /// image): served with a year of caching. Set by the source kind at sync.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub immutable: bool,
}

/// The stat of a local file when it was ingested.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Origin {
    pub size: u64,
    pub mtime_ns: i64,
    pub inode: u64,
}

#[cfg(test)]
impl Entry {
    /// A file of one byte, dated 1970, with nothing else recorded: what unit tests need.
    pub(crate) fn plain(path: &str, object: ObjectId) -> Entry {
        Entry {
            path: path.into(),
            object,
            size: 1,
            mtime: 0,
            stamp: None,
            origin: None,
            immutable: false,
        }
    }
}

impl Manifest {
    pub fn new(source: &str, created: i64, mut entries: Vec<Entry>) -> Manifest {
        entries.sort_by(|a, b| a.path.cmp(&b.path));
        entries.dedup_by(|a, b| a.path == b.path);
        Manifest {
            format: FORMAT,
            source: source.to_string(),
            created,
            entries,
            immutability_recorded: true,
            selection: None,
        }
    }

    pub fn total_bytes(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }

    /// True when both publish the same files with the same content and dates.
    pub fn same_content(&self, other: &Manifest) -> bool {
        self.entries.len() == other.entries.len()
            && self
                .entries
                .iter()
                .zip(&other.entries)
                .all(|(a, b)| a.path == b.path && a.object == b.object && a.mtime == b.mtime)
    }
}

/// Reads snapshots as manifests, for GC and verify (the store does not know the format).
#[derive(Debug, Clone, Copy, Default)]
pub struct Manifests;

impl SnapshotReader for Manifests {
    type Error = ManifestError;

    fn for_each_file(
        &self,
        store: &Store,
        id: &ObjectId,
        each: &mut dyn FnMut(&str, &ObjectId),
    ) -> Result<(), ManifestError> {
        for entry in StoredEntries::open(store, id)? {
            let entry = entry?;
            each(&entry.path, &entry.object);
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("manifest {id} is damaged: {source}")]
    Damaged {
        id: ObjectId,
        source: binary::DecodeError,
    },
    #[error("manifest {0} has format {1}, this mirrorbox reads format {FORMAT}")]
    Format(ObjectId, u32),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::gc::{mark, sweep};
    use crate::store::refs::SourceRefs;
    use crate::store::{GcGate, IngestMode, StoreOptions};

    fn entry(path: &str, object: ObjectId) -> Entry {
        Entry::plain(path, object)
    }

    #[test]
    fn gc_keeps_what_manifests_name() {
        let dir = tempfile::tempdir().unwrap();
        let options = StoreOptions {
            fsync: false,
            ingest: IngestMode::Copy,
        };
        let store = Store::open(dir.path(), &options).unwrap();
        let kept = store.put_bytes(b"kept").unwrap();
        let garbage = store.put_bytes(b"garbage").unwrap();
        let id = Manifest::new("s", 0, vec![entry("a", kept)])
            .save(&store)
            .unwrap();
        let refs = SourceRefs {
            current: Some(id),
            snapshots: vec![id],
            pinned: None,
        };
        store.write_refs("s", &refs).unwrap();
        let live = mark(&store, &Manifests).unwrap();
        let report = sweep(&store, &live, &GcGate::new().exclusive()).unwrap();
        assert_eq!(report.removed, 1);
        assert!(store.contains(&kept) && store.contains(&id));
        assert!(!store.contains(&garbage));
    }

    #[test]
    fn entries_are_sorted_and_unique() {
        let a = ObjectId([1; 32]);
        let b = ObjectId([2; 32]);
        let manifest = Manifest::new("s", 0, vec![entry("z", a), entry("a", b), entry("z", b)]);
        let paths: Vec<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, ["a", "z"]);
        assert_eq!(manifest.total_bytes(), 2);
    }
}
