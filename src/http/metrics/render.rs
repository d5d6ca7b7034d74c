//! The exposition of `/.metrics`: a registry made for each scrape from the long-lived counter
//! families and from gauges read now (the sources' last runs, the store's measurement),
//! written by `prometheus-client`'s text encoder.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::super::certificates::Certificates;
use super::super::state::SourceState;
use super::{retained, Labels, Metrics, StoreUsage};

/// A gauge of whole numbers (timestamps, counts, 0/1).
type Whole = Family<Labels, Gauge>;
/// A gauge of fractions (seconds).
type Fraction = Family<Labels, Gauge<f64, AtomicU64>>;

/// `prometheus-client` ends every HELP text with a full stop; ours are written with one.
pub(super) fn help(text: &str) -> &str {
    text.strip_suffix('.').unwrap_or(text)
}

/// The whole exposition. `sources`: every source now, configuration order; `store`: the
/// cached measurement (none yet: its gauges are left out); `tls`: the HTTPS certificate
/// source, if any.
pub(super) fn render(
    m: &Metrics,
    sources: &[SourceState],
    store: Option<StoreUsage>,
    tls: Option<&Certificates>,
) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let mut registry = Registry::default();
    registry.register(
        "mirrorbox_http_requests",
        help("HTTP requests answered, by status code and by the source mount the path fell under (pinned /.snapshots/<source>/ URLs count under their source's mount; \"status\": /.status, /.status.json and /.metrics; \"other\": anything else, and requests refused before their path was read). Codes this server does not send are counted as \"other\"."),
        m.requests_family.clone(),
    );
    registry.register(
        "mirrorbox_http_response_bytes",
        help("Response body bytes handed to connections, by status code and mount (labels as for mirrorbox_http_requests_total). Counted as the body is sent, not from Content-Length: an interrupted download counts what was sent, plus at most one read-ahead chunk; headers are not counted."),
        m.bytes_family.clone(),
    );
    registry.register(
        "mirrorbox_http_connections_open",
        help("Client connections open now (HTTP and HTTPS, TLS handshakes included)."),
        m.connections_open.clone(),
    );
    registry.register(
        "mirrorbox_http_connections",
        help("Client connections accepted since the process started."),
        m.connections.clone(),
    );

    let f = &m.sync_families;
    registry.register(
        "mirrorbox_sync_runs",
        help("Sync runs finished since the process started, failed ones included."),
        f.runs.clone(),
    );
    registry.register(
        "mirrorbox_sync_failures",
        help("Sync runs that failed (and kept the previous snapshot) since the process started."),
        f.failures.clone(),
    );
    registry.register(
        "mirrorbox_sync_fetched_bytes",
        help(
            "Bytes received from the upstream by syncs that succeeded, since the process started.",
        ),
        f.fetched_bytes.clone(),
    );
    registry.register(
        "mirrorbox_sync_upstream_requests",
        help("Requests made to the upstream by syncs that succeeded, since the process started."),
        f.upstream_requests.clone(),
    );
    registry.register(
        "mirrorbox_sync_stored_bytes",
        help("Bytes new to the store (not already held by any snapshot) added by syncs that succeeded, since the process started."),
        f.stored_bytes.clone(),
    );
    registry.register(
        "mirrorbox_sync_stored_files",
        help("Files new to the store added by syncs that succeeded, since the process started."),
        f.stored_files.clone(),
    );

    // Per source, read now.
    let duration = Fraction::default();
    let last_success = Whole::default();
    let since_success = Whole::default();
    let last_ok = Whole::default();
    let running = Whole::default();
    let snapshots = Whole::default();
    for source in sources {
        let labels: Labels = vec![("source", source.id.clone())];
        if let Some(run) = &source.last_run {
            duration
                .get_or_create(&labels)
                .set(run.duration_ms as f64 / 1000.0);
            if let Some(t) = run.last_success {
                last_success.get_or_create(&labels).set(t);
                let since = (now - t as f64).max(0.0).round() as i64;
                since_success.get_or_create(&labels).set(since);
            }
            last_ok
                .get_or_create(&labels)
                .set(i64::from(run.ok && !run.partial));
        }
        running
            .get_or_create(&labels)
            .set(i64::from(source.live.running));
        snapshots
            .get_or_create(&labels)
            .set(whole(retained(&source.refs) as u64));
    }
    registry.register(
        "mirrorbox_sync_last_duration_seconds",
        help("How long the last sync run took, whatever its result (kept across restarts)."),
        duration,
    );
    registry.register(
        "mirrorbox_sync_last_success_timestamp_seconds",
        help("Unix time when the last successful sync started (no sample: never succeeded)."),
        last_success,
    );
    registry.register(
        "mirrorbox_sync_since_last_success_seconds",
        help("Seconds since the last successful sync started (no sample: never succeeded)."),
        since_success,
    );
    registry.register(
        "mirrorbox_sync_last_ok",
        help("1 if the last sync run succeeded, 0 if it or a part of it (a Puavo series) failed (no sample: never run)."),
        last_ok,
    );
    registry.register(
        "mirrorbox_sync_running",
        help("1 while a sync of the source runs."),
        running,
    );
    registry.register(
        "mirrorbox_snapshots",
        help("Snapshots the source retains (the current one included), each served under /.snapshots/<source>/<snapshot>/."),
        snapshots,
    );

    if let Some(store) = store {
        registry.register(
            "mirrorbox_store_size_bytes",
            help("Sum of the sizes of the objects under DATA_DIR/objects (measured in the background at most every 5 minutes and after syncs; see mirrorbox_store_measured_timestamp_seconds)."),
            Gauge::<i64>::default().tap(whole(store.bytes)),
        );
        registry.register(
            "mirrorbox_store_objects",
            help(
                "Objects under DATA_DIR/objects (same measurement as mirrorbox_store_size_bytes).",
            ),
            Gauge::<i64>::default().tap(whole(store.objects)),
        );
        registry.register(
            "mirrorbox_store_measured_timestamp_seconds",
            help("Unix time when the store was last measured."),
            Gauge::<i64>::default().tap(store.measured),
        );
    }
    if let Some(certificates) = tls {
        super::tls::register(&mut registry, certificates, now);
    }
    let start = Gauge::<f64, AtomicU64>::default();
    start.set(m.start_time);
    registry.register(
        "mirrorbox_process_start_time_seconds",
        help("Unix time when the process started."),
        start,
    );
    let build = Whole::default();
    build
        .get_or_create(&vec![("version", env!("CARGO_PKG_VERSION").to_string())])
        .set(1);
    registry.register(
        "mirrorbox_build_info",
        help("Always 1; the version label says which mirrorbox runs."),
        build,
    );

    let mut out = String::with_capacity(8192);
    if let Err(e) = encode(&mut out, &registry) {
        // Writing into a String does not fail; should an encoder refuse, say so in the body.
        tracing::error!(error = %e, "cannot write the metrics");
    }
    out
}

/// A count as a gauge value (counts never come near `i64::MAX`).
fn whole(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Sets a fresh gauge in one expression.
trait Tap {
    fn tap(self, value: i64) -> Self;
}

impl Tap for Gauge<i64> {
    fn tap(self, value: i64) -> Self {
        self.set(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::refs::RunRecord;

    #[test]
    fn families_samples_and_label_escaping() {
        let m = Metrics::new([("a\"b", "/m")], std::path::PathBuf::from("/nonexistent"));
        m.count_request(200, 0).inc_by(7);
        let source = SourceState {
            id: "a\"b".into(),
            mount: "/m".into(),
            kind: "dir",
            last_run: Some(RunRecord {
                ok: true,
                duration_ms: 1500,
                last_success: Some(1),
                ..RunRecord::default()
            }),
            ..SourceState::default()
        };
        let text = render(&m, &[source], None, None);
        assert!(
            text.contains("# TYPE mirrorbox_http_requests counter\n"),
            "{text}"
        );
        assert!(
            text.contains("mirrorbox_http_requests_total{code=\"200\",mount=\"/m\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("mirrorbox_http_response_bytes_total{code=\"200\",mount=\"/m\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("mirrorbox_sync_last_duration_seconds{source=\"a\\\"b\"} 1.5\n"),
            "{text}"
        );
        assert!(
            text.contains("mirrorbox_sync_last_ok{source=\"a\\\"b\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("mirrorbox_store_objects"), "{text}");
        assert!(!text.contains(".."), "a doubled full stop: {text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
