//! When syncs run: on a timer per source (interval plus random jitter, like the old
//! `sleep $RANDOM` in a cron line), on demand (CLI, admin socket), one at a time per source.
//! A trigger that arrives while a run is going waits for a run that starts after it; triggers
//! that pile up meanwhile share that one run (coalescing).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::{watch, Mutex};

use crate::app::App;
use crate::config::SourceConfig;
use crate::sync::SyncReport;
use crate::time::unix_now;

type RunResult = Result<SyncReport, String>;

#[derive(Default)]
struct Runner {
    /// Sequence number of the last run that started, and its result.
    last: Mutex<(u64, Option<RunResult>)>,
}

pub struct Scheduler {
    app: Arc<App>,
    runners: HashMap<String, Runner>,
    sequence: AtomicU64,
}

impl Scheduler {
    pub fn new(app: Arc<App>) -> Arc<Scheduler> {
        let runners = app
            .config
            .sources
            .iter()
            .map(|s| (s.id.clone(), Runner::default()))
            .collect();
        Arc::new(Scheduler {
            app,
            runners,
            sequence: AtomicU64::new(0),
        })
    }

    pub fn app(&self) -> Arc<App> {
        self.app.clone()
    }

    /// Runs a sync of `source` that starts no earlier than this call, or shares one that does.
    pub async fn sync(&self, source: &str) -> RunResult {
        let Some(runner) = self.runners.get(source) else {
            return Err(format!(
                "no source `{source}` in {}",
                self.app.config.file.display()
            ));
        };
        let ticket = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let mut last = runner.last.lock().await;
        if last.0 > ticket {
            if let Some(result) = &last.1 {
                return result.clone();
            }
        }
        last.0 = self.sequence.fetch_add(1, Ordering::SeqCst) + 1;
        let app = self.app.clone();
        let id = source.to_string();
        let result = tokio::task::spawn_blocking(move || app.sync_source(&id))
            .await
            .unwrap_or_else(|e| Err(format!("sync task failed: {e}")));
        last.1 = Some(result.clone());
        result
    }

    /// Starts the timers of every source. They stop when `shutdown` turns true.
    /// `initial_sync`: scan `dir` sources (and overdue or never-synced ones) right away.
    pub fn start(self: &Arc<Self>, shutdown: watch::Receiver<bool>, initial_sync: bool) {
        for source in self.app.config.sources.clone() {
            let this = self.clone();
            let mut stop = shutdown.clone();
            let config = source.clone();
            tokio::spawn(async move {
                tokio::select! {
                    _ = this.sync_loop(&config, initial_sync) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            });
            if let Some(every) = source.verify_every {
                let this = self.clone();
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = this.verify_loop(&source.id, every) => {}
                        _ = stop.wait_for(|s| *s) => {}
                    }
                });
            }
        }
    }

    async fn sync_loop(&self, source: &SourceConfig, initial_sync: bool) {
        // A local directory is cheap to re-scan: do it at start, so the server publishes what
        // is there now. Other kinds continue their schedule where the last run left it.
        let record = self.app.run_record(&source.id);
        let mut delay = match (source.every, &record) {
            (Some(every), Some(run)) if run.ok => {
                let due = run.started + every.as_secs() as i64;
                Duration::from_secs((due - unix_now()).max(0) as u64) + jitter(source.jitter)
            }
            _ if initial_sync => Duration::ZERO,
            (Some(every), _) => every + jitter(source.jitter),
            (None, _) => return,
        };
        loop {
            self.app
                .set_next_run(&source.id, Some(unix_now() + delay.as_secs() as i64));
            tokio::time::sleep(delay).await;
            let _ = self.sync(&source.id).await;
            match source.every {
                Some(every) => delay = every + jitter(source.jitter),
                None => {
                    self.app.set_next_run(&source.id, None);
                    return;
                }
            }
        }
    }

    async fn verify_loop(&self, source: &str, every: Duration) {
        let last = self
            .app
            .run_record(source)
            .and_then(|r| r.last_verify)
            .unwrap_or(0);
        let mut delay =
            Duration::from_secs((last + every.as_secs() as i64 - unix_now()).max(0) as u64);
        loop {
            tokio::time::sleep(delay).await;
            let app = self.app.clone();
            let ids = vec![source.to_string()];
            match tokio::task::spawn_blocking(move || app.verify(&ids)).await {
                Ok(Ok(report)) if report.is_clean() => {
                    tracing::info!(
                        source,
                        objects = report.objects,
                        "deep verify found nothing wrong"
                    )
                }
                Ok(Ok(report)) => tracing::error!(
                    source,
                    damaged = report.damaged.len(),
                    missing = ?report.missing,
                    "deep verify found problems; damaged objects are quarantined and fetched again on the next sync"
                ),
                Ok(Err(e)) => tracing::error!(source, error = %e, "deep verify failed"),
                Err(e) => tracing::error!(source, error = %e, "deep verify task failed"),
            }
            delay = every;
        }
    }
}

fn jitter(max: Duration) -> Duration {
    if max.is_zero() {
        return Duration::ZERO;
    }
    Duration::from_millis(rand::thread_rng().gen_range(0..=max.as_millis() as u64))
}
