//! `/.metrics`: what the server and the syncs did, in the Prometheus text exposition format,
//! written by the `prometheus-client` crate.
//!
//! Counting happens on the request path, so it costs two relaxed atomic additions and no lock,
//! lookup or allocation: every (status code, mount) pair owns a counter resolved from its
//! family once at start-up, kept in a flat table, and a request finds its mount by comparing
//! prefixes with the few configured mounts. Body bytes are counted by [`CountedBody`] as the
//! body hands each chunk to the connection. Sync figures are added once per run (the app calls
//! [`Metrics::sync_finished`]); the rest is read when someone scrapes (`render`). The store's
//! size is a walk of `objects/`, done in the background and cached ([`StoreSize`]).
//!
//! Parts: this file (the metric definitions and the hot path), `body` (the counting response
//! body), `store_size` (the walker), `render` (the exposition), `tls` (the certificate's
//! expiry and the ACME engine's orders, read at each scrape).

mod body;
mod render;
mod store_size;
mod tls;

use std::path::PathBuf;
use std::sync::atomic::AtomicI64;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;

use super::body::Body;
use super::state::State;
use crate::store::refs::{RunRecord, SourceRefs};
use crate::view::SNAPSHOTS_PREFIX;
pub use body::CountedBody;
pub use store_size::{StoreSize, StoreUsage};

/// The Content-Type of `/.metrics` (what scrapers and the tests expect to be told).
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The status codes this server answers with, each counted on its own; anything else is
/// counted under `code="other"`.
const CODES: [u16; 13] = [
    200, 206, 301, 304, 400, 403, 404, 405, 412, 416, 500, 501, 503,
];

/// Labels of a family: `(name, value)` pairs.
type Labels = Vec<(&'static str, String)>;

/// Counters of one source's syncs since the process started: handles into the families.
struct SyncCounters {
    runs: Counter,
    failures: Counter,
    fetched_bytes: Counter,
    stored_bytes: Counter,
    stored_files: Counter,
    upstream_requests: Counter,
}

/// The families of the per-source sync counters.
#[derive(Default)]
struct SyncFamilies {
    runs: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    fetched_bytes: Family<Labels, Counter>,
    stored_bytes: Family<Labels, Counter>,
    stored_files: Family<Labels, Counter>,
    upstream_requests: Family<Labels, Counter>,
}

/// Everything `/.metrics` counts, plus the cached size of the store (shared with the status
/// page).
pub struct Metrics {
    /// Unix time (with fractions) when the process started.
    start_time: f64,
    /// Distinct source mounts in configuration order (`""` is the root); a mount's slot is its
    /// index.
    mounts: Vec<Box<str>>,
    /// Mount slots ordered longest mount first, so the most specific mount wins.
    by_length: Vec<usize>,
    /// Source ids (configuration order) and their mount slots, for `/.snapshots/<id>/…`.
    sources: Vec<(Box<str>, usize)>,
    requests_family: Family<Labels, Counter>,
    bytes_family: Family<Labels, Counter>,
    /// `(CODES.len() + 1) × labels` handles into the families above, row-major by code.
    requests: Box<[Counter]>,
    bytes: Box<[Counter]>,
    connections_open: Gauge<i64, AtomicI64>,
    connections: Counter,
    sync_families: SyncFamilies,
    /// Per source, configuration order.
    sync: Vec<SyncCounters>,
    pub store: std::sync::Arc<StoreSize>,
}

impl Metrics {
    /// `sources`: every source's id and mount, in configuration order.
    pub fn new<'a>(
        sources: impl IntoIterator<Item = (&'a str, &'a str)>,
        objects_dir: PathBuf,
    ) -> Metrics {
        let mut mounts: Vec<Box<str>> = Vec::new();
        let mut ids = Vec::new();
        for (id, mount) in sources {
            let mount = mount.trim_end_matches('/');
            let slot = match mounts.iter().position(|m| &**m == mount) {
                Some(slot) => slot,
                None => {
                    mounts.push(mount.into());
                    mounts.len() - 1
                }
            };
            ids.push((Box::<str>::from(id), slot));
        }
        let mut by_length: Vec<usize> = (0..mounts.len()).collect();
        by_length.sort_by_key(|&slot| std::cmp::Reverse(mounts[slot].len()));
        let start_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let sync_families = SyncFamilies::default();
        let sync = ids
            .iter()
            .map(|(id, _)| {
                let labels = vec![("source", id.to_string())];
                let handle = |family: &Family<Labels, Counter>| family.get_or_create_owned(&labels);
                SyncCounters {
                    runs: handle(&sync_families.runs),
                    failures: handle(&sync_families.failures),
                    fetched_bytes: handle(&sync_families.fetched_bytes),
                    stored_bytes: handle(&sync_families.stored_bytes),
                    stored_files: handle(&sync_families.stored_files),
                    upstream_requests: handle(&sync_families.upstream_requests),
                }
            })
            .collect();
        let mut metrics = Metrics {
            start_time,
            by_length,
            sources: ids,
            requests_family: Family::default(),
            bytes_family: Family::default(),
            requests: Box::new([]),
            bytes: Box::new([]),
            connections_open: Gauge::default(),
            connections: Counter::default(),
            sync_families,
            sync,
            store: std::sync::Arc::new(StoreSize::new(objects_dir)),
            mounts,
        };
        // Every cell is resolved now, so requests never look a label set up.
        let cells: Vec<Labels> = (0..=CODES.len())
            .flat_map(|row| (0..metrics.labels()).map(move |slot| (row, slot)))
            .map(|(row, slot)| {
                let code = CODES.get(row).map_or("other".to_string(), u16::to_string);
                vec![("code", code), ("mount", metrics.label(slot).to_string())]
            })
            .collect();
        metrics.requests = cells
            .iter()
            .map(|l| metrics.requests_family.get_or_create_owned(l))
            .collect();
        metrics.bytes = cells
            .iter()
            .map(|l| metrics.bytes_family.get_or_create_owned(l))
            .collect();
        metrics
    }

    fn labels(&self) -> usize {
        self.mounts.len() + 2
    }

    /// The slot of the status pages and of `/.metrics`.
    pub fn status_slot(&self) -> usize {
        self.mounts.len()
    }

    /// The slot of paths under no mount (and of requests refused before their path was read).
    pub fn other_slot(&self) -> usize {
        self.mounts.len() + 1
    }

    fn label(&self, slot: usize) -> &str {
        match self.mounts.get(slot) {
            Some(mount) if mount.is_empty() => "/",
            Some(mount) => mount,
            None if slot == self.status_slot() => "status",
            None => "other",
        }
    }

    /// The slot of a decoded request path (`/a/b`, root `/`): the longest mount it falls
    /// under; a pinned snapshot URL counts under its source's mount.
    pub fn mount_slot(&self, key: &str) -> usize {
        if let Some(rest) = key
            .strip_prefix(SNAPSHOTS_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
        {
            let id = rest.split('/').next().unwrap_or("");
            return self
                .sources
                .iter()
                .find(|(source, _)| &**source == id)
                .map_or(self.other_slot(), |(_, slot)| *slot);
        }
        for &slot in &self.by_length {
            let mount = &*self.mounts[slot];
            if mount.is_empty()
                || (key.starts_with(mount)
                    && matches!(key.as_bytes().get(mount.len()), None | Some(b'/')))
            {
                return slot;
            }
        }
        self.other_slot()
    }

    fn cell(&self, code: u16, slot: usize) -> usize {
        let row = CODES.iter().position(|&c| c == code).unwrap_or(CODES.len());
        row * self.labels() + slot.min(self.labels() - 1)
    }

    /// Counts one answered request; returns the counter its body bytes go to.
    pub fn count_request(&self, code: u16, slot: usize) -> Counter {
        let cell = self.cell(code, slot);
        self.requests[cell].inc();
        self.bytes[cell].clone()
    }

    /// Counts an accepted connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections.inc();
        self.connections_open.inc();
        OpenConnection(self)
    }

    /// Adds one finished sync run of `source` (called by the app after each run).
    pub fn sync_finished(&self, source: &str, record: &RunRecord) {
        if let Some(index) = self.sources.iter().position(|(id, _)| &**id == source) {
            let counters = &self.sync[index];
            counters.runs.inc();
            if !record.ok || record.partial {
                counters.failures.inc();
            }
            counters.fetched_bytes.inc_by(record.counts.bytes_fetched);
            counters.stored_bytes.inc_by(record.counts.bytes_stored);
            counters.stored_files.inc_by(record.counts.files_stored);
            counters
                .upstream_requests
                .inc_by(record.counts.upstream_requests);
        }
        // A sync (and the GC after it) changes objects/; even a failed one may have stored some.
        self.store.invalidate();
    }

    /// The counters of a source's syncs since start (zeros for an unknown id).
    pub fn sync_counters(&self, source: &str) -> (u64, u64) {
        self.sources
            .iter()
            .position(|(id, _)| &**id == source)
            .map_or((0, 0), |i| {
                (self.sync[i].runs.get(), self.sync[i].failures.get())
            })
    }
}

/// Keeps `mirrorbox_http_connections_open` counted while a connection lives.
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// `/.metrics`: never cached, no validators (scrapers do not send conditionals).
pub async fn respond<B>(state: &State, req: &Request<B>) -> Response<Body> {
    let store = state.metrics.store.get().await;
    let text = render::render(
        &state.metrics,
        &state.status.sources(),
        store,
        state.certificates.as_ref(),
    );
    let len = text.len();
    let body = if req.method() == Method::HEAD {
        Body::Empty
    } else {
        Body::bytes(text)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE))
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(body)
        .expect("valid response")
}

/// The number of distinct snapshots a source retains (the current one included).
pub fn retained(refs: &SourceRefs) -> usize {
    let extra = refs
        .current
        .iter()
        .chain(refs.pinned.iter())
        .filter(|id| !refs.snapshots.contains(id))
        .count();
    refs.snapshots.len() + extra
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(mounts: &[(&str, &str)]) -> Metrics {
        Metrics::new(mounts.iter().copied(), PathBuf::from("/nonexistent"))
    }

    #[test]
    fn paths_fall_under_the_longest_mount() {
        let m = metrics(&[("a", "/debian"), ("b", "/debian/pve"), ("c", "/debian")]);
        let label = |key: &str| m.label(m.mount_slot(key)).to_string();
        assert_eq!(label("/debian/dists/x"), "/debian");
        assert_eq!(label("/debian"), "/debian");
        assert_eq!(label("/debian/pve/dists"), "/debian/pve");
        assert_eq!(label("/debian/pvex"), "/debian");
        assert_eq!(label("/debianx"), "other");
        assert_eq!(label("/"), "other");
        assert_eq!(label("/.snapshots/b/0123/x"), "/debian/pve");
        assert_eq!(label("/.snapshots/zzz/0123/x"), "other");
        assert_eq!(label("/.snapshots"), "other");
        assert_eq!(m.label(m.status_slot()), "status");
        let root = metrics(&[("a", "/"), ("b", "/iso")]);
        let label = |key: &str| root.label(root.mount_slot(key)).to_string();
        assert_eq!(label("/iso/x.iso"), "/iso");
        assert_eq!(label("/rdiffs/x"), "/");
        assert_eq!(label("/"), "/");
    }

    #[test]
    fn codes_and_slots_have_their_own_cells() {
        let m = metrics(&[("a", "/a")]);
        let ok = m.cell(200, 0);
        let missing = m.cell(404, 0);
        let odd = m.cell(299, m.other_slot());
        assert_ne!(ok, missing);
        m.count_request(200, 0);
        m.count_request(200, 0).inc_by(10);
        m.count_request(299, m.other_slot());
        assert_eq!(m.requests[ok].get(), 2);
        assert_eq!(m.requests[missing].get(), 0);
        assert_eq!(m.requests[odd].get(), 1);
        assert_eq!(odd, m.requests.len() - 1);
        assert_eq!(m.bytes[ok].get(), 10);
        {
            let _one = m.connection_opened();
            let _two = m.connection_opened();
            assert_eq!(m.connections_open.get(), 2);
        }
        assert_eq!(m.connections_open.get(), 0);
        assert_eq!(m.connections.get(), 2);
    }
}
