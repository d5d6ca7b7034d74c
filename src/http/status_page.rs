//! `/.status` (HTML) and `/.status.json`: every source, its snapshot and its last run.

use http::Request;
use serde::Serialize;

use super::body::Body;
use super::listing::{escape, human_size, STYLE};
use super::respond::http_date;
use crate::app::{App, LiveStatus};
use crate::store::refs::RunRecord;
use crate::sync::unix_now;
use crate::view::SNAPSHOT_ID_CHARS;

const TEMPLATE: &str = include_str!("../../static/status.html");

#[derive(Serialize)]
struct Status {
    version: &'static str,
    now: i64,
    started: i64,
    sources: Vec<SourceStatus>,
    conflicts: Vec<String>,
}

#[derive(Serialize)]
struct SourceStatus {
    id: String,
    kind: &'static str,
    mount: String,
    current: Option<String>,
    snapshots: Vec<String>,
    #[serde(flatten)]
    live: LiveStatus,
    last_run: Option<RunRecord>,
}

fn collect(app: &App) -> Status {
    let sources = app
        .config
        .sources
        .iter()
        .map(|source| {
            let refs = app.store.read_refs(&source.id).unwrap_or_default();
            SourceStatus {
                id: source.id.clone(),
                kind: source.kind.name(),
                mount: if source.mount.is_empty() {
                    "/".into()
                } else {
                    source.mount.clone()
                },
                current: refs.current.map(|id| id.short(SNAPSHOT_ID_CHARS)),
                snapshots: refs
                    .snapshots
                    .iter()
                    .map(|id| id.short(SNAPSHOT_ID_CHARS))
                    .collect(),
                live: app.live_status(&source.id),
                last_run: app.store.read_run_record(&source.id),
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        now: unix_now(),
        started: app.started,
        sources,
        conflicts: app.view.load().conflicts.clone(),
    }
}

pub fn respond<B>(app: &App, req: &Request<B>, key: &str) -> http::Response<Body> {
    let status = collect(app);
    let now = status.now;
    if key == "/.status.json" {
        let mut json = serde_json::to_vec_pretty(&status).expect("status serializes");
        json.push(b'\n');
        return super::generated(
            req.method(),
            req.headers(),
            json.into(),
            "application/json",
            now,
            now,
        );
    }
    let mut rows = String::new();
    for s in &status.sources {
        let state = match (&s.live.running, &s.last_run) {
            (true, _) => "<span class=\"muted\">syncing…</span>".to_string(),
            (false, Some(run)) if run.ok && run.problems.is_empty() => {
                "<span class=\"ok\">ok</span>".to_string()
            }
            (false, Some(run)) if run.ok => format!(
                "<span class=\"ok\">ok</span>, <span class=\"bad\">with problems</span><br><small>{}</small>",
                run.problems
                    .iter()
                    .map(|p| escape(p))
                    .collect::<Vec<_>>()
                    .join("<br>")
            ),
            (false, Some(run)) => format!(
                "<span class=\"bad\">failed</span><br><small>{}</small>",
                escape(run.error.as_deref().unwrap_or(""))
            ),
            (false, None) => "<span class=\"muted\">never run</span>".to_string(),
        };
        let last = s.last_run.as_ref().map_or("—".to_string(), |r| {
            format!(
                "{} ({:.1} s)<br><small>{} files, {}: {} new ({}), {} reused; {} requests upstream, {} received</small>",
                http_date(r.started),
                r.duration_ms as f64 / 1000.0,
                r.files,
                human_size(r.bytes),
                r.files_stored,
                human_size(r.bytes_stored),
                r.files.saturating_sub(r.files_stored),
                r.upstream_requests,
                human_size(r.bytes_fetched)
            )
        });
        let mount = escape(s.mount.trim_end_matches('/'));
        rows.push_str(&format!(
            "<tr><td><b>{id}</b><br><small class=\"muted\">{kind}</small></td><td><a href=\"{mount}/\">{mount}/</a></td><td><code>{current}</code><br><small class=\"muted\">{count} retained</small></td><td>{state}</td><td>{last}</td><td>{next}</td></tr>\n",
            id = escape(&s.id),
            kind = s.kind,
            current = s.current.as_deref().unwrap_or("—"),
            count = s.snapshots.len(),
            next = s.live.next_run.map_or("on demand".to_string(), http_date),
        ));
    }
    let html = TEMPLATE
        .replace("{{style}}", STYLE)
        .replace("{{now}}", &http_date(now))
        .replace("{{version}}", status.version)
        .replace("{{rows}}", &rows);
    super::generated(
        req.method(),
        req.headers(),
        html.into(),
        "text/html; charset=utf-8",
        now,
        now,
    )
}
