//! `[[access]]` rules end to end: real curl, wget and apt-get with passwords against the real
//! server; address ranges (the only peer here is 127.0.0.1, so ranges that include or exclude
//! it); snapshot URLs; the status pages and metrics protected on their own; htpasswd reloaded
//! on SIGHUP; and the status page's redaction of filesystem paths, checked in-process with
//! peers that cannot connect from this machine.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::{Server, Site};
use http_body_util::BodyExt;

/// Status, headers (raw, lowercase) and body of one curl request.
struct Answer {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

fn fetch(url: &str, extra: &[&str]) -> Answer {
    let dir = tempfile::tempdir().unwrap();
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let out = Command::new("curl")
        .args(["-s", "--max-time", "30", "-w", "%{http_code}", "-D"])
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed");
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    Answer {
        status,
        headers: std::fs::read_to_string(&headers)
            .unwrap_or_default()
            .to_ascii_lowercase(),
        body: std::fs::read(&body).unwrap_or_default(),
    }
}

fn openssl_passwd(scheme: &str, password: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", scheme, password])
        .output()
        .expect("openssl is installed");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// An htpasswd file with one user per accepted scheme, and a plain-text line that must be
/// refused: alice (bcrypt `$2y$`), bob (apr1), carol (SHA-512 crypt), plain (refused).
fn write_htpasswd(path: &Path) {
    let bcrypt = bcrypt::hash("alice-pw", 4)
        .unwrap()
        .replacen("$2b$", "$2y$", 1);
    let text = format!(
        "alice:{bcrypt}\nbob:{}\ncarol:{}\nplain:plain-pw\n",
        openssl_passwd("-apr1", "bob-pw"),
        openssl_passwd("-6", "carol-pw"),
    );
    std::fs::write(path, text).unwrap();
}

/// A site with `/files` (open) and the dir source `secret` at `/private`, behind `htpasswd`.
fn private_site(rules: &str) -> Site {
    let site = Site::with(false, "");
    let secret = site.dir.path().join("secret");
    std::fs::create_dir_all(secret.join("sub")).unwrap();
    std::fs::write(secret.join("sub/data.txt"), "private bytes\n").unwrap();
    std::fs::write(site.public().join("open.txt"), "open bytes\n").unwrap();
    let htpasswd = site.dir.path().join("htpasswd");
    write_htpasswd(&htpasswd);
    let text = std::fs::read_to_string(&site.config).unwrap();
    let text = format!(
        "{text}\n[[source]]\nid = \"secret\"\nkind = \"dir\"\nmount = \"/private\"\npath = \"{}\"\n{}\n",
        secret.display(),
        rules.replace("HTPASSWD", &htpasswd.display().to_string())
    );
    std::fs::write(&site.config, text).unwrap();
    site
}

/// Starts the server and syncs every source before returning.
fn start(site: &Site) -> Server {
    let server = site.start_without_sync();
    let sync = site.cli(&["sync"]);
    assert!(sync.status.success(), "{sync:?}\n{}", server.log_text());
    server
}

fn current_snapshot(server: &Server, source: &str) -> String {
    let answer = fetch(&server.url("/.status.json"), &[]);
    assert_eq!(answer.status, 200);
    let status: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == source)
        .and_then(|s| s["current"].as_str())
        .unwrap_or_else(|| panic!("no current snapshot of {source}: {status}"))
        .to_string()
}

#[test]
fn passwords_with_curl_and_wget_cover_snapshots_and_reload_on_sighup() {
    let site = private_site(
        "[[access]]\npath = \"/private\"\nhtpasswd = \"HTPASSWD\"\nrealm = \"Private files\"\n",
    );
    let server = start(&site);
    assert!(
        server.log_contains("htpasswd:4: plain-text or crypt(3) DES entry refused"),
        "{}",
        server.log_text()
    );
    let file = server.url("/private/sub/data.txt");

    // No credentials: 401 with the realm, nothing about the file.
    let answer = fetch(&file, &[]);
    assert_eq!(answer.status, 401);
    assert!(
        answer
            .headers
            .contains("www-authenticate: basic realm=\"private files\", charset=\"utf-8\""),
        "{}",
        answer.headers
    );
    assert!(!String::from_utf8_lossy(&answer.body).contains("private bytes"));
    // Wrong password, unknown user, refused plain-text entry: 401 alike.
    for user in [
        "alice:wrong",
        "mallory:alice-pw",
        "plain:plain-pw",
        "alice:",
    ] {
        assert_eq!(fetch(&file, &["-u", user]).status, 401, "{user}");
    }
    // A path that does not exist is not told apart without credentials.
    assert_eq!(fetch(&server.url("/private/nothing-here"), &[]).status, 401);
    assert_eq!(
        fetch(
            &server.url("/private/nothing-here"),
            &["-u", "alice:alice-pw"]
        )
        .status,
        404
    );
    // Every scheme works; answers are private to the client.
    for user in ["alice:alice-pw", "bob:bob-pw", "carol:carol-pw"] {
        let answer = fetch(&file, &["-u", user]);
        assert_eq!(answer.status, 200, "{user}");
        assert_eq!(answer.body, b"private bytes\n");
        assert!(
            answer.headers.contains("cache-control: private"),
            "{}",
            answer.headers
        );
    }
    // Listing inside the protected mount: protected too; the open mount stays open.
    assert_eq!(fetch(&server.url("/private/"), &[]).status, 401);
    assert_eq!(
        fetch(&server.url("/private/"), &["-u", "bob:bob-pw"]).status,
        200
    );
    let open = fetch(&server.url("/files/open.txt"), &[]);
    assert_eq!(
        (open.status, open.body.as_slice()),
        (200, &b"open bytes\n"[..])
    );
    assert!(!open.headers.contains("private"), "{}", open.headers);

    // wget: asks, gets the challenge, answers it.
    let target = site.dir.path().join("wget.txt");
    let out = Command::new("wget")
        .args(["-q", "--user", "carol", "--password", "carol-pw", "-O"])
        .arg(&target)
        .arg(&file)
        .output()
        .expect("wget is installed");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"private bytes\n");
    let out = Command::new("wget")
        .args(["-q", "--user", "carol", "--password", "nope", "-O"])
        .arg(site.dir.path().join("wget-bad.txt"))
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(6),
        "wget: authentication failure: {out:?}"
    );

    // The same content under its snapshot URL is protected the same way.
    let snapshot = current_snapshot(&server, "secret");
    let by_snapshot = server.url(&format!("/.snapshots/secret/{snapshot}/sub/data.txt"));
    assert_eq!(fetch(&by_snapshot, &[]).status, 401);
    assert_eq!(
        fetch(&server.url(&format!("/.snapshots/secret/{snapshot}/")), &[]).status,
        401
    );
    assert_eq!(fetch(&server.url("/.snapshots/secret/"), &[]).status, 401);
    let answer = fetch(&by_snapshot, &["-u", "alice:alice-pw"]);
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"private bytes\n"[..])
    );
    let open_snapshot = current_snapshot(&server, "site");
    assert_eq!(
        fetch(
            &server.url(&format!("/.snapshots/site/{open_snapshot}/open.txt")),
            &[]
        )
        .status,
        200
    );

    // SIGHUP: a new user works, a removed one does not.
    let htpasswd = site.dir.path().join("htpasswd");
    let dave = bcrypt::hash("dave-pw", 4).unwrap();
    std::fs::write(&htpasswd, format!("dave:{dave}\n")).unwrap();
    server.signal("HUP");
    assert!(
        server.log_contains("htpasswd reloaded"),
        "{}",
        server.log_text()
    );
    assert_eq!(fetch(&file, &["-u", "dave:dave-pw"]).status, 200);
    assert_eq!(fetch(&file, &["-u", "alice:alice-pw"]).status, 401);
    // A reload that cannot read the file keeps the users it had, and says why.
    std::fs::remove_file(&htpasswd).unwrap();
    server.signal("HUP");
    assert!(
        server.log_contains("htpasswd reload failed"),
        "{}",
        server.log_text()
    );
    assert_eq!(fetch(&file, &["-u", "dave:dave-pw"]).status, 200);
}

#[test]
fn address_ranges_refuse_with_403_before_any_password_or_lookup() {
    let site = private_site(
        "[[access]]\npath = \"/private\"\ndeny = [\"127.0.0.0/8\"]\nhtpasswd = \"HTPASSWD\"\n\
         [[access]]\npath = \"/files/outside\"\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\
         [[access]]\npath = \"/files/inside\"\nallow = [\"10.0.0.0/8\", \"127.0.0.1\"]\n",
    );
    for dir in ["outside", "inside"] {
        std::fs::create_dir_all(site.public().join(dir)).unwrap();
        std::fs::write(site.public().join(dir).join("x.txt"), dir).unwrap();
    }
    let server = start(&site);
    // Denied: 403, no password prompt, even with good credentials, whether the path exists
    // or not.
    for path in ["/private/sub/data.txt", "/private/missing", "/private/"] {
        let answer = fetch(&server.url(path), &["-u", "alice:alice-pw"]);
        assert_eq!(answer.status, 403, "{path}");
        assert!(
            !answer.headers.contains("www-authenticate"),
            "{}",
            answer.headers
        );
    }
    let snapshot = current_snapshot(&server, "secret");
    assert_eq!(
        fetch(
            &server.url(&format!("/.snapshots/secret/{snapshot}/sub/data.txt")),
            &[]
        )
        .status,
        403
    );
    // An allow list without 127.0.0.1 refuses; one with it lets through.
    assert_eq!(fetch(&server.url("/files/outside/x.txt"), &[]).status, 403);
    assert_eq!(fetch(&server.url("/files/outside/nope"), &[]).status, 403);
    let answer = fetch(&server.url("/files/inside/x.txt"), &[]);
    assert_eq!(
        (answer.status, answer.body.as_slice()),
        (200, &b"inside"[..])
    );
    // The parent listing still names the folders (names only, as documented).
    let listing = fetch(&server.url("/files/"), &[]);
    assert_eq!(listing.status, 200);
    assert!(String::from_utf8_lossy(&listing.body).contains("outside/"));
}

#[test]
fn status_pages_and_metrics_are_protected_on_their_own() {
    let site = private_site(
        "[[access]]\npath = \"/.status\"\nhtpasswd = \"HTPASSWD\"\nrealm = \"Status\"\n\
         [[access]]\npath = \"/.metrics\"\ndeny = [\"127.0.0.0/8\", \"::1\"]\n\
         [[access]]\npath = \"/nowhere\"\nallow = [\"10.0.0.0/8\"]\n",
    );
    let server = start(&site);
    assert!(
        server.log_contains("[[access]] #3 (path \"/nowhere\"): key `path`: matches no mount"),
        "{}",
        server.log_text()
    );
    for path in ["/.status", "/.status.json", "/.status.html"] {
        let answer = fetch(&server.url(path), &[]);
        assert_eq!(answer.status, 401, "{path}");
        assert!(
            answer.headers.contains("realm=\"status\""),
            "{}",
            answer.headers
        );
        assert_eq!(
            fetch(&server.url(path), &["-u", "bob:bob-pw"]).status,
            200,
            "{path}"
        );
    }
    assert_eq!(fetch(&server.url("/.metrics"), &[]).status, 403);
    assert_eq!(
        fetch(&server.url("/.metrics"), &["-u", "bob:bob-pw"]).status,
        403
    );
    // Content has no rule here.
    assert_eq!(fetch(&server.url("/private/sub/data.txt"), &[]).status, 200);
}

#[test]
fn real_apt_uses_auth_conf_for_a_protected_enterprise_mount() {
    let repo = AptRepo::new(Layout::Proxmox);
    let packages = vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 50_000),
    ];
    repo.suite("bookworm", "pve-enterprise", &packages, true, None);
    let site = Site::with(
        false,
        &format!(
            "[[source]]\nid = \"enterprise\"\nkind = \"dir\"\nmount = \"/debian/pve\"\npath = \"{}\"\n",
            repo.root().display()
        ),
    );
    let htpasswd = site.dir.path().join("htpasswd");
    write_htpasswd(&htpasswd);
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{text}\n[[access]]\npath = \"/debian/pve\"\nhtpasswd = \"{}\"\nrealm = \"Proxmox enterprise\"\n",
            htpasswd.display()
        ),
    )
    .unwrap();
    let server = start(&site);
    let line = format!(
        "deb [signed-by={}] {} bookworm pve-enterprise",
        repo.key().display(),
        server.url("/debian/pve")
    );
    // apt sends credentials over plain HTTP only to entries that say `http://`.
    let machine = format!("machine http://{}/debian/pve", server.http);

    let client = AptClient::with_auth(
        &line,
        Some(&format!("{machine} login alice password alice-pw")),
    );
    for by_hash in [false, true] {
        let force = if by_hash {
            "Acquire::By-Hash=force"
        } else {
            "Acquire::By-Hash=no"
        };
        let (ok, text) = client.run(&["-o", force, "update"]);
        assert!(
            ok,
            "apt-get update (by-hash {by_hash}): {text}\n{}",
            server.log_text()
        );
    }
    let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha", "bravo"]);
    assert!(ok, "apt-get install: {text}");
    for pkg in &packages {
        let got = std::fs::read(client.archive(&pkg.file_name())).unwrap();
        let want = std::fs::read(repo.root().join(repo.deb_path(
            "bookworm",
            "pve-enterprise",
            pkg,
        )))
        .unwrap();
        assert!(got == want, "{} differs", pkg.file_name());
    }

    // Without credentials, or with wrong ones, apt is refused.
    for auth in [None, Some(format!("{machine} login alice password wrong"))] {
        let client = AptClient::with_auth(&line, auth.as_deref());
        let (ok, text) = client.run(&["update"]);
        assert!(!ok, "{text}");
        assert!(text.contains("401"), "{text}");
    }
}

/// The status page as a client at `peer` sees it, through the real handler in this process
/// (this machine can only connect from loopback, which is always trusted).
async fn status_as(
    app: &Arc<mirrorbox::app::App>,
    path: &str,
    peer: &str,
    authorization: Option<&str>,
) -> (u16, String) {
    let mut request = http::Request::builder()
        .uri(path)
        .header(http::header::HOST, "mirror.example");
    if let Some(value) = authorization {
        request = request.header(http::header::AUTHORIZATION, value);
    }
    let request = request.body(()).unwrap();
    let response =
        mirrorbox::http::handle(app.clone(), request, peer.parse().unwrap(), false).await;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn broken_site(rules: &str) -> Site {
    let site = private_site(rules);
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{text}\n[[source]]\nid = \"broken\"\nkind = \"dir\"\nmount = \"/broken\"\npath = \"/nonexistent/secret-layout/images\"\n"
        ),
    )
    .unwrap();
    let sync = site.cli(&["sync", "broken"]);
    assert!(!sync.status.success(), "`broken` must fail: {sync:?}");
    site
}

fn open_app(site: &Site) -> Arc<mirrorbox::app::App> {
    let config = mirrorbox::config::Config::load(&site.config).unwrap();
    let access = mirrorbox::http::access::Access::load(&config).unwrap();
    let mut app = mirrorbox::app::App::open(config).unwrap();
    app.access = access;
    app.serve_view().unwrap();
    Arc::new(app)
}

const SECRET: &str = "/nonexistent/secret-layout";

#[tokio::test]
async fn status_messages_hide_filesystem_paths_from_untrusted_clients() {
    let site = broken_site("");
    let app = open_app(&site);
    for path in ["/.status.json", "/.status"] {
        let (status, body) = status_as(&app, path, "192.0.2.10:4000", None).await;
        assert_eq!(status, 200);
        assert!(!body.contains(SECRET), "{path}: {body}");
        assert!(body.contains("…"), "{path}: {body}");
        // Loopback, IPv4 or IPv6 or mapped, sees everything.
        for peer in ["127.0.0.1:4000", "[::1]:4000", "[::ffff:127.0.0.1]:4000"] {
            let (status, body) = status_as(&app, path, peer, None).await;
            assert_eq!(status, 200);
            assert!(body.contains(SECRET), "{path} {peer}: {body}");
        }
    }
}

#[tokio::test]
async fn status_messages_are_whole_for_clients_a_status_rule_lets_through() {
    let site = broken_site(
        "[[access]]\npath = \"/.status\"\nallow = [\"192.0.2.0/24\", \"198.51.100.0/24\"]\n\
         [[access]]\npath = \"/private\"\nhtpasswd = \"HTPASSWD\"\n",
    );
    let app = open_app(&site);
    for peer in ["192.0.2.10:4000", "[::ffff:192.0.2.10]:4000"] {
        let (status, body) = status_as(&app, "/.status.json", peer, None).await;
        assert_eq!(status, 200, "{peer}");
        assert!(body.contains(SECRET), "{peer}: {body}");
    }
    let (status, _) = status_as(&app, "/.status.json", "203.0.113.5:4000", None).await;
    assert_eq!(status, 403);
    // A password that a status rule asks for makes a client trusted, wherever it is.
    let site = broken_site("[[access]]\npath = \"/.status\"\nhtpasswd = \"HTPASSWD\"\n");
    drop(app);
    let app = open_app(&site);
    let (status, body) = status_as(
        &app,
        "/.status.json",
        "203.0.113.5:4000",
        Some(&basic("alice", "alice-pw")),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(SECRET), "{body}");
    let (status, _) = status_as(&app, "/.status.json", "203.0.113.5:4000", None).await;
    assert_eq!(status, 401);
}

#[test]
fn a_missing_htpasswd_file_stops_the_start_and_check_config_names_it() {
    let site = private_site(
        "[[access]]\npath = \"/private\"\nallow = [\"10.0.0.0/8\"]\nhtpasswd = \"HTPASSWD\"\n",
    );
    let out = site.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains("access /private: allow 10.0.0.0/8; password from"),
        "{text}"
    );
    std::fs::remove_file(site.dir.path().join("htpasswd")).unwrap();
    let out = site.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains(
            "[[access]] #1 (path \"/private\"): key `htpasswd`: cannot read htpasswd file"
        ),
        "{text}"
    );
    // Only serving reads htpasswd files: other commands work without them.
    let out = site.cli(&["sync"]);
    assert!(out.status.success(), "{out:?}");
    let out = Command::new(common::BIN)
        .args(["serve", "--no-initial-sync", "--config"])
        .arg(&site.config)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("mirrorbox.toml: [[access]] #1"), "{text}");
}

/// A second source on `/private` that publishes `sub/data.txt` with other content: a conflict
/// inside the protected mount.
fn conflicting_site(rules: &str) -> Site {
    let site = private_site(rules);
    let other = site.dir.path().join("other");
    std::fs::create_dir_all(other.join("sub")).unwrap();
    std::fs::write(other.join("sub/data.txt"), "other bytes\n").unwrap();
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{text}\n[[source]]\nid = \"other\"\nkind = \"dir\"\nmount = \"/private\"\npath = \"{}\"\n",
            other.display()
        ),
    )
    .unwrap();
    let sync = site.cli(&["sync"]);
    assert!(sync.status.success(), "{sync:?}");
    site
}

fn source_json<'a>(status: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("no source {id}: {status}"))
}

#[tokio::test]
async fn status_leaves_out_what_protected_mounts_hold() {
    let site = conflicting_site("[[access]]\npath = \"/private\"\nhtpasswd = \"HTPASSWD\"\n");
    let app = open_app(&site);
    let peer = "192.0.2.10:4000";
    let (status, body) = status_as(&app, "/.status.json", peer, None).await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    for id in ["secret", "other"] {
        let source = source_json(&json, id);
        assert_eq!(source["mount"], "/private", "{source}");
        assert_eq!(source["state"], "ok", "{source}");
        assert_eq!(source["details_hidden"], true, "{source}");
        assert!(source["last_run"].is_null(), "{source}");
    }
    assert_eq!(json["conflicts"], serde_json::json!([]), "{json}");
    // The open source keeps its details.
    let open = source_json(&json, "site");
    assert!(open["last_run"]["files"].is_u64(), "{open}");
    assert!(open.get("details_hidden").is_none(), "{open}");
    let (_, html) = status_as(&app, "/.status", peer, None).await;
    assert!(!html.contains("/private/sub/data.txt"), "{html}");
    assert!(
        html.contains("shown only to clients that may read this mount"),
        "{html}"
    );

    // With the mount's password, everything is there.
    let alice = basic("alice", "alice-pw");
    let (_, body) = status_as(&app, "/.status.json", peer, Some(&alice)).await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let source = source_json(&json, "secret");
    assert!(source["last_run"]["files"].is_u64(), "{source}");
    assert_eq!(
        json["conflicts"],
        serde_json::json!(["/private/sub/data.txt"]),
        "{json}"
    );
}

#[tokio::test]
async fn status_redaction_covers_paths_with_spaces() {
    let site = private_site("");
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(
        &site.config,
        format!(
            "{text}\n[[source]]\nid = \"spaced\"\nkind = \"dir\"\nmount = \"/spaced\"\npath = \"/nonexistent/Private Files/images\"\n"
        ),
    )
    .unwrap();
    let sync = site.cli(&["sync", "spaced"]);
    assert!(!sync.status.success(), "{sync:?}");
    let app = open_app(&site);
    for path in ["/.status.json", "/.status"] {
        let (status, body) = status_as(&app, path, "192.0.2.10:4000", None).await;
        assert_eq!(status, 200);
        assert!(!body.contains("Files/images"), "{path}: {body}");
        assert!(!body.contains("nonexistent"), "{path}: {body}");
    }
}

#[tokio::test]
async fn loopback_is_an_ordinary_client_when_trust_loopback_is_off() {
    let site = broken_site("");
    site.server_keys("trust_loopback = false");
    let app = open_app(&site);
    for peer in ["127.0.0.1:4000", "[::1]:4000", "[::ffff:127.0.0.1]:4000"] {
        let (status, body) = status_as(&app, "/.status.json", peer, None).await;
        assert_eq!(status, 200);
        assert!(!body.contains(SECRET), "{peer}: {body}");
    }
}

#[test]
fn sighup_says_when_access_rules_changed() {
    let site = private_site("[[access]]\npath = \"/private\"\ndeny = [\"127.0.0.0/8\"]\n");
    let server = start(&site);
    // Unchanged: no complaint.
    server.signal("HUP");
    // The first reload must have compared the rules before the file changes.
    assert!(
        server.log_contains("SIGHUP: reload done"),
        "{}",
        server.log_text()
    );
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(&site.config, text.replace("127.0.0.0/8", "198.51.100.0/24")).unwrap();
    server.signal("HUP");
    assert!(
        server.log_contains("access rules changed: restart mirrorbox to apply them"),
        "{}",
        server.log_text()
    );
    // Said once: for the second SIGHUP, not the first (signals are handled one at a time).
    assert_eq!(
        server
            .log_text()
            .matches("access rules changed: restart mirrorbox")
            .count(),
        1,
        "{}",
        server.log_text()
    );
    // The running rules stay as they were (no half-applied change).
    assert_eq!(fetch(&server.url("/private/sub/data.txt"), &[]).status, 403);
}
