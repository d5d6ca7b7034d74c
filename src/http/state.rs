//! What the HTTP side needs from the process that serves, and nothing more: the published
//! view, the object cache, the counters, the `[[access]]` rules, two server settings, the
//! certificate source, and a [`StatusSource`] for the status pages and the per-source metrics.
//!
//! The application implements [`StatusSource`] from what it keeps in memory (run records,
//! refs of the published view), so answering `/.status` or `/.metrics` reads no file on a
//! runtime thread. The dependency goes one way: the app knows http, http knows only these
//! types.

use std::sync::Arc;

use serde::Serialize;

use super::access::Access;
use super::certificates::Certificates;
use super::metrics::Metrics;
use super::objects::ObjectCache;
use super::status::ClientUse;
use crate::store::refs::{RunRecord, SourceRefs};
use crate::view::ViewHandle;

/// Everything a request handler reads. Shared by all connections (behind an `Arc`).
pub struct State {
    pub view: Arc<ViewHandle>,
    pub objects: Arc<ObjectCache>,
    pub metrics: Arc<Metrics>,
    /// The `[[access]]` rules, held by their owner so a reload (SIGHUP) is seen here.
    pub access: Arc<dyn AsRef<Access> + Send + Sync>,
    pub settings: Settings,
    /// Unix seconds when the server started.
    pub started: i64,
    pub status: Arc<dyn StatusSource>,
    /// Where HTTPS takes its certificate from (`None`: no HTTPS), for `/.status`,
    /// `/.metrics` and, with ACME, the HTTP-01 challenge route.
    pub certificates: Option<Certificates>,
}

impl State {
    pub fn access(&self) -> &Access {
        (*self.access).as_ref()
    }

    /// The ACME state, when ACME manages the certificate.
    pub fn acme(&self) -> Option<&Arc<crate::acme::AcmeState>> {
        self.certificates.as_ref()?.acme()
    }
}

/// The server settings request handling reads (the rest belongs to listeners and connections).
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings {
    /// One `access` log line per request.
    pub access_log: bool,
    /// Clients on loopback see full status messages (off behind a reverse proxy on this host).
    pub trust_loopback: bool,
}

/// Anything that can give [`super::handle`] its state: the state itself, or an owner that
/// builds it (the app does, for callers that hold the app).
pub trait IntoState {
    fn into_state(self) -> Arc<State>;
}

impl IntoState for Arc<State> {
    fn into_state(self) -> Arc<State> {
        self
    }
}

/// One source as the server knows it now, in configuration order.
#[derive(Debug, Clone, Default)]
pub struct SourceState {
    pub id: String,
    /// As configured: `""` is the root.
    pub mount: String,
    /// `apt`, `dir`, `files`, `puavo`.
    pub kind: &'static str,
    pub live: LiveStatus,
    pub last_run: Option<RunRecord>,
    /// The refs the published view was built from.
    pub refs: SourceRefs,
    /// Unix seconds when the current snapshot was made.
    pub current_created: Option<i64>,
    /// Bytes only this source's snapshots hold: what removing the source would free.
    pub unique_bytes: Option<u64>,
}

/// What the status page shows of one source besides its last run record.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveStatus {
    pub running: bool,
    /// Unix seconds of the next scheduled run, if scheduled.
    pub next_run: Option<i64>,
}

/// The sources behind the status pages and the per-source metrics. Every method answers
/// from memory: they run on the server's runtime threads.
pub trait StatusSource: Send + Sync {
    /// Every configured source, in configuration order.
    fn sources(&self) -> Vec<SourceState>;
    /// How clients use source `id` served at `base_url` (its kind says), from what `view`
    /// publishes.
    fn client_use(&self, id: &str, base_url: &str, view: &crate::view::View) -> ClientUse;
    /// Local paths (configured folders, as written and resolved) hidden from untrusted
    /// clients in messages, longest first (see [`super::redact::paths`]).
    fn private_folders(&self) -> &[String];
}
