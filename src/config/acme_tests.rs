//! `[server.acme]`: defaults, and a message naming the section and the key for each mistake.

use std::path::Path;

use crate::acme::settings::{LETSENCRYPT, LETSENCRYPT_STAGING};
use crate::acme::Challenge;
use crate::config::Config;

const LISTENERS: &str = "http = [\"127.0.0.1:80\"]\nhttps = [\"127.0.0.1:443\"]\n";

fn parse(server: &str) -> Result<Config, String> {
    let text = format!("data_dir = \"d\"\n[server]\n{server}");
    Config::parse(&text, Path::new("test.toml")).map_err(|e| e.to_string())
}

fn acme(keys: &str) -> Result<Config, String> {
    parse(&format!("{LISTENERS}[server.acme]\n{keys}"))
}

#[test]
fn defaults() {
    let config = acme("domains = [\"Mirror.Example.org\"]\n").unwrap();
    let settings = config.server.acme.expect("acme settings");
    assert_eq!(settings.domains, vec!["mirror.example.org"]);
    assert!(settings.contact.is_empty());
    assert_eq!(settings.directory, LETSENCRYPT);
    assert_eq!(settings.ca_file, None);
    assert!(settings.external_account.is_none());
    assert_eq!(
        settings.challenges,
        vec![Challenge::TlsAlpn01, Challenge::Http01]
    );
    assert!((settings.renewal_window_ratio - 1.0 / 3.0).abs() < 1e-9);
    assert!(config.server.tls.is_none());
}

#[test]
fn all_keys() {
    let config = acme(
        "domains = [\"a.example.org\", \"b.example.org\"]\ncontact = \"mailto:admin@example.org\"\ndirectory = \"https://127.0.0.1:14000/dir\"\nca_file = \"/etc/ca.pem\"\nchallenges = [\"http-01\"]\nrenewal_window_ratio = 0.5\n[server.acme.external_account]\nkid = \"kid-1\"\nhmac_key = \"zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W\"\n",
    )
    .unwrap();
    let settings = config.server.acme.unwrap();
    assert_eq!(settings.domains, vec!["a.example.org", "b.example.org"]);
    assert_eq!(settings.contact, vec!["mailto:admin@example.org"]);
    assert_eq!(settings.directory, "https://127.0.0.1:14000/dir");
    assert_eq!(settings.ca_file.as_deref(), Some(Path::new("/etc/ca.pem")));
    assert_eq!(settings.challenges, vec![Challenge::Http01]);
    assert_eq!(settings.renewal_window_ratio, 0.5);
    let eab = settings.external_account.unwrap();
    assert_eq!(eab.kid, "kid-1");
    assert!(
        !format!("{eab:?}").contains("zWND"),
        "the MAC key is not logged"
    );
}

#[test]
fn directory_names_and_contact_list() {
    let staging = acme("domains = [\"a.example.org\"]\ndirectory = \"letsencrypt-staging\"\ncontact = [\"mailto:a@example.org\", \"mailto:b@example.org\"]\n").unwrap();
    let settings = staging.server.acme.unwrap();
    assert_eq!(settings.directory, LETSENCRYPT_STAGING);
    assert_eq!(settings.contact.len(), 2);
    let production = acme("domains = [\"a.example.org\"]\ndirectory = \"letsencrypt\"\n").unwrap();
    assert_eq!(production.server.acme.unwrap().directory, LETSENCRYPT);
}

#[test]
fn default_challenges_keep_those_a_listener_answers() {
    let config = parse(
        "http = []\nhttps = [\"127.0.0.1:443\"]\n[server.acme]\ndomains = [\"a.example.org\"]\n",
    )
    .unwrap();
    assert_eq!(
        config.server.acme.unwrap().challenges,
        vec![Challenge::TlsAlpn01]
    );
}

#[test]
fn mistakes_name_section_and_key() {
    let d = "domains = [\"a.example.org\"]\n";
    let cases: Vec<(String, &str, &str)> = vec![
        ("".into(), "[server.acme]", "domains"),
        ("domains = []\n".into(), "[server.acme]", "domains"),
        (
            "domains = [\"192.0.2.1\"]\n".into(),
            "[server.acme] key `domains`",
            "IP address",
        ),
        (
            "domains = [\"*.example.org\"]\n".into(),
            "[server.acme] key `domains`",
            "wildcard",
        ),
        (
            "domains = [\"localhost\"]\n".into(),
            "[server.acme] key `domains`",
            "fully qualified",
        ),
        (
            "domains = [\"a.example.org\", \"A.example.org\"]\n".into(),
            "[server.acme] key `domains`",
            "twice",
        ),
        (
            format!("{d}directory = \"http://127.0.0.1:14000/dir\"\n"),
            "[server.acme] key `directory`",
            "https://",
        ),
        (
            format!("{d}directory = \"letsencrypt-prod\"\n"),
            "[server.acme] key `directory`",
            "letsencrypt-staging",
        ),
        (
            format!("{d}challenges = [\"dns-01\"]\n"),
            "[server.acme] key `challenges`",
            "dns-01",
        ),
        (
            format!("{d}challenges = []\n"),
            "[server.acme] key `challenges`",
            "at least one",
        ),
        (
            format!("{d}renewal_window_ratio = 1.0\n"),
            "[server.acme] key `renewal_window_ratio`",
            "between 0 and 1",
        ),
        (
            format!("{d}renewal_window_ratio = 0.0\n"),
            "[server.acme] key `renewal_window_ratio`",
            "between 0 and 1",
        ),
        (
            format!("{d}contact = \"admin@example.org\"\n"),
            "[server.acme] key `contact`",
            "mailto:",
        ),
        (
            format!("{d}contact = [\"mailto:a@example.org\", 5]\n"),
            "[server.acme] key `contact`",
            "not a string",
        ),
        (
            format!("{d}contact = 5\n"),
            "[server.acme] key `contact`",
            "list of strings",
        ),
        (format!("{d}domain = \"x\"\n"), "[server.acme]", "domain"),
        (
            format!("{d}[server.acme.external_account]\nkid = \"k\"\nhmac_key = \"not base64!\"\n"),
            "[server.acme.external_account]",
            "hmac_key",
        ),
        (
            format!("{d}[server.acme.external_account]\nhmac_key = \"abcd\"\n"),
            "external_account",
            "`kid`",
        ),
    ];
    for (keys, place, detail) in cases {
        let message = acme(&keys).expect_err(&keys);
        assert!(message.contains("test.toml"), "{message}");
        assert!(message.contains(place), "{keys}: {message}");
        assert!(message.contains(detail), "{keys}: {message}");
    }
}

#[test]
fn challenges_need_their_listener() {
    let alpn_only = parse("http = [\"127.0.0.1:80\"]\nhttps = [\"127.0.0.1:443\"]\n[server.acme]\ndomains = [\"a.example.org\"]\nchallenges = [\"tls-alpn-01\"]\n");
    assert!(alpn_only.is_ok(), "{alpn_only:?}");
    let http_missing = parse("http = []\nhttps = [\"127.0.0.1:443\"]\n[server.acme]\ndomains = [\"a.example.org\"]\nchallenges = [\"http-01\"]\n").unwrap_err();
    assert!(
        http_missing.contains("[server.acme] key `challenges`"),
        "{http_missing}"
    );
    assert!(http_missing.contains("`http` listener"), "{http_missing}");
    let both_listed = parse("http = []\nhttps = [\"127.0.0.1:443\"]\n[server.acme]\ndomains = [\"a.example.org\"]\nchallenges = [\"tls-alpn-01\", \"http-01\"]\n").unwrap_err();
    assert!(both_listed.contains("`http-01`"), "{both_listed}");
}

#[test]
fn acme_needs_an_https_listener() {
    let message = parse("http = [\"127.0.0.1:80\"]\n[server.acme]\ndomains = [\"a.example.org\"]\nchallenges = [\"http-01\"]\n").unwrap_err();
    assert!(message.contains("[server.acme]"), "{message}");
    assert!(message.contains("`https` listener"), "{message}");
}

#[test]
fn tls_files_and_acme_exclude_each_other() {
    let message = parse("https = [\"127.0.0.1:443\"]\n[server.tls]\ncert = \"c\"\nkey = \"k\"\n[server.acme]\ndomains = [\"a.example.org\"]\n").unwrap_err();
    assert!(message.contains("[server.tls]"), "{message}");
    assert!(message.contains("[server.acme]"), "{message}");
    assert!(message.contains("both"), "{message}");
}

#[test]
fn https_without_certificate_names_both_ways() {
    let message = parse("https = [\"127.0.0.1:443\"]\n").unwrap_err();
    assert!(message.contains("[server] key `https`"), "{message}");
    assert!(message.contains("[server.tls]"), "{message}");
    assert!(message.contains("[server.acme]"), "{message}");
}

#[test]
fn tls_files_still_work() {
    let config =
        parse("https = [\"127.0.0.1:443\"]\n[server.tls]\ncert = \"c\"\nkey = \"k\"\n").unwrap();
    assert!(config.server.tls.is_some());
    assert!(config.server.acme.is_none());
}
