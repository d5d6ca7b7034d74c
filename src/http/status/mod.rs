//! `/.status` (HTML) and `/.status.json`: every source with its snapshot, its last run, its
//! schedule and how clients use it (the sources.list line of an apt source, the URLs of a
//! Puavo repository), the store's size, and the HTTPS certificate (with ACME: what the engine
//! last did; keys documented in `tls`).
//!
//! The data is collected once into `Status` from what the server keeps in memory (the
//! [`StatusSource`](super::state::StatusSource), the view, the metrics); the JSON is that
//! struct, the HTML is rendered from it by `render` with askama templates, which escape
//! everything that comes from configuration, the store or the request.

mod render;
mod tls;

use std::net::IpAddr;

use http::header;
use http::{Request, Response};
use serde::Serialize;

use super::body::Body;
use super::metrics::{self, StoreUsage};
use super::path::encode_segment;
use super::redact;
use super::state::{LiveStatus, State};
use crate::store::refs::RunRecord;
pub use crate::sync::kind::ClientUse;
use crate::time::unix_now;
use crate::view::SNAPSHOT_ID_CHARS;

#[derive(Serialize)]
struct Status {
    version: &'static str,
    now: i64,
    started: i64,
    /// What `objects/` holds (cached; `null` until first measured).
    store: Option<StoreUsage>,
    sources: Vec<SourceStatus>,
    conflicts: Vec<String>,
    /// The HTTPS certificate (absent without HTTPS); see `tls` for the keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<tls::TlsStatus>,
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
    /// `syncing`, `ok`, `problems` (ok, with problems), `failed` or `never` (never run).
    state: &'static str,
    /// Where the current snapshot is served, as this request reached the server.
    url: String,
    /// Unix seconds when the current snapshot was made, and its age.
    current_created: Option<i64>,
    current_age_seconds: Option<i64>,
    /// The snapshot `mirrorbox pin` holds as current, if any.
    pinned: Option<String>,
    /// Snapshots retained, the current one included.
    retained: usize,
    /// Bytes only this source's snapshots hold: what removing the source would free
    /// (computed when snapshots change; `null` if not known).
    unique_bytes: Option<u64>,
    runs_since_start: u64,
    failures_since_start: u64,
    client: ClientUse,
    /// This client may not read the source's mount: its last run (file and byte counts,
    /// messages) and Puavo series names are left out; id, mount, state and snapshot ids stay.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    details_hidden: bool,
}

/// `http://host` or `https://host` as the request reached this server, for URLs clients can
/// copy. A Host that is not a plain host[:port] is not echoed back.
fn origin<B>(req: &Request<B>, tls: bool) -> String {
    let scheme = if tls || req.uri().scheme_str() == Some("https") {
        "https"
    } else {
        "http"
    };
    let host = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:[]".contains(&b))
        })
        .unwrap_or("<server>");
    format!("{scheme}://{host}")
}

/// `/a b/c` → `/a%20b/c/`; the root → `/`.
fn mount_href(mount: &str) -> String {
    let mut href = String::from("/");
    for segment in mount.split('/').filter(|s| !s.is_empty()) {
        href.push_str(&encode_segment(segment));
        href.push('/');
    }
    href
}

/// `trusted`: show messages as they are; otherwise filesystem paths in them are replaced by
/// `…` (see `redact`). Credentials in URLs are hidden for everyone. Sources whose mount `peer`
/// may not read, and conflicts at paths it may not read, are told without their content.
async fn collect<B>(
    state: &State,
    req: &Request<B>,
    tls: bool,
    trusted: bool,
    peer: IpAddr,
) -> Status {
    let now = unix_now();
    let origin = origin(req, tls);
    let authorization = req.headers().get(header::AUTHORIZATION);
    let known = state.status.sources();
    let mut reader = state.access().reader(peer, authorization);
    let mut hidden = Vec::with_capacity(known.len());
    for source in &known {
        hidden.push(!reader.may_read_all_of(&source.mount).await);
    }
    let view = state.view.load();
    let mut conflicts = Vec::with_capacity(view.conflicts.len());
    for path in &view.conflicts {
        if reader.may_read_all_of(path).await {
            conflicts.push(path.clone());
        }
    }
    let folders: &[String] = if trusted {
        &[]
    } else {
        state.status.private_folders()
    };
    let sources = known
        .into_iter()
        .zip(hidden)
        .map(|(source, hidden)| {
            let refs = &source.refs;
            let mount = if source.mount.is_empty() {
                "/".to_string()
            } else {
                source.mount.clone()
            };
            let base_url = format!("{origin}{}", mount_href(&source.mount));
            let mut last_run = source.last_run;
            if let Some(run) = &mut last_run {
                redact_run(run, folders, trusted);
            }
            let live = source.live;
            let state_name = match &last_run {
                _ if live.running => "syncing",
                Some(run) if run.ok && run.problems.is_empty() => "ok",
                Some(run) if run.ok => "problems",
                Some(_) => "failed",
                None => "never",
            };
            let (runs, failures) = state.metrics.sync_counters(&source.id);
            // Snapshot ids stay: what they hold is behind the same rule.
            let mut client = state.status.client_use(&source.id, &base_url, &view);
            let last_run = if hidden {
                // What the current snapshot holds is behind the same rule.
                client.meta.clear();
                None
            } else {
                last_run
            };
            SourceStatus {
                kind: source.kind,
                current: refs.current.map(|id| id.short(SNAPSHOT_ID_CHARS)),
                snapshots: refs
                    .snapshots
                    .iter()
                    .map(|id| id.short(SNAPSHOT_ID_CHARS))
                    .collect(),
                live,
                last_run,
                state: state_name,
                client,
                url: base_url,
                current_created: source.current_created,
                current_age_seconds: source.current_created.map(|t| (now - t).max(0)),
                pinned: refs.pinned.map(|id| id.short(SNAPSHOT_ID_CHARS)),
                retained: metrics::retained(refs),
                unique_bytes: source.unique_bytes,
                runs_since_start: runs,
                failures_since_start: failures,
                mount,
                details_hidden: hidden,
                id: source.id,
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        now,
        started: state.started,
        store: state.metrics.store.get().await,
        sources,
        conflicts,
        tls: state
            .certificates
            .as_ref()
            .map(|certificates| tls::collect(certificates, now, trusted, folders)),
    }
}

/// Every message of a run record with credentials in URLs hidden and, unless `trusted`,
/// filesystem paths (absolute, or starting with one of `folders`) too.
fn redact_run(run: &mut RunRecord, folders: &[String], trusted: bool) {
    let redact = |message: &mut String| {
        let clean = redact::credentials(message);
        *message = if trusted {
            clean
        } else {
            redact::paths(&clean, folders)
        };
    };
    if let Some(error) = &mut run.error {
        redact(error);
    }
    run.problems.iter_mut().for_each(redact);
}

/// `trusted`: the client may see full error messages (loopback, or let through by an
/// `[[access]]` rule that restricts the status pages).
pub async fn respond<B>(
    state: &State,
    req: &Request<B>,
    key: &str,
    tls: bool,
    trusted: bool,
    peer: IpAddr,
) -> Response<Body> {
    let status = collect(state, req, tls, trusted, peer).await;
    let now = status.now;
    let (bytes, content_type) = if key == "/.status.json" {
        let mut json = serde_json::to_vec_pretty(&status).expect("status serializes");
        json.push(b'\n');
        (json, "application/json")
    } else {
        (
            render::page(&status).into_bytes(),
            "text/html; charset=utf-8",
        )
    };
    super::generated(
        req.method(),
        req.headers(),
        bytes.into(),
        content_type,
        now,
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_hidden_from_everyone_paths_from_the_untrusted() {
        let record = RunRecord {
            error: Some(
                "GET https://alice:s3cret@h/x: cannot write d/objects/ab/cd: Permission denied"
                    .into(),
            ),
            problems: vec!["http://token@h/y for /srv/Private Files/x.iso: gone".into()],
            ..RunRecord::default()
        };
        let mut trusted = record.clone();
        redact_run(&mut trusted, &[], true);
        assert_eq!(
            trusted.error.as_deref(),
            Some("GET https://…@h/x: cannot write d/objects/ab/cd: Permission denied")
        );
        assert_eq!(
            trusted.problems,
            ["http://…@h/y for /srv/Private Files/x.iso: gone"]
        );
        let mut public = record;
        redact_run(&mut public, &["d".to_string()], false);
        assert_eq!(
            public.error.as_deref(),
            Some("GET https://…@h/x: cannot write …: Permission denied")
        );
        assert_eq!(public.problems, ["http://…@h/y for …: gone"]);
    }

    #[test]
    fn origin_from_host_or_authority() {
        let req = |uri: &str, host: Option<&str>| {
            let mut builder = Request::builder().uri(uri);
            if let Some(host) = host {
                builder = builder.header("host", host);
            }
            builder.body(()).unwrap()
        };
        assert_eq!(
            origin(&req("/.status", Some("mirror:8080")), false),
            "http://mirror:8080"
        );
        assert_eq!(
            origin(&req("/.status", Some("[::1]:8443")), true),
            "https://[::1]:8443"
        );
        assert_eq!(
            origin(&req("https://h2.example/.status", None), false),
            "https://h2.example"
        );
        assert_eq!(
            origin(&req("/.status", Some("a\"><script>")), false),
            "http://<server>"
        );
        assert_eq!(origin(&req("/.status", None), false), "http://<server>");
        assert_eq!(mount_href(""), "/");
        assert_eq!(mount_href("/a b/c"), "/a%20b/c/");
    }
}
