//! The HTML of `/.status`: [`Status`] turned into the view the askama templates
//! `static/status.html` and `static/status-source.html` (one per source) show. The
//! templates escape every value; only the style sheets and [`When`] (made here from numbers)
//! are inserted as they are.

use std::fmt;

use askama::Template;

use super::super::listing::{human_size, STYLE};
use super::super::path::encode_segment;
use super::tls::TlsStatus;
use super::{SourceStatus, Status};
use crate::time::http_date;
use crate::view::SNAPSHOTS_PREFIX;

const STATUS_STYLE: &str = include_str!("../../../static/status.css");

#[derive(Template)]
#[template(path = "status.html", config = "static/askama.toml")]
struct Page<'a> {
    style: &'static str,
    status_style: &'static str,
    /// (state, sources in it, how to say it), only states some source is in.
    tally: Vec<(&'static str, usize, &'static str)>,
    store: Option<Store>,
    started: When,
    conflicts: &'a [String],
    cards: Vec<Card<'a>>,
    now: String,
    version: &'static str,
    tls: Option<Tls<'a>>,
}

/// The HTTPS lines (`status-tls.html`).
struct Tls<'a> {
    source: &'static str,
    /// `[server.tls] files` or `ACME`.
    origin: &'static str,
    waiting: bool,
    names: String,
    expires: Option<When>,
    acme: Option<Acme<'a>>,
}

struct Acme<'a> {
    domains: String,
    next: Option<When>,
    failures: u32,
    /// The message and when it happened.
    error: Option<(&'a str, When)>,
}

struct Store {
    size: String,
    objects: String,
    measured: When,
}

/// One source's section.
struct Card<'a> {
    s: &'a SourceStatus,
    state_label: &'static str,
    snapshot: Option<Snapshot<'a>>,
    /// (link, short id) of every retained snapshot, newest first, the current one included.
    retained: Vec<(String, &'a str)>,
    /// The last run, unless there is none or its details are hidden.
    run: Option<Run<'a>>,
    next: Option<When>,
    since_start: String,
    /// The bytes only this source holds, e.g. `1.2 GiB`.
    unique: Option<String>,
}

struct Snapshot<'a> {
    href: String,
    short: &'a str,
    pinned: bool,
    made: Option<When>,
}

struct Run<'a> {
    ok: bool,
    error: &'a str,
    problems: &'a [String],
    started: When,
    last_success: Option<When>,
    duration: String,
    files: String,
    bytes: String,
    stored: u64,
    stored_bytes: String,
    reused: u64,
    upstream: Option<String>,
}

/// A point in time as "3 h ago" / "in 5 min", with the exact date as a tooltip. Written as
/// markup: both parts are made here from numbers and fixed words, never from input.
struct When {
    unix: i64,
    now: i64,
}

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (unix, now) = (self.unix, self.now);
        let date = http_date(unix);
        if unix <= now {
            write!(f, "<time title=\"{date}\">{} ago</time>", span(now - unix))
        } else {
            write!(f, "<time title=\"{date}\">in {}</time>", span(unix - now))
        }
    }
}

fn when(unix: i64, now: i64) -> When {
    When { unix, now }
}

/// The whole page. Rendering into a string fails only if a `Display` fails; ours do not, and
/// the page would then say so rather than the server stop.
pub(super) fn page(status: &Status) -> String {
    let now = status.now;
    let count = |state: &str| status.sources.iter().filter(|s| s.state == state).count();
    let tally = [
        ("ok", "ok"),
        ("problems", "with problems"),
        ("failed", "failed"),
        ("syncing", "syncing"),
        ("never", "never synced"),
    ]
    .into_iter()
    .map(|(state, word)| (state, count(state), word))
    .filter(|(_, n, _)| *n > 0)
    .collect();
    let page = Page {
        style: STYLE,
        status_style: STATUS_STYLE,
        tally,
        store: status.store.map(|store| Store {
            size: human_size(store.bytes),
            objects: plural(store.objects, "object", "objects"),
            measured: when(store.measured, now),
        }),
        started: when(status.started, now),
        conflicts: &status.conflicts,
        cards: status.sources.iter().map(|s| card(s, now)).collect(),
        now: http_date(now),
        version: status.version,
        tls: status.tls.as_ref().map(|t| tls(t, now)),
    };
    page.render()
        .unwrap_or_else(|e| format!("cannot render the status page: {e}"))
}

fn tls(t: &TlsStatus, now: i64) -> Tls<'_> {
    Tls {
        source: t.source,
        origin: if t.acme.is_some() {
            "ACME"
        } else {
            "[server.tls] files"
        },
        waiting: t.waiting,
        names: t.names.join(", "),
        expires: t.not_after.map(|at| when(at, now)),
        acme: t.acme.as_ref().map(|a| Acme {
            domains: a.domains.join(", "),
            next: a.next_attempt.map(|at| when(at, now)),
            failures: a.failures_in_a_row,
            error: a
                .last_error
                .as_ref()
                .map(|e| (e.message.as_str(), when(e.at, now))),
        }),
    }
}

fn card(s: &SourceStatus, now: i64) -> Card<'_> {
    let snapshot_href =
        |short: &str| format!("{SNAPSHOTS_PREFIX}/{}/{short}/", encode_segment(&s.id));
    let snapshot = s.current.as_deref().map(|current| Snapshot {
        href: snapshot_href(current),
        short: current,
        pinned: s.pinned.as_deref() == Some(current),
        made: s.current_created.map(|t| when(t, now)),
    });
    let mut retained: Vec<&String> = s.snapshots.iter().rev().collect();
    if let Some(current) = &s.current {
        if !retained.contains(&current) {
            retained.insert(0, current);
        }
    }
    let run = match &s.last_run {
        Some(run) if !s.details_hidden => Some(Run {
            ok: run.ok,
            error: run.error.as_deref().unwrap_or("(no error text)"),
            problems: &run.problems,
            started: when(run.started, now),
            last_success: run.last_success.map(|t| when(t, now)),
            duration: duration(run.duration_ms),
            files: plural(run.counts.files, "file", "files"),
            bytes: human_size(run.counts.bytes),
            stored: run.counts.files_stored,
            stored_bytes: human_size(run.counts.bytes_stored),
            reused: run.counts.files.saturating_sub(run.counts.files_stored),
            upstream: (run.counts.upstream_requests != 0 || run.counts.bytes_fetched != 0).then(
                || {
                    format!(
                        "{}, {} received",
                        plural(run.counts.upstream_requests, "request", "requests"),
                        human_size(run.counts.bytes_fetched)
                    )
                },
            ),
        }),
        _ => None,
    };
    Card {
        s,
        state_label: state_label(s.state),
        snapshot,
        retained: retained
            .into_iter()
            .map(|short| (snapshot_href(short), short.as_str()))
            .collect(),
        run,
        next: s.live.next_run.map(|t| when(t, now)),
        unique: s.unique_bytes.map(human_size),
        since_start: format!(
            "{}, {} failed",
            plural(s.runs_since_start, "run", "runs"),
            s.failures_since_start
        ),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::state::LiveStatus;
    use crate::http::status::ClientUse;
    use crate::store::refs::RunRecord;

    #[test]
    fn spans_read_naturally() {
        assert_eq!(span(5), "5 s");
        assert_eq!(span(600), "10 min");
        assert_eq!(span(3 * 3600 + 100), "3 h");
        assert_eq!(span(3 * 86_400), "3 d");
        assert_eq!(duration(12), "12 ms");
        assert_eq!(duration(1234), "1.2 s");
        assert_eq!(duration(185_000), "3 min 5 s");
        assert_eq!(
            when(1_000, 11_800).to_string(),
            "<time title=\"Thu, 01 Jan 1970 00:16:40 GMT\">3 h ago</time>"
        );
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
            unique_bytes: Some(3 * 1024 * 1024),
            runs_since_start: 1,
            failures_since_start: 1,
            client: ClientUse {
                base_url: "http://h/m%22x/".into(),
                checks: vec![crate::sync::kind::ClientCheck {
                    check: "mounted_at_root",
                    pass: false,
                    acknowledged_by: None,
                    warns: true,
                    text: "key `mount`: \"/m<b>x\" is not /".into(),
                }],
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
            tls: None,
        };
        let html = page(&status);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(
            html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"),
            "{html}"
        );
        assert!(html.contains("data-source=\"s&lt;1&gt;\""));
        assert!(html.contains("/m&quot;x"));
        assert!(html.contains("data-state=\"failed\""));
        assert!(html.contains("<dt>Unique</dt><dd>3.0 MiB"), "{html}");
        assert!(
            html.contains("<li class=\"check fail\" data-check=\"mounted_at_root\">key `mount`: &quot;/m&lt;b&gt;x&quot; is not /</li>"),
            "{html}"
        );
        assert!(!html.contains("{{"), "a placeholder was left: {html}");
    }

    #[test]
    fn the_tls_part_says_waiting_or_shows_the_acme_error_escaped() {
        use super::super::tls::{AcmeError, AcmeStatus};
        let acme = |error: Option<AcmeError>| AcmeStatus {
            domains: vec!["mirror.example".into()],
            next_attempt: Some(2_600),
            last_error: error,
            failures_in_a_row: 1,
            issued_since_start: 0,
            failed_since_start: 1,
        };
        let status = |tls: TlsStatus| Status {
            version: "0",
            now: 2_000,
            started: 0,
            store: None,
            sources: Vec::new(),
            conflicts: Vec::new(),
            tls: Some(tls),
        };
        let waiting = page(&status(TlsStatus {
            source: "acme",
            names: Vec::new(),
            not_before: None,
            not_after: None,
            expires_in_seconds: None,
            waiting: true,
            acme: Some(acme(Some(AcmeError {
                at: 1_940,
                message: "urn:ietf:params:acme:error:connection: <b>refused</b>".into(),
            }))),
        }));
        assert!(
            waiting.contains("waiting for the first certificate"),
            "{waiting}"
        );
        assert!(waiting.contains("next attempt <time"), "{waiting}");
        assert!(
            waiting.contains("<span class=\"failed\" data-acme-error><time title=\"Thu, 01 Jan 1970 00:32:20 GMT\">60 s ago</time>: urn:ietf:params:acme:error:connection: &lt;b&gt;refused&lt;/b&gt;</span>"),
            "{waiting}"
        );
        let served = page(&status(TlsStatus {
            source: "files",
            names: vec!["a.example".into(), "b.example".into()],
            not_before: Some(0),
            not_after: Some(2_000 + 86_400 * 30),
            expires_in_seconds: Some(86_400 * 30),
            waiting: false,
            acme: None,
        }));
        assert!(
            served.contains(
                "<dt>HTTPS</dt><dd data-tls=\"files\">a.example, b.example · expires <time"
            ),
            "{served}"
        );
        assert!(served.contains("in 30 d</time>"), "{served}");
        assert!(!served.contains("ACME"), "{served}");
        assert!(!served.contains("{{"), "a placeholder was left: {served}");
    }
}
