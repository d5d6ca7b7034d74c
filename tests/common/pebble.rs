//! A real ACME server for the tests: Let's Encrypt's `pebble` (Debian package `pebble`), with
//! `pebble-challtestsrv` as the DNS it asks, so a test domain such as `mirror.test` resolves to
//! 127.0.0.1 (or, when a test wants validation to fail, to an address where nothing listens).
//!
//! Pebble serves its directory over HTTPS with a certificate from a CA made here
//! ([`Pebble::ca_file`], what mirrorbox's `ca_file` trusts); it issues from a root it generates
//! at start ([`Pebble::root`], what the test's clients trust, and nothing else).
//!
//! Also here: starting mirrorbox on the fixed ports pebble was told, looking at the certificate
//! it serves (openssl), and small readers for what the ACME tests check.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Server;

/// Whether the ACME tests can run. Without `pebble` they are skipped with a message, unless
/// `CI` is set: there a missing pebble fails the test (CI installs it).
pub fn available() -> bool {
    let missing: Vec<&str> = ["pebble", "pebble-challtestsrv"]
        .into_iter()
        .filter(|tool| !on_path(tool))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
    assert!(
        !ci,
        "CI is set but {missing:?} is missing: install the Debian package `pebble`"
    );
    eprintln!("SKIPPED: {missing:?} not found (install the Debian package `pebble`)");
    false
}

fn on_path(tool: &str) -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| dir.join(tool).is_file())
}

/// A TCP port nothing listens on right now (bound, read, released: another process may take it
/// before the caller binds it, so callers retry on "address already in use").
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().unwrap().port()
}

/// A port free for both TCP and UDP (a DNS server binds both).
fn free_dns_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// How pebble behaves.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// Percentage of good nonces pebble rejects with `badNonce` (its default is 5): 0 keeps a
    /// test deterministic; more proves the client retries as RFC 8555 §6.5 asks.
    pub nonce_reject_percent: u32,
}

/// The lines a child process wrote (stdout and stderr), collected by reader threads.
type Log = Arc<Mutex<Vec<String>>>;

fn collect(child: &mut Child, log: &Log) {
    let streams: Vec<Box<dyn Read + Send>> = vec![
        Box::new(child.stdout.take().unwrap()),
        Box::new(child.stderr.take().unwrap()),
    ];
    for stream in streams {
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
    }
}

/// A running pebble and its DNS. Both are killed on drop.
pub struct Pebble {
    dir: tempfile::TempDir,
    pebble: Child,
    challtestsrv: Child,
    pebble_log: Log,
    dns_log: Log,
    /// The ACME directory URL.
    pub directory: String,
    management: u16,
    dns_management: u16,
}

impl Pebble {
    /// Starts pebble, validating HTTP-01 on `http_port` and TLS-ALPN-01 on `tls_port` of
    /// whatever the test domains resolve to. `Err` (with the logs) if a port was taken
    /// meanwhile or a process did not come up: the caller picks new ports and retries.
    pub fn start(http_port: u16, tls_port: u16, options: Options) -> Result<Pebble, String> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (certificate, key) = https_certificate(dir.path());
        let dns = free_dns_port();
        let dns_management = free_port();
        let mut challtestsrv = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pebble-challtestsrv");
        let dns_log = Log::default();
        collect(&mut challtestsrv, &dns_log);

        let listen = free_port();
        let management = free_port();
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": certificate,
            "privateKey": key,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        let config_path = dir.path().join("pebble-config.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let mut pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No random 0–15 s wait before each validation.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env(
                "PEBBLE_WFE_NONCEREJECT",
                options.nonce_reject_percent.to_string(),
            )
            // Every order is validated anew: by default pebble reuses a valid authorization
            // half of the time, and a renewal would then not need the challenge at all.
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run pebble");
        let pebble_log = Log::default();
        collect(&mut pebble, &pebble_log);

        let mut started = Pebble {
            dir,
            pebble,
            challtestsrv,
            pebble_log,
            dns_log,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
            dns_management,
        };
        started.wait_until_up()?;
        let root = started.fetch("/roots/0")?;
        std::fs::write(started.root(), root).unwrap();
        Ok(started)
    }

    /// Waits until both answer on their management ports (and pebble on its directory).
    fn wait_until_up(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let exited = [
                ("pebble", self.pebble.try_wait()),
                ("pebble-challtestsrv", self.challtestsrv.try_wait()),
            ];
            for (name, status) in exited {
                if let Ok(Some(status)) = status {
                    return Err(format!("{name} exited ({status}):\n{}", self.logs()));
                }
            }
            let dns_up = TcpStream::connect(("127.0.0.1", self.dns_management)).is_ok();
            if dns_up && self.get(&self.directory.clone()).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("pebble did not come up in 20 s:\n{}", self.logs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The CA that issued pebble's own HTTPS certificate (for mirrorbox's `ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("harness-ca.pem")
    }

    /// Pebble's issuing root, which the test clients trust.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("pebble-root.pem")
    }

    /// GET `url` over HTTPS trusting only [`Pebble::ca_file`].
    fn get(&self, url: &str) -> Result<Vec<u8>, String> {
        let out = Command::new("curl")
            .args(["-sSf", "--max-time", "10", "--cacert"])
            .arg(self.ca_file())
            .arg(url)
            .output()
            .expect("curl is installed");
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// A path of pebble's management interface (`/roots/0`, `/intermediates/0`, …).
    pub fn fetch(&self, path: &str) -> Result<Vec<u8>, String> {
        self.get(&format!("https://127.0.0.1:{}{path}", self.management))
    }

    fn manage_dns(&self, endpoint: &str, body: serde_json::Value) {
        let out = Command::new("curl")
            .args(["-sSf", "--max-time", "10", "-X", "POST", "-d"])
            .arg(body.to_string())
            .arg(format!(
                "http://127.0.0.1:{}{endpoint}",
                self.dns_management
            ))
            .output()
            .expect("curl is installed");
        assert!(out.status.success(), "challtestsrv {endpoint}: {out:?}");
    }

    /// Makes `host` resolve to `ip` (for pebble's validation only).
    pub fn point(&self, host: &str, ip: &str) {
        self.manage_dns("/clear-a", serde_json::json!({ "host": host }));
        self.manage_dns(
            "/add-a",
            serde_json::json!({ "host": host, "addresses": [ip] }),
        );
    }

    /// Makes `host` resolve to the default (127.0.0.1) again.
    pub fn unpoint(&self, host: &str) {
        self.manage_dns("/clear-a", serde_json::json!({ "host": host }));
    }

    /// How many orders pebble has created so far (it logs "Added order … to the db").
    pub fn orders(&self) -> usize {
        self.pebble_text().matches("Added order").count()
    }

    /// How many ACME accounts pebble holds (it logs "There are now N accounts in memory").
    pub fn accounts(&self) -> usize {
        self.pebble_text()
            .lines()
            .filter_map(|l| l.split("There are now ").nth(1))
            .filter_map(|rest| rest.strip_suffix(" accounts in memory"))
            .filter_map(|n| n.trim().parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// The serials (lower-case hex without leading zeros) of the certificates pebble issued.
    pub fn issued_serials(&self) -> Vec<String> {
        self.pebble_text()
            .lines()
            .filter_map(|l| l.split("Issued certificate serial ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            // Pebble pads to 16 digits; a served serial's hex has no leading zeros.
            .map(|serial| serial.trim_start_matches('0').to_ascii_lowercase())
            .collect()
    }

    pub fn pebble_text(&self) -> String {
        self.pebble_log.lock().unwrap().join("\n")
    }

    /// Both logs, for a failing test's message.
    pub fn logs(&self) -> String {
        format!(
            "--- pebble ---\n{}\n--- pebble-challtestsrv ---\n{}\n",
            self.pebble_text(),
            self.dns_log.lock().unwrap().join("\n")
        )
    }

    /// Waits up to `limit` for `done` (checked every 250 ms); false if it never held.
    pub fn wait_for(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            if done() {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [&mut self.pebble, &mut self.challtestsrv] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A CA and the certificate it issued pebble for 127.0.0.1 and localhost: (certificate, key).
/// The CA is written to `harness-ca.pem` in `dir`.
fn https_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "ACME test harness CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().unwrap()),
        SanType::IpAddress([127, 0, 0, 1].into()),
    ];
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let (cert_path, key_path) = (dir.join("pebble-https.pem"), dir.join("pebble-https.key"));
    std::fs::write(dir.join("harness-ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A served certificate, as a client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// Hex, without leading zeros (as pebble logs it).
    pub serial: String,
    pub names: Vec<String>,
    /// Seconds since the epoch.
    pub not_before: i64,
    pub not_after: i64,
}

/// Connects with openssl to `127.0.0.1:port` for `domain`, verifying the chain the server
/// sends against `root` alone (pebble's root: its intermediate must come from the server)
/// and the name.
pub fn served(port: u16, domain: &str, root: &Path) -> Result<Served, String> {
    let out = Command::new("timeout")
        .args(["20", "openssl", "s_client", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", domain, "-verify_hostname", domain])
        .args(["-verify_return_error", "-showcerts", "-CAfile"])
        .arg(root)
        .stdin(Stdio::null())
        .output()
        .expect("openssl is installed");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() || !text.contains("Verify return code: 0 (ok)") {
        return Err(format!(
            "handshake or verification failed: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let start = text
        .find("-----BEGIN CERTIFICATE-----")
        .ok_or("no certificate")?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&text.as_bytes()[start..])
        .map_err(|e| format!("PEM: {e}"))?;
    let cert = pem.parse_x509().map_err(|e| format!("X.509: {e}"))?;
    let names = cert
        .subject_alternative_name()
        .map_err(|e| format!("subjectAltName: {e}"))?
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|name| match name {
                    x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let serial = hex::encode(cert.raw_serial());
    Ok(Served {
        serial: serial.trim_start_matches('0').to_string(),
        names,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
    })
}

/// Starts `mirrorbox serve` on `config` and waits until both listeners are bound and the
/// start-up scan is done. Its ports are fixed (pebble was told them), so a port taken meanwhile
/// is an `Err(log)` to retry on, like a bad configuration or a start over 30 s.
pub fn start_mirrorbox(config: &Path) -> Result<Server, String> {
    let mut command = Command::new(super::BIN);
    command.args(["serve", "--config"]).arg(config);
    Server::spawn(command, true, true)
}

// What the ACME tests look at: status JSON, metrics, file modes.

/// Every string in `value` (at any depth) that contains `needle`, case-insensitively.
pub fn strings_containing(value: &serde_json::Value, needle: &str) -> Vec<String> {
    match value {
        serde_json::Value::String(s) if s.to_lowercase().contains(needle) => vec![s.clone()],
        serde_json::Value::Array(items) => items
            .iter()
            .flat_map(|v| strings_containing(v, needle))
            .collect(),
        serde_json::Value::Object(map) => map
            .values()
            .flat_map(|v| strings_containing(v, needle))
            .collect(),
        _ => Vec::new(),
    }
}

/// The value of the sample `name` (with its labels, e.g. `x{result="failed"}`) in Prometheus
/// text.
pub fn sample(metrics: &str, name: &str) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every regular file under `dir` (recursively).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            files.extend(files_under(&entry.path()));
        } else if kind.is_file() {
            files.push(entry.path());
        }
    }
    files
}

pub fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every directory under `dir` (recursively).
pub fn dirs_under(dir: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            dirs.push(entry.path());
            dirs.extend(dirs_under(&entry.path()));
        }
    }
    dirs
}
