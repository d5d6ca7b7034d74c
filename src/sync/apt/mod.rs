//! `apt` sources: a signed upstream apt repository, mirrored into snapshots.
//!
//! One sync: fetch InRelease (conditionally; 304 ends a no-op sync), else Release +
//! Release.gpg on 404; verify the signature against the configured keys; refuse a replayed
//! (older) or expired Release; fetch the indices the Release lists for the configured
//! components and architectures (by-hash when offered), each checked against its signed size
//! and sha256; parse Packages/Sources; fetch every package file the store lacks, in parallel;
//! return the snapshot's entries. If an index no longer matches the Release (the upstream
//! changed mid-sync), start again from InRelease, a bounded number of times.

pub mod index;
pub mod keyring;
pub mod options;
pub mod policy;
pub mod release;
pub mod repository;
mod selection;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde::{Deserialize, Serialize};

use super::fetch::{Expected, FetchError, Fetcher};
use super::previous::{with_progress, Previous};
use super::{SyncError, SyncReport};
use crate::manifest::{Entry, Manifest};
use crate::store::{IngestMethod, ObjectId, Store};
use crate::time::unix_now;
use keyring::Keyring;
pub use options::{AptOptions, APT_INDEX_KINDS};
use release::{Listed, Release};
use selection::{family, select};

/// Restarts from InRelease when the upstream changes under a sync.
const MAX_RESTARTS: usize = 3;

/// What the upstream said about the InRelease we hold, for a conditional request next time.
#[derive(Debug, Default, Serialize, Deserialize)]
struct UpstreamState {
    /// The object those validators describe: only then is a 304 proof of "unchanged".
    object: Option<ObjectId>,
    etag: Option<String>,
    last_modified: Option<String>,
}

fn apt_error(message: impl Into<String>) -> SyncError {
    SyncError::Upstream(message.into())
}

impl From<FetchError> for SyncError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Store(e) => SyncError::Store(e),
            other => SyncError::Upstream(other.to_string()),
        }
    }
}

/// Runs an apt sync (blocking: it drives its own async work).
pub fn sync(
    store: &Store,
    source: &str,
    config: &AptOptions,
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    super::block_on(Mirror::new(store, source, config, previous)?.run(report))
}

struct Mirror<'a> {
    store: &'a Store,
    source: &'a str,
    config: &'a AptOptions,
    previous: Previous<'a>,
    keyring: Keyring,
    fetcher: Arc<Fetcher>,
    /// `dists/<suite>/` or the flat directory, with a trailing slash (or empty).
    dist: String,
}

/// One file of the new snapshot before it gets its date.
struct Planned {
    path: String,
    object: ObjectId,
    size: u64,
}

impl<'a> Mirror<'a> {
    fn new(
        store: &'a Store,
        source: &'a str,
        config: &'a AptOptions,
        previous: Option<&'a Manifest>,
    ) -> Result<Mirror<'a>, SyncError> {
        let keyring = Keyring::load(&config.keys).map_err(|e| apt_error(e.to_string()))?;
        Ok(Mirror {
            store,
            source,
            config,
            previous: Previous::new(previous),
            keyring,
            fetcher: Arc::new(Fetcher::new(config.fetch.clone())?),
            dist: config.repository.dist_dir(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.config.repository.url)
    }

    fn state_path(&self) -> std::path::PathBuf {
        self.store
            .refs_dir()
            .join(self.source)
            .join("upstream.json")
    }

    async fn run(self, report: &mut SyncReport) -> Result<Vec<Entry>, SyncError> {
        let mut restarts = 0;
        let result = loop {
            let attempt = with_progress(self.source, &self.fetcher, self.attempt(report)).await;
            match attempt {
                Err(SyncError::Restart(reason)) if restarts < MAX_RESTARTS => {
                    restarts += 1;
                    tracing::warn!(source = self.source, %reason, restarts, "the upstream changed during the sync; starting again from InRelease");
                }
                Err(SyncError::Restart(reason)) => {
                    break Err(apt_error(format!(
                        "the upstream kept changing during the sync ({reason}); gave up after {MAX_RESTARTS} restarts"
                    )))
                }
                other => break other,
            }
        };
        self.fetcher.finish(report);
        result
    }

    /// One pass from InRelease to the last package.
    async fn attempt(&self, report: &mut SyncReport) -> Result<Vec<Entry>, SyncError> {
        // 1. The signed Release.
        let inrelease_path = format!("{}InRelease", self.dist);
        let state: UpstreamState = std::fs::read(self.state_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let previous_inrelease = self.previous.get(inrelease_path.as_str()).map(|e| e.object);
        let conditional = match (&state.object, previous_inrelease) {
            (Some(object), Some(current)) if *object == current => Some((
                state.etag.clone().unwrap_or_default(),
                state.last_modified.clone().unwrap_or_default(),
            )),
            _ => None,
        };
        let mut planned: Vec<Planned> = Vec::new();
        let inrelease = self
            .fetcher
            .small(
                &self.url(&inrelease_path),
                conditional.as_ref().map(|(e, m)| (e.as_str(), m.as_str())),
            )
            .await;
        let release_text = match inrelease {
            Ok(small) if small.status == 304 => {
                tracing::info!(
                    source = self.source,
                    "InRelease not modified upstream: nothing to do"
                );
                return Ok(self.unchanged());
            }
            Ok(small) => {
                let text = String::from_utf8(small.bytes.clone())
                    .map_err(|_| apt_error(format!("{inrelease_path} is not text")))?;
                let signed = self
                    .keyring
                    .verify_clearsigned(&text)
                    .map_err(|e| apt_error(format!("{inrelease_path}: {e}")))?;
                let object = self.store.put_bytes(&small.bytes)?;
                if Some(object) == previous_inrelease {
                    self.save_state(object, &small);
                    return Ok(self.unchanged());
                }
                planned.push(Planned {
                    path: inrelease_path.clone(),
                    object,
                    size: small.bytes.len() as u64,
                });
                self.save_state_later(object, &small, report);
                signed
            }
            Err(FetchError::NotFound { .. }) => {
                // apt falls back to Release + Release.gpg only on 404; so do we.
                let release_path = format!("{}Release", self.dist);
                let release = self.fetcher.small(&self.url(&release_path), None).await?;
                let signature = self
                    .fetcher
                    .small(&self.url(&format!("{release_path}.gpg")), None)
                    .await
                    .map_err(|e| apt_error(format!("no InRelease and no Release.gpg: {e}")))?;
                self.keyring
                    .verify_detached(&release.bytes, &signature.bytes)
                    .map_err(|e| apt_error(format!("{release_path}.gpg: {e}")))?;
                for (path, bytes) in [
                    (release_path.clone(), &release.bytes),
                    (format!("{release_path}.gpg"), &signature.bytes),
                ] {
                    let object = self.store.put_bytes(bytes)?;
                    planned.push(Planned {
                        path,
                        object,
                        size: bytes.len() as u64,
                    });
                }
                String::from_utf8(release.bytes)
                    .map_err(|_| apt_error(format!("{release_path} is not text")))?
            }
            Err(e) => return Err(e.into()),
        };
        let release = Release::parse(&release_text)
            .map_err(|m| apt_error(format!("{}Release: {m}", self.dist)))?;
        self.check_freshness(&release)?;

        // 2. The indices.
        let selected = self.select(&release);
        if selected.is_empty() {
            return Err(apt_error(format!(
                "the Release lists no index for components {:?} and architectures {:?}",
                self.config.repository.components, self.config.architectures
            )));
        }
        let indices = self.fetch_indices(&release, &selected).await?;
        for (listed, object) in &indices {
            let dir = match listed.path.rsplit_once('/') {
                Some((dir, _)) => format!("{}{dir}/", self.dist),
                None => self.dist.clone(),
            };
            planned.push(Planned {
                path: format!("{}{}", self.dist, listed.path),
                object: *object,
                size: listed.size,
            });
            // by-hash names for this snapshot's indices, served for as long as it is retained.
            planned.push(Planned {
                path: format!("{dir}by-hash/SHA256/{}", listed.sha256),
                object: *object,
                size: listed.size,
            });
            if let Some(sha512) = &listed.sha512 {
                planned.push(Planned {
                    path: format!("{dir}by-hash/SHA512/{sha512}"),
                    object: *object,
                    size: listed.size,
                });
            }
        }

        // 3. The packages.
        let pool = self.pool_files(&indices)?;
        let fetched = self.fetch_pool(&pool, report).await?;
        planned.extend(fetched);

        // Dates: kept per path while the content stays, else now.
        let now = unix_now();
        let mut seen = std::collections::HashSet::new();
        let mut entries = Vec::with_capacity(planned.len());
        for p in planned {
            if !seen.insert(p.path.clone()) {
                continue;
            }
            entries.push(self.previous.entry(p.path, p.object, p.size, now, now));
        }
        Ok(entries)
    }

    fn unchanged(&self) -> Vec<Entry> {
        self.previous
            .manifest()
            .map(|m| m.entries.clone())
            .unwrap_or_default()
    }

    fn save_state(&self, object: ObjectId, small: &super::fetch::Small) {
        let state = UpstreamState {
            object: Some(object),
            etag: small.etag.clone(),
            last_modified: small.last_modified.clone(),
        };
        let bytes = serde_json::to_vec(&state).expect("state serializes");
        if let Err(e) = self.store.write_atomic(&self.state_path(), &bytes) {
            tracing::warn!(error = %e, "cannot remember the upstream's validators");
        }
    }

    /// The validators are written only once the snapshot is published (by `sync::run`), so a
    /// failed sync never turns into a 304 "nothing to do" next time.
    fn save_state_later(
        &self,
        object: ObjectId,
        small: &super::fetch::Small,
        report: &mut SyncReport,
    ) {
        report.pending_state = Some((
            self.state_path(),
            serde_json::to_vec(&UpstreamState {
                object: Some(object),
                etag: small.etag.clone(),
                last_modified: small.last_modified.clone(),
            })
            .expect("state serializes"),
        ));
    }

    /// Replay protection and expiry.
    fn check_freshness(&self, release: &Release) -> Result<(), SyncError> {
        let now = unix_now();
        if let Some(until) = release.valid_until {
            if until < now && !self.config.allow_expired {
                return Err(apt_error(format!(
                    "the Release expired at {} (Valid-Until); the upstream is stale or replayed (set allow_expired = true to accept)",
                    crate::time::http_date(until)
                )));
            }
        }
        if let Some(previous) = self.previous_release() {
            if release.date < previous.date {
                return Err(apt_error(format!(
                    "the upstream Release is older ({}) than the one already mirrored ({}): refusing a replayed or rolled-back repository",
                    crate::time::http_date(release.date),
                    crate::time::http_date(previous.date)
                )));
            }
        }
        Ok(())
    }

    /// The Release of the current snapshot, if there is one.
    fn previous_release(&self) -> Option<Release> {
        let inrelease = self
            .previous
            .get(format!("{}InRelease", self.dist).as_str());
        let release = self.previous.get(format!("{}Release", self.dist).as_str());
        if let Some(entry) = inrelease {
            let text = String::from_utf8(self.store.read(&entry.object).ok()?).ok()?;
            let signed = self.keyring.verify_clearsigned(&text).ok()?;
            return Release::parse(&signed).ok();
        }
        let entry = release?;
        let text = String::from_utf8(self.store.read(&entry.object).ok()?).ok()?;
        Release::parse(&text).ok()
    }

    /// The listed files this source carries.
    fn select<'r>(&self, release: &'r Release) -> Vec<&'r Listed> {
        select(release, self.config)
    }

    /// Fetches the selected indices. A listed variant may be absent (apt lists uncompressed
    /// Packages that only exist compressed); each index family needs one present variant.
    async fn fetch_indices(
        &self,
        release: &Release,
        selected: &[&Listed],
    ) -> Result<Vec<(Listed, ObjectId)>, SyncError> {
        let mut tasks = FuturesUnordered::new();
        for listed in selected {
            let listed = (*listed).clone();
            let canonical = self.url(&format!("{}{}", self.dist, listed.path));
            let by_hash = release.by_hash.then(|| {
                let dir = listed
                    .path
                    .rsplit_once('/')
                    .map(|(d, _)| format!("{d}/"))
                    .unwrap_or_default();
                self.url(&format!(
                    "{}{dir}by-hash/SHA256/{}",
                    self.dist, listed.sha256
                ))
            });
            tasks.push(async move {
                let sha256: ObjectId = listed.sha256.parse().expect("Release::parse checks hashes");
                let expected = Expected {
                    size: Some(listed.size),
                    sha256,
                };
                let result = match &by_hash {
                    Some(url) => match self.fetcher.object(self.store, url, expected).await {
                        Err(FetchError::NotFound { .. }) => {
                            self.fetcher.object(self.store, &canonical, expected).await
                        }
                        other => other,
                    },
                    None => self.fetcher.object(self.store, &canonical, expected).await,
                };
                (listed, result)
            });
        }
        let mut fetched = Vec::new();
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut families: BTreeMap<String, bool> = BTreeMap::new();
        let mut changed = None;
        while let Some((listed, result)) = tasks.next().await {
            let family = family(&listed.path);
            match result {
                Ok(stored) => {
                    *families.entry(family).or_default() = true;
                    fetched.push((listed, stored.id));
                }
                Err(FetchError::NotFound { url }) => {
                    families.entry(family.clone()).or_default();
                    missing.entry(family).or_default().push(url);
                }
                Err(e @ (FetchError::Hash { .. } | FetchError::Size { .. })) => {
                    changed.get_or_insert(e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(reason) = changed {
            return Err(SyncError::Restart(reason));
        }
        for (family, present) in families {
            if !present {
                return Err(apt_error(format!(
                    "index {family} is listed in the Release but no variant of it could be fetched: {}",
                    missing.get(&family).map(|u| u.join(", ")).unwrap_or_default()
                )));
            }
        }
        fetched.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        Ok(fetched)
    }

    /// Parses one variant of every Packages/Sources family; returns the files they name.
    fn pool_files(
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
        let mut files: BTreeMap<String, index::PoolFile> = BTreeMap::new();
        for (_, listed, object) in best.values() {
            let file = std::fs::File::open(self.store.object_path(object))
                .map_err(|e| apt_error(format!("cannot open stored index {}: {e}", listed.path)))?;
            let parsed = index::parse(&listed.path, file, &self.config.filter)
                .map_err(|e| apt_error(format!("{}{}: {e}", self.dist, listed.path)))?;
            // Filename is relative to the repository's URL, for flat repositories too.
            for pool in parsed {
                match files.get(&pool.path) {
                    Some(existing) if existing.sha256 != pool.sha256 => {
                        return Err(apt_error(format!(
                            "{} is listed twice with different hashes (packages {} and {})",
                            pool.path, existing.package, pool.package
                        )))
                    }
                    Some(_) => {}
                    None => {
                        files.insert(pool.path.clone(), pool);
                    }
                }
            }
        }
        Ok(files.into_values().collect())
    }

    /// Downloads every pool file the store lacks, in parallel.
    async fn fetch_pool(
        &self,
        pool: &[index::PoolFile],
        report: &mut SyncReport,
    ) -> Result<Vec<Planned>, SyncError> {
        let mut planned = Vec::with_capacity(pool.len());
        let mut tasks = FuturesUnordered::new();
        let stats = &self.fetcher.stats;
        for file in pool {
            let sha256: ObjectId = match file.sha256.parse() {
                Ok(id) => id,
                Err(_) => {
                    return Err(apt_error(format!(
                        "{}: bad SHA256 `{}`",
                        file.path, file.sha256
                    )))
                }
            };
            if self.store.contains(&sha256) {
                planned.push(Planned {
                    path: file.path.clone(),
                    object: sha256,
                    size: file.size,
                });
                continue;
            }
            let url = self.url(&file.path);
            stats
                .planned_files
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            stats
                .planned_bytes
                .fetch_add(file.size, std::sync::atomic::Ordering::Relaxed);
            tasks.push(async move {
                let result = self
                    .fetcher
                    .payload(
                        self.store,
                        &url,
                        Expected {
                            size: Some(file.size),
                            sha256,
                        },
                    )
                    .await;
                (file, sha256, result)
            });
        }
        let mut failures = Vec::new();
        while let Some((file, sha256, result)) = tasks.next().await {
            match result {
                Ok(stored) => {
                    if stored.method != IngestMethod::Existing {
                        report.counts.files_stored += 1;
                        report.counts.bytes_stored += stored.size;
                    }
                    planned.push(Planned {
                        path: file.path.clone(),
                        object: sha256,
                        size: file.size,
                    });
                }
                Err(FetchError::Store(e)) => return Err(SyncError::Store(e)),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if !failures.is_empty() {
            failures.sort();
            if self.config.ignore_errors {
                for failure in &failures {
                    tracing::warn!(source = self.source, "left out: {failure}");
                }
            } else {
                return Err(apt_error(format!(
                    "{} package file(s) could not be fetched; first: {}",
                    failures.len(),
                    failures[0]
                )));
            }
        }
        Ok(planned)
    }
}
