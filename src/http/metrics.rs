//! `/.metrics`: what the server and the syncs did, in the Prometheus text exposition format
//! (version 0.0.4).
//!
//! Counting happens on the request path, so it costs two relaxed atomic additions and no lock
//! or allocation: every (status code, mount) pair owns a slot in a flat table sized at start-up,
//! and a request finds its mount by comparing prefixes with the few configured mounts. Body
//! bytes are counted by [`CountedBody`] as the body hands each chunk to the connection. Sync
//! figures are added once per run (`App::sync_source` calls [`Metrics::sync_finished`]); the
//! rest is read when someone scrapes. The store's size is a walk of `objects/`, done in the
//! background and cached ([`StoreSize`]), never on the request that asks for it (but the very
//! first).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};

use super::body::Body;
use crate::app::App;
use crate::config::Config;
use crate::store::refs::{RunRecord, SourceRefs};
use crate::time::unix_now;
use crate::view::SNAPSHOTS_PREFIX;

/// The Content-Type of the exposition format this module writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The status codes this server answers with, each counted on its own; anything else is
/// counted under `code="other"`.
const CODES: [u16; 13] = [
    200, 206, 301, 304, 400, 403, 404, 405, 412, 416, 500, 501, 503,
];

/// How old a store measurement may get before a request starts a new walk, when no sync has
/// happened meanwhile (GC from the CLI and `verify` also change `objects/`).
const STORE_MAX_AGE: Duration = Duration::from_secs(300);
/// The least time between two walks, however often syncs finish.
const STORE_MIN_GAP: Duration = Duration::from_secs(2);

/// Counters of one source's syncs since the process started.
#[derive(Default)]
pub struct SyncCounters {
    pub runs: AtomicU64,
    pub failures: AtomicU64,
    pub fetched_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub stored_files: AtomicU64,
    pub upstream_requests: AtomicU64,
}

/// Everything `/.metrics` counts, plus the cached size of the store (shared with the status
/// page).
pub struct Metrics {
    /// Unix time (with fractions) when the process started.
    start_time: f64,
    /// Distinct source mounts in config order (`""` is the root); a mount's slot is its index.
    mounts: Vec<Box<str>>,
    /// Mount slots ordered longest mount first, so the most specific mount wins.
    by_length: Vec<usize>,
    /// Source ids (config order) and their mount slots, for `/.snapshots/<id>/…`.
    sources: Vec<(Box<str>, usize)>,
    /// `(CODES.len() + 1) × labels` counters each, row-major by code.
    requests: Box<[AtomicU64]>,
    bytes: Box<[AtomicU64]>,
    connections_open: AtomicI64,
    connections: AtomicU64,
    /// Per source, config order.
    sync: Vec<SyncCounters>,
    pub store: Arc<StoreSize>,
}

impl Metrics {
    pub fn new(config: &Config, objects_dir: PathBuf) -> Metrics {
        let mut mounts: Vec<Box<str>> = Vec::new();
        let mut sources = Vec::new();
        for source in &config.sources {
            let mount = source.mount.trim_end_matches('/');
            let slot = match mounts.iter().position(|m| &**m == mount) {
                Some(slot) => slot,
                None => {
                    mounts.push(mount.into());
                    mounts.len() - 1
                }
            };
            sources.push((source.id.as_str().into(), slot));
        }
        let mut by_length: Vec<usize> = (0..mounts.len()).collect();
        by_length.sort_by_key(|&slot| std::cmp::Reverse(mounts[slot].len()));
        let cells = (CODES.len() + 1) * (mounts.len() + 2);
        let start_time = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        Metrics {
            start_time,
            by_length,
            sources,
            requests: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            bytes: (0..cells).map(|_| AtomicU64::new(0)).collect(),
            connections_open: AtomicI64::new(0),
            connections: AtomicU64::new(0),
            sync: config
                .sources
                .iter()
                .map(|_| SyncCounters::default())
                .collect(),
            store: Arc::new(StoreSize::new(objects_dir)),
            mounts,
        }
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

    /// Counts one answered request; returns the cell its body bytes are counted in.
    pub fn count_request(&self, code: u16, slot: usize) -> usize {
        let row = CODES.iter().position(|&c| c == code).unwrap_or(CODES.len());
        let cell = row * self.labels() + slot.min(self.labels() - 1);
        self.requests[cell].fetch_add(1, Relaxed);
        cell
    }

    fn count_bytes(&self, cell: usize, len: usize) {
        self.bytes[cell].fetch_add(len as u64, Relaxed);
    }

    /// Counts an accepted connection until the returned guard is dropped.
    pub fn connection_opened(&self) -> OpenConnection<'_> {
        self.connections.fetch_add(1, Relaxed);
        self.connections_open.fetch_add(1, Relaxed);
        OpenConnection(self)
    }

    /// Adds one finished sync run of `source` (called by `App::sync_source`).
    pub fn sync_finished(&self, source: &str, record: &RunRecord) {
        if let Some(index) = self.sources.iter().position(|(id, _)| &**id == source) {
            let counters = &self.sync[index];
            counters.runs.fetch_add(1, Relaxed);
            if !record.ok || record.partial {
                counters.failures.fetch_add(1, Relaxed);
            }
            counters
                .fetched_bytes
                .fetch_add(record.bytes_fetched, Relaxed);
            counters
                .stored_bytes
                .fetch_add(record.bytes_stored, Relaxed);
            counters
                .stored_files
                .fetch_add(record.files_stored, Relaxed);
            counters
                .upstream_requests
                .fetch_add(record.upstream_requests, Relaxed);
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
                (
                    self.sync[i].runs.load(Relaxed),
                    self.sync[i].failures.load(Relaxed),
                )
            })
    }
}

/// Keeps `mirrorbox_http_connections_open` counted while a connection lives.
pub struct OpenConnection<'a>(&'a Metrics);

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        self.0.connections_open.fetch_sub(1, Relaxed);
    }
}

/// A response body that adds the bytes it hands to the connection to its (status, mount)
/// counter. Holding the `App` costs nothing extra: the connection's service clones it per
/// request anyway.
pub struct CountedBody {
    inner: Body,
    meter: Option<(Arc<App>, usize)>,
}

impl CountedBody {
    pub fn new(inner: Body, app: Arc<App>, cell: usize) -> CountedBody {
        let meter = match inner {
            Body::Empty => None,
            _ => Some((app, cell)),
        };
        CountedBody { inner, meter }
    }

    /// Counts a streamed file's chunks against its connection's buffer budget.
    pub fn budgeted(mut self, budget: super::budget::ConnectionBudget) -> CountedBody {
        match &mut self.inner {
            Body::Stream(stream) => stream.set_budget(budget),
            Body::ZeroCopy(body) => body.set_budget(budget),
            Body::Empty | Body::Full(_) => {}
        }
        self
    }
}

impl http_body::Body for CountedBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let (Some(Ok(frame)), Some((app, cell))) = (&frame, &this.meter) {
            if let Some(data) = frame.data_ref() {
                app.metrics.count_bytes(*cell, data.len());
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// `/.metrics`: never cached, no validators (scrapers do not send conditionals).
pub async fn respond<B>(app: &App, req: &Request<B>) -> Response<Body> {
    let store = app.metrics.store.get().await;
    let text = render(app, store);
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
    fn new(dir: PathBuf) -> StoreSize {
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

/// One metric family: HELP and TYPE lines, then the samples the closure writes.
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: impl FnOnce(&mut String)) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    samples(out);
}

/// A label value with `\`, `"` and newlines escaped.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The whole exposition. `store` is the cached measurement (none yet: the gauges are left out).
pub fn render(app: &App, store: Option<StoreUsage>) -> String {
    let m = &app.metrics;
    let mut out = String::with_capacity(8192);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let code_label = |row: usize| -> String {
        CODES
            .get(row)
            .map_or_else(|| "other".to_string(), |c| c.to_string())
    };
    let table = |out: &mut String, name: &str, cells: &[AtomicU64]| {
        for row in 0..=CODES.len() {
            for slot in 0..m.labels() {
                let value = cells[row * m.labels() + slot].load(Relaxed);
                let _ = writeln!(
                    out,
                    "{name}{{code=\"{}\",mount=\"{}\"}} {value}",
                    code_label(row),
                    label_value(m.label(slot))
                );
            }
        }
    };
    family(
        &mut out,
        "mirrorbox_http_requests_total",
        "counter",
        "HTTP requests answered, by status code and by the source mount the path fell under (pinned /.snapshots/<source>/ URLs count under their source's mount; \"status\": /.status, /.status.json and /.metrics; \"other\": anything else, and requests refused before their path was read). Codes this server does not send are counted as \"other\".",
        |out| table(out, "mirrorbox_http_requests_total", &m.requests),
    );
    family(
        &mut out,
        "mirrorbox_http_response_bytes_total",
        "counter",
        "Response body bytes handed to connections, by status code and mount (labels as for mirrorbox_http_requests_total). Counted as the body is sent, not from Content-Length: an interrupted download counts what was sent, plus at most one read-ahead chunk; headers are not counted.",
        |out| table(out, "mirrorbox_http_response_bytes_total", &m.bytes),
    );
    family(
        &mut out,
        "mirrorbox_http_connections_open",
        "gauge",
        "Client connections open now (HTTP and HTTPS, TLS handshakes included).",
        |out| {
            let _ = writeln!(
                out,
                "mirrorbox_http_connections_open {}",
                m.connections_open.load(Relaxed)
            );
        },
    );
    family(
        &mut out,
        "mirrorbox_http_connections_total",
        "counter",
        "Client connections accepted since the process started.",
        |out| {
            let _ = writeln!(
                out,
                "mirrorbox_http_connections_total {}",
                m.connections.load(Relaxed)
            );
        },
    );

    // Per source: what was read from the store now, then the counters since start.
    struct Row<'a> {
        id: String,
        counters: &'a SyncCounters,
        record: Option<RunRecord>,
        snapshots: usize,
        running: bool,
    }
    let rows: Vec<Row> = app
        .config
        .sources
        .iter()
        .zip(&m.sync)
        .map(|(source, counters)| Row {
            id: label_value(&source.id),
            counters,
            record: app.run_record(&source.id),
            snapshots: app
                .store
                .read_refs(&source.id)
                .map_or(0, |refs| retained(&refs)),
            running: app.live_status(&source.id).running,
        })
        .collect();
    let per_source = |out: &mut String,
                      name: &str,
                      kind: &str,
                      help: &str,
                      value: &dyn Fn(&Row) -> Option<String>| {
        family(out, name, kind, help, |out| {
            for row in &rows {
                if let Some(value) = value(row) {
                    let _ = writeln!(out, "{name}{{source=\"{}\"}} {value}", row.id);
                }
            }
        });
    };
    per_source(
        &mut out,
        "mirrorbox_sync_runs_total",
        "counter",
        "Sync runs finished since the process started, failed ones included.",
        &|r| Some(r.counters.runs.load(Relaxed).to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_sync_failures_total",
        "counter",
        "Sync runs that failed (and kept the previous snapshot) since the process started.",
        &|r| Some(r.counters.failures.load(Relaxed).to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_sync_fetched_bytes_total",
        "counter",
        "Bytes received from the upstream by syncs that succeeded, since the process started.",
        &|r| Some(r.counters.fetched_bytes.load(Relaxed).to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_sync_upstream_requests_total",
        "counter",
        "Requests made to the upstream by syncs that succeeded, since the process started.",
        &|r| Some(r.counters.upstream_requests.load(Relaxed).to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_sync_stored_bytes_total",
        "counter",
        "Bytes new to the store (not already held by any snapshot) added by syncs that succeeded, since the process started.",
        &|r| Some(r.counters.stored_bytes.load(Relaxed).to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_sync_stored_files_total",
        "counter",
        "Files new to the store added by syncs that succeeded, since the process started.",
        &|r| Some(r.counters.stored_files.load(Relaxed).to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_sync_last_duration_seconds",
        "gauge",
        "How long the last sync run took, whatever its result (kept across restarts).",
        &|r| {
            r.record
                .as_ref()
                .map(|rec| format!("{}", rec.duration_ms as f64 / 1000.0))
        },
    );
    per_source(
        &mut out,
        "mirrorbox_sync_last_success_timestamp_seconds",
        "gauge",
        "Unix time when the last successful sync started (no sample: never succeeded).",
        &|r| {
            r.record
                .as_ref()
                .and_then(|rec| rec.last_success)
                .map(|t| t.to_string())
        },
    );
    per_source(
        &mut out,
        "mirrorbox_sync_since_last_success_seconds",
        "gauge",
        "Seconds since the last successful sync started (no sample: never succeeded).",
        &|r| {
            r.record
                .as_ref()
                .and_then(|rec| rec.last_success)
                .map(|t| format!("{}", (now - t as f64).max(0.0).round()))
        },
    );
    per_source(
        &mut out,
        "mirrorbox_sync_last_ok",
        "gauge",
        "1 if the last sync run succeeded, 0 if it or a part of it (a Puavo series) failed (no sample: never run).",
        &|r| {
            r.record
                .as_ref()
                .map(|rec| if rec.ok && !rec.partial { "1" } else { "0" }.to_string())
        },
    );
    per_source(
        &mut out,
        "mirrorbox_sync_running",
        "gauge",
        "1 while a sync of the source runs.",
        &|r| Some(if r.running { "1" } else { "0" }.to_string()),
    );
    per_source(
        &mut out,
        "mirrorbox_snapshots",
        "gauge",
        "Snapshots the source retains (the current one included), each served under /.snapshots/<source>/<snapshot>/.",
        &|r| Some(r.snapshots.to_string()),
    );

    if let Some(store) = store {
        family(
            &mut out,
            "mirrorbox_store_size_bytes",
            "gauge",
            "Sum of the sizes of the objects under DATA_DIR/objects (measured in the background at most every 5 minutes and after syncs; see mirrorbox_store_measured_timestamp_seconds).",
            |out| {
                let _ = writeln!(out, "mirrorbox_store_size_bytes {}", store.bytes);
            },
        );
        family(
            &mut out,
            "mirrorbox_store_objects",
            "gauge",
            "Objects under DATA_DIR/objects (same measurement as mirrorbox_store_size_bytes).",
            |out| {
                let _ = writeln!(out, "mirrorbox_store_objects {}", store.objects);
            },
        );
        family(
            &mut out,
            "mirrorbox_store_measured_timestamp_seconds",
            "gauge",
            "Unix time when the store was last measured.",
            |out| {
                let _ = writeln!(
                    out,
                    "mirrorbox_store_measured_timestamp_seconds {}",
                    store.measured
                );
            },
        );
    }
    family(
        &mut out,
        "mirrorbox_process_start_time_seconds",
        "gauge",
        "Unix time when the process started.",
        |out| {
            let _ = writeln!(
                out,
                "mirrorbox_process_start_time_seconds {:.3}",
                m.start_time
            );
        },
    );
    family(
        &mut out,
        "mirrorbox_build_info",
        "gauge",
        "Always 1; the version label says which mirrorbox runs.",
        |out| {
            let _ = writeln!(
                out,
                "mirrorbox_build_info{{version=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION")
            );
        },
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(mounts: &[(&str, &str)]) -> Metrics {
        let mut text = String::from("data_dir = \"/nonexistent\"\n");
        for (id, mount) in mounts {
            text.push_str(&format!(
                "[[source]]\nid = \"{id}\"\nkind = \"dir\"\nmount = \"{mount}\"\npath = \"/nonexistent\"\n"
            ));
        }
        let config = Config::parse(&text, Path::new("test.toml")).unwrap();
        Metrics::new(&config, PathBuf::from("/nonexistent"))
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
        let ok = m.count_request(200, 0);
        let missing = m.count_request(404, 0);
        let odd = m.count_request(299, m.other_slot());
        assert_ne!(ok, missing);
        assert_eq!(m.count_request(200, 0), ok);
        assert_eq!(m.requests[ok].load(Relaxed), 2);
        assert_eq!(m.requests[odd].load(Relaxed), 1);
        assert_eq!(odd, m.requests.len() - 1);
        m.count_bytes(ok, 10);
        assert_eq!(m.bytes[ok].load(Relaxed), 10);
        {
            let _one = m.connection_opened();
            let _two = m.connection_opened();
            assert_eq!(m.connections_open.load(Relaxed), 2);
        }
        assert_eq!(m.connections_open.load(Relaxed), 0);
        assert_eq!(m.connections.load(Relaxed), 2);
    }

    #[test]
    fn measuring_counts_files_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sha256/ab")).unwrap();
        std::fs::write(dir.path().join("sha256/ab/one"), b"12345").unwrap();
        std::fs::write(dir.path().join("sha256/two"), b"123").unwrap();
        assert_eq!(measure(dir.path()).unwrap(), (2, 8));
        assert!(measure(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
