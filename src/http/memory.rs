//! Gives freed heap memory back to the system after a burst of buffering.
//!
//! glibc keeps freed memory in its arenas for reuse, so after many large response chunks the
//! process stays as big as at the peak even when idle. A background task asks it to return
//! what is free, only after the buffer budget was used heavily and has mostly been released.

use std::time::Duration;

use super::budget::Budget;

/// How often the budget's peak is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(2);
/// Peaks below this are not worth a trim.
const WORTH_TRIMMING: usize = 2 * 1024 * 1024;

/// Runs until the process ends.
pub async fn trim_after_bursts(budget: Budget) {
    let mut check = tokio::time::interval(CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending = false;
    loop {
        check.tick().await;
        let peak = budget.take_peak();
        pending |= peak >= WORTH_TRIMMING;
        if pending && budget.held() < WORTH_TRIMMING / 2 {
            pending = false;
            // malloc_trim walks the arenas: off the runtime threads.
            let _ = tokio::task::spawn_blocking(release_free_memory).await;
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only touches the allocator's own free lists; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}
