//! Retries with back-off that honours `Retry-After`, and the bandwidth limit.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::error::Failure;
use super::{FetchError, Fetcher};

impl Fetcher {
    /// Runs conditional GETs of `url` until `read` makes something of a response, the error
    /// is not worth another try, or the retries are used up. `read` sees every answer
    /// [`Fetcher::send`] lets through and may fail retryably itself (a cut body).
    pub(super) async fn get<T, F, Fut>(
        &self,
        url: &str,
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
        mut read: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            let request = self.request(url, if_none_match, if_modified_since);
            let attempt = match self.send(url, request).await {
                Ok(response) => read(response).await,
                Err(failure) => Err(failure),
            };
            match attempt {
                Ok(value) => return Ok(value),
                Err(failure) => self.again(url, &mut tries, failure).await?,
            }
        }
    }

    /// After failed attempt number `tries`: waits and returns `Ok` if another attempt is
    /// worth it (network trouble, "try later" statuses, retries left), else the error.
    pub(super) async fn again(
        &self,
        url: &str,
        tries: &mut u32,
        failure: Failure,
    ) -> Result<(), FetchError> {
        let (error, retry_after) = failure;
        if !error.retryable() || *tries >= self.options.retries {
            return Err(error);
        }
        // URLs in the log without credentials (config refuses them, a redirect may not).
        tracing::warn!(
            url = %crate::secrets::credentials(url),
            error = %crate::secrets::credentials(&error.to_string()),
            attempt = *tries,
            "retrying"
        );
        self.pause(*tries, retry_after).await;
        *tries += 1;
        Ok(())
    }

    /// Counts received bytes and waits as long as the bandwidth limit asks for after them.
    pub(super) async fn count(&self, bytes: usize) {
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let (Some(budget), Some(rate)) = (&self.budget, self.options.bandwidth) else {
            return;
        };
        let wait = {
            let mut state = budget.lock().await;
            let (start, sent) = &mut *state;
            *sent += bytes as f64;
            let due = Duration::from_secs_f64(*sent / rate as f64);
            due.saturating_sub(start.elapsed())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sleeps before retry number `attempt`: exponential back-off, or what the server asked.
    async fn pause(&self, attempt: u32, retry_after: Option<Duration>) {
        let backoff = self.options.backoff * 2u32.saturating_pow(attempt.min(6));
        let delay = retry_after.map_or(backoff, |asked| asked.min(Duration::from_secs(300)));
        tokio::time::sleep(delay).await;
    }
}
