//! The progress line long syncs draw on a terminal.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::FetchStats;

/// Whether long operations draw a progress line (the CLI on a terminal turns this on).
static PROGRESS: AtomicBool = AtomicBool::new(false);

pub fn enable_progress(on: bool) {
    PROGRESS.store(on, Ordering::Relaxed);
}

pub fn progress_enabled() -> bool {
    PROGRESS.load(Ordering::Relaxed)
}

/// Redraws `label: files, bytes, rate, ETA` on stderr twice a second, forever (select it
/// against the work it describes). Does nothing unless progress is enabled.
pub async fn progress(label: &str, stats: &FetchStats) {
    if !PROGRESS.load(Ordering::Relaxed) {
        return std::future::pending().await;
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let bytes = stats.bytes.load(Ordering::Relaxed);
        let files = stats.files.load(Ordering::Relaxed);
        let planned_files = stats.planned_files.load(Ordering::Relaxed);
        let planned_bytes = stats.planned_bytes.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / seconds;
        let eta = if rate > 0.0 && planned_bytes > bytes {
            let left = (planned_bytes - bytes) as f64 / rate;
            format!("{}:{:02}", left as u64 / 60, left as u64 % 60)
        } else {
            "-".into()
        };
        eprint!(
            "\r{label}: {files}/{planned_files} files, {:.1}/{:.1} MiB, {:.1} MiB/s, ETA {eta}   ",
            bytes as f64 / 1048576.0,
            planned_bytes as f64 / 1048576.0,
            rate / 1048576.0
        );
    }
}
