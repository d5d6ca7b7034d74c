//! The package files of an apt snapshot: named by its Packages/Sources, fetched in parallel
//! when the store lacks them (asked for percent-encoded, see `urls`), re-hashed first when `verify_pool`
//! is set, and left out with a warning under `ignore_errors`. The download tasks are made as
//! connections free up, so a cold sync holds a few dozen of them, whatever the archive's size.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::index::{self, PoolList};
use super::release::Listed;
use super::selection::family;
use super::{apt_error, Mirror};
use crate::store::{hash_file, IngestMethod, ObjectId, Store, Stored};
use crate::sync::fetch::{Expected, FetchError};
use crate::sync::{SyncError, SyncReport};

/// What the pool step got: problems to report and the files it had to leave out (recorded,
/// so the next sync tries them again). Every other file of the list is in the store.
#[derive(Default)]
pub(super) struct PoolOutcome {
    /// Positions in the list of the files left out, in order.
    pub failed: Vec<usize>,
    pub problems: Vec<String>,
    pub left_out: Vec<String>,
}

/// Downloads in flight per allowed connection: enough that a connection never waits for the
/// next task to be made, few enough that a cold sync of a whole archive holds a few dozen
/// tasks (each a few KB of request state), not one per file.
const TASKS_PER_CONNECTION: usize = 2;

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

impl Mirror<'_> {
    /// Parses one variant of every Packages/Sources family; returns the files they name, in
    /// path order, each path once (see [`PoolList::into_unique`]).
    pub(super) fn pool_files(&self, indices: &[(Listed, ObjectId)]) -> Result<PoolList, SyncError> {
        let mut best: BTreeMap<String, (u8, &Listed, ObjectId)> = BTreeMap::new();
        for (listed, object) in indices {
            if let Some(rank) = index::parse_preference(&listed.path) {
                let family = family(&listed.path);
                if best.get(&family).is_none_or(|(r, _, _)| rank < *r) {
                    best.insert(family, (rank, listed, *object));
                }
            }
        }
        let mut files = PoolList::default();
        for (_, listed, object) in best.values() {
            let file = std::fs::File::open(self.store.object_path(object))
                .map_err(|e| apt_error(format!("cannot open stored index {}: {e}", listed.path)))?;
            // Filename is relative to the repository's URL, for flat repositories too.
            index::parse_into(&listed.path, file, &self.config.filter, &mut files)
                .map_err(|e| apt_error(format!("{}{}: {e}", self.dist, listed.path)))?;
        }
        files.into_unique().map_err(apt_error)
    }

    /// With `verify_pool`, quarantines every stored pool object whose bytes no longer match
    /// its hash, so the fetch that follows gets it again; returns a problem line for each.
    fn quarantine_damaged(&self, pool: &PoolList) -> Vec<String> {
        if !self.config.verify_pool {
            return Vec::new();
        }
        let stored: Vec<ObjectId> = pool
            .iter()
            .map(|file| file.sha256)
            .filter(|id| self.store.contains(id))
            .collect();
        let mut problems = Vec::new();
        for id in damaged_objects(self.store, &stored) {
            let path = pool
                .iter()
                .find(|file| file.sha256 == id)
                .map_or("?", |file| file.path);
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

    /// Downloads every pool file the store lacks, in parallel, making each download's task only
    /// when a connection is about to be free. A dry run (a scratch store) downloads nothing:
    /// each file is only counted, in turn, with no task or URL of its own and the store asked
    /// once.
    pub(super) async fn fetch_pool(
        &self,
        pool: &PoolList,
        report: &mut SyncReport,
    ) -> Result<PoolOutcome, SyncError> {
        let mut outcome = PoolOutcome {
            problems: self.quarantine_damaged(pool),
            ..PoolOutcome::default()
        };
        let dry_run = self.store.is_scratch();
        let stats = &self.fetcher.stats;
        // Positions of the files to download, all counted first (progress and its ETA).
        let mut missing: Vec<u32> = Vec::new();
        for (n, file) in pool.iter().enumerate() {
            if self.store.contains(&file.sha256) {
                continue;
            }
            if dry_run {
                // A dry run counts a file it lacks as one a sync would fetch, as
                // `Fetcher::payload` does for a signed size, without making its URL.
                report.counts.files_stored += 1;
                report.counts.bytes_stored += file.size;
                continue;
            }
            stats.planned_files.fetch_add(1, Ordering::Relaxed);
            stats.planned_bytes.fetch_add(file.size, Ordering::Relaxed);
            missing.push(
                u32::try_from(n).map_err(|_| apt_error("more than 4 billion package files"))?,
            );
        }
        let in_flight = self.config.fetch.parallel.max(1) * TASKS_PER_CONNECTION;
        let mut tasks = FuturesUnordered::new();
        let mut failures = Vec::new();
        for n in missing {
            while tasks.len() >= in_flight {
                if let Some((n, result)) = tasks.next().await {
                    self.landed(n, result, &mut failures, report)?;
                }
            }
            let n = n as usize;
            let file = pool.get(n);
            let url = self.url(file.path);
            let expected = Expected {
                size: Some(file.size),
                sha256: file.sha256,
            };
            tasks.push(async move { (n, self.fetcher.payload(self.store, &url, expected).await) });
        }
        while let Some((n, result)) = tasks.next().await {
            self.landed(n, result, &mut failures, report)?;
        }
        // In path order, as the list is.
        failures.sort();
        if let Some((_, first)) = failures.first() {
            if !self.config.ignore_errors {
                return Err(apt_error(format!(
                    "{} package file(s) could not be fetched; first: {first}",
                    failures.len(),
                )));
            }
        }
        for (n, failure) in failures {
            tracing::warn!(source = self.source, "left out: {failure}");
            outcome.problems.push(format!(
                "left out (ignore_errors, tried again next sync): {failure}"
            ));
            outcome.left_out.push(pool.get(n).path.to_string());
            outcome.failed.push(n);
        }
        Ok(outcome)
    }

    /// Records what became of the pool file at position `n`: stored, or a failure (the sync's
    /// store failing ends it).
    fn landed(
        &self,
        n: usize,
        result: Result<Stored, FetchError>,
        failures: &mut Vec<(usize, String)>,
        report: &mut SyncReport,
    ) -> Result<(), SyncError> {
        match result {
            Ok(stored) => {
                if stored.method != IngestMethod::Existing {
                    report.counts.files_stored += 1;
                    report.counts.bytes_stored += stored.size;
                }
            }
            Err(FetchError::Store(e)) => return Err(SyncError::Store(e)),
            Err(e) => failures.push((n, e.to_string())),
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
