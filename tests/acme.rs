//! Certificates from a real ACME server: Let's Encrypt's `pebble` (RFC 8555) with its DNS
//! pointing `mirror.test` at the mirrorbox under test. First issuance by HTTP-01 and by
//! TLS-ALPN-01, reuse of the stored certificate across a restart, renewal while clients
//! download over HTTPS, and a CA that refuses the challenge. The clients (curl, openssl) trust
//! only pebble's root. Skipped with a message when pebble is not installed (failed under CI).

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use common::pebble::{
    self, dirs_under, files_under, mode, sample, strings_containing, Options, Pebble, Served,
};
use common::{Server, Site};

const DOMAIN: &str = "mirror.test";
/// Renew when less than this share of the lifetime is left: pebble's certificates live 5 years
/// from their issuance, so this is about 16 s after notBefore.
const RENEW_AT_ONCE: f64 = 0.9999999;
/// Where nothing listens: pebble's validation cannot connect, and its problem detail names
/// this address.
const NOWHERE: &str = "127.0.0.2";

/// What a test needs started.
#[derive(Default)]
struct Setup {
    /// `challenges = [...]`; the default (both) when empty.
    challenges: &'static [&'static str],
    renewal_window_ratio: Option<f64>,
    /// A second domain, pointed at [`NOWHERE`] before mirrorbox starts.
    refused_domain: Option<&'static str>,
    /// A several-MB file for long downloads.
    big_file: bool,
    pebble: Options,
}

/// pebble, its DNS and a mirrorbox configured for ACME against it. When the test fails, both
/// logs are printed.
struct Rig {
    pebble: Pebble,
    site: Site,
    server: Option<Server>,
    /// Logs of earlier runs of mirrorbox (before a restart).
    earlier_logs: String,
    https: u16,
    small: Vec<u8>,
    big: Vec<u8>,
}

impl Rig {
    fn start(setup: Setup) -> Rig {
        let mut attempts = Vec::new();
        // Ports are picked free and released before pebble and mirrorbox bind them; another
        // process may take one meanwhile, so a start that found its port taken is retried.
        for _ in 0..5 {
            let http = pebble::free_port();
            let https = pebble::free_port();
            if http == https {
                continue;
            }
            let pebble = match Pebble::start(http, https, setup.pebble) {
                Ok(pebble) => pebble,
                Err(log) => {
                    attempts.push(log);
                    continue;
                }
            };
            let site = Site::new();
            let small = common::pattern(3000, 1);
            let big = if setup.big_file {
                common::pattern(8 << 20, 2)
            } else {
                Vec::new()
            };
            std::fs::write(site.public().join("x"), &small).unwrap();
            if setup.big_file {
                std::fs::write(site.public().join("big"), &big).unwrap();
            }
            site.edit_config(
                "http = [\"127.0.0.1:0\"]\naccess_log = false",
                &format!(
                    "http = [\"127.0.0.1:{http}\"]\nhttps = [\"127.0.0.1:{https}\"]\naccess_log = true"
                ),
            );
            let domains = match setup.refused_domain {
                Some(other) => format!("\"{DOMAIN}\", \"{other}\""),
                None => format!("\"{DOMAIN}\""),
            };
            let mut acme = format!(
                "\n[server.acme]\ndomains = [{domains}]\ndirectory = \"{}\"\nca_file = \"{}\"\n",
                pebble.directory,
                pebble.ca_file().display()
            );
            if !setup.challenges.is_empty() {
                let list: Vec<String> = setup
                    .challenges
                    .iter()
                    .map(|c| format!("\"{c}\""))
                    .collect();
                acme.push_str(&format!("challenges = [{}]\n", list.join(", ")));
            }
            if let Some(ratio) = setup.renewal_window_ratio {
                acme.push_str(&format!("renewal_window_ratio = {ratio}\n"));
            }
            let mut config = std::fs::read_to_string(&site.config).unwrap();
            config.push_str(&acme);
            std::fs::write(&site.config, config).unwrap();
            if let Some(other) = setup.refused_domain {
                pebble.point(other, NOWHERE);
            }
            match pebble::start_mirrorbox(&site.config) {
                Ok(server) => {
                    return Rig {
                        pebble,
                        site,
                        server: Some(server),
                        earlier_logs: String::new(),
                        https,
                        small,
                        big,
                    }
                }
                Err(log) if log.contains("in use") => attempts.push(log),
                Err(log) => panic!(
                    "mirrorbox did not start:\n{log}\n{}\nconfig:\n{}",
                    pebble.logs(),
                    std::fs::read_to_string(&site.config).unwrap()
                ),
            }
        }
        panic!("could not start pebble and mirrorbox in 5 attempts:\n{attempts:#?}");
    }

    fn server(&self) -> &Server {
        self.server.as_ref().expect("mirrorbox is running")
    }

    /// Stops mirrorbox with `signal` (TERM, or KILL for a crash) and starts it again on the
    /// same configuration.
    fn restart(&mut self, signal: &str) {
        let mut server = self.server.take().expect("mirrorbox is running");
        server.signal(signal);
        let stopped = Pebble::wait_for(Duration::from_secs(30), || {
            matches!(server.child.try_wait(), Ok(Some(_)))
        });
        self.earlier_logs.push_str(&server.log_text());
        self.earlier_logs
            .push_str(&format!("\n--- SIG{signal}, restart ---\n"));
        assert!(stopped, "mirrorbox did not stop within 30 s of SIG{signal}");
        drop(server);
        match pebble::start_mirrorbox(&self.site.config) {
            Ok(server) => self.server = Some(server),
            Err(log) => panic!("mirrorbox did not start again:\n{log}"),
        }
    }

    fn https_url(&self, path: &str) -> String {
        format!("https://{DOMAIN}:{}{path}", self.https)
    }

    /// curl over HTTPS to `mirror.test` (resolved to 127.0.0.1), trusting only pebble's root.
    fn curl_https(&self, extra: &[&str], path: &str) -> Output {
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "120", "--cacert"])
            .arg(self.pebble.root())
            .args(["--resolve", &format!("{DOMAIN}:{}:127.0.0.1", self.https)])
            .args(extra)
            .arg(self.https_url(path))
            .output()
            .expect("curl is installed")
    }

    /// Waits (up to 60 s) until HTTPS serves `/files/x` with a certificate pebble issued.
    fn wait_for_certificate(&self) -> Served {
        let mut last = None;
        let served = Pebble::wait_for(Duration::from_secs(60), || {
            let out = self.curl_https(&[], "/files/x");
            let ok = out.status.success() && out.stdout == self.small;
            last = Some(out);
            ok
        });
        assert!(
            served,
            "no certificate from pebble within 60 s; last curl: {last:?}"
        );
        self.served().unwrap_or_else(|e| panic!("{e}"))
    }

    /// The certificate HTTPS serves for `mirror.test`; `Err` unless the chain it sends
    /// verifies to pebble's root and names the domain.
    fn served(&self) -> Result<Served, String> {
        pebble::served(self.https, DOMAIN, &self.pebble.root())
    }

    fn status_json(&self) -> serde_json::Value {
        let body = common::body_at(self.server(), "/.status.json");
        serde_json::from_slice(&body).expect("/.status.json is JSON")
    }

    fn metrics(&self) -> String {
        String::from_utf8_lossy(&common::body_at(self.server(), "/.metrics")).into_owned()
    }

    fn log_text(&self) -> String {
        format!(
            "{}{}",
            self.earlier_logs,
            self.server
                .as_ref()
                .map(Server::log_text)
                .unwrap_or_default()
        )
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "{}--- mirrorbox ---\n{}\n--- config ---\n{}",
                self.pebble.logs(),
                self.log_text(),
                std::fs::read_to_string(&self.site.config).unwrap_or_default()
            );
        }
    }
}

/// The access-log lines for paths under `/.well-known/acme-challenge/`.
fn challenge_requests(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains("/.well-known/acme-challenge/"))
        .collect()
}

/// `DATA_DIR/acme` is private (700, and nothing under it open to others) and every file in it
/// holding a key (PEM "PRIVATE KEY", a JSON web key's private part "d", or named so) is 600;
/// there are at least two: the account's and the certificate's.
fn assert_private_keys(data: &Path) {
    let acme = data.join("acme");
    assert_eq!(mode(&acme), 0o700, "{} mode", acme.display());
    for dir in dirs_under(&acme) {
        assert_eq!(mode(&dir) & 0o077, 0, "{} is open to others", dir.display());
    }
    let mut keys = 0;
    for file in files_under(&acme) {
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        let name = file.file_name().unwrap().to_string_lossy().to_lowercase();
        let holds_key = text.contains("PRIVATE KEY")
            || text.contains("\"d\"")
            || name.contains("key")
            || name.contains("account");
        if holds_key {
            keys += 1;
            assert_eq!(mode(&file), 0o600, "{} holds a key", file.display());
        }
    }
    assert!(keys >= 2, "{keys} key files in {}", acme.display());
}

#[test]
fn issues_by_http01() {
    if !pebble::available() {
        return;
    }
    let rig = Rig::start(Setup {
        challenges: &["http-01"],
        ..Setup::default()
    });
    let served = rig.wait_for_certificate();
    assert_eq!(served.names, vec![DOMAIN.to_string()]);
    assert_eq!(
        rig.pebble.issued_serials(),
        vec![served.serial.clone()],
        "the served certificate is the one pebble issued"
    );
    // The check can fail: not against another root, not for another name.
    assert!(pebble::served(rig.https, DOMAIN, &rig.pebble.ca_file()).is_err());
    assert!(pebble::served(rig.https, "other.test", &rig.pebble.root()).is_err());
    // Pebble fetched the token from the HTTP listener.
    let log = rig.log_text();
    assert!(
        !challenge_requests(&log).is_empty(),
        "no HTTP-01 request in the access log"
    );
    assert_private_keys(&rig.site.data());
}

#[test]
fn issues_by_tls_alpn01() {
    if !pebble::available() {
        return;
    }
    let rig = Rig::start(Setup {
        challenges: &["tls-alpn-01"],
        ..Setup::default()
    });
    let served = rig.wait_for_certificate();
    assert_eq!(served.names, vec![DOMAIN.to_string()]);
    assert_eq!(rig.pebble.issued_serials(), vec![served.serial.clone()]);
    let log = rig.log_text();
    assert_eq!(
        challenge_requests(&log),
        Vec::<&str>::new(),
        "HTTP-01 was used although only tls-alpn-01 is configured"
    );
    assert_private_keys(&rig.site.data());
}

#[test]
fn restart_reuses_the_stored_certificate() {
    if !pebble::available() {
        return;
    }
    let mut rig = Rig::start(Setup::default());
    let before = rig.wait_for_certificate();
    let orders = rig.pebble.orders();
    assert_eq!(orders, 1, "one order for the first certificate");
    rig.restart("TERM");
    // The first handshake after the restart already gets the stored certificate.
    let after = rig
        .served()
        .unwrap_or_else(|e| panic!("after the restart: {e}"));
    assert_eq!(after, before, "another certificate after the restart");
    let out = rig.curl_https(&[], "/files/x");
    assert!(out.status.success() && out.stdout == rig.small, "{out:?}");
    // And nothing was ordered meanwhile (a bounded look: an order would come at once).
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(rig.pebble.orders(), orders, "a new order after the restart");
    assert_eq!(rig.pebble.accounts(), 1, "a new account after the restart");
    assert_eq!(rig.pebble.issued_serials(), vec![before.serial]);
    // A stored certificate that lacks a configured name is not reused: a new order covers it.
    let www = format!("www.{DOMAIN}");
    rig.site.edit_config(
        &format!("domains = [\"{DOMAIN}\"]"),
        &format!("domains = [\"{DOMAIN}\", \"{www}\"]"),
    );
    rig.restart("TERM");
    let both = Pebble::wait_for(Duration::from_secs(60), || {
        rig.served().is_ok_and(|s| s.names.contains(&www))
    });
    assert!(both, "no certificate naming {www} within 60 s");
    assert_eq!(rig.pebble.orders(), orders + 1);
}

#[test]
fn a_crash_during_renewal_leaves_a_usable_certificate() {
    if !pebble::available() {
        return;
    }
    let mut rig = Rig::start(Setup {
        renewal_window_ratio: Some(RENEW_AT_ONCE),
        ..Setup::default()
    });
    let first = rig.wait_for_certificate();
    // Killed the moment mirrorbox fetches the renewed certificate from pebble: it is
    // downloading it, writing it or swapping it in (polled every 2 ms, not 250).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while rig.pebble.pebble_text().matches("POST /certZ/").count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "no renewal within 60 s"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    rig.restart("KILL");
    // Either certificate, complete with its own key (the handshake proves the key matches),
    // and served at once.
    let after = rig
        .served()
        .unwrap_or_else(|e| panic!("after the crash: {e}"));
    let issued = rig.pebble.issued_serials();
    assert!(
        issued.contains(&after.serial),
        "{after:?} not in {issued:?}"
    );
    assert_eq!(after.names, first.names);
    let renewed = after.serial != first.serial;
    eprintln!("after the crash: the renewed certificate? {renewed}");
    let out = rig.curl_https(&[], "/files/x");
    assert!(out.status.success() && out.stdout == rig.small, "{out:?}");
    assert_private_keys(&rig.site.data());
}

/// Counts of what the download clients saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    /// Long downloads during which the served certificate changed.
    spanning: AtomicU64,
    failures: Mutex<Vec<String>>,
}

impl Tally {
    fn fail(&self, what: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        self.failures.lock().unwrap().push(what);
    }
}

#[test]
fn renews_while_clients_download() {
    if !pebble::available() {
        return;
    }
    // Pebble rejects one good nonce in ten: the client retries with the fresh nonce it got,
    // as RFC 8555 §6.5 asks, or a renewal fails.
    let rig = Rig::start(Setup {
        renewal_window_ratio: Some(RENEW_AT_ONCE),
        big_file: true,
        pebble: Options {
            nonce_reject_percent: 10,
        },
        ..Setup::default()
    });
    let first = rig.wait_for_certificate();
    // Pebble's notBefore is the issuance time (not backdated), so RENEW_AT_ONCE means ~16 s.
    eprintln!(
        "first certificate {}: notBefore {}, notAfter {}",
        first.serial, first.not_before, first.not_after
    );
    let small_sha = common::sha256_hex(&rig.small);
    let big_sha = common::sha256_hex(&rig.big);
    let current = Mutex::new(first.serial.clone());
    let stop = AtomicBool::new(false);
    let tally = Tally::default();
    let mut seen = vec![first.serial.clone()];
    std::thread::scope(|scope| {
        // Fresh handshakes: one curl per request.
        for _ in 0..2 {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let out = rig.curl_https(&[], "/files/x");
                    if out.status.success() && common::sha256_hex(&out.stdout) == small_sha {
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        tally.fail(format!("/files/x: {out:?}"));
                    }
                }
            });
        }
        // Long downloads (8 MiB at 400 kB/s, about 20 s: longer than a renewal interval).
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let at_start = current.lock().unwrap().clone();
                let out = rig.curl_https(&["--limit-rate", "400k"], "/files/big");
                let at_end = current.lock().unwrap().clone();
                if out.status.success() && common::sha256_hex(&out.stdout) == big_sha {
                    tally.ok.fetch_add(1, Ordering::Relaxed);
                    if at_start != at_end {
                        tally.spanning.fetch_add(1, Ordering::Relaxed);
                    }
                } else {
                    tally.fail(format!(
                        "/files/big: {:?} ({} bytes) {}",
                        out.status,
                        out.stdout.len(),
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
            }
        });
        // Two renewals, and a long download spanning one.
        let renewed = Pebble::wait_for(Duration::from_secs(150), || {
            match rig.served() {
                Ok(now) if seen.last() != Some(&now.serial) => {
                    seen.push(now.serial.clone());
                    *current.lock().unwrap() = now.serial;
                }
                Ok(_) => {}
                Err(e) => tally.fail(format!("openssl s_client: {e}")),
            }
            seen.len() >= 3 && tally.spanning.load(Ordering::Relaxed) >= 1
        });
        stop.store(true, Ordering::Relaxed);
        assert!(
            renewed,
            "within 150 s: certificates served {seen:?}, long downloads spanning a swap: {}",
            tally.spanning.load(Ordering::Relaxed)
        );
    });
    let failures = tally.failures.lock().unwrap();
    assert!(
        failures.is_empty(),
        "{} of {} downloads failed: {failures:#?}",
        failures.len(),
        tally.ok.load(Ordering::Relaxed) + failures.len() as u64
    );
    eprintln!(
        "{} downloads, certificates {seen:?}",
        tally.ok.load(Ordering::Relaxed)
    );
    // Every certificate served was one pebble issued.
    let issued = rig.pebble.issued_serials();
    for serial in &seen {
        assert!(issued.contains(serial), "{serial} not in {issued:?}");
    }
    let metrics = rig.metrics();
    let expiry = sample(&metrics, "mirrorbox_tls_certificate_expiry_seconds")
        .unwrap_or_else(|| panic!("no certificate expiry gauge in {metrics}"));
    assert!(expiry > 0.0, "expiry {expiry}");
    let issued_total = sample(&metrics, "mirrorbox_acme_orders_total{result=\"issued\"}")
        .unwrap_or_else(|| panic!("no issued orders counter in {metrics}"));
    assert!(issued_total >= 3.0, "issued {issued_total}:\n{metrics}");
}

#[test]
fn a_refused_challenge_keeps_the_old_certificate() {
    if !pebble::available() {
        return;
    }
    let rig = Rig::start(Setup {
        renewal_window_ratio: Some(RENEW_AT_ONCE),
        ..Setup::default()
    });
    let old = rig.wait_for_certificate();
    // From now on pebble's validation connects where nothing listens; the renewal (due ~16 s
    // after issuance) fails.
    rig.pebble.point(DOMAIN, NOWHERE);
    let mut errors = Vec::new();
    let shown = Pebble::wait_for(Duration::from_secs(90), || {
        errors = strings_containing(&rig.status_json(), NOWHERE);
        !errors.is_empty()
    });
    assert!(
        shown,
        "no error naming {NOWHERE} in /.status.json within 90 s: {}",
        rig.status_json()
    );
    assert!(
        errors.iter().any(|e| e.contains(DOMAIN)),
        "the error does not name {DOMAIN}: {errors:?}"
    );
    let metrics = rig.metrics();
    let failed = sample(&metrics, "mirrorbox_acme_orders_total{result=\"failed\"}")
        .unwrap_or_else(|| panic!("no failed orders counter in {metrics}"));
    assert!(failed >= 1.0, "failed orders {failed}");
    let log = rig.log_text();
    assert!(
        log.lines().any(|l| l.contains("mirrorbox::acme")
            && (l.contains("WARN") || l.contains("ERROR"))
            && l.contains(NOWHERE)),
        "no WARN/ERROR from mirrorbox::acme with pebble's problem detail"
    );
    let page = common::body_at(rig.server(), "/.status");
    assert!(
        String::from_utf8_lossy(&page).contains(NOWHERE),
        "/.status does not show the error"
    );
    // The old certificate is still served, and it is still the only one issued.
    assert_eq!(rig.served().unwrap_or_else(|e| panic!("{e}")), old);
    let out = rig.curl_https(&[], "/files/x");
    assert!(out.status.success() && out.stdout == rig.small, "{out:?}");
    assert_eq!(rig.pebble.issued_serials(), vec![old.serial]);
}

#[test]
fn a_refused_first_issuance_leaves_plain_http_serving() {
    if !pebble::available() {
        return;
    }
    // One of two names cannot be validated: no certificate, and the error names that one.
    let refused = "www.mirror.test";
    let mut rig = Rig::start(Setup {
        refused_domain: Some(refused),
        ..Setup::default()
    });
    let mut errors = Vec::new();
    let shown = Pebble::wait_for(Duration::from_secs(60), || {
        errors = strings_containing(&rig.status_json(), NOWHERE);
        !errors.is_empty()
    });
    assert!(
        shown,
        "no error naming {NOWHERE} in /.status.json within 60 s: {}",
        rig.status_json()
    );
    assert!(
        errors.iter().any(|e| e.contains(refused)),
        "the error does not name {refused}: {errors:?}"
    );
    let server = rig.server.as_mut().unwrap();
    assert!(
        matches!(server.child.try_wait(), Ok(None)),
        "mirrorbox exited"
    );
    assert_eq!(common::body_at(rig.server(), "/files/x"), rig.small);
    let metrics = rig.metrics();
    let failed = sample(&metrics, "mirrorbox_acme_orders_total{result=\"failed\"}")
        .unwrap_or_else(|| panic!("no failed orders counter in {metrics}"));
    assert!(failed >= 1.0, "failed orders {failed}");
    // No certificate yet: HTTPS does not pretend to have one.
    assert!(rig.served().is_err(), "a certificate is served");
    assert!(rig.pebble.issued_serials().is_empty());
}
