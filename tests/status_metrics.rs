//! `/.metrics` read by the real Prometheus text parser (PyPI `prometheus-client`), with
//! counters checked to move by exactly what was served and synced; and `/.status` rendered by
//! headless Chromium: every source and its state in the DOM, a failing source's error text,
//! the sources.list line an apt client should use, and a screenshot saved under
//! `<target>/test-output/`.
//!
//! Python is `$MIRRORBOX_PYTHON`, else the venv `tests/run.sh` makes (`target/pyenv`), else
//! `python3`; it needs `prometheus_client`. Chromium is `$MIRRORBOX_CHROMIUM`, else
//! `chromium` (Debian package `chromium`), `chromium-browser` or `google-chrome` from PATH.
//! Missing tools fail the tests: they never skip.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use common::{pattern, Server, Site};

/// Parses exposition text with `prometheus_client.parser` and prints it back as JSON.
const PARSE: &str = r#"
import json, sys
try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError as e:
    print(e, file=sys.stderr)
    sys.exit(3)
families = []
for family in text_string_to_metric_families(sys.stdin.read()):
    families.append({
        "name": family.name,
        "type": family.type,
        "help": family.documentation,
        "samples": [[s.name, s.labels, s.value] for s in family.samples],
    })
json.dump(families, sys.stdout)
"#;

/// One scrape, as the Prometheus parser read it.
struct Scrape {
    /// Family name → (type, help).
    families: BTreeMap<String, (String, String)>,
    /// (sample name, sorted `k=v` labels) → value.
    samples: BTreeMap<(String, String), f64>,
    /// The body's length, to check the byte counters of the scrape itself.
    len: usize,
}

impl Scrape {
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .get(&(name.to_string(), label_key(labels)))
            .copied()
    }

    /// A sample that must be there.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "no sample {name}{labels:?}; have: {:?}",
                self.samples
                    .keys()
                    .filter(|(n, _)| n == name)
                    .collect::<Vec<_>>()
            )
        })
    }
}

fn label_key(labels: &[(&str, &str)]) -> String {
    let mut pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

fn parse_metrics(text: &str) -> Scrape {
    let python = common::probe::python();
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(PARSE)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    match output.status.code() {
        Some(0) => {}
        Some(3) => panic!(
            "prometheus_client is not installed for {python}: {stderr}\n\
             install it with `target/pyenv/bin/pip install prometheus-client` (or set \
             MIRRORBOX_PYTHON to a Python that has it)"
        ),
        _ => panic!("the Prometheus parser refused the exposition: {stderr}\n{text}"),
    }
    let families: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();
    let mut scrape = Scrape {
        families: BTreeMap::new(),
        samples: BTreeMap::new(),
        len: text.len(),
    };
    for family in families {
        let name = family["name"].as_str().unwrap().to_string();
        scrape.families.insert(
            name,
            (
                family["type"].as_str().unwrap().to_string(),
                family["help"].as_str().unwrap().to_string(),
            ),
        );
        for sample in family["samples"].as_array().unwrap() {
            let labels: Vec<(&str, &str)> = sample[1]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect();
            let key = (sample[0].as_str().unwrap().to_string(), label_key(&labels));
            let previous = scrape
                .samples
                .insert(key.clone(), sample[2].as_f64().unwrap());
            assert!(previous.is_none(), "sample {key:?} appears twice");
        }
    }
    scrape
}

/// A GET (or `extra` curl arguments) → (status, body).
fn fetch(url: &str, extra: &[&str]) -> (u16, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body");
    let mut args = vec!["-o", body.to_str().unwrap(), "-w", "%{http_code}"];
    args.extend_from_slice(extra);
    args.push(url);
    let out = common::curl(&args);
    let code = String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0);
    (code, std::fs::read(&body).unwrap_or_default())
}

fn scrape(server: &Server) -> Scrape {
    let out = common::curl(&["-i", &server.url("/.metrics")]);
    let text = String::from_utf8(out.stdout).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    parse_metrics(body)
}

/// Polls `/.metrics` until `done` holds (the server finishes closing connections and
/// measuring the store on its own time); fails after 30 s.
fn scrape_until(server: &Server, what: &str, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let scrape = scrape(server);
        if done(&scrape) {
            return scrape;
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Objects and bytes under `data/objects`, walked here independently of the server.
fn objects_on_disk(dir: &Path) -> (f64, f64) {
    let (mut count, mut bytes) = (0u64, 0u64);
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                count += 1;
                bytes += entry.metadata().unwrap().len();
            }
        }
    }
    (count as f64, bytes as f64)
}

const REQUESTS: &str = "mirrorbox_http_requests_total";
const BYTES: &str = "mirrorbox_http_response_bytes_total";

#[test]
fn metrics_parse_and_count_what_was_served_and_synced() {
    let site = Site::with(
        false,
        "[[source]]\nid = \"broken\"\nkind = \"dir\"\nmount = \"/broken\"\npath = \"/nonexistent/mirrorbox-test\"\n",
    );
    let data = pattern(10_000, 1);
    std::fs::write(site.public().join("a.bin"), &data).unwrap();
    let server = site.start_without_sync();
    let sync = site.cli(&["sync"]);
    assert!(!sync.status.success(), "`broken` must fail: {sync:?}");

    let first = scrape(&server);
    // Every family has HELP and the right TYPE; counters are read as counters.
    for (name, kind) in [
        ("mirrorbox_http_requests", "counter"),
        ("mirrorbox_http_response_bytes", "counter"),
        ("mirrorbox_http_connections_open", "gauge"),
        ("mirrorbox_http_connections", "counter"),
        ("mirrorbox_sync_runs", "counter"),
        ("mirrorbox_sync_failures", "counter"),
        ("mirrorbox_sync_fetched_bytes", "counter"),
        ("mirrorbox_sync_stored_bytes", "counter"),
        ("mirrorbox_sync_last_duration_seconds", "gauge"),
        ("mirrorbox_sync_since_last_success_seconds", "gauge"),
        ("mirrorbox_sync_last_success_timestamp_seconds", "gauge"),
        ("mirrorbox_snapshots", "gauge"),
        ("mirrorbox_store_size_bytes", "gauge"),
        ("mirrorbox_process_start_time_seconds", "gauge"),
    ] {
        let (found, help) = first
            .families
            .get(name)
            .unwrap_or_else(|| panic!("no family {name}: {:?}", first.families.keys()));
        assert_eq!(found, kind, "{name}");
        assert!(!help.is_empty(), "{name} has no HELP");
    }
    for family in first.families.keys() {
        assert!(family.starts_with("mirrorbox_"), "{family}");
    }
    // The syncs: one run each, `broken` failed and never succeeded.
    let runs = |s: &Scrape, id| s.value("mirrorbox_sync_runs_total", &[("source", id)]);
    let failures = |s: &Scrape, id| s.value("mirrorbox_sync_failures_total", &[("source", id)]);
    assert_eq!(runs(&first, "site"), 1.0);
    assert_eq!(failures(&first, "site"), 0.0);
    assert_eq!(runs(&first, "broken"), 1.0);
    assert_eq!(failures(&first, "broken"), 1.0);
    let stored = |s: &Scrape| s.value("mirrorbox_sync_stored_bytes_total", &[("source", "site")]);
    assert_eq!(stored(&first), data.len() as f64);
    assert_eq!(
        first.value("mirrorbox_snapshots", &[("source", "site")]),
        1.0
    );
    assert_eq!(
        first.value("mirrorbox_snapshots", &[("source", "broken")]),
        0.0
    );
    let since = "mirrorbox_sync_since_last_success_seconds";
    assert!(first.value(since, &[("source", "site")]) >= 0.0);
    assert_eq!(first.get(since, &[("source", "broken")]), None);
    let (_, status_json) = fetch(&server.url("/.status.json"), &[]);
    let status: Value = serde_json::from_slice(&status_json).unwrap();
    let last_success = status["sources"][0]["last_run"]["last_success"]
        .as_f64()
        .unwrap();
    assert_eq!(
        first.value(
            "mirrorbox_sync_last_success_timestamp_seconds",
            &[("source", "site")]
        ),
        last_success
    );
    assert!(first
        .get(
            "mirrorbox_sync_last_duration_seconds",
            &[("source", "broken")]
        )
        .is_some());
    let start = first.value("mirrorbox_process_start_time_seconds", &[]);
    assert!(start > 1.5e9 && start <= last_success + 1.0, "{start}");

    // Serve: 200, 206, 404 under the mount, a HEAD, a 404 under no mount, a status page.
    let (code, body) = fetch(&server.url("/files/a.bin"), &[]);
    assert_eq!((code, body.len()), (200, data.len()));
    let (code, body) = fetch(&server.url("/files/a.bin"), &["-r", "100-199"]);
    assert_eq!((code, body.as_slice()), (206, &data[100..200]));
    let (code, missing) = fetch(&server.url("/files/nothing.bin"), &[]);
    assert_eq!(code, 404);
    assert!(!missing.is_empty());
    let (code, _) = fetch(&server.url("/files/a.bin"), &["-I"]);
    assert_eq!(code, 200);
    let (code, elsewhere) = fetch(&server.url("/elsewhere/x"), &[]);
    assert_eq!(code, 404);
    let (code, page) = fetch(&server.url("/.status"), &[]);
    assert_eq!(code, 200);
    // A pinned snapshot URL counts under its source's mount.
    let snapshot = status["sources"][0]["current"].as_str().unwrap();
    let (code, pinned) = fetch(
        &server.url(&format!("/.snapshots/site/{snapshot}/a.bin")),
        &[],
    );
    assert_eq!((code, pinned.len()), (200, data.len()));

    let second = scrape(&server);
    let mut expected: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut add = |name: &str, code: &str, mount: &str, by: usize| {
        *expected
            .entry((
                name.to_string(),
                label_key(&[("code", code), ("mount", mount)]),
            ))
            .or_default() += by as f64;
    };
    add(REQUESTS, "200", "/files", 3); // GET, HEAD, the snapshot URL
    add(BYTES, "200", "/files", 2 * data.len()); // HEAD sends no body
    add(REQUESTS, "206", "/files", 1);
    add(BYTES, "206", "/files", 100);
    add(REQUESTS, "404", "/files", 1);
    add(BYTES, "404", "/files", missing.len());
    add(REQUESTS, "404", "other", 1);
    add(BYTES, "404", "other", elsewhere.len());
    // The first scrape, /.status.json and /.status were answered after the first scrape.
    add(REQUESTS, "200", "status", 3);
    add(
        BYTES,
        "200",
        "status",
        first.len + page.len() + status_json.len(),
    );
    for ((name, labels), value) in &second.samples {
        if name != REQUESTS && name != BYTES {
            continue;
        }
        let before = first
            .samples
            .get(&(name.clone(), labels.clone()))
            .copied()
            .unwrap_or(0.0);
        let by = expected
            .remove(&(name.clone(), labels.clone()))
            .unwrap_or(0.0);
        assert_eq!(value - before, by, "{name}{{{labels}}}: {before} → {value}");
    }
    assert!(expected.is_empty(), "series never reported: {expected:?}");

    // A new file and a sync through the running server: the counters of `site` move.
    std::fs::write(site.public().join("b.bin"), pattern(5_000, 2)).unwrap();
    let sync = site.cli(&["sync", "site"]);
    assert!(sync.status.success(), "{sync:?}");
    let third = scrape(&server);
    assert_eq!(runs(&third, "site"), 2.0);
    assert_eq!(failures(&third, "site"), 0.0);
    assert_eq!(runs(&third, "broken"), 1.0);
    assert_eq!(stored(&third) - stored(&first), 5_000.0);
    assert_eq!(
        third.value("mirrorbox_snapshots", &[("source", "site")]),
        2.0
    );
    assert_eq!(
        third.value("mirrorbox_sync_fetched_bytes_total", &[("source", "site")]),
        0.0,
        "a local directory fetches nothing"
    );

    // The store's size: the server's cached walk catches up with what is on disk.
    let objects = site.data().join("objects");
    let on_disk = objects_on_disk(&objects);
    assert!(on_disk.1 >= 15_000.0, "{on_disk:?}");
    scrape_until(&server, &format!("the store at {on_disk:?}"), |s| {
        s.get("mirrorbox_store_objects", &[]) == Some(on_disk.0)
            && s.get("mirrorbox_store_size_bytes", &[]) == Some(on_disk.1)
    });

    // Open connections: three idle clients plus the scraper, then the scraper alone.
    let open = "mirrorbox_http_connections_open";
    scrape_until(&server, "1 open connection", |s| {
        s.get(open, &[]) == Some(1.0)
    });
    let accepted = scrape(&server).value("mirrorbox_http_connections_total", &[]);
    let idle: Vec<_> = (0..3)
        .map(|_| std::net::TcpStream::connect(server.http).unwrap())
        .collect();
    let with_idle = scrape_until(&server, "4 open connections", |s| {
        s.get(open, &[]) == Some(4.0)
    });
    assert!(with_idle.value("mirrorbox_http_connections_total", &[]) >= accepted + 4.0);
    drop(idle);
    scrape_until(&server, "the idle connections closed", |s| {
        s.get(open, &[]) == Some(1.0)
    });
}

// ---- the status page in a real browser ------------------------------------------------------

/// `$MIRRORBOX_CHROMIUM`, else the first Chromium found in PATH.
fn chromium() -> String {
    if let Some(path) = std::env::var("MIRRORBOX_CHROMIUM")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return path;
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {name}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return name.to_string();
        }
    }
    panic!("no Chromium found: install it (Debian: apt-get install chromium) or set MIRRORBOX_CHROMIUM");
}

/// Runs headless Chromium with `args` and `url`; returns stdout. Killed after 120 s.
fn headless(args: &[&str], url: &str) -> Vec<u8> {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = std::io::Read::read_to_end(&mut { stdout }, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("chromium {args:?} did not finish");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader.join().unwrap();
    let mut stderr = String::new();
    let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr);
    assert!(status.success(), "chromium {args:?} failed: {stderr}");
    out
}

/// What a PNG says its size is; panics if it is not a PNG.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(
        bytes.len() > 24 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
        "not a PNG"
    );
    assert_eq!(&bytes[12..16], b"IHDR");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    (width, height)
}

fn output_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is <target>/tmp; the pictures go beside it, to be looked at.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .join("test-output");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Text as it appears in a serialized DOM.
fn dom_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The `<section>` of one source in the DOM.
fn section<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("data-source=\"{id}\""))
        .unwrap_or_else(|| panic!("source {id} is not on the page: {dom}"));
    let end = dom[start..]
        .find("</section>")
        .map_or(dom.len(), |e| start + e);
    &dom[start..end]
}

#[test]
fn status_page_renders_in_chromium() {
    // An apt upstream on a port nothing listens on: the sync fails fast (no retries).
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_port = closed.local_addr().unwrap().port();
    drop(closed);
    let gpg = common::gpg::Gpg::new("status", "ed25519");
    let images = tempfile::tempdir().unwrap();
    let extra = format!(
        "[[source]]\nid = \"broken\"\nkind = \"dir\"\nmount = \"/broken\"\npath = \"/nonexistent/missing<i>dir</i>&amp;\"\n\n\
         [[source]]\nid = \"deb\"\nkind = \"apt\"\nmount = \"/debian\"\n\
         repository = \"deb http://127.0.0.1:{dead_port}/debian bookworm main contrib\"\n\
         keys = [\"{key}\"]\nretries = 0\n\n\
         [[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/puavo\"\nimage_dir = \"{images}\"\n\
         urlbase = \"https://images.example.org/puavo\"\n",
        key = gpg.public.display(),
        images = images.path().display(),
    );
    let site = Site::with(false, &extra);
    std::fs::write(site.public().join("hello.txt"), b"hello\n").unwrap();
    let server = site.start_without_sync();
    let sync = site.cli(&["sync"]);
    assert!(!sync.status.success(), "two sources must fail: {sync:?}");

    let status: Value =
        serde_json::from_slice(&fetch(&server.url("/.status.json"), &[]).1).unwrap();
    let source = |id: &str| {
        status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {status}"))
            .clone()
    };
    // The JSON: the old fields, and the new ones.
    let site_json = source("site");
    assert!(site_json["current"].is_string(), "{site_json}");
    assert_eq!(site_json["last_run"]["ok"], true);
    assert_eq!(site_json["state"], "ok");
    assert_eq!(site_json["retained"], 1);
    assert!(site_json["current_age_seconds"].as_i64().unwrap() >= 0);
    let origin = format!("http://{}", server.http);
    assert_eq!(site_json["url"], format!("{origin}/files/"));
    assert_eq!(source("broken")["state"], "failed");
    assert_eq!(source("broken")["failures_since_start"], 1);
    let deb = source("deb");
    assert_eq!(deb["state"], "failed");
    let apt_line = format!(
        "deb [arch=amd64 signed-by={}] {origin}/debian bookworm main contrib",
        gpg.public.display()
    );
    assert_eq!(deb["client"]["sources_list"], serde_json::json!([apt_line]));
    assert_eq!(source("images")["state"], "ok");
    assert_eq!(
        source("images")["client"]["cksums"],
        format!("{origin}/puavo/CKSUMS")
    );
    assert!(status["store"]["bytes"].as_u64().is_some(), "{status}");

    let url = server.url("/.status");
    let dom = String::from_utf8(headless(&["--dump-dom"], &url)).unwrap();
    assert!(dom.contains("mirrorbox status"), "{dom}");
    for (id, state) in [
        ("site", "ok"),
        ("broken", "failed"),
        ("deb", "failed"),
        ("images", "ok"),
    ] {
        let part = section(&dom, id);
        assert!(
            part.contains(&format!("data-state=\"{state}\"")),
            "{id}: {part}"
        );
        assert!(
            part.contains(&format!("#source-{id}\">{id}</a>")),
            "{id}: {part}"
        );
    }
    assert!(section(&dom, "site").contains(site_json["current"].as_str().unwrap()));
    // The errors, as text: the `<i>` in the missing path did not become markup.
    for id in ["broken", "deb"] {
        let error = source(id)["last_run"]["error"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            section(&dom, id).contains(&dom_text(&error)),
            "{id}'s error {error:?} is not on the page: {}",
            section(&dom, id)
        );
    }
    assert!(source("broken")["last_run"]["error"]
        .as_str()
        .unwrap()
        .contains("missing<i>dir</i>"));
    assert!(!dom.contains("<i>dir</i>"), "error text became markup");
    assert!(
        section(&dom, "deb").contains(&dom_text(&apt_line)),
        "{}",
        section(&dom, "deb")
    );
    let images_part = section(&dom, "images");
    assert!(
        images_part.contains(&format!("{origin}/puavo/CKSUMS")),
        "{images_part}"
    );
    // Below the root: the red check says laptops cannot use it.
    assert!(
        images_part.contains("class=\"check fail\" data-check=\"mounted_at_root\"")
            && images_part.contains("Puavo laptops"),
        "{images_part}"
    );
    assert!(dom.contains("object"), "the store's size is missing");

    let out = output_dir();
    for (name, size, (width, height)) in [
        ("status.png", "1280,900", (1280, 900)),
        ("status-narrow.png", "400,1200", (400, 1200)),
    ] {
        let file = out.join(name);
        let _ = std::fs::remove_file(&file);
        headless(
            &[
                &format!("--screenshot={}", file.display()),
                &format!("--window-size={size}"),
            ],
            &url,
        );
        let png = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(png_size(&png), (width, height), "{name}");
        // A blank page of that size compresses to a few KB; text and colours make it larger.
        assert!(png.len() > 20_000, "{name} is only {} bytes", png.len());
        eprintln!("screenshot: {}", file.display());
    }
}
