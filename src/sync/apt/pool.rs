//! The package files of an apt snapshot: named by its Packages/Sources, fetched in parallel
//! when the store lacks them (asked for percent-encoded, see `urls`), re-hashed first when `verify_pool`
//! is set, and left out with a warning under `ignore_errors`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::release::Listed;
use super::selection::family;
use super::{apt_error, index, Mirror, Planned};
use crate::store::{hash_file, IngestMethod, ObjectId, Store, Stored};
use crate::sync::fetch::{Expected, FetchError};
use crate::sync::{SyncError, SyncReport};

/// What the pool step got, besides the planned entries: problems to report and the paths it
/// had to leave out (recorded, so the next sync tries them again).
#[derive(Default)]
pub(super) struct PoolOutcome {
    pub planned: Vec<Planned>,
    pub problems: Vec<String>,
    pub left_out: Vec<String>,
}

/// Re-hashes stored objects on every core; returns the ones whose bytes do not match their
/// name. An object that cannot be read counts as damaged (it cannot be served either).
fn damaged_objects(store: &Store, ids: &[ObjectId]) -> Vec<ObjectId> {
    let next = AtomicUsize::new(0);
    let damaged = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(ids.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = ids.get(i) else { break };
                let intact =
                    matches!(hash_file(&store.object_path(id)), Ok((actual, _)) if actual == *id);
                if !intact {
                    damaged.lock().expect("not poisoned").push(*id);
                }
            });
        }
    });
    let mut damaged = damaged.into_inner().expect("not poisoned");
    damaged.sort();
    damaged
}

/// `files` in path order, each path once: a path listed again (by another index, or twice in
/// one) must name the same content, else the listing is refused, naming both packages.
fn unique_paths(mut files: Vec<index::PoolFile>) -> Result<Vec<index::PoolFile>, SyncError> {
    // Stable: of the files listed under one path, the first listed comes first.
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let mut unique: Vec<index::PoolFile> = Vec::with_capacity(files.len());
    for file in files {
        match unique.last() {
            Some(kept) if kept.path == file.path => {
                if kept.sha256 != file.sha256 {
                    return Err(apt_error(format!(
                        "{} is listed twice with different hashes (packages {} and {})",
                        file.path, kept.package, file.package
                    )));
                }
            }
            _ => unique.push(file),
        }
    }
    Ok(unique)
}

impl Mirror<'_> {
    /// Parses one variant of every Packages/Sources family; returns the files they name.
    pub(super) fn pool_files(
        &self,
        indices: &[(Listed, ObjectId)],
    ) -> Result<Vec<index::PoolFile>, SyncError> {
        let mut best: BTreeMap<String, (u8, &Listed, ObjectId)> = BTreeMap::new();
        for (listed, object) in indices {
            if let Some(rank) = index::parse_preference(&listed.path) {
                let family = family(&listed.path);
                if best.get(&family).is_none_or(|(r, _, _)| rank < *r) {
                    best.insert(family, (rank, listed, *object));
                }
            }
        }
        let mut files: Vec<index::PoolFile> = Vec::new();
        for (_, listed, object) in best.values() {
            let file = std::fs::File::open(self.store.object_path(object))
                .map_err(|e| apt_error(format!("cannot open stored index {}: {e}", listed.path)))?;
            // Filename is relative to the repository's URL, for flat repositories too.
            files.extend(
                index::parse(&listed.path, file, &self.config.filter)
                    .map_err(|e| apt_error(format!("{}{}: {e}", self.dist, listed.path)))?,
            );
        }
        unique_paths(files)
    }

    /// With `verify_pool`, quarantines every stored pool object whose bytes no longer match
    /// its hash, so the fetch that follows gets it again; returns a problem line for each.
    fn quarantine_damaged(&self, wanted: &[(index::PoolFile, ObjectId)]) -> Vec<String> {
        if !self.config.verify_pool {
            return Vec::new();
        }
        let stored: Vec<ObjectId> = wanted
            .iter()
            .map(|(_, id)| *id)
            .filter(|id| self.store.contains(id))
            .collect();
        let mut problems = Vec::new();
        for id in damaged_objects(self.store, &stored) {
            let path = wanted
                .iter()
                .find(|(_, w)| *w == id)
                .map_or("?", |(file, _)| file.path.as_str());
            match self.store.quarantine(&id) {
                Ok(to) => {
                    tracing::error!(source = self.source, object = %id, quarantined = %to.display(), "stored copy of {path} is damaged; fetching it again");
                    problems.push(format!(
                        "{path}: the stored copy was damaged (quarantined) and is fetched again"
                    ));
                }
                Err(e) => problems.push(format!(
                    "{path}: the stored copy is damaged and could not be quarantined: {e}"
                )),
            }
        }
        problems
    }

    /// Downloads every pool file the store lacks, in parallel. A dry run (a scratch store)
    /// downloads nothing: each file is only counted, in turn, with no task or URL of its own
    /// and the store asked once.
    pub(super) async fn fetch_pool(
        &self,
        pool: Vec<index::PoolFile>,
        report: &mut SyncReport,
    ) -> Result<PoolOutcome, SyncError> {
        let wanted: Vec<(index::PoolFile, ObjectId)> = pool
            .into_iter()
            .map(|file| (file.sha256, file))
            .map(|(id, file)| (file, id))
            .collect();
        let mut outcome = PoolOutcome {
            problems: self.quarantine_damaged(&wanted),
            ..PoolOutcome::default()
        };
        outcome.planned.reserve(wanted.len());
        let dry_run = self.store.is_scratch();
        let mut tasks = FuturesUnordered::new();
        let mut failures = Vec::new();
        let stats = &self.fetcher.stats;
        for (file, sha256) in wanted {
            let held = self.store.contains(&sha256);
            if held || dry_run {
                // A dry run counts a file it lacks as one a sync would fetch, as
                // `Fetcher::payload` does for a signed size, without making its URL.
                if !held {
                    report.counts.files_stored += 1;
                    report.counts.bytes_stored += file.size;
                }
                outcome.planned.push(Planned {
                    path: file.path,
                    object: sha256,
                    size: file.size,
                });
                continue;
            }
            let url = self.url(&file.path);
            let expected = Expected {
                size: Some(file.size),
                sha256,
            };
            stats.planned_files.fetch_add(1, Ordering::Relaxed);
            stats.planned_bytes.fetch_add(file.size, Ordering::Relaxed);
            tasks.push(async move {
                let result = self.fetcher.payload(self.store, &url, expected).await;
                (file, sha256, result)
            });
        }
        while let Some((file, sha256, result)) = tasks.next().await {
            self.landed(file, sha256, result, &mut outcome, &mut failures, report)?;
        }
        failures.sort();
        if let Some((_, first)) = failures.first() {
            if !self.config.ignore_errors {
                return Err(apt_error(format!(
                    "{} package file(s) could not be fetched; first: {first}",
                    failures.len(),
                )));
            }
        }
        for (path, failure) in failures {
            tracing::warn!(source = self.source, "left out: {failure}");
            outcome.problems.push(format!(
                "left out (ignore_errors, tried again next sync): {failure}"
            ));
            outcome.left_out.push(path);
        }
        Ok(outcome)
    }

    /// Records what became of one pool file: planned, or a failure (the sync's store failing
    /// ends it).
    fn landed(
        &self,
        file: index::PoolFile,
        sha256: ObjectId,
        result: Result<Stored, FetchError>,
        outcome: &mut PoolOutcome,
        failures: &mut Vec<(String, String)>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        match result {
            Ok(stored) => {
                if stored.method != IngestMethod::Existing {
                    report.counts.files_stored += 1;
                    report.counts.bytes_stored += stored.size;
                }
                outcome.planned.push(Planned {
                    path: file.path,
                    object: sha256,
                    size: file.size,
                });
            }
            Err(FetchError::Store(e)) => return Err(SyncError::Store(e)),
            Err(e) => failures.push((file.path, e.to_string())),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damaged_objects_are_found_by_hashing_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::tests::store(dir.path(), crate::store::IngestMode::Copy);
        let good = store.put_bytes(b"good").unwrap();
        let bad = store.put_bytes(b"bad").unwrap();
        let path = store.object_path(&bad);
        let mut permissions = std::fs::metadata(&path).unwrap().permissions();
        #[allow(clippy::permissions_set_readonly_false)]
        permissions.set_readonly(false);
        std::fs::set_permissions(&path, permissions).unwrap();
        std::fs::write(&path, b"rotten").unwrap();
        assert_eq!(damaged_objects(&store, &[good, bad]), vec![bad]);
        assert!(damaged_objects(&store, &[]).is_empty());
    }
}
