//! The store's size for `/.metrics` and the status page: a walk of `objects/` on a blocking
//! thread, cached, and started again in the background when it gets old or a sync finished;
//! never on the request that asks for it (but the very first).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::time::unix_now;

/// How old a store measurement may get before a request starts a new walk, when no sync has
/// happened meanwhile (GC from the CLI and `verify` also change `objects/`).
const STORE_MAX_AGE: Duration = Duration::from_secs(300);
/// The least time between two walks, however often syncs finish.
const STORE_MIN_GAP: Duration = Duration::from_secs(2);

/// What `objects/` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct StoreUsage {
    pub objects: u64,
    /// Sum of the objects' sizes.
    pub bytes: u64,
    /// Unix seconds when the walk that counted them started.
    pub measured: i64,
}

/// The store's size, measured by walking `objects/` on a blocking thread and cached: a walk
/// starts when a request finds the number older than `STORE_MAX_AGE`, or a sync finished
/// since the last walk, and never sooner than `STORE_MIN_GAP` after the previous one.
/// Requests meanwhile get the previous number.
pub struct StoreSize {
    dir: PathBuf,
    cached: Mutex<Option<(Instant, StoreUsage)>>,
    /// A sync finished since the last walk started.
    dirty: AtomicBool,
    /// One walk at a time.
    walking: tokio::sync::Mutex<()>,
}

impl StoreSize {
    pub(super) fn new(dir: PathBuf) -> StoreSize {
        StoreSize {
            dir,
            cached: Mutex::new(None),
            dirty: AtomicBool::new(false),
            walking: tokio::sync::Mutex::new(()),
        }
    }

    pub fn invalidate(&self) {
        self.dirty.store(true, Relaxed);
    }

    /// Starts a walk in the background if the number is missing or due (server start-up).
    pub fn prime(self: &Arc<Self>) {
        let this = self.clone();
        tokio::spawn(async move {
            let _ = this.get().await;
        });
    }

    /// The latest measurement. Waits only when there is none yet.
    pub async fn get(self: &Arc<Self>) -> Option<StoreUsage> {
        let cached = *self.cached.lock().expect("not poisoned");
        let Some((at, usage)) = cached else {
            return self.clone().refresh().await;
        };
        let age = at.elapsed();
        let due = age >= STORE_MAX_AGE || (self.dirty.load(Relaxed) && age >= STORE_MIN_GAP);
        if due {
            let this = self.clone();
            tokio::spawn(async move {
                if this.walking.try_lock().is_ok() {
                    let _ = this.refresh().await;
                }
            });
        }
        Some(usage)
    }

    async fn refresh(self: Arc<Self>) -> Option<StoreUsage> {
        let _one_walk = self.walking.lock().await;
        // Someone else may have walked while this one waited.
        let cached = *self.cached.lock().expect("not poisoned");
        if let Some((at, usage)) = cached {
            if at.elapsed() < STORE_MIN_GAP {
                return Some(usage);
            }
        }
        // Cleared before the walk: a sync finishing during it makes the next request walk again.
        self.dirty.store(false, Relaxed);
        let started = Instant::now();
        let measured = unix_now();
        let dir = self.dir.clone();
        match tokio::task::spawn_blocking(move || measure(&dir)).await {
            Ok(Ok((objects, bytes))) => {
                let usage = StoreUsage {
                    objects,
                    bytes,
                    measured,
                };
                *self.cached.lock().expect("not poisoned") = Some((started, usage));
                tracing::debug!(
                    objects,
                    bytes,
                    ms = started.elapsed().as_millis() as u64,
                    "store measured"
                );
                Some(usage)
            }
            Ok(Err(e)) => {
                tracing::warn!(dir = %self.dir.display(), error = %e, "cannot measure the store");
                self.dirty.store(true, Relaxed);
                cached.map(|(_, usage)| usage)
            }
            Err(e) => {
                tracing::warn!(error = %e, "store measurement task failed");
                cached.map(|(_, usage)| usage)
            }
        }
    }
}

/// Counts the regular files under `dir` and adds up their sizes. Files that vanish during the
/// walk (GC) are skipped.
fn measure(dir: &Path) -> io::Result<(u64, u64)> {
    let mut objects = 0;
    let mut bytes = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        let entries = match std::fs::read_dir(&current) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound && current != dir => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                if let Ok(meta) = entry.metadata() {
                    objects += 1;
                    bytes += meta.len();
                }
            }
        }
    }
    Ok((objects, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measuring_counts_files_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sha256/ab")).unwrap();
        std::fs::write(dir.path().join("sha256/ab/one"), b"12345").unwrap();
        std::fs::write(dir.path().join("sha256/two"), b"123").unwrap();
        assert_eq!(measure(dir.path()).unwrap(), (2, 8));
        assert!(measure(&dir.path().join("missing")).is_err());
    }
}
