//! The snapshot an apt sync starts from, read only as far as the sync needs it.
//!
//! Most syncs of an apt source end with "InRelease not modified": the current snapshot stands
//! as it is. That answer needs only the snapshot's selection (its header), its Release files'
//! entries (the InRelease object the validators describe, the Release whose Valid-Until is
//! checked again) and its file and byte counts for the summary line. So a sync first reads the
//! stored manifest once as a stream, keeping just those; when it really plans, it reads it
//! again as a stream beside the new entries, to date them by the old ones (see `plan`), and
//! loads it whole only if it is out of path order.
//!
//! Why a decision on that pass is safe: the pass reads the manifest to its end and checks its
//! bytes against its id (the store names objects by their sha256) before the sync asks the
//! upstream anything. A damaged manifest fails the sync there, with an error naming it, exactly
//! as loading it whole did; nothing read from it is acted on before the check. Entries are
//! matched by path wherever they stand, so a manifest out of path order (hand-made, or written
//! before order was enforced) loses nothing: it cannot hide its InRelease and so skip the
//! replay and expiry checks.

use std::borrow::Cow;
use std::sync::OnceLock;

use crate::manifest::{Entry, Manifest, Selection, StoredEntries, FORMAT};
use crate::store::{ObjectId, Store};
use crate::sync::previous::Previous;
use crate::sync::SyncError;

/// The current snapshot of an apt source, as far as it has been read.
pub(super) struct Current<'a> {
    /// The header and the Release files' entries (or the whole manifest when given whole).
    summary: Option<Cow<'a, Manifest>>,
    whole: Whole<'a>,
}

enum Whole<'a> {
    None,
    /// Loaded by the caller (a dry run plans with the whole manifest anyway).
    Given(Previous<'a>),
    /// In the store, counted; loaded whole on first need.
    Stored {
        store: &'a Store,
        id: ObjectId,
        files: u64,
        bytes: u64,
        loaded: OnceLock<Manifest>,
    },
}

/// The previous snapshot kept as it is: what [`NewEntries::keep_previous`] takes.
///
/// [`NewEntries::keep_previous`]: crate::sync::snapshot::NewEntries::keep_previous
pub(super) struct Kept {
    pub id: ObjectId,
    pub selection: Option<Selection>,
    pub files: u64,
    pub bytes: u64,
}

/// The paths of the Release files of distribution folder `dist` (`dists/<suite>/`, or the
/// flat directory), the only entries a sync looks up before it plans.
fn release_paths(dist: &str) -> [String; 3] {
    [
        format!("{dist}InRelease"),
        format!("{dist}Release"),
        format!("{dist}Release.gpg"),
    ]
}

impl<'a> Current<'a> {
    /// A manifest loaded whole by the caller, or none.
    pub fn given(manifest: Option<&'a Manifest>) -> Current<'a> {
        Current {
            summary: manifest.map(Cow::Borrowed),
            whole: match manifest {
                Some(_) => Whole::Given(Previous::new(manifest)),
                None => Whole::None,
            },
        }
    }

    /// Stored manifest `id`, streamed once to its end (and checked against its id): its header,
    /// the Release files of `dist`, and how many files and bytes it holds. Memory stays a few
    /// entries whatever its size.
    pub fn stored(store: &'a Store, id: ObjectId, dist: &str) -> Result<Current<'a>, SyncError> {
        let wanted = release_paths(dist);
        let mut stream = StoredEntries::open(store, &id)?;
        let header = stream.header().clone();
        let (mut files, mut bytes) = (0u64, 0u64);
        let mut found: Vec<Entry> = Vec::new();
        for entry in &mut stream {
            let entry = entry?;
            files += 1;
            bytes = bytes.wrapping_add(entry.size);
            let is_wanted = wanted.contains(&entry.path);
            if is_wanted && !found.iter().any(|e| e.path == entry.path) {
                found.push(entry);
            }
        }
        found.sort_by(|a, b| a.path.cmp(&b.path));
        let summary = Manifest {
            format: FORMAT,
            source: header.source,
            created: header.created,
            entries: found,
            immutability_recorded: header.immutability_recorded,
            selection: header.selection,
        };
        Ok(Current {
            summary: Some(Cow::Owned(summary)),
            whole: Whole::Stored {
                store,
                id,
                files,
                bytes,
                loaded: OnceLock::new(),
            },
        })
    }

    /// The header (selection) and at least the Release files' entries, if there is a snapshot.
    pub fn summary(&self) -> Option<&Manifest> {
        self.summary.as_deref()
    }

    /// The entry of a Release file (`<dist>InRelease`, `Release`, `Release.gpg`): only those
    /// are known before the snapshot is loaded whole.
    pub fn release_file(&self, path: &str) -> Option<&Entry> {
        match &self.whole {
            Whole::None => None,
            Whole::Given(previous) => previous.get(path),
            Whole::Stored { .. } => self
                .summary()
                .and_then(|m| m.entries.iter().find(|e| e.path == path)),
        }
    }

    /// The whole snapshot, loaded on first call (checked against its id like any load).
    pub fn whole(&self) -> Result<Option<&Manifest>, SyncError> {
        match &self.whole {
            Whole::None => Ok(None),
            Whole::Given(previous) => Ok(previous.manifest()),
            Whole::Stored {
                store, id, loaded, ..
            } => {
                if let Some(manifest) = loaded.get() {
                    return Ok(Some(manifest));
                }
                let manifest = Manifest::load(store, id)?;
                Ok(Some(loaded.get_or_init(|| manifest)))
            }
        }
    }

    /// The store and id of the snapshot, if it came from the store (and can be read again as
    /// a stream).
    pub fn stored_id(&self) -> Option<(&'a Store, ObjectId)> {
        match &self.whole {
            Whole::Stored { store, id, .. } => Some((*store, *id)),
            _ => None,
        }
    }

    /// The stored snapshot as [`Kept`], if it came from the store.
    pub fn kept(&self) -> Option<Kept> {
        match &self.whole {
            Whole::Stored {
                id, files, bytes, ..
            } => Some(Kept {
                id: *id,
                selection: self.summary().and_then(|m| m.selection.clone()),
                files: *files,
                bytes: *bytes,
            }),
            _ => None,
        }
    }
}
