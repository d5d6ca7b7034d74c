//! An upstream whose HTTPS certificate is not trusted: the sync fails at once (a refused
//! certificate is not a network blip worth retrying), says why, and points to `ca_file`,
//! instead of advising to pick another mirror as for a host that cannot be reached.

mod common;

use common::Site;

#[test]
fn an_untrusted_upstream_certificate_fails_at_once_and_names_ca_file() {
    let upstream = Site::with(true, "");
    std::fs::write(upstream.public().join("a.txt"), "hello\n").unwrap();
    let server = upstream.start();
    let port = server.https.expect("https listener").port();
    let mirror = Site::with(
        false,
        &format!(
            "[[source]]\nid = \"mirror\"\nkind = \"files\"\nmount = \"/mirror\"\nurl = \"https://localhost:{port}/files/\"\n"
        ),
    );
    let (ok, text) = mirror.cli_text(&["sync", "mirror"]);
    assert!(!ok, "{text}");
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("`ca_file`"), "{text}");
    assert!(!text.contains("no network?"), "{text}");
    assert_eq!(text.matches("retrying").count(), 0, "{text}");
}
