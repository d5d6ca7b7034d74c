//! The layout Puavo clients assume, checked loudly: laptops fetch `/<image>`, `/rdiffs/…`
//! and `/torrents/…` at the server root over HTTPS, bootservers force HTTPS on the meta
//! files' urls. `check-config` and `serve` warn when a `puavo` source cannot work for them
//! (naming the source, the key, the client and the fix), an `allow_…` key turns a warning
//! into a note, and `/.status` shows each check as a pass or fail line.

mod common;

use std::path::Path;

use common::{curl, Site};
use serde_json::Value;

/// A `puavo` source `images` building from `image_dir`, with `extra` keys.
fn puavo(image_dir: &Path, mount: &str, urlbase: &str, extra: &str) -> String {
    format!(
        "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"{mount}\"\nimage_dir = \"{}\"\nurlbase = \"{urlbase}\"\n{extra}\n",
        image_dir.display()
    )
}

/// `check-config` (with `--strict` if asked): (exit status, stdout and stderr together).
fn check_config(site: &Site, strict: bool) -> (Option<i32>, String) {
    let args: &[&str] = if strict {
        &["check-config", "--strict"]
    } else {
        &["check-config"]
    };
    let out = site.cli(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The lines of `text` that start with `WARNING`.
fn warnings(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("WARNING")).collect()
}

#[test]
fn a_mount_below_root_names_laptops_and_the_key() {
    let images = tempfile::tempdir().unwrap();
    let source = puavo(
        images.path(),
        "/puavo",
        "https://images.example.org/puavo",
        "torrents = true",
    );
    let site = Site::with(true, &source);
    let (status, text) = check_config(&site, false);
    let found = warnings(&text);
    assert_eq!(found.len(), 1, "one warning, for the mount: {text}");
    let line = found[0];
    for word in [
        "source `images`",
        "key `mount`",
        "laptops",
        "/rdiffs/",
        "mount = \"/\"",
        "allow_mount_below_root",
    ] {
        assert!(line.contains(word), "`{word}` not in: {line}");
    }
    // A warning leaves the exit status alone; --strict makes it fail.
    assert_eq!(status, Some(0), "{text}");
    let (strict, text) = check_config(&site, true);
    assert_eq!(strict, Some(1), "{text}");

    // Acknowledged: a note, no warning, and --strict passes.
    site.edit_config(
        "torrents = true",
        "torrents = true\nallow_mount_below_root = true",
    );
    let (strict, text) = check_config(&site, true);
    assert!(warnings(&text).is_empty(), "{text}");
    assert_eq!(strict, Some(0), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("note") && l.contains("allow_mount_below_root")),
        "{text}"
    );
}

#[test]
fn an_http_urlbase_names_bootservers_and_the_key() {
    let images = tempfile::tempdir().unwrap();
    let source = puavo(
        images.path(),
        "/",
        "http://images.example.org",
        "torrents = true",
    );
    let site = Site::with(true, &source);
    let (status, text) = check_config(&site, false);
    let found = warnings(&text);
    assert_eq!(found.len(), 1, "one warning, for the urlbase: {text}");
    for word in [
        "source `images`",
        "key `urlbase`",
        "bootservers",
        "web seed",
        "https://",
        "allow_http_urlbase",
    ] {
        assert!(found[0].contains(word), "`{word}` not in: {}", found[0]);
    }
    assert_eq!(status, Some(0), "{text}");

    site.edit_config(
        "torrents = true",
        "torrents = true\nallow_http_urlbase = true",
    );
    let (strict, text) = check_config(&site, true);
    assert!(warnings(&text).is_empty(), "{text}");
    assert_eq!(strict, Some(0), "{text}");
}

#[test]
fn no_https_names_both_clients_unless_a_tls_proxy_is_declared() {
    let images = tempfile::tempdir().unwrap();
    let source = puavo(
        images.path(),
        "/",
        "https://images.example.org",
        "torrents = true",
    );
    let site = Site::with(false, &source);
    let (_, text) = check_config(&site, false);
    let found = warnings(&text);
    assert_eq!(found.len(), 1, "one warning, for HTTPS: {text}");
    for word in [
        "source `images`",
        "laptops",
        "bootservers",
        "[server] https",
        "behind_tls_proxy",
    ] {
        assert!(found[0].contains(word), "`{word}` not in: {}", found[0]);
    }

    site.edit_config(
        "torrents = true",
        "torrents = true\nbehind_tls_proxy = true",
    );
    let (strict, text) = check_config(&site, true);
    assert!(warnings(&text).is_empty(), "{text}");
    assert_eq!(strict, Some(0), "{text}");
}

#[test]
fn a_correct_image_server_config_is_clean() {
    let images = tempfile::tempdir().unwrap();
    let source = puavo(
        images.path(),
        "/",
        "https://images.example.org",
        "torrents = true",
    );
    let site = Site::with(true, &source);
    let (strict, text) = check_config(&site, true);
    assert_eq!(strict, Some(0), "{text}");
    assert!(warnings(&text).is_empty(), "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
}

#[test]
fn serve_logs_the_warning_at_start() {
    let images = tempfile::tempdir().unwrap();
    let source = puavo(
        images.path(),
        "/puavo",
        "http://images.example.org/puavo",
        "",
    );
    let site = Site::with(true, &source);
    let server = site.start_without_sync();
    let log = server.log_text();
    assert!(server.log_contains("allow_mount_below_root"), "{log}");
    let log = server.log_text();
    let warned = |word: &str| {
        log.lines()
            .any(|l| l.contains("WARN") && l.contains(word) && l.contains("images"))
    };
    assert!(warned("key `mount`") && warned("laptops"), "{log}");
    assert!(warned("key `urlbase`") && warned("bootservers"), "{log}");
}

#[test]
fn the_status_page_shows_each_check_as_pass_or_fail() {
    let images = tempfile::tempdir().unwrap();
    let other = tempfile::tempdir().unwrap();
    // `images` is right in every way; `bootonly` is a bootserver-only mirror below the root
    // with an acknowledged http urlbase and no torrents.
    let extra = format!(
        "{}{}",
        puavo(
            images.path(),
            "/",
            "https://images.example.org",
            "torrents = true"
        ),
        puavo(
            other.path(),
            "/boot",
            "http://boot.example.org/boot",
            "allow_mount_below_root = true\nallow_http_urlbase = true\ntorrents = false"
        )
        .replacen("id = \"images\"", "id = \"bootonly\"", 1),
    );
    let site = Site::with(true, &extra);
    let server = site.start_without_sync();
    let cacert = site.cert();
    let cacert = cacert.to_str().unwrap();
    let get = |path: &str| {
        let out = curl(&["--fail", "--cacert", cacert, &server.https_url(path)]);
        assert!(out.status.success(), "{path}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let status: Value = serde_json::from_str(&get("/.status.json")).unwrap();
    let checks = |id: &str| -> Vec<(String, bool, Value)> {
        let source = status["sources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {status}"));
        source["client"]["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("no checks: {source}"))
            .iter()
            .map(|c| {
                (
                    c["check"].as_str().unwrap().to_string(),
                    c["pass"].as_bool().unwrap(),
                    c["acknowledged_by"].clone(),
                )
            })
            .collect()
    };
    let all = |pass: [bool; 4]| -> Vec<(String, bool)> {
        [
            "mounted_at_root",
            "served_over_https",
            "urlbase_https",
            "torrents",
        ]
        .iter()
        .zip(pass)
        .map(|(name, pass)| (name.to_string(), pass))
        .collect()
    };
    let without_ack = |list: Vec<(String, bool, Value)>| -> Vec<(String, bool)> {
        list.into_iter().map(|(n, p, _)| (n, p)).collect()
    };
    assert_eq!(without_ack(checks("images")), all([true; 4]));
    let boot = checks("bootonly");
    assert_eq!(without_ack(boot.clone()), all([false, true, false, false]));
    assert_eq!(boot[0].2, "allow_mount_below_root");
    assert_eq!(boot[2].2, "allow_http_urlbase");
    assert!(boot[1].2.is_null() && boot[3].2.is_null(), "{boot:?}");
    // The `dir` source has no client checks.
    let site_source = &status["sources"][0];
    assert_eq!(site_source["id"], "site");
    assert!(
        site_source["client"].get("checks").is_none(),
        "{site_source}"
    );

    // The HTML: one line per check, marked pass or fail.
    let html = get("/.status");
    let section = |id: &str| -> String {
        let start = html
            .find(&format!("data-source=\"{id}\""))
            .unwrap_or_else(|| panic!("{id} not in {html}"));
        let end = html[start..].find("</section>").unwrap() + start;
        html[start..end].to_string()
    };
    let marks = |id: &str| -> (usize, usize) {
        let s = section(id);
        (
            s.matches("class=\"check pass\"").count(),
            s.matches("class=\"check fail\"").count(),
        )
    };
    assert_eq!(marks("images"), (4, 0), "{}", section("images"));
    assert_eq!(marks("bootonly"), (1, 3), "{}", section("bootonly"));
    assert!(section("bootonly").contains("allow_mount_below_root"));
    assert_eq!(marks("site"), (0, 0));
}
