//! The shipped configuration (`config/mirrorbox.toml`) as a new user starts it, never with
//! the network: its apt source pointed at a closed port on 127.0.0.1, or its keyring missing.
//! And `mirrorbox sources-list`: the line it prints works for the real `apt-get`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::{Server, Site, BIN};
use serde_json::Value;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config");
const UPSTREAM: &str = "http://deb.debian.org/debian";
const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// The shipped `config/` copied into a temp folder (the folder a user starts in), its text
/// changed by `edits` (each `from` must be there), the listener on port 0.
fn shipped_copy(edits: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("public")).unwrap();
    std::fs::copy(
        Path::new(SHIPPED).join("public/README.txt"),
        config.join("public/README.txt"),
    )
    .unwrap();
    let mut text = std::fs::read_to_string(Path::new(SHIPPED).join("mirrorbox.toml")).unwrap();
    for (from, to) in [("\"127.0.0.1:8080\"", "\"127.0.0.1:0\"")]
        .iter()
        .chain(edits)
    {
        assert!(text.contains(from), "`{from}` is not in the shipped config");
        text = text.replace(from, to);
    }
    std::fs::write(config.join("mirrorbox.toml"), text).unwrap();
    dir
}

/// A URL nothing listens on: what an upstream is to a host without network.
fn closed_upstream() -> String {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    format!("http://127.0.0.1:{port}/debian")
}

/// Runs a command of the binary in `dir` with the config at its relative path, as a user
/// who followed the README does.
fn cli_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(dir)
        .args(&args[..1])
        .args(["--config", "config/mirrorbox.toml"])
        .args(&args[1..])
        .output()
        .expect("run mirrorbox")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `serve` started in `dir`: returns once it listens and the first sync ended (the folder's).
fn serve_in(dir: &Path) -> Server {
    let mut command = Command::new(BIN);
    command
        .current_dir(dir)
        .args(["serve", "--config", "config/mirrorbox.toml"]);
    Server::spawn(command, false, false)
        .unwrap_or_else(|log| panic!("server did not start:\n{log}"))
}

/// `/.status.json`'s entry of source `id`.
fn source_status(server: &Server, id: &str) -> Value {
    let body = common::body_at(server, "/.status.json");
    let status: Value = serde_json::from_slice(&body).unwrap();
    status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {status}"))
        .clone()
}

/// Waits (up to a minute: the fetcher retries for a while) until source `id` has run and
/// is no longer syncing; its status entry.
fn after_first_run(server: &Server, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let source = source_status(server, id);
        if !source["last_run"].is_null() && source["state"] != "syncing" {
            return source;
        }
        assert!(
            Instant::now() < deadline,
            "{id} never finished a run: {source}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_shipped_config_checks_clean() {
    let dir = shipped_copy(&[]);
    let out = cli_in(dir.path(), &["check-config"]);
    let text = text(&out);
    if !Path::new(KEYRING).exists() {
        // Not a Debian host: the warning the keyring test below looks at.
        assert!(text.contains("debian-archive-keyring package"), "{text}");
        return;
    }
    assert!(out.status.success(), "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(
        text.contains("source debian_updates (apt): served at /debian/"),
        "{text}"
    );
    assert!(
        text.contains("source files (dir): served at /files/"),
        "{text}"
    );
    // And the line an apt client uses, as the config's comment says.
    let out = cli_in(dir.path(), &["sources-list"]);
    let listed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", self::text(&out));
    assert!(
        listed.contains(&format!(
            "deb [arch=amd64 signed-by={KEYRING}] http://127.0.0.1:0/debian bookworm-updates main"
        )),
        "{listed}"
    );
}

#[test]
fn offline_the_folder_is_served_and_the_status_says_why_and_what_to_change() {
    let upstream = closed_upstream();
    let dir = shipped_copy(&[(UPSTREAM, &upstream)]);
    let server = serve_in(dir.path());

    let debian = after_first_run(&server, "debian_updates");
    assert_eq!(debian["state"], "failed", "{debian}");
    let error = debian["last_run"]["error"].as_str().unwrap();
    // The network error with the host it could not reach, then where to point the source.
    assert!(error.contains("cannot reach 127.0.0.1 ("), "{error}");
    assert!(error.contains(&upstream), "{error}");
    assert!(
        error.contains(
            "no network? point `repository` of source `debian_updates` in config/mirrorbox.toml at a reachable mirror, or remove the source"
        ),
        "{error}"
    );
    // The log says the same.
    assert!(
        server.log_contains("point `repository` of source `debian_updates`"),
        "{}",
        server.log_text()
    );
    // The status page too.
    let page = String::from_utf8(common::body_at(&server, "/.status")).unwrap();
    assert!(page.contains("point `repository` of source"), "{page}");

    // The folder is served either way, and the process is still up.
    assert_eq!(after_first_run(&server, "files")["state"], "ok");
    let readme = common::body_at(&server, "/files/README.txt");
    let shipped = std::fs::read(Path::new(SHIPPED).join("public/README.txt")).unwrap();
    assert_eq!(readme, shipped);
    assert_eq!(common::status_at(&server, "/debian/"), "404");
    let mut server = server;
    assert!(server.child.try_wait().unwrap().is_none(), "serve ended");
    let log = server.log_text();
    assert!(!log.contains("panicked"), "{log}");
    // A few tries, then the sync fails until the source's next run: no storm of requests.
    let retries = log.matches("retrying").count();
    assert!((1..=5).contains(&retries), "{retries} retries: {log}");
}

#[test]
fn without_the_keyring_package_serve_starts_and_the_source_says_what_to_install() {
    let missing = "/nonexistent/keyrings/debian-archive-keyring.gpg";
    let dir = shipped_copy(&[(KEYRING, missing), (UPSTREAM, &closed_upstream())]);
    // check-config: a problem worth a non-zero status, not a refusal (that is exit status 2).
    let out = cli_in(dir.path(), &["check-config"]);
    let text = text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("install the debian-archive-keyring package or set `keys`"),
        "{text}"
    );

    let server = serve_in(dir.path());
    let debian = after_first_run(&server, "debian_updates");
    assert_eq!(debian["state"], "failed", "{debian}");
    let error = debian["last_run"]["error"].as_str().unwrap();
    assert!(
        error.contains("install the debian-archive-keyring package or set `keys`"),
        "{error}"
    );
    assert_eq!(after_first_run(&server, "files")["state"], "ok");
    assert_eq!(
        common::body_at(&server, "/files/README.txt"),
        std::fs::read(Path::new(SHIPPED).join("public/README.txt")).unwrap()
    );
    assert!(!server.log_text().contains("panicked"));
}

/// A fixture repository synced into a site whose apt source trusts `key`.
fn synced_fixture(repo: &AptRepo, key: &Path) -> (Upstream, Site, Server) {
    let upstream = Upstream::serve(repo.root());
    let line = format!("deb {} bookworm main", upstream.url("/"));
    let site = Site::with(false, &common::apt_source(&line, key, ""));
    let server = site.start_without_sync();
    let (ok, text) = site.cli_text(&["sync", "deb"]);
    assert!(ok, "{text}\n{}", server.log_text());
    (upstream, site, server)
}

/// The non-comment lines `sources-list` prints.
fn entries(site: &Site, args: &[&str]) -> Vec<String> {
    let out = site.cli(&[&["sources-list"], args].concat());
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// `apt-get update` and a download with `line` in sources.list, or (`file`) written as that
/// file of sources.list.d.
fn apt_installs(line: &str, file: Option<&str>) {
    let client = AptClient::new(if file.is_some() { "" } else { line });
    if let Some(name) = file {
        // A `.sources` file in sources.list.d, as a deb822 stanza is used.
        let parts = client_dir(&client).join("sources.list.d").join(name);
        std::fs::write(parts, line).unwrap();
    }
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "apt-get update with {line:?}: {text}");
    let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha"]);
    assert!(ok, "apt-get install with {line:?}: {text}");
}

/// The client's folder, from the `Dir::State=` option its command carries.
fn client_dir(client: &AptClient) -> PathBuf {
    let command = client.command();
    let state = command
        .get_args()
        .filter_map(|a| a.to_str())
        .find_map(|a| a.strip_prefix("Dir::State="))
        .expect("Dir::State");
    PathBuf::from(state)
}

#[test]
fn the_sources_list_line_works_for_apt_get() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite(
        "bookworm",
        "main",
        &[Pkg::new("alpha", "1.0", 5_000)],
        false,
        None,
    );
    let (_upstream, site, server) = synced_fixture(&repo, &repo.key());

    // From the listener in the config (port 0 there), and as the server is reached.
    let listed = entries(&site, &[]);
    assert_eq!(
        listed,
        [format!(
            "deb [arch=amd64 signed-by={}] http://127.0.0.1:0/debian bookworm main",
            repo.key().display()
        )]
    );
    let base = format!("http://{}", server.http);
    let line = entries(&site, &["deb", "--url", &base]);
    assert_eq!(
        line,
        [format!(
            "deb [arch=amd64 signed-by={}] {base}/debian bookworm main",
            repo.key().display()
        )]
    );
    apt_installs(&line[0], None);
    // The status page shows the same line.
    let status = source_status(&server, "deb");
    assert_eq!(status["client"]["sources_list"][0], line[0].as_str());

    // The same as a deb822 stanza.
    let out = site.cli(&["sources-list", "--deb822", "--url", &base]);
    let stanza = String::from_utf8(out.stdout).unwrap();
    assert!(stanza.contains("Signed-By: "), "{stanza}");
    apt_installs(&stanza, Some("mirror.sources"));
}

#[test]
fn an_armored_key_works_in_signed_by_as_it_is() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite(
        "bookworm",
        "main",
        &[Pkg::new("alpha", "1.0", 5_000)],
        false,
        None,
    );
    let armored = repo.gpg.public_armored.clone();
    let (_upstream, site, server) = synced_fixture(&repo, &armored);
    let base = format!("http://{}", server.http);
    let line = entries(&site, &["--url", &base]);
    assert_eq!(
        line,
        [format!(
            "deb [arch=amd64 signed-by={}] {base}/debian bookworm main",
            armored.display()
        )]
    );
    apt_installs(&line[0], None);
}

#[test]
fn sources_list_refuses_unknown_and_non_apt_sources() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite(
        "bookworm",
        "main",
        &[Pkg::new("alpha", "1.0", 5_000)],
        false,
        None,
    );
    let line = "deb http://127.0.0.1:9/debian bookworm main";
    let site = Site::with(false, &common::apt_source(line, &repo.key(), ""));
    for (name, says) in [
        ("nosuch", "no source `nosuch` in"),
        ("site", "source `site` in"),
    ] {
        let out = site.cli(&["sources-list", name]);
        let text = text(&out);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(text.contains(says), "{text}");
        assert!(text.contains("`deb`"), "names the apt sources: {text}");
        assert!(out.stdout.is_empty(), "{text}");
    }
}

#[test]
fn every_remote_kind_names_its_upstream_key_when_the_host_is_unreachable() {
    let url = closed_upstream();
    let extra = format!(
        "[[source]]\nid = \"iso\"\nkind = \"files\"\nmount = \"/iso\"\nurl = \"{url}/\"\nretries = 0\n"
    );
    let site = Site::with(false, &extra);
    let (ok, text) = site.cli_text(&["sync", "iso"]);
    assert!(!ok, "{text}");
    let config = site.config.display().to_string();
    assert!(text.contains("cannot reach 127.0.0.1 ("), "{text}");
    assert!(
        text.contains(&format!(
            "no network? point `url` of source `iso` in {config} at a reachable mirror"
        )),
        "{text}"
    );
}
