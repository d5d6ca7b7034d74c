//! The ACME engine against a real ACME server (pebble), without the rest of the server: the
//! challenges are answered from `AcmeState` by two small listeners here (plain HTTP for
//! HTTP-01, rustls with ALPN `acme-tls/1` for TLS-ALPN-01), as the real listeners do.
//! Skipped (with a note) where pebble is not installed.

use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorbox::acme::{AcmeSettings, AcmeState, Challenge};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const DOMAIN: &str = "mirror.test.example";
/// An external account pebble knows when it requires binding (base64url MAC key).
const EAB_KID: &str = "kid-1";
const EAB_KEY: &str = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// pebble and its DNS (pebble-challtestsrv, every name at 127.0.0.1); killed on drop.
struct Pebble {
    children: Vec<Child>,
    directory: String,
    ca_file: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn pebble_installed() -> bool {
    Path::new("/usr/bin/pebble").exists() && Path::new("/usr/bin/pebble-challtestsrv").exists()
}

impl Pebble {
    /// `http_port` and `tls_port`: where pebble's validation connects for HTTP-01 and
    /// TLS-ALPN-01.
    fn start(dir: &Path, http_port: u16, tls_port: u16, binding_required: bool) -> Pebble {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
            .unwrap();
        let ca_file = dir.join("pebble-cert.pem");
        let key_file = dir.join("pebble-key.pem");
        std::fs::write(&ca_file, cert.cert.pem()).unwrap();
        std::fs::write(&key_file, cert.key_pair.serialize_pem()).unwrap();
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = dir.join("pebble.json");
        let mut settings = serde_json::json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": ca_file,
                "privateKey": key_file,
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": binding_required,
        }});
        if binding_required {
            settings["pebble"]["externalAccountMACKeys"] = serde_json::json!({ EAB_KID: EAB_KEY });
        }
        std::fs::write(&config, settings.to_string()).unwrap();
        let log = |name: &str| std::fs::File::create(dir.join(name)).unwrap();
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(log("challtestsrv.log"))
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("start pebble");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", listen)).is_err() {
            assert!(Instant::now() < deadline, "pebble did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_file,
        }
    }

    fn settings(&self, challenges: Vec<Challenge>, ratio: f64) -> AcmeSettings {
        AcmeSettings {
            domains: vec![DOMAIN.to_string()],
            contact: vec!["mailto:admin@test.example".into()],
            directory: self.directory.clone(),
            ca_file: Some(self.ca_file.clone()),
            external_account: None,
            challenges,
            renewal_window_ratio: ratio,
        }
    }
}

/// Answers HTTP-01 from the state: `GET /.well-known/acme-challenge/<token>`.
async fn serve_http01(listener: TcpListener, state: Arc<AcmeState>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buffer = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let text = String::from_utf8_lossy(&request);
            let path = text.split_whitespace().nth(1).unwrap_or("");
            let answer = path
                .strip_prefix("/.well-known/acme-challenge/")
                .and_then(|token| state.http_answer(token));
            let response = match answer {
                Some(body) => format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                ),
                None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string(),
            };
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}

/// The certificate in use, or the TLS-ALPN-01 answer for a client asking `acme-tls/1`.
#[derive(Debug)]
struct Resolver(Arc<AcmeState>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let wants_acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == b"acme-tls/1"));
        if wants_acme {
            return self.0.alpn_answer(hello.server_name()?);
        }
        self.0.certificate()
    }
}

async fn serve_tls(listener: TcpListener, state: Arc<AcmeState>) {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_cert_resolver(Arc::new(Resolver(state)));
    config.alpn_protocols = vec![b"acme-tls/1".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            if let Ok(mut tls) = acceptor.accept(stream).await {
                let _ = tls.shutdown().await;
            }
        });
    }
}

/// A data dir, pebble and the two challenge listeners.
struct Setup {
    dir: tempfile::TempDir,
    pebble: Pebble,
    http: TcpListener,
    tls: TcpListener,
}

async fn setup() -> Option<Setup> {
    setup_with(false).await
}

async fn setup_with(binding_required: bool) -> Option<Setup> {
    if !pebble_installed() {
        eprintln!("pebble is not installed: skipped");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    let pebble = Pebble::start(dir.path(), port(&http), port(&tls), binding_required);
    Some(Setup {
        dir,
        pebble,
        http,
        tls,
    })
}

fn answer_challenges(setup: Setup, state: &Arc<AcmeState>) -> (tempfile::TempDir, Pebble) {
    tokio::spawn(serve_http01(setup.http, state.clone()));
    tokio::spawn(serve_tls(setup.tls, state.clone()));
    (setup.dir, setup.pebble)
}

async fn wait_for(what: &str, state: &AcmeState, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {:?}",
            state.outcome()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn leaf(state: &AcmeState) -> Vec<u8> {
    state.certificate().expect("a certificate").cert[0].to_vec()
}

fn names(der: &[u8]) -> Vec<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    let san = cert.subject_alternative_name().unwrap().unwrap();
    san.value
        .general_names
        .iter()
        .map(|n| n.to_string())
        .collect()
}

async fn issues_with(challenge: Challenge) {
    let Some(setup) = setup().await else { return };
    let state = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    let (dir, pebble) = answer_challenges(setup, &state);
    let settings = pebble.settings(vec![challenge], 1.0 / 3.0);
    mirrorbox::acme::start(&settings, dir.path(), state.clone()).unwrap();
    assert!(state.certificate().is_none(), "nothing stored yet");
    wait_for("the certificate", &state, Duration::from_secs(30), || {
        state.certificate().is_some()
    })
    .await;
    assert_eq!(names(&leaf(&state)), vec![format!("DNSName({DOMAIN})")]);
    let outcome = state.outcome();
    assert_eq!(outcome.issued_total, 1);
    assert!(outcome.last_error.is_none());
    assert!(outcome.not_after.is_some());
    // The answers are withdrawn once the order is done.
    assert!(state.alpn_answer(DOMAIN).is_none());

    let folder = dir.path().join("acme").join(format!(
        "127.0.0.1_{}",
        pebble
            .directory
            .split(':')
            .nth(2)
            .unwrap()
            .trim_end_matches("/dir")
    ));
    use std::os::unix::fs::PermissionsExt;
    for file in [
        "account.json",
        &format!("{DOMAIN}/key.pem"),
        &format!("{DOMAIN}/fullchain.pem"),
    ] {
        let mode = std::fs::metadata(folder.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_issuance_by_http01() {
    issues_with(Challenge::Http01).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_issuance_by_tls_alpn01() {
    issues_with(Challenge::TlsAlpn01).await;
}

/// A restart serves the stored certificate at once, orders nothing, and renewal of a
/// certificate due within seconds replaces it (with at least the least gap between orders).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_reuses_then_renewal_replaces() {
    let Some(setup) = setup().await else { return };
    let first = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    let (dir, pebble) = answer_challenges(setup, &first);
    let settings = pebble.settings(vec![Challenge::Http01], 1.0 / 3.0);
    mirrorbox::acme::start(&settings, dir.path(), first.clone()).unwrap();
    wait_for("the certificate", &first, Duration::from_secs(60), || {
        first.certificate().is_some()
    })
    .await;
    let issued = leaf(&first);

    // "Restart": a new state and engine on the same data dir. The certificate is there
    // before any await, and the next attempt is the renewal time, far ahead.
    let second = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    mirrorbox::acme::start(&settings, dir.path(), second.clone()).unwrap();
    assert_eq!(
        leaf(&second),
        issued,
        "the stored certificate is served at once"
    );
    let next = second.outcome().next_attempt.expect("scheduled");
    assert!(next > std::time::SystemTime::now() + Duration::from_secs(86_400));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(second.outcome().issued_total, 0, "no new order");
    assert_eq!(leaf(&second), issued);

    // With the window at almost the whole lifetime the certificate is due at once:
    // renewed, and renewed again no sooner than ten seconds later.
    // (On `first`, whose answers the challenge listeners serve.)
    let renewing = pebble.settings(vec![Challenge::Http01], 0.9999999);
    mirrorbox::acme::start(&renewing, dir.path(), first.clone()).unwrap();
    wait_for(
        "a renewed certificate",
        &first,
        Duration::from_secs(90),
        || {
            first
                .certificate()
                .is_some_and(|c| c.cert[0].as_ref() != issued.as_slice())
        },
    )
    .await;
    let renewed_at = Instant::now();
    let renewed = leaf(&first);
    wait_for("a second renewal", &first, Duration::from_secs(90), || {
        first
            .certificate()
            .is_some_and(|c| c.cert[0].as_ref() != renewed.as_slice())
    })
    .await;
    assert!(
        renewed_at.elapsed() >= Duration::from_secs(9),
        "orders keep their distance: {:?}",
        renewed_at.elapsed()
    );
}

/// The CA cannot reach the challenge (nothing listens where it connects): the error names
/// the domain, the challenge and the CA's problem; no certificate is made up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_challenge_is_reported() {
    let Some(setup) = setup().await else { return };
    let state = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    // Close the HTTP-01 listener: pebble's connection is refused.
    let Setup {
        dir, pebble, http, ..
    } = setup;
    drop(http);
    let settings = pebble.settings(vec![Challenge::Http01], 1.0 / 3.0);
    mirrorbox::acme::start(&settings, dir.path(), state.clone()).unwrap();
    wait_for("the failure", &state, Duration::from_secs(60), || {
        state.outcome().last_error.is_some()
    })
    .await;
    let outcome = state.outcome();
    let (_, message) = outcome.last_error.clone().unwrap();
    assert!(message.contains(DOMAIN), "{message}");
    assert!(message.contains("http-01"), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert!(message.contains("urn:ietf:params:acme:error:"), "{message}");
    assert_eq!(outcome.failures_in_a_row, 1);
    assert_eq!(outcome.failed_total, 1);
    assert!(state.certificate().is_none());
    assert!(state.http_answer("anything").is_none());
    let next = outcome.next_attempt.unwrap();
    assert!(
        next > std::time::SystemTime::now() + Duration::from_secs(30),
        "backs off"
    );
}

/// Port 443 unreachable but 80 open: the TLS-ALPN-01 refusal makes the same attempt order
/// again with HTTP-01, which succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_challenge_falls_back_to_the_next_type() {
    let Some(setup) = setup().await else { return };
    let state = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    let Setup {
        dir,
        pebble,
        http,
        tls,
    } = setup;
    drop(tls);
    tokio::spawn(serve_http01(http, state.clone()));
    let settings = pebble.settings(vec![Challenge::TlsAlpn01, Challenge::Http01], 1.0 / 3.0);
    mirrorbox::acme::start(&settings, dir.path(), state.clone()).unwrap();
    wait_for("the certificate", &state, Duration::from_secs(60), || {
        state.certificate().is_some()
    })
    .await;
    let outcome = state.outcome();
    assert_eq!(outcome.issued_total, 1);
    assert_eq!(outcome.failed_total, 0, "one attempt, not a failed one");
    assert!(outcome.last_error.is_none());
}

/// A CA that requires external account binding refuses an account without it (the message
/// says so) and accepts one with the configured `kid` and MAC key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_account_binding() {
    let Some(setup) = setup_with(true).await else {
        return;
    };
    let state = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    let (dir, pebble) = answer_challenges(setup, &state);

    let unbound = Arc::new(AcmeState::new(vec![DOMAIN.into()]));
    let without = pebble.settings(vec![Challenge::Http01], 1.0 / 3.0);
    let other_dir = tempfile::tempdir().unwrap();
    mirrorbox::acme::start(&without, other_dir.path(), unbound.clone()).unwrap();
    wait_for("the refusal", &unbound, Duration::from_secs(30), || {
        unbound.outcome().last_error.is_some()
    })
    .await;
    let (_, message) = unbound.outcome().last_error.clone().unwrap();
    assert!(message.contains("ACME account"), "{message}");
    assert!(message.contains("externalAccountRequired"), "{message}");

    let mut with = pebble.settings(vec![Challenge::Http01], 1.0 / 3.0);
    with.external_account = Some(mirrorbox::acme::ExternalAccountBinding {
        kid: EAB_KID.into(),
        hmac_key: EAB_KEY.into(),
    });
    mirrorbox::acme::start(&with, dir.path(), state.clone()).unwrap();
    wait_for("the certificate", &state, Duration::from_secs(60), || {
        state.certificate().is_some()
    })
    .await;
    assert!(state.outcome().last_error.is_none());
}

/// What makes ACME impossible stops `start` with a message naming it; nothing else does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_fails_only_for_what_makes_acme_impossible() {
    let dir = tempfile::tempdir().unwrap();
    let settings = |ca_file: Option<PathBuf>| AcmeSettings {
        domains: vec![DOMAIN.to_string()],
        contact: Vec::new(),
        // Nothing listens there: a network failure, never a start error.
        directory: "https://127.0.0.1:9/dir".into(),
        ca_file,
        external_account: None,
        challenges: vec![Challenge::Http01],
        renewal_window_ratio: 0.5,
    };
    let state = || Arc::new(AcmeState::new(vec![DOMAIN.into()]));

    let missing = dir.path().join("missing-ca.pem");
    let error = mirrorbox::acme::start(&settings(Some(missing)), dir.path(), state())
        .expect_err("an unreadable ca_file");
    assert!(format!("{error:#}").contains("ca_file"), "{error:#}");

    let unreachable = state();
    mirrorbox::acme::start(&settings(None), dir.path(), unreachable.clone())
        .expect("an unreachable CA is not a start error");
    wait_for("the failure", &unreachable, Duration::from_secs(30), || {
        unreachable.outcome().last_error.is_some()
    })
    .await;
    let (_, message) = unreachable.outcome().last_error.clone().unwrap();
    assert!(message.contains("127.0.0.1:9"), "{message}");

    let account = dir.path().join("acme/127.0.0.1_9/account.json");
    std::fs::write(&account, "{ not json").unwrap();
    let error = mirrorbox::acme::start(&settings(None), dir.path(), state())
        .expect_err("a damaged account file");
    assert!(format!("{error:#}").contains("account.json"), "{error:#}");
}
