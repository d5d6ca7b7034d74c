//! `/.status` (HTML) and `/.status.json`: every source with its snapshot, its last run, its
//! schedule and how clients use it (the sources.list line of an apt source, the URLs of a
//! Puavo repository), and the store's size.
//!
//! The data is collected once into [`Status`]; the JSON is that struct, the HTML is rendered
//! from it with the templates in `static/` (`status.html`, one `status-source.html` per
//! source). Everything that comes from configuration, the store or the request is escaped.

use std::net::IpAddr;

use http::header;
use http::{Request, Response};
use serde::Serialize;

use super::body::Body;
use super::listing::{escape, human_size, STYLE};
use super::metrics::{self, StoreUsage};
use super::path::encode_segment;
use super::redact;
use crate::app::{App, LiveStatus};
use crate::config::SourceKind;
use crate::store::refs::RunRecord;
use crate::sync::puavo::PuavoMode;
use crate::time::http_date;
use crate::time::unix_now;
use crate::view::{Node, SNAPSHOTS_PREFIX, SNAPSHOT_ID_CHARS};

const PAGE: &str = include_str!("../../static/status.html");
const SOURCE: &str = include_str!("../../static/status-source.html");
const STATUS_STYLE: &str = include_str!("../../static/status.css");

#[derive(Serialize)]
struct Status {
    version: &'static str,
    now: i64,
    started: i64,
    /// What `objects/` holds (cached; `null` until first measured).
    store: Option<StoreUsage>,
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
    runs_since_start: u64,
    failures_since_start: u64,
    client: ClientUse,
    /// This client may not read the source's mount: its last run (file and byte counts,
    /// messages) and Puavo series names are left out; id, mount, state and snapshot ids stay.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    details_hidden: bool,
}

/// How clients use a source.
#[derive(Serialize, Default, Debug, PartialEq)]
struct ClientUse {
    base_url: String,
    /// apt: the lines for `/etc/apt/sources.list`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    sources_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    architectures: Vec<String>,
    /// Puavo: `meta/<series>.json` of the current snapshot, `CKSUMS`, and the rdiffs folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    meta: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cksums: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rdiffs: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    notes: Vec<String>,
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

fn client_use(kind: &SourceKind, base_url: &str, at_root: bool, series: Vec<String>) -> ClientUse {
    let mut usage = ClientUse {
        base_url: base_url.to_string(),
        ..ClientUse::default()
    };
    match kind {
        SourceKind::Apt(apt) => {
            let repo = &apt.repository;
            let tail = if repo.is_flat() {
                repo.suite.clone()
            } else {
                format!("{} {}", repo.suite, repo.components.join(" "))
            };
            if repo.binary {
                usage.sources_list.push(format!("deb {base_url} {tail}"));
            }
            if repo.source {
                usage
                    .sources_list
                    .push(format!("deb-src {base_url} {tail}"));
            }
            usage.architectures = apt.architectures.clone();
            usage.notes.push(
                "The Release files are the upstream's, signed by its key: clients trust the same key as for the upstream (signed-by)."
                    .into(),
            );
        }
        SourceKind::Puavo(puavo) => {
            usage.meta = series
                .iter()
                .map(|name| format!("{base_url}meta/{}", encode_segment(name)))
                .collect();
            usage.cksums = Some(format!("{base_url}CKSUMS"));
            usage.rdiffs = Some(format!("{base_url}rdiffs/"));
            if at_root {
                usage.notes.push(format!(
                    "Mounted at /: Puavo laptops find /rdiffs/ here; point them at {base_url}."
                ));
            } else {
                usage.notes.push(
                    "Puavo laptops fetch /rdiffs/<name> from the server root: they can use this repository only if it is mounted at / (mount = \"/\"). Bootservers follow the meta files' urls and work at any mount."
                        .into(),
                );
            }
            let rewrites = match &puavo.mode {
                PuavoMode::Build { .. } => true,
                PuavoMode::Mirror { rewrite_urls, .. } => *rewrite_urls,
            };
            match (&puavo.urlbase, rewrites) {
                (Some(urlbase), true) => usage.notes.push(format!(
                    "The meta files' urls point at {urlbase}/ (the source's urlbase)."
                )),
                (_, false) => usage
                    .notes
                    .push("The meta files' urls point at the upstream, as fetched.".into()),
                (None, true) => {}
            }
        }
        // dir, files and whatever comes next: a plain tree under its mount.
        _ => {}
    }
    usage
}

/// `trusted`: show messages as they are; otherwise filesystem paths in them are replaced by
/// `…` (see `redact`). Credentials in URLs are hidden for everyone. Sources whose mount `peer`
/// may not read, and conflicts at paths it may not read, are told without their content.
async fn collect<B>(app: &App, req: &Request<B>, tls: bool, trusted: bool, peer: IpAddr) -> Status {
    let now = unix_now();
    let origin = origin(req, tls);
    let authorization = req.headers().get(header::AUTHORIZATION);
    let mut reader = app.access.reader(peer, authorization);
    let mut hidden = Vec::with_capacity(app.config.sources.len());
    for source in &app.config.sources {
        hidden.push(!reader.may_read_all_of(&source.mount).await);
    }
    let all_conflicts = app.view.load().conflicts.clone();
    let mut conflicts = Vec::with_capacity(all_conflicts.len());
    for path in all_conflicts {
        if reader.may_read_all_of(&path).await {
            conflicts.push(path);
        }
    }
    let folders = if trusted {
        Vec::new()
    } else {
        redact::folders(&app.config)
    };
    let view = app.view.load();
    let sources = app
        .config
        .sources
        .iter()
        .zip(hidden)
        .map(|(source, hidden)| {
            let refs = app.store.read_refs(&source.id).unwrap_or_default();
            let mount = if source.mount.is_empty() {
                "/".to_string()
            } else {
                source.mount.clone()
            };
            let base_url = format!("{origin}{}", mount_href(&source.mount));
            let current_created = refs
                .current
                .and_then(|id| app.manifest(&id).ok())
                .map(|m| m.created);
            let series = match &source.kind {
                SourceKind::Puavo(_) => {
                    let meta = format!("{}/meta", source.mount.trim_end_matches('/'));
                    match view.get(&meta) {
                        Some(Node::Dir(dir)) => dir
                            .children
                            .iter()
                            .filter(|c| !c.is_dir && c.name.ends_with(".json"))
                            .map(|c| c.name.to_string())
                            .collect(),
                        _ => Vec::new(),
                    }
                }
                _ => Vec::new(),
            };
            let live = app.live_status(&source.id);
            let mut last_run = app.run_record(&source.id);
            if let Some(run) = &mut last_run {
                redact_run(run, &folders, trusted);
            }
            let state = match &last_run {
                _ if live.running => "syncing",
                Some(run) if run.ok && run.problems.is_empty() => "ok",
                Some(run) if run.ok => "problems",
                Some(_) => "failed",
                None => "never",
            };
            let (runs, failures) = app.metrics.sync_counters(&source.id);
            // Snapshot ids stay: what they hold is behind the same rule.
            let (series, last_run) = if hidden {
                (Vec::new(), None)
            } else {
                (series, last_run)
            };
            SourceStatus {
                id: source.id.clone(),
                kind: source.kind.name(),
                current: refs.current.map(|id| id.short(SNAPSHOT_ID_CHARS)),
                snapshots: refs
                    .snapshots
                    .iter()
                    .map(|id| id.short(SNAPSHOT_ID_CHARS))
                    .collect(),
                live,
                last_run,
                state,
                client: client_use(&source.kind, &base_url, source.mount.is_empty(), series),
                url: base_url,
                current_created,
                current_age_seconds: current_created.map(|t| (now - t).max(0)),
                pinned: refs.pinned.map(|id| id.short(SNAPSHOT_ID_CHARS)),
                retained: metrics::retained(&refs),
                runs_since_start: runs,
                failures_since_start: failures,
                mount,
                details_hidden: hidden,
            }
        })
        .collect();
    Status {
        version: env!("CARGO_PKG_VERSION"),
        now,
        started: app.started,
        store: app.metrics.store.get().await,
        sources,
        conflicts,
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
    app: &App,
    req: &Request<B>,
    key: &str,
    tls: bool,
    trusted: bool,
    peer: IpAddr,
) -> Response<Body> {
    let status = collect(app, req, tls, trusted, peer).await;
    let now = status.now;
    let (bytes, content_type) = if key == "/.status.json" {
        let mut json = serde_json::to_vec_pretty(&status).expect("status serializes");
        json.push(b'\n');
        (json, "application/json")
    } else {
        (render(&status).into_bytes(), "text/html; charset=utf-8")
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

/// Replaces each `{{name}}` of `template` once, in one pass: a value that itself contains
/// `{{…}}` is not expanded again. Unknown names are left as they are.
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out =
        String::with_capacity(template.len() + values.iter().map(|(_, v)| v.len()).sum::<usize>());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}").and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (end, *v))
        }) {
            Some((end, value)) => {
                out.push_str(value);
                rest = &after[end + 2..];
            }
            None => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// `45 s`, `12 min`, `3 h`, `5 d`.
fn span(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..=89 => format!("{s} s"),
        90..=5399 => format!("{} min", (s + 30) / 60),
        5400..=129_599 => format!("{} h", (s + 1800) / 3600),
        _ => format!("{} d", (s + 43_200) / 86_400),
    }
}

/// A point in time as "3 h ago" / "in 5 min", with the exact date as a tooltip.
fn when(unix: i64, now: i64) -> String {
    let text = if unix <= now {
        format!("{} ago", span(now - unix))
    } else {
        format!("in {}", span(unix - now))
    };
    format!("<time title=\"{}\">{text}</time>", http_date(unix))
}

fn duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        let s = ms / 1000;
        if s < 3600 {
            format!("{} min {} s", s / 60, s % 60)
        } else {
            format!("{} h {} min", s / 3600, (s % 3600) / 60)
        }
    }
}

fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn state_label(state: &str) -> &'static str {
    match state {
        "syncing" => "syncing…",
        "ok" => "ok",
        "problems" => "ok, with problems",
        "failed" => "failed",
        _ => "never synced",
    }
}

fn link(url: &str) -> String {
    let url = escape(url);
    format!("<a href=\"{url}\">{url}</a>")
}

fn render(status: &Status) -> String {
    let now = status.now;
    let cards: String = status.sources.iter().map(|s| card(s, now)).collect();
    let count = |state: &str| status.sources.iter().filter(|s| s.state == state).count();
    let mut tally = Vec::new();
    for (state, word) in [
        ("ok", "ok"),
        ("problems", "with problems"),
        ("failed", "failed"),
        ("syncing", "syncing"),
        ("never", "never synced"),
    ] {
        let n = count(state);
        if n > 0 {
            tally.push(format!("<span class=\"{state}\">{n} {word}</span>"));
        }
    }
    let sources = format!(
        "{}{}{}",
        status.sources.len(),
        if tally.is_empty() { "" } else { ": " },
        tally.join(", ")
    );
    let store = match &status.store {
        Some(store) => format!(
            "{} in {} <small class=\"muted\">(measured {})</small>",
            human_size(store.bytes),
            plural(store.objects, "object", "objects"),
            when(store.measured, now)
        ),
        None => "<span class=\"muted\">not measured yet</span>".to_string(),
    };
    let conflicts = if status.conflicts.is_empty() {
        String::new()
    } else {
        let items: String = status
            .conflicts
            .iter()
            .map(|c| format!("<li><code>{}</code></li>", escape(c)))
            .collect();
        format!(
            "<section class=\"conflicts\"><h2>Conflicts</h2><p>Two sources publish different content at these paths; the first in the configuration wins:</p><ul>{items}</ul></section>"
        )
    };
    fill(
        PAGE,
        &[
            ("style", STYLE),
            ("status_style", STATUS_STYLE),
            ("sources_summary", &sources),
            ("store", &store),
            ("started", &when(status.started, now)),
            ("conflicts", &conflicts),
            ("sources", &cards),
            ("now", &http_date(now)),
            ("version", status.version),
        ],
    )
}

fn card(s: &SourceStatus, now: i64) -> String {
    let id = escape(&s.id);
    let snapshot_href = |short: &str| {
        format!(
            "{SNAPSHOTS_PREFIX}/{}/{}/",
            encode_segment(&s.id),
            escape(short)
        )
    };
    let snapshot = match &s.current {
        Some(current) => {
            let age = s
                .current_created
                .map(|t| format!(" · made {}", when(t, now)))
                .unwrap_or_default();
            let pinned = if s.pinned.as_deref() == Some(current.as_str()) {
                " <span class=\"badge problems\">pinned</span>"
            } else {
                ""
            };
            format!(
                "<a href=\"{}\"><code>{}</code></a>{pinned}{age}",
                snapshot_href(current),
                escape(current)
            )
        }
        None => "<span class=\"muted\">none yet</span>".to_string(),
    };
    let mut retained_ids: Vec<&String> = s.snapshots.iter().rev().collect();
    if let Some(current) = &s.current {
        if !retained_ids.contains(&current) {
            retained_ids.insert(0, current);
        }
    }
    let retained = if s.retained == 0 {
        "0".to_string()
    } else {
        let links: Vec<String> = retained_ids
            .iter()
            .map(|short| {
                format!(
                    "<a href=\"{}\"><code>{}</code></a>",
                    snapshot_href(short),
                    escape(short)
                )
            })
            .collect();
        format!(
            "{} <small>({}, newest first)</small>",
            s.retained,
            links.join(" ")
        )
    };
    let (last_run, message, files, upstream, took) = if s.details_hidden {
        let hidden = "<span class=\"muted\">shown only to clients that may read this mount</span>";
        (
            hidden.to_string(),
            String::new(),
            hidden.to_string(),
            hidden.to_string(),
            "—".to_string(),
        )
    } else {
        match &s.last_run {
            None => (
                "<span class=\"muted\">never</span>".to_string(),
                String::new(),
                "—".to_string(),
                "—".to_string(),
                "—".to_string(),
            ),
            Some(run) => {
                let result = match (run.ok, run.problems.is_empty()) {
                    (true, true) => "<span class=\"ok\">ok</span>",
                    (true, false) => "<span class=\"problems\">ok, with problems</span>",
                    (false, _) => "<span class=\"failed\">failed</span>",
                };
                let mut last = format!("{result} · {}", when(run.started, now));
                if !run.ok {
                    match run.last_success {
                        Some(t) => last
                            .push_str(&format!(" <small>(last success {})</small>", when(t, now))),
                        None => last.push_str(" <small>(never succeeded)</small>"),
                    }
                }
                let message = if !run.ok {
                    format!(
                        "<pre class=\"message failed\">{}</pre>",
                        escape(run.error.as_deref().unwrap_or("(no error text)"))
                    )
                } else if !run.problems.is_empty() {
                    let items: String = run
                        .problems
                        .iter()
                        .map(|p| format!("<li>{}</li>", escape(p)))
                        .collect();
                    format!("<ul class=\"message problems\">{items}</ul>")
                } else {
                    String::new()
                };
                let files = if run.ok {
                    format!(
                        "{}, {} · <b>{} new</b> ({}) · {} reused",
                        plural(run.files, "file", "files"),
                        human_size(run.bytes),
                        run.files_stored,
                        human_size(run.bytes_stored),
                        run.files.saturating_sub(run.files_stored)
                    )
                } else {
                    "— <small class=\"muted\">(the run failed; the previous snapshot stays)</small>"
                        .to_string()
                };
                let upstream = if run.upstream_requests == 0 && run.bytes_fetched == 0 {
                    "—".to_string()
                } else {
                    format!(
                        "{}, {} received",
                        plural(run.upstream_requests, "request", "requests"),
                        human_size(run.bytes_fetched)
                    )
                };
                (last, message, files, upstream, duration(run.duration_ms))
            }
        }
    };
    let next = if s.live.running {
        "<span class=\"syncing\">syncing now</span>".to_string()
    } else {
        s.live
            .next_run
            .map_or("<span class=\"muted\">on demand</span>".to_string(), |t| {
                when(t, now)
            })
    };
    let since_start = format!(
        "{}, {} failed",
        plural(s.runs_since_start, "run", "runs"),
        s.failures_since_start
    );
    fill(
        SOURCE,
        &[
            ("id", &id),
            ("kind", s.kind),
            ("state", s.state),
            ("state_label", state_label(s.state)),
            ("mount_href", &escape(&s.url)),
            ("mount", &escape(&s.mount)),
            ("message", &message),
            ("snapshot", &snapshot),
            ("retained", &retained),
            ("last_run", &last_run),
            ("duration", &took),
            ("files", &files),
            ("upstream", &upstream),
            ("next_run", &next),
            ("since_start", &since_start),
            ("use", &use_html(&s.client)),
        ],
    )
}

fn use_html(client: &ClientUse) -> String {
    let mut out = String::new();
    if !client.sources_list.is_empty() {
        out.push_str("<p>In <code>/etc/apt/sources.list</code>:</p><pre class=\"copy\">");
        out.push_str(&escape(&client.sources_list.join("\n")));
        out.push_str("</pre>");
        if !client.architectures.is_empty() {
            out.push_str(&format!(
                "<p>Architectures carried: {}.</p>",
                escape(&client.architectures.join(", "))
            ));
        }
    } else if client.cksums.is_some() {
        out.push_str("<dl class=\"facts\">");
        let meta = if client.meta.is_empty() {
            "<span class=\"muted\">no series published yet</span>".to_string()
        } else {
            client
                .meta
                .iter()
                .map(|m| link(m))
                .collect::<Vec<_>>()
                .join("<br>")
        };
        out.push_str(&format!("<dt>Series meta</dt><dd>{meta}</dd>"));
        if let Some(cksums) = &client.cksums {
            out.push_str(&format!("<dt>Checksums</dt><dd>{}</dd>", link(cksums)));
        }
        if let Some(rdiffs) = &client.rdiffs {
            out.push_str(&format!("<dt>Deltas</dt><dd>{}</dd>", link(rdiffs)));
        }
        out.push_str("</dl>");
    } else {
        out.push_str(&format!("<p>Base URL: {}</p>", link(&client.base_url)));
    }
    for note in &client.notes {
        out.push_str(&format!("<p class=\"note\">{}</p>", escape(note)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn kind(source: &str) -> SourceKind {
        let text = format!(
            "data_dir = \"/nonexistent\"\n[[source]]\nid = \"s\"\nmount = \"/m\"\n{source}\n"
        );
        let config = Config::parse(&text, Path::new("test.toml")).unwrap();
        config.sources[0].kind.clone()
    }

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
    fn apt_sources_list_lines() {
        let apt = |line: &str| {
            client_use(
                &kind(&format!(
                    "kind = \"apt\"\nrepository = \"{line}\"\nkeys = [\"/k.gpg\"]"
                )),
                "https://mirror.example:8443/debian/pve/",
                false,
                Vec::new(),
            )
            .sources_list
        };
        assert_eq!(
            apt("deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest"),
            ["deb https://mirror.example:8443/debian/pve/ bookworm pve-no-subscription pvetest"]
        );
        assert_eq!(
            apt("deb-src http://deb.debian.org/debian bookworm main"),
            ["deb-src https://mirror.example:8443/debian/pve/ bookworm main"]
        );
        assert_eq!(
            apt("deb+deb-src http://deb.debian.org/debian bookworm main contrib"),
            [
                "deb https://mirror.example:8443/debian/pve/ bookworm main contrib",
                "deb-src https://mirror.example:8443/debian/pve/ bookworm main contrib"
            ]
        );
        assert_eq!(
            apt("deb http://example.org/repo ./"),
            ["deb https://mirror.example:8443/debian/pve/ ./"]
        );
        assert_eq!(
            apt("deb http://example.org/repo amd64/"),
            ["deb https://mirror.example:8443/debian/pve/ amd64/"]
        );
    }

    #[test]
    fn puavo_urls_and_the_root_note() {
        let puavo = kind(
            "kind = \"puavo\"\nimage_dir = \"/images\"\nurlbase = \"https://images.example.org/puavo\"",
        );
        let at_mount = client_use(
            &puavo,
            "http://host/m/",
            false,
            vec!["puavo-os-bookworm-amd64.json".into()],
        );
        assert_eq!(
            at_mount.meta,
            ["http://host/m/meta/puavo-os-bookworm-amd64.json"]
        );
        assert_eq!(at_mount.cksums.as_deref(), Some("http://host/m/CKSUMS"));
        assert_eq!(at_mount.rdiffs.as_deref(), Some("http://host/m/rdiffs/"));
        assert!(
            at_mount.notes[0].contains("mounted at /"),
            "{:?}",
            at_mount.notes
        );
        assert!(at_mount.notes[1].contains("https://images.example.org/puavo/"));
        let at_root = client_use(&puavo, "http://host/", true, Vec::new());
        assert!(
            at_root.notes[0].starts_with("Mounted at /"),
            "{:?}",
            at_root.notes
        );
        let dir = client_use(
            &kind("kind = \"dir\"\npath = \"/srv\""),
            "http://host/m/",
            false,
            Vec::new(),
        );
        assert_eq!(
            dir,
            ClientUse {
                base_url: "http://host/m/".into(),
                ..ClientUse::default()
            }
        );
        let files = client_use(
            &kind("kind = \"files\"\nurl = \"http://download.example.org/iso/\""),
            "http://host/m/",
            false,
            Vec::new(),
        );
        assert_eq!(files, dir);
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

    #[test]
    fn templates_fill_in_one_pass() {
        assert_eq!(
            fill("<{{a}}|{{b}}|{{c}}|{{", &[("a", "{{b}}"), ("b", "x")]),
            "<{{b}}|x|{{c}}|{{"
        );
    }

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(5), "5 s");
        assert_eq!(span(600), "10 min");
        assert_eq!(span(3 * 3600 + 100), "3 h");
        assert_eq!(span(3 * 86_400), "3 d");
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(1234), "1.2 s");
        assert_eq!(duration(185_000), "3 min 5 s");
    }

    fn sample(state: &'static str, run: Option<RunRecord>) -> SourceStatus {
        SourceStatus {
            id: "s<1>".into(),
            kind: "dir",
            mount: "/m\"x".into(),
            current: Some("0123456789abcdef".into()),
            snapshots: vec!["0123456789abcdef".into()],
            live: LiveStatus::default(),
            last_run: run,
            state,
            url: "http://h/m%22x/".into(),
            current_created: Some(1_000),
            current_age_seconds: Some(0),
            pinned: None,
            retained: 1,
            runs_since_start: 1,
            failures_since_start: 1,
            client: ClientUse {
                base_url: "http://h/m%22x/".into(),
                ..ClientUse::default()
            },
            details_hidden: false,
        }
    }

    #[test]
    fn everything_is_escaped() {
        let run = RunRecord {
            started: 1_000,
            error: Some("cannot read </pre><script>alert(1)</script>".into()),
            ..RunRecord::default()
        };
        let status = Status {
            version: "0",
            now: 2_000,
            started: 0,
            store: None,
            sources: vec![sample("failed", Some(run))],
            conflicts: vec!["/a<b>".into()],
        };
        let html = render(&status);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("data-source=\"s&lt;1&gt;\""));
        assert!(html.contains("/m&quot;x"));
        assert!(html.contains("data-state=\"failed\""));
        assert!(!html.contains("{{"), "a placeholder was left: {html}");
    }
}
