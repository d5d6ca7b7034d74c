//! The application state shared by the server, the scheduler and the CLI: configuration, the
//! store, the published view, and the bookkeeping of sync runs. The HTTP side sees it only
//! through [`crate::http::State`], which [`App::http_state`] makes, and the
//! [`StatusSource`] the app implements (from memory: run records, published refs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::config::Config;
use crate::http::access::Access;
use crate::http::metrics::Metrics;
use crate::http::objects::ObjectCache;
use crate::manifest::Manifests;
use crate::store::gc::{self, GcReport};
use crate::store::refs::{RunRecord, SourceRefs};
use crate::store::{DataLock, GcGate, GcGuard, Store};
use crate::sync::{self, SyncReport};
use crate::time::unix_now;
use crate::view::{View, ViewHandle};

mod heap;
mod status;
mod view;
use status::private_folders;

pub use crate::http::LiveStatus;

pub struct App {
    pub config: Config,
    pub store: Store,
    pub view: Arc<ViewHandle>,
    pub objects: Arc<ObjectCache>,
    pub started: i64,
    /// Request, connection and sync counters for `/.metrics`, and the store's cached size.
    pub metrics: Arc<Metrics>,
    /// `[[access]]` rules and their htpasswd files. [`App::open`] leaves it open (no rules):
    /// only `serve` reads the htpasswd files and sets it, so CLI commands neither need them
    /// readable nor repeat their warnings.
    pub access: Access,
    live: Mutex<HashMap<String, LiveStatus>>,
    /// The last run of each source as this process saw it end. The status page, metrics and
    /// scheduler read it before `state.json`, so a run whose record could not be written (a
    /// full disk) is still reported as it ended, not as the run before it. Seeded from
    /// `state.json` at open, so the status page and metrics never read it per request.
    runs: Mutex<HashMap<String, RunRecord>>,
    /// Per source, the refs the last view built (then published) was made from: the status
    /// page and metrics read them here instead of the refs on disk.
    published: Mutex<HashMap<String, Published>>,
    /// The configured folders hidden from untrusted clients' messages (see
    /// [`crate::http::redact::paths`]), made once at open.
    private_folders: Vec<String>,
    /// A failed sync left objects that nothing names; the next GC chance collects them.
    garbage_pending: AtomicBool,
    /// Whether this process serves the view ([`App::serve_view`]): until then no view is
    /// built, so a CLI command (sync, gc, pin...) never pays memory for one.
    serving: AtomicBool,
    /// Syncs store objects no ref names yet; GC must not run meanwhile. Syncs share it, GC
    /// takes it alone.
    gate: GcGate,
    /// One sync per source at a time.
    source_locks: HashMap<String, Mutex<()>>,
    /// Builds and publishes of the view, one at a time: a view built from older refs must
    /// never be published after one built from newer refs (two sources ending at once).
    view_builds: Mutex<()>,
    /// What only each source and snapshot holds, computed when the view is built.
    unique: Mutex<gc::Unique>,
    /// Whether anyone reads [`Self::unique`] (the server's status page): a CLI command that
    /// only syncs or pins should not pay a pass over every manifest for it.
    unique_wanted: AtomicBool,
    /// [`Self::unique`] holds a first count: until then the status page shows none rather
    /// than zeros (the server answers before that count is done, see `serve`).
    unique_ready: AtomicBool,
    _lock: DataLock,
}

impl App {
    /// Takes the data-dir lock, opens the store and clears interrupted writes. Builds no view:
    /// only a process that serves needs one, and says so with [`App::serve_view`].
    pub fn open(config: Config) -> anyhow::Result<App> {
        let lock = DataLock::acquire(&config.data_dir)?;
        let store = Store::open(&config.data_dir, &config.store)?;
        let cleaned = store.clean_tmp()?;
        if cleaned > 0 {
            tracing::info!(
                files = cleaned,
                "removed leftovers of interrupted writes from tmp/"
            );
        }
        let objects = Arc::new(ObjectCache::new(store.objects_dir().to_path_buf()));
        let source_locks = config
            .sources
            .iter()
            .map(|s| (s.id.clone(), Mutex::new(())))
            .collect();
        let metrics = Arc::new(Metrics::new(
            config
                .sources
                .iter()
                .map(|s| (s.id.as_str(), s.mount.as_str())),
            store.objects_dir().to_path_buf(),
        ));
        let runs = config
            .sources
            .iter()
            .filter_map(|s| Some((s.id.clone(), store.read_run_record(&s.id)?)))
            .collect();
        let app = App {
            metrics,
            access: Access::open(),
            store,
            view: Arc::new(ViewHandle::new(View::default())),
            objects,
            started: unix_now(),
            live: Mutex::default(),
            runs: Mutex::new(runs),
            published: Mutex::default(),
            private_folders: private_folders(&config),
            garbage_pending: AtomicBool::new(false),
            serving: AtomicBool::new(false),
            gate: GcGate::new(),
            source_locks,
            view_builds: Mutex::new(()),
            unique: Mutex::default(),
            unique_wanted: AtomicBool::new(false),
            unique_ready: AtomicBool::new(false),
            _lock: lock,
            config,
        };
        Ok(app)
    }

    pub fn live_status(&self, source: &str) -> LiveStatus {
        self.live
            .lock()
            .expect("not poisoned")
            .get(source)
            .cloned()
            .unwrap_or_default()
    }

    /// The last run of `source`: the one this process recorded in memory, else `state.json`.
    pub fn run_record(&self, source: &str) -> Option<RunRecord> {
        if let Some(record) = self.runs.lock().expect("not poisoned").get(source) {
            return Some(record.clone());
        }
        self.store.read_run_record(source)
    }

    /// Keeps `record` in memory and writes it to `state.json`; a failed write is logged and
    /// noted in the in-memory record (the next run writes a record again).
    fn save_run_record(&self, source: &str, mut record: RunRecord) {
        if let Err(e) = self.store.write_run_record(source, &record) {
            tracing::warn!(source, error = %e, "cannot record the sync run; the status page shows it from memory");
            let note = format!("the run record could not be written: {e}");
            record.error = Some(match record.error.take() {
                Some(error) => format!("{error} ({note})"),
                None => note,
            });
        }
        self.runs
            .lock()
            .expect("not poisoned")
            .insert(source.to_string(), record);
    }

    pub fn set_next_run(&self, source: &str, next: Option<i64>) {
        self.live
            .lock()
            .expect("not poisoned")
            .entry(source.to_string())
            .or_default()
            .next_run = next;
    }

    fn set_running(&self, source: &str, running: bool) {
        self.live
            .lock()
            .expect("not poisoned")
            .entry(source.to_string())
            .or_default()
            .running = running;
    }

    /// Pins `source` to a retained snapshot (or unpins it), then serves the result. Waits for
    /// a running sync of the source. Returns the current snapshot's id.
    pub fn set_pin(&self, source: &str, snapshot: Option<&str>) -> anyhow::Result<String> {
        let Some(lock) = self.source_locks.get(source) else {
            anyhow::bail!("no source `{source}` in {}", self.config.file.display());
        };
        let _one_at_a_time = lock.lock().expect("not poisoned");
        let refs = crate::pin::set(&self.store, source, snapshot)?;
        self.refresh_view()?;
        Ok(refs
            .current
            .map(|id| id.short(crate::view::SNAPSHOT_ID_CHARS))
            .unwrap_or_default())
    }

    /// Removes a retained snapshot of `source` (not the current or pinned one), then serves
    /// the rest; its objects go at the next GC. Waits for a running sync of the source.
    pub fn remove_snapshot(&self, source: &str, wanted: &str) -> anyhow::Result<String> {
        let Some(lock) = self.source_locks.get(source) else {
            anyhow::bail!("no source `{source}` in {}", self.config.file.display());
        };
        let _one_at_a_time = lock.lock().expect("not poisoned");
        let id = crate::pin::resolve(&self.store.read_refs(source)?, source, wanted)?;
        let short = id.short(crate::view::SNAPSHOT_ID_CHARS);
        match self.store.remove_snapshot(source, &id) {
            Err(crate::store::refs::RemoveError::Store(e)) => return Err(e.into()),
            Err(refused) => anyhow::bail!("snapshot {short} {refused}"),
            Ok(_) => self.refresh_view()?,
        }
        Ok(short)
    }

    /// Syncs one source, publishes, records the run and collects garbage. Blocking.
    pub fn sync_source(&self, id: &str) -> Result<SyncReport, String> {
        let source = self
            .config
            .source(id)
            .ok_or_else(|| format!("no source `{id}` in {}", self.config.file.display()))?;
        let _one_at_a_time = self.source_locks[id].lock().expect("not poisoned");
        self.set_running(id, true);
        let started = unix_now();
        let clock = Instant::now();
        tracing::info!(source = id, "sync started");
        let created_before = self.store.objects_created();
        let result = {
            let _no_gc = self.gate.sync_guard();
            sync::run(&self.store, &source.id, source.keep, source.kind.get())
        };
        let previous = self.run_record(id).unwrap_or_default();
        let mut record = RunRecord {
            started,
            duration_ms: clock.elapsed().as_millis() as u64,
            last_success: previous.last_success,
            last_verify: previous.last_verify,
            ..RunRecord::default()
        };
        let outcome = match result {
            Ok(report) => {
                record.ok = true;
                record.last_success = Some(started);
                record.counts = report.counts;
                // URLs in messages lose their credentials before anything shows them.
                record.problems = report
                    .problems
                    .iter()
                    .map(|p| crate::http::redact::credentials(p))
                    .collect();
                record.partial = report.partial;
                if report.changed {
                    if let Err(e) = self.refresh_view() {
                        tracing::error!(error = %e, "cannot rebuild the view after publishing");
                    }
                    if let Err(e) = self.gc() {
                        tracing::error!(error = %e, "garbage collection failed");
                    }
                }
                tracing::info!(
                    source = id,
                    snapshot = report.snapshot.as_deref().unwrap_or("-"),
                    changed = report.changed,
                    files = report.counts.files,
                    stored = report.counts.files_stored,
                    bytes_stored = report.counts.bytes_stored,
                    ms = record.duration_ms,
                    "sync finished"
                );
                Ok(report)
            }
            Err(e) => {
                let message = if e.is_disk_full() {
                    format!("{e} (the disk of the data directory is full: the objects this sync stored are removed again; free space, then sync again)")
                } else if e.unreachable_host().is_some() {
                    status::unreachable_advice(&self.config, source, &e)
                } else {
                    e.to_string()
                };
                // Before the log, state.json and the status page see it.
                let message = crate::http::redact::credentials(&message);
                tracing::error!(source = id, error = %message, "sync failed; the previous snapshot stays published");
                record.ok = false;
                record.error = Some(message.clone());
                Err(message)
            }
        };
        self.metrics.sync_finished(id, &record);
        let failed = outcome.is_err();
        // Recorded before any clean-up: on a full disk this write may fail, and the status
        // page must still show this run (see `runs`).
        self.save_run_record(id, record);
        if failed && self.store.objects_created() != created_before {
            self.garbage_pending.store(true, Ordering::Relaxed);
        }
        self.set_running(id, false);
        self.collect_pending_garbage(id);
        outcome
    }

    /// A failed sync publishes nothing, so the objects it stored that nothing else names are
    /// garbage, and on a full disk they are what keeps it full. They are collected as soon as
    /// no sync is storing objects: GC needs the gate alone, so while other syncs run (their
    /// new objects are not named by any ref yet) this leaves it pending, and the last of them
    /// to end collects. Never blocks: a failed sync does not wait for a long one elsewhere.
    fn collect_pending_garbage(&self, id: &str) {
        if !self.garbage_pending.load(Ordering::Relaxed) {
            return;
        }
        let Some(alone) = self.gate.try_exclusive() else {
            return;
        };
        match self.gc_alone(&alone) {
            Ok(report) => tracing::info!(
                source = id,
                removed = report.removed,
                bytes = report.bytes_freed,
                "removed the objects of a failed sync"
            ),
            Err(e) => {
                tracing::error!(source = id, error = %e, "cannot remove the objects of a failed sync")
            }
        }
    }

    /// Removes objects that no ref and no view in use names. Waits for running syncs.
    pub fn gc(&self) -> anyhow::Result<GcReport> {
        let alone = self.gate.exclusive();
        self.gc_alone(&alone)
    }

    /// GC proper; the guard proves no sync is storing objects.
    fn gc_alone(&self, alone: &GcGuard<'_>) -> anyhow::Result<GcReport> {
        self.garbage_pending.store(false, Ordering::Relaxed);
        let mut live = gc::mark(&self.store, &Manifests)?;
        self.view.each_live_object(|object| live.add(object));
        live.settle();
        let report = gc::sweep(&self.store, &live, alone);
        drop(live);
        heap::release_free();
        let report = report?;
        if report.removed > 0 {
            self.objects.clear();
            tracing::info!(
                removed = report.removed,
                bytes = report.bytes_freed,
                "garbage collected"
            );
        }
        Ok(report)
    }

    /// Deep verify of some sources (all if empty). Takes the GC gate so nothing moves meanwhile.
    pub fn verify(&self, sources: &[String]) -> anyhow::Result<crate::store::verify::VerifyReport> {
        let report = {
            let alone = self.gate.exclusive();
            crate::store::verify::verify(&self.store, &Manifests, sources, &alone)?
        };
        if !report.damaged.is_empty() {
            self.objects.clear();
        }
        let now = unix_now();
        let ids: Vec<String> = if sources.is_empty() {
            self.config.sources.iter().map(|s| s.id.clone()).collect()
        } else {
            sources.to_vec()
        };
        for id in ids {
            let mut record = self.run_record(&id).unwrap_or_default();
            record.last_verify = Some(now);
            self.save_run_record(&id, record);
        }
        Ok(report)
    }
}

/// What a source's published snapshots were when the view was last built.
#[derive(Debug, Clone, Default)]
struct Published {
    refs: SourceRefs,
    current_created: Option<i64>,
}

#[cfg(test)]
mod tests;
