//! Manifests: one snapshot of one source, a sorted list of (path, object, size, mtime).
//!
//! A manifest is stored as an object itself, so a snapshot id is the hash of its content.

use serde::{Deserialize, Serialize};

use crate::store::{ObjectId, Store, StoreError};

/// Bumped when the format changes incompatibly.
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
        }
    }

    pub fn load(store: &Store, id: &ObjectId) -> Result<Manifest, ManifestError> {
        let bytes = store.read(id)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| ManifestError::Parse(*id, e))?;
        if manifest.format != FORMAT {
            return Err(ManifestError::Format(*id, manifest.format));
        }
        Ok(manifest)
    }

    pub fn save(&self, store: &Store) -> Result<ObjectId, StoreError> {
        let bytes = serde_json::to_vec(self).expect("manifests serialize");
        store.put_bytes(&bytes)
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

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("manifest {0} is damaged: {1}")]
    Parse(ObjectId, serde_json::Error),
    #[error("manifest {0} has format {1}, this mirrorbox reads format {FORMAT}")]
    Format(ObjectId, u32),
}
