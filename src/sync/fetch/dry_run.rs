//! `sync --dry-run`: what a sync of a source would fetch, with nothing stored.
//!
//! The kind's own sync runs, against a scratch store laid over the real one
//! (`Store::scratch_over`): it fetches and reads the upstream's indices as usual, into the
//! scratch, and asks for payload files through [`Fetcher::payload`](super::Fetcher::payload),
//! which there only counts what is not held. Nothing is published and no ref, state file or
//! lock of the data directory is touched, so a dry run works beside a running server. The
//! entries the sync returns are then sorted by where their bytes are: in the real store
//! (re-used), fetched into the scratch to plan (indices), or nowhere yet (to fetch).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use crate::manifest::Manifest;
use crate::store::{ObjectId, Store, StoreOptions};
use crate::sync::kind::{Kind, Run};
use crate::sync::{SyncError, SyncReport};

/// What a sync of one source would do. Files are counted once per distinct content.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Plan {
    pub source: String,
    /// Payload files the store does not hold: what the sync would download.
    pub new_files: u64,
    pub new_bytes: u64,
    /// Files of the new snapshot the store holds already.
    pub reused_files: u64,
    pub reused_bytes: u64,
    /// Indices the plan had to fetch (new to the store; a real sync stores them too).
    pub metadata_files: u64,
    pub metadata_bytes: u64,
    /// Requests made to the upstream and bytes received, for the plan.
    pub upstream_requests: u64,
    pub bytes_fetched: u64,
}

/// Plans a sync of `source` (of kind `kind`) against the store in `data_dir`. Blocking.
pub fn plan(
    data_dir: &Path,
    options: &StoreOptions,
    source: &str,
    kind: &dyn Kind,
) -> Result<Plan, SyncError> {
    let scratch = Store::scratch_over(data_dir, &[source], options)?;
    let refs = scratch.read_refs(source)?;
    let previous = match refs.head() {
        Some(id) => Some(Manifest::load(&scratch, &id)?),
        None => None,
    };
    let mut report = SyncReport {
        source: source.to_string(),
        ..SyncReport::default()
    };
    let entries = kind.sync(Run {
        store: &scratch,
        source,
        previous: previous.as_ref(),
        report: &mut report,
    })?;
    let mut plan = Plan {
        source: source.to_string(),
        upstream_requests: report.counts.upstream_requests,
        bytes_fetched: report.counts.bytes_fetched,
        ..Plan::default()
    };
    let mut seen: HashSet<ObjectId, BuildHasherDefault<IdHasher>> =
        HashSet::with_capacity_and_hasher(entries.len(), Default::default());
    let held = scratch.settled()?;
    for entry in &entries {
        if !seen.insert(entry.object) {
            continue;
        }
        let (files, bytes) = if held.held_beneath(&entry.object) {
            (&mut plan.reused_files, &mut plan.reused_bytes)
        } else if held.held_above(&entry.object) {
            (&mut plan.metadata_files, &mut plan.metadata_bytes)
        } else {
            (&mut plan.new_files, &mut plan.new_bytes)
        };
        *files += 1;
        *bytes += entry.size;
    }
    Ok(plan)
}

/// Hashes an [`ObjectId`] by its first bytes: it is a sha256 already, as good a spread as
/// any hasher would make of it, and a dry run counts every file of a snapshot.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8).take(1) {
            let mut first = [0u8; 8];
            first[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(first);
        }
    }

    fn write_usize(&mut self, _length: usize) {
        // The length an array hashes first: the same for every id.
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// `would fetch N files (X bytes) new, M files (Y bytes) re-used from the store, K metadata
/// files (Z bytes) fetched to plan it (R upstream requests)`.
impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "would fetch {} files ({} bytes) new, {} files ({} bytes) re-used from the store, {} metadata files ({} bytes) fetched to plan it ({} upstream requests)",
            self.new_files,
            self.new_bytes,
            self.reused_files,
            self.reused_bytes,
            self.metadata_files,
            self.metadata_bytes,
            self.upstream_requests
        )
    }
}
