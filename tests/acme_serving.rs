//! A server with `[server.acme]` whose ACME directory nobody serves: it starts, serves plain
//! HTTP, fails HTTPS handshakes cleanly (no certificate yet, no hang), answers the HTTP-01
//! route before sources and `[[access]]` rules, and shows the engine's failure on `/.status`,
//! `/.status.json` and `/.metrics`. (Issuance against a real ACME server is `tests/acme.rs`.)

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{curl, status_code, Server};

/// A port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A site whose root mount is a `dir` source, with every client denied
/// `/.well-known/` by an `[[access]]` rule, and a file where the challenge route answers:
/// only the route can make a challenge path answer anything but 403.
fn acme_site(dir: &Path) -> std::path::PathBuf {
    let public = dir.join("public");
    std::fs::create_dir_all(public.join(".well-known/acme-challenge")).unwrap();
    std::fs::write(
        public.join(".well-known/acme-challenge/x"),
        "from the source",
    )
    .unwrap();
    std::fs::write(public.join("hello.txt"), "hello over http\n").unwrap();
    let config = format!(
        r#"data_dir = "{data}"
[server]
http = ["127.0.0.1:0"]
https = ["127.0.0.1:0"]
access_log = false

[server.acme]
domains = ["mirror.test"]
directory = "https://127.0.0.1:{port}/dir"

[store]
fsync = false

[[source]]
id = "site"
kind = "dir"
mount = "/"
path = "{public}"

[[access]]
path = "/.well-known"
deny = ["0.0.0.0/0", "::/0"]
"#,
        data = dir.join("data").display(),
        public = public.display(),
        port = closed_port(),
    );
    let path = dir.join("mirrorbox.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn json_at(server: &Server, path: &str) -> serde_json::Value {
    let out = curl(&["-f", &server.url(path)]);
    assert!(out.status.success(), "GET {path}: {out:?}");
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn an_acme_server_without_a_certificate_serves_http_and_refuses_https_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let config = acme_site(dir.path());
    let server = Server::start(&config, true);
    let https = server.https.expect("an https listener");

    assert_eq!(
        common::body_at(&server, "/hello.txt"),
        b"hello over http\n".to_vec()
    );
    // The handshake fails with an alert (curl: SSL connect error), it does not hang.
    let started = Instant::now();
    let out = Command::new("curl")
        .args(["-s", "-k", "--max-time", "20", "-o", "/dev/null"])
        .arg(format!("https://127.0.0.1:{}/hello.txt", https.port()))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(35), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(15));
    let out = Command::new("openssl")
        .args(["s_client", "-connect"])
        .arg(format!("127.0.0.1:{}", https.port()))
        .args(["-servername", "mirror.test", "-alpn", "acme-tls/1"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "no challenge waits: {out:?}");
    // The server is still there.
    assert_eq!(common::status_at(&server, "/hello.txt"), "200");
    assert!(server.log_contains("HTTPS waits for the first certificate"));

    // The challenge route answers before the source (which has a file there) and before the
    // rule (which denies everyone): unknown token 404, writes 405.
    let challenge = server.url("/.well-known/acme-challenge/x");
    assert_eq!(status_code(&challenge), "404");
    let put = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "PUT",
        &challenge,
    ]);
    assert_eq!(String::from_utf8_lossy(&put.stdout), "405");
    assert_eq!(
        status_code(&server.url("/.well-known/acme-challenge/not%20a%20token")),
        "404"
    );
    // Other paths under the rule stay denied.
    assert_eq!(status_code(&server.url("/.well-known/other")), "403");

    let status = json_at(&server, "/.status.json");
    let tls = &status["tls"];
    assert_eq!(tls["source"], "acme", "{status}");
    assert_eq!(tls["waiting"], true, "{status}");
    assert_eq!(tls["acme"]["domains"], serde_json::json!(["mirror.test"]));
    let html = String::from_utf8(common::body_at(&server, "/.status")).unwrap();
    assert!(html.contains("waiting for the first certificate"), "{html}");

    // The ACME families are there from the start, and Prometheus' own parser reads them.
    let metrics = String::from_utf8(common::body_at(&server, "/.metrics")).unwrap();
    assert!(
        metrics.contains("mirrorbox_acme_orders_total{result=\"issued\"} 0\n"),
        "{metrics}"
    );
    assert!(!metrics.contains("mirrorbox_tls_certificate_expiry_seconds "));
    assert_prometheus_reads(&metrics, "mirrorbox_acme_orders");
}

/// Prometheus' Python parser accepts `text` and finds the family `name` in it.
fn assert_prometheus_reads(text: &str, name: &str) {
    use std::io::Write;
    let python = common::probe::python();
    let script = "import sys\nfrom prometheus_client.parser import text_string_to_metric_families as p\nnames = [f.name for f in p(sys.stdin.read())]\nsys.exit(0 if sys.argv[1] in names else 4)";
    let mut child = Command::new(&python)
        .args(["-c", script, name])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{python} (with prometheus_client, see tests/run.sh) did not read {name}: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The engine's failure to reach the directory shows as the last error and a failed order.
#[test]
fn the_engine_failure_shows_on_status_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let config = acme_site(dir.path());
    let server = Server::start(&config, false);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        let status = json_at(&server, "/.status.json");
        if !status["tls"]["acme"]["last_error"].is_null() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "no ACME error within 60 s: {status}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let acme = &status["tls"]["acme"];
    let message = acme["last_error"]["message"].as_str().unwrap();
    assert!(!message.is_empty(), "{status}");
    assert!(acme["last_error"]["at"].as_i64().unwrap() > 0, "{status}");
    assert!(
        acme["failed_since_start"].as_u64().unwrap() >= 1,
        "{status}"
    );
    assert!(
        !acme["next_attempt"].is_null(),
        "a retry is planned: {status}"
    );
    assert_eq!(status["tls"]["waiting"], true);

    let metrics = String::from_utf8(common::body_at(&server, "/.metrics")).unwrap();
    let failed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mirrorbox_acme_orders_total{result=\"failed\"} "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(failed.parse::<u64>().unwrap() >= 1, "{metrics}");
    assert!(metrics.contains("mirrorbox_acme_orders_total{result=\"issued\"} 0\n"));
    assert!(metrics.contains("mirrorbox_acme_next_attempt_timestamp_seconds "));
    // No certificate is served, so there is no expiry sample.
    assert!(!metrics.contains("mirrorbox_tls_certificate_expiry_seconds "));

    let html = String::from_utf8(common::body_at(&server, "/.status")).unwrap();
    assert!(html.contains("data-acme-error>"), "{html}");
}

/// `[server.tls]` files: the expiry gauge and the status part read the certificate served.
#[test]
fn file_certificates_show_their_expiry() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join(".well-known/acme-challenge")).unwrap();
    std::fs::write(root.path().join(".well-known/acme-challenge/x"), "a file").unwrap();
    let extra = format!(
        "[[source]]\nid = \"root\"\nkind = \"dir\"\nmount = \"/\"\npath = \"{}\"\n",
        root.path().display()
    );
    let site = common::Site::with(true, &extra);
    let server = site.start();
    // Without ACME the challenge path is an ordinary one.
    assert_eq!(
        common::body_at(&server, "/.well-known/acme-challenge/x"),
        b"a file".to_vec()
    );
    let metrics = String::from_utf8(common::body_at(&server, "/.metrics")).unwrap();
    let left: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mirrorbox_tls_certificate_expiry_seconds "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    // rcgen's default validity ends in 4096; the certificate is far from expiring.
    assert!(left > 365.0 * 86_400.0, "{left}");
    assert!(
        !metrics.contains("mirrorbox_acme_orders_total"),
        "{metrics}"
    );
    let status = json_at(&server, "/.status.json");
    let tls = &status["tls"];
    assert_eq!(tls["source"], "files", "{status}");
    assert_eq!(tls["names"], serde_json::json!(["localhost"]), "{status}");
    assert!(tls["acme"].is_null(), "{status}");
    let https = server.https_url("/.status.json");
    let out = curl(&["-k", "-f", "-o", "/dev/null", &https]);
    assert!(out.status.success(), "{out:?}");
}

/// `check-config` prints the ACME setup and warns of ports the CA does not connect to.
#[test]
fn check_config_describes_acme_and_warns_of_ports() {
    let dir = tempfile::tempdir().unwrap();
    let config = acme_site(dir.path());
    let out = Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("acme domains: mirror.test\n"), "{text}");
    assert!(
        text.contains("acme challenges: tls-alpn-01, http-01\n"),
        "{text}"
    );
    assert!(
        text.contains("WARNING: ")
            && text.contains("challenge http-01: no `http` listener on port 80"),
        "{text}"
    );
    assert!(
        text.contains("challenge tls-alpn-01: no `https` listener on port 443"),
        "{text}"
    );
    // Warnings only: not counted without --strict.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
