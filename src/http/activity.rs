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
//!   or ended, whatever else it sends;
//! - HTTP/2, with requests in flight: it may go `idle_timeout` without progress, that is a
//!   request starting or ending, a response head, or a piece of response data handed to the
//!   connection. A client that keeps its flow-control windows at 0 gets no data (hyper asks the
//!   body for more only when the window has room), so it is closed however many PINGs or
//!   WINDOW_UPDATEs it sends meanwhile; bytes on the wire prove nothing. A body asks for the
//!   next chunk (up to 256 KiB) only once most of the last one is out, so this asks a
//!   downloading client for about one chunk per `idle_timeout` (some KiB/s with the defaults).
//!
//! A client that stops reading its socket in the middle of a response is caught by the
//! per-byte no-progress timer in [`idle`](super::idle). That is enough for HTTP/1.1, where
//! nothing but the response moves while one is being sent (hyper does not read the next
//! request meanwhile), so HTTP/1.1 is left to it: its responses may also be sent without
//! passing through [`Tracked`].

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Frame, SizeHint};
use tokio::sync::Notify;
use tokio::time::Instant;

/// How often per `idle_timeout` [`Activity::watch`] looks at the event count: a connection
/// is closed between `idle_timeout` and half as much again after its last event, never sooner.
const SAMPLES_PER_TIMEOUT: u32 = 4;

/// What one connection has asked for so far. Requests only touch atomics (no lock, no clock
/// read): the watcher samples [`Activity::events`] a few times per `idle_timeout` instead.
pub struct Activity {
    /// Requests whose response has not been dropped yet.
    in_flight: AtomicUsize,
    /// A request head has arrived.
    started: AtomicBool,
    /// The connection speaks HTTP/2, where bytes moving prove nothing (see the module doc).
    http2: AtomicBool,
    /// Counts requests starting and ending and responses making progress: any change between
    /// two samples is activity.
    events: AtomicU64,
    /// Wakes [`Activity::watch`] from the header deadline when the first request arrives.
    first_request: Notify,
}

/// Why [`Activity::watch`] says the connection should end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// No complete request head within `header_timeout` of the accept.
    NoRequest,
    /// No request in flight, none started, for `idle_timeout`.
    Idle,
    /// HTTP/2: requests in flight, but no progress on any of them for `idle_timeout`.
    Stalled,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            started: AtomicBool::new(false),
            http2: AtomicBool::new(false),
            events: AtomicU64::new(0),
            first_request: Notify::new(),
        })
    }

    /// Counts a request as in flight until the returned guard is dropped (keep it with the
    /// response body).
    pub fn request_started(self: &Arc<Self>, version: http::Version) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        if version == http::Version::HTTP_2 && !self.http2.load(Ordering::Relaxed) {
            self.http2.store(true, Ordering::Relaxed);
        }
        if !self.started.load(Ordering::Relaxed) {
            self.started.store(true, Ordering::Release);
            // Stored if the watcher is not waiting yet, so it is never missed.
            self.first_request.notify_one();
        }
        self.progress();
        InFlight(self.clone())
    }

    /// Notes progress on a response: a chunk of its body produced, or its head. Anything that
    /// sends response data around [`Tracked`] (a sendfile path) must call this per chunk.
    pub fn progress(&self) {
        self.events.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns once the connection has run out of time: `accepted + header_timeout` without a
    /// request, `idle_timeout` without one in flight, or (HTTP/2) `idle_timeout` without
    /// progress while requests are in flight. One timer, woken a few times per `idle_timeout`.
    pub async fn watch(
        &self,
        accepted: Instant,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> Expired {
        if !self.started.load(Ordering::Acquire) {
            tokio::select! {
                _ = tokio::time::sleep_until(accepted + header_timeout) => {}
                _ = self.first_request.notified() => {}
            }
            if !self.started.load(Ordering::Acquire) {
                return Expired::NoRequest;
            }
        }
        let step = (idle_timeout / SAMPLES_PER_TIMEOUT).max(Duration::from_millis(1));
        let mut seen = self.events.load(Ordering::Relaxed);
        let mut quiet_since = Instant::now();
        loop {
            tokio::time::sleep(step).await;
            let events = self.events.load(Ordering::Relaxed);
            let in_flight = self.in_flight.load(Ordering::Relaxed);
            let http2 = self.http2.load(Ordering::Relaxed);
            // HTTP/1.1 with a request in flight: the byte timer's business (module doc).
            if events != seen || (in_flight > 0 && !http2) {
                seen = events;
                quiet_since = Instant::now();
                continue;
            }
            if quiet_since.elapsed() >= idle_timeout {
                return if in_flight == 0 {
                    Expired::Idle
                } else {
                    Expired::Stalled
                };
            }
        }
    }
}

/// A request in flight; ends when dropped.
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.progress();
    }
}

/// A response body that keeps its request in flight until the connection is done with it, and
/// notes progress for every frame it hands out.
pub struct Tracked<B> {
    inner: B,
    in_flight: InFlight,
}

impl<B> Tracked<B> {
    /// The response head is ready: that counts as progress too.
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        in_flight.0.progress();
        Tracked { inner, in_flight }
    }
}

impl<B: http_body::Body + Unpin> http_body::Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let frame = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &frame {
            this.in_flight.0.progress();
        }
        frame
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
    const H1: http::Version = http::Version::HTTP_11;
    const H2: http::Version = http::Version::HTTP_2;
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
        drop(activity.request_started(H1));
        assert_eq!(within(watcher).await.unwrap(), Expired::Idle);
    }

    #[tokio::test]
    async fn a_request_making_progress_never_expires_and_idle_counts_from_its_end() {
        let activity = Activity::new();
        let request = activity.request_started(H2);
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.watch(Instant::now(), 10 * MS, 1000 * MS).await })
        };
        for _ in 0..30 {
            tokio::time::sleep(50 * MS).await;
            activity.progress();
        }
        assert!(
            !watcher.is_finished(),
            "a request making progress never expires"
        );
        drop(request);
        assert_eq!(within(watcher).await.unwrap(), Expired::Idle);
    }

    #[tokio::test]
    async fn an_http2_request_without_progress_stalls() {
        let activity = Activity::new();
        let _request = activity.request_started(H2);
        let why = within(activity.watch(Instant::now(), 10 * MS, 50 * MS)).await;
        assert_eq!(why, Expired::Stalled);
    }

    #[tokio::test]
    async fn an_http1_request_in_flight_is_left_to_the_byte_timer() {
        let activity = Activity::new();
        let request = activity.request_started(H1);
        let watcher = {
            let activity = activity.clone();
            tokio::spawn(async move { activity.watch(Instant::now(), 10 * MS, 20 * MS).await })
        };
        tokio::time::sleep(200 * MS).await;
        assert!(
            !watcher.is_finished(),
            "an HTTP/1.1 request in flight never expires here"
        );
        drop(request);
        assert_eq!(within(watcher).await.unwrap(), Expired::Idle);
    }

    #[tokio::test]
    async fn every_body_frame_is_progress() {
        use http_body_util::BodyExt;
        let activity = Activity::new();
        let frames = (0..5).map(|_| Ok::<_, std::io::Error>(Frame::data(bytes::Bytes::from("x"))));
        let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
        let mut tracked = Tracked::new(body, activity.request_started(H2));
        let before = activity.events.load(Ordering::Relaxed);
        assert!(tracked.frame().await.is_some());
        assert!(activity.events.load(Ordering::Relaxed) > before);
    }
}
