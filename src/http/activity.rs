//! When a connection has had its chance: requests in flight, and the time limits that do not
//! depend on bytes moving.
//!
//! Bytes are a poor measure of use: an HTTP/2 client that answers the server's keep-alive PINGs
//! (or sends its own) moves bytes forever without asking for anything, and a client dripping
//! the first bytes of a request keeps resetting any per-byte timer. So a connection is judged
//! by its requests instead:
//! - from accept (TLS handshake included) to its first complete request head, it has
//!   `header_timeout`;
//! - with no request in flight, it may stay open `idle_timeout` after the last request started
//!   or ended, whatever else it sends.
//!
//! A client that stops reading in the middle of a response is the other rule's business: the
//! per-byte no-progress timer in [`idle`](super::idle).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What one connection has asked for so far.
pub struct Activity {
    state: Mutex<State>,
    /// Wakes [`Activity::watch`] from the header deadline when the first request arrives.
    first_request: Notify,
}

struct State {
    /// Requests whose response has not been dropped yet.
    in_flight: usize,
    /// A request head has arrived.
    started: bool,
    /// When a request last started or ended.
    last: Instant,
}

/// Why [`Activity::watch`] says the connection should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request head within `header_timeout` of the accept.
    NoRequest,
    /// No request in flight, none started, for `idle_timeout`.
    Idle,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            state: Mutex::new(State {
                in_flight: 0,
                started: false,
                last: Instant::now(),
            }),
            first_request: Notify::new(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding this lock leaves plain counters behind: still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request as in flight until the returned guard is dropped (keep it with the
    /// response body).
    pub fn request_started(self: &Arc<Self>) -> InFlight {
        let mut state = self.state();
        state.in_flight += 1;
        if !state.started {
            state.started = true;
            // Stored if the watcher is not waiting yet, so it is never missed.
            self.first_request.notify_one();
        }
        state.last = Instant::now();
        InFlight(self.clone())
    }

    /// Returns once the connection has run out of time: `accepted + header_timeout` without a
    /// request, or `idle_timeout` without one in flight. Never returns while a request is in
    /// flight. Checks only when a deadline could have passed, so it costs one timer.
    pub async fn watch(
        &self,
        accepted: Instant,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Expired {
        loop {
            let (deadline, why) = {
                let state = self.state();
                if !state.started {
                    (accepted + header_timeout, Expired::NoRequest)
                } else if state.in_flight > 0 {
                    // Whatever happens meanwhile, nothing can expire sooner than this.
                    (Instant::now() + idle_timeout, Expired::Idle)
                } else {
                    (state.last + idle_timeout, Expired::Idle)
                }
            };
            if Instant::now() >= deadline {
                let state = self.state();
                if why == Expired::NoRequest || state.in_flight == 0 {
                    return why;
                }
                continue;
            }
            match why {
                Expired::NoRequest => tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = self.first_request.notified() => {}
                },
                Expired::Idle => tokio::time::sleep_until(deadline).await,
            }
        }
    }
}

/// A request in flight; ends when dropped.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.in_flight -= 1;
        state.last = Instant::now();
    }
}

/// A response body that keeps its request in flight until the connection is done with it.
pub struct Tracked<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        Tracked {
            inner,
            _in_flight: in_flight,
        }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    /// Far enough for any test to notice a watcher that should not have ended.
    const NEVER: Duration = Duration::from_secs(3600);

    async fn within<T>(future: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), future)
            .await
            .expect("the watcher ended")
    }

    #[tokio::test]
    async fn no_request_expires_at_the_header_deadline() {
        let activity = Activity::new();
        let why = within(activity.watch(Instant::now(), 50 * MS, NEVER)).await;
        assert_eq!(why, Expired::NoRequest);
    }

    #[tokio::test]
    async fn the_first_request_ends_the_wait_for_the_header_deadline() {
        let activity = Activity::new();
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.watch(Instant::now(), NEVER, 50 * MS).await })
        };
        tokio::time::sleep(20 * MS).await;
        drop(activity.request_started());
        assert_eq!(within(watcher).await.unwrap(), Expired::Idle);
    }

    #[tokio::test]
    async fn a_request_in_flight_never_expires_and_idle_counts_from_its_end() {
        let activity = Activity::new();
        let request = activity.request_started();
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.watch(Instant::now(), 10 * MS, 20 * MS).await })
        };
        tokio::time::sleep(200 * MS).await;
        assert!(!watcher.is_finished(), "a request in flight never expires");
        drop(request);
        assert_eq!(within(watcher).await.unwrap(), Expired::Idle);
    }
}
