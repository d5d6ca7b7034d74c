//! `apt` sources: a signed upstream apt repository, mirrored into snapshots.
//!
//! One sync: fetch InRelease (conditionally; 304 ends a no-op sync), else Release +
//! Release.gpg on 404; verify the signature against the configured keys; refuse a replayed
//! (older) or expired Release; fetch the indices the Release lists for the configured
//! components and architectures (by-hash when offered), each checked against its signed size
//! and sha256; parse Packages/Sources; fetch every package file the store lacks, in parallel;
//! return the snapshot's entries. If an index no longer matches the Release (the upstream
//! changed mid-sync), start again from InRelease, a bounded number of times.
//!
//! A 304 (or the same InRelease again) ends the sync only if the current snapshot was chosen
//! by the current configuration, keys and signature policy and lacks nothing (`replan`), and
//! its Release has not passed its Valid-Until (a frozen upstream answers 304 for ever);
//! otherwise the sync plans again from the stored InRelease, verified again, fetching only
//! what the store lacks. The validators are sent only to the upstream they came from
//! (`validators`). The steps live beside this file: `indices` (fetching and naming the
//! indices; an unserved Contents/i18n/dep11/cnf index is a warning, repeated by every sync
//! but retried only when the upstream or the selection changes; an unserved Packages/Sources
//! is an error), `pool` (the package files) and `urls` (every upstream URL, percent-encoded).
//!
//! The current snapshot is streamed once for what the InRelease request needs (`current`): a
//! no-op sync of a 100,000-package suite holds no entry. A sync that plans keeps the package
//! files in one compact list and hands the entries over in path order, reading the current
//! snapshot alongside (`plan`): about 150 bytes a package file, whatever the archive.

pub mod client;
mod current;
pub mod index;
mod indices;
mod installer;
pub mod keyring;
pub mod options;
mod plan;
pub mod policy;
mod pool;
pub mod release;
mod replan;
pub mod repository;
mod selection;
mod urls;
mod validators;

use std::sync::Arc;

use super::fetch::{FetchError, Fetcher};
use super::kind::StreamRun;
use super::previous::{with_progress, Previous};
use super::{SyncError, SyncReport};
use crate::manifest::{Entry, Manifest, Selection};
use crate::store::{ObjectId, Store};
use crate::time::unix_now;
use current::Current;
use keyring::Keyring;
pub use options::{AptOptions, APT_INDEX_KINDS};
use plan::Plan;
use release::{Listed, Release};
use selection::select;

/// Restarts from InRelease when the upstream changes under a sync.
const MAX_RESTARTS: usize = 3;

fn apt_error(message: impl Into<String>) -> SyncError {
    SyncError::Upstream(message.into())
}

/// Runs an apt sync with the previous snapshot loaded whole (blocking: it drives its own
/// async work).
pub fn sync(
    store: &Store,
    source: &str,
    config: &AptOptions,
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    let mirror = Mirror::new(store, source, config, Current::given(previous))?;
    match super::block_on(mirror.run(report))? {
        Outcome::Planned(plan) => Ok(plan.entries(&Previous::new(previous))),
        Outcome::Unchanged => Ok(previous.map(|m| m.entries.clone()).unwrap_or_default()),
    }
}

/// Runs an apt sync into `run.out`. The previous snapshot is streamed once (see `current`), and
/// again beside the new entries when the sync plans (see `plan`); when the upstream did not
/// change, it stands as it is and no entry is handed over.
pub fn sync_into(config: &AptOptions, run: StreamRun<'_, '_>) -> Result<(), SyncError> {
    let current = match run.previous {
        Some(id) => Current::stored(run.store, id, &config.repository.dist_dir())?,
        None => Current::given(None),
    };
    let mirror = Mirror::new(run.store, run.source, config, current)?;
    match super::block_on(mirror.run(run.report))? {
        Outcome::Planned(plan) => plan.push_into(run.out, &mirror.current),
        Outcome::Unchanged => match mirror.current.kept() {
            Some(kept) => run
                .out
                .keep_previous(kept.id, kept.selection, kept.files, kept.bytes),
            None => run.out.push_all(Vec::new(), None),
        },
    }
}

/// How a sync ended.
enum Outcome {
    /// A new plan (maybe equal to the previous snapshot).
    Planned(Plan),
    /// The previous snapshot stands as it is.
    Unchanged,
}

struct Mirror<'a> {
    store: &'a Store,
    source: &'a str,
    config: &'a AptOptions,
    /// The snapshot this sync starts from.
    current: Current<'a>,
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
        current: Current<'a>,
    ) -> Result<Mirror<'a>, SyncError> {
        let keyring = Keyring::load(&config.keys)
            .map_err(|e| apt_error(e.to_string()))?
            .with_weak_crypto(&config.weak_crypto);
        Ok(Mirror {
            store,
            source,
            config,
            current,
            keyring,
            fetcher: Arc::new(Fetcher::new(config.fetch.clone())?),
            dist: config.repository.dist_dir(),
        })
    }

    async fn run(&self, report: &mut SyncReport) -> Result<Outcome, SyncError> {
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
    async fn attempt(&self, report: &mut SyncReport) -> Result<Outcome, SyncError> {
        // 1. The signed Release.
        let inrelease_path = format!("{}InRelease", self.dist);
        let inrelease_url = self.url(&inrelease_path);
        let previous_inrelease = self
            .current
            .release_file(inrelease_path.as_str())
            .map(|e| e.object);
        let conditional = self.validators(&inrelease_url, previous_inrelease);
        // The InRelease alone does not tell whether the configuration changed since.
        let replan = replan::reason(self.current.summary(), &self.description());
        let mut planned: Vec<Planned> = Vec::new();
        let inrelease = self
            .fetcher
            .small(
                &inrelease_url,
                conditional.as_ref().map(|(e, m)| (e.as_str(), m.as_str())),
            )
            .await;
        let release_text = match inrelease {
            Ok(small) if small.status == 304 => match &replan {
                None => {
                    tracing::info!(
                        source = self.source,
                        "InRelease not modified upstream: nothing to do"
                    );
                    return self.unchanged(report);
                }
                Some(reason) => {
                    tracing::info!(source = self.source, %reason, "InRelease not modified upstream; planning again from the stored one");
                    self.stored_inrelease(&inrelease_path, &mut planned)?
                }
            },
            Ok(small) => {
                let text = String::from_utf8(small.bytes.clone())
                    .map_err(|_| apt_error(format!("{inrelease_path} is not text")))?;
                let signed = self
                    .keyring
                    .verify_clearsigned(&text)
                    .map_err(|e| apt_error(format!("{inrelease_path}: {e}")))?;
                let object = self.store.put_bytes(&small.bytes)?;
                if Some(object) == previous_inrelease {
                    self.save_state(&inrelease_url, object, &small);
                    match &replan {
                        None => return self.unchanged(report),
                        Some(reason) => {
                            tracing::info!(source = self.source, %reason, "InRelease unchanged upstream; planning again")
                        }
                    }
                }
                planned.push(Planned {
                    path: inrelease_path.clone(),
                    object,
                    size: small.bytes.len() as u64,
                });
                self.save_state_later(&inrelease_url, object, &small, report);
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
        self.plan_indices(&indices.fetched, &mut planned);
        let mut problems = Vec::new();
        let mut left_out = Vec::new();
        // Not `left_out`: asked again only once the upstream or the selection changes.
        let mut unserved = Vec::new();
        for (family, tried) in &indices.unserved {
            let family = format!("{}{family}", self.dist);
            tracing::warn!(source = self.source, index = %family, "listed in the Release but not served; published without it");
            unserved.push(format!(
                "index {family} is listed in the Release but the upstream serves no variant of it ({}); published without it",
                tried.join(", ")
            ));
        }
        unserved.sort();
        problems.extend(unserved.iter().cloned());

        if self.config.installer {
            planned.extend(self.installer_images(&release, report).await?);
        }

        // 3. The packages.
        let pool = self.pool_files(&indices.fetched)?;
        let fetched = self.fetch_pool(&pool, report).await?;
        problems.extend(fetched.problems);
        left_out.extend(fetched.left_out);
        // Dates: kept per path while the content stays, else now (taken after the downloads).
        let plan = Plan::new(planned, pool, fetched.failed, unix_now());
        // Reported only now: a restarted attempt must not repeat them.
        report.problems.extend(problems);
        left_out.sort();
        report.selection = Some(Selection {
            description: self.description(),
            left_out,
            unserved,
        });
        Ok(Outcome::Planned(plan))
    }

    /// What chose this sync's files: the configuration and the keys and policy that judged
    /// the Release (see `replan`).
    fn description(&self) -> String {
        replan::describe(self.config, &self.keyring.trust())
    }

    /// The current snapshot again: the upstream did not change and it was chosen by the
    /// current configuration and keys, complete. Its Release is still checked against the
    /// clock (an upstream frozen on a stale Release answers "not modified" for ever), and
    /// the indices it never got are reported again: the problem stays visible until fixed.
    fn unchanged(&self, report: &mut SyncReport) -> Result<Outcome, SyncError> {
        if let Some(release) = self.previous_release() {
            self.check_expiry(&release)?;
        }
        let unserved = self
            .current
            .summary()
            .and_then(|m| m.selection.as_ref())
            .map(|s| s.unserved.clone())
            .unwrap_or_default();
        report.problems.extend(unserved.iter().cloned());
        report.selection = Some(Selection {
            description: self.description(),
            left_out: Vec::new(),
            unserved,
        });
        Ok(Outcome::Unchanged)
    }

    /// The current snapshot's InRelease, from the store, verified again (the keys may have
    /// changed since): the start of a new plan when the upstream answered "not modified".
    fn stored_inrelease(
        &self,
        path: &str,
        planned: &mut Vec<Planned>,
    ) -> Result<String, SyncError> {
        let entry = self
            .current
            .release_file(path)
            .ok_or_else(|| apt_error(format!("{path}: not in the current snapshot")))?;
        let bytes = self.store.read(&entry.object)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| apt_error(format!("{path} (stored) is not text")))?;
        let signed = self
            .keyring
            .verify_clearsigned(&text)
            .map_err(|e| apt_error(format!("{path} (stored): {e}")))?;
        planned.push(Planned {
            path: path.to_string(),
            object: entry.object,
            size: entry.size,
        });
        Ok(signed)
    }

    /// Replay protection and expiry.
    fn check_freshness(&self, release: &Release) -> Result<(), SyncError> {
        self.check_expiry(release)?;
        let Some(date) = release.date else {
            if self.config.allow_missing_date {
                return Ok(());
            }
            return Err(apt_error(format!(
                "{}Release has no Date field, so a replayed older Release could not be told from a newer one (set allow_missing_date = true to accept a repository that omits it)",
                self.dist
            )));
        };
        // Replay protection compares two dates: after an undated Release there is none.
        if let Some(previous) = self.previous_release().and_then(|p| p.date) {
            if date < previous {
                return Err(apt_error(format!(
                    "the upstream Release is older ({}) than the one already mirrored ({}): refusing a replayed or rolled-back repository",
                    crate::time::http_date(date),
                    crate::time::http_date(previous)
                )));
            }
        }
        Ok(())
    }

    /// A Release past its `Valid-Until` is refused unless `allow_expired`.
    fn check_expiry(&self, release: &Release) -> Result<(), SyncError> {
        match release.valid_until {
            Some(until) if until < unix_now() && !self.config.allow_expired => {
                Err(apt_error(format!(
                    "the Release expired at {} (Valid-Until); the upstream is stale or replayed (set allow_expired = true to accept)",
                    crate::time::http_date(until)
                )))
            }
            _ => Ok(()),
        }
    }

    /// The Release of the current snapshot, if there is one.
    fn previous_release(&self) -> Option<Release> {
        let inrelease = self
            .current
            .release_file(format!("{}InRelease", self.dist).as_str());
        let release = self
            .current
            .release_file(format!("{}Release", self.dist).as_str());
        if let Some(entry) = inrelease {
            let text = String::from_utf8(self.store.read(&entry.object).ok()?).ok()?;
            return Release::parse(&keyring::verified_earlier(&text)?).ok();
        }
        let entry = release?;
        let text = String::from_utf8(self.store.read(&entry.object).ok()?).ok()?;
        Release::parse(&text).ok()
    }

    /// The listed files this source carries.
    fn select<'r>(&self, release: &'r Release) -> Vec<&'r Listed> {
        select(release, self.config)
    }
}
