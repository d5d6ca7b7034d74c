//! Unit tests of `[[access]]` decisions, credential checks and the status reader.

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::HeaderValue;
use sha2::Sha256;

use super::verify::{Verifier, PER_ADDRESS_MAX, WAITING_MAX};
use super::*;
use crate::config::Config;

fn config(access: &str, dir: &Path) -> Config {
    let text = format!(
        "data_dir = \"d\"\n[[source]]\nid = \"ent\"\nkind = \"dir\"\nmount = \"/debian/pve-enterprise\"\npath = \"/srv\"\n[[source]]\nid = \"ent2\"\nkind = \"dir\"\nmount = \"/debian/pve-enterprise\"\npath = \"/srv\"\n[[source]]\nid = \"free\"\nkind = \"dir\"\nmount = \"/debian/pve\"\npath = \"/srv\"\n[[source]]\nid = \"root\"\nkind = \"dir\"\nmount = \"/\"\npath = \"/srv\"\n{access}"
    );
    let text = text.replace("HTPASSWD", &dir.join("htpasswd").display().to_string());
    Config::parse(&text, Path::new("test.toml")).unwrap()
}

fn basic(user: &str, password: &str) -> HeaderValue {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

#[tokio::test]
async fn longest_prefix_on_segment_boundaries_and_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/debian/pve-enterprise\"\ndeny = [\"127.0.0.0/8\"]\n[[access]]\npath = \"/debian/pve-enterprise/open\"\n",
        dir.path(),
    ))
    .unwrap();
    let open = Decision::Allowed { restricted: false };
    for key in [
        "/debian/pve-enterprise",
        "/debian/pve-enterprise/dists/bookworm/InRelease",
        "/debian/pve-enterprise/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab",
        "/.snapshots/ent/0123456789abcdef/dists/bookworm/InRelease",
        "/.snapshots/ent2/0123456789abcdef/pool/x.deb",
        "/.snapshots/ent/0123456789abcdef",
        "/.snapshots/ent",
    ] {
        assert_eq!(
            access.check(key, LOCAL, None).await,
            Decision::Forbidden,
            "{key}"
        );
    }
    for key in [
        "/debian/pve",
        "/debian/pve-enterprise-x",
        "/debian/pve-enterprise/open/x",
        "/.snapshots/ent/0123456789abcdef/open/x",
        "/.snapshots/free/0123456789abcdef/dists/x",
        "/.snapshots",
        "/.snapshots/unknown/x",
        "/",
        "/.status",
    ] {
        assert_eq!(access.check(key, LOCAL, None).await, open, "{key}");
    }
}

#[tokio::test]
async fn addresses_then_passwords() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/\"\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.9.0.0/16\"]\n[[access]]\npath = \"/.status\"\nhtpasswd = \"HTPASSWD\"\nrealm = \"Status\"\n",
        dir.path(),
    ))
    .unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let restricted = Decision::Allowed { restricted: true };
    assert_eq!(access.check("/x", ip("10.1.2.3"), None).await, restricted);
    assert_eq!(
        access.check("/x", ip("::ffff:10.1.2.3"), None).await,
        restricted
    );
    assert_eq!(
        access.check("/x", ip("2001:db8::1"), None).await,
        restricted
    );
    assert_eq!(
        access.check("/x", ip("10.9.2.3"), None).await,
        Decision::Forbidden
    );
    assert_eq!(
        access.check("/x", ip("::ffff:10.9.2.3"), None).await,
        Decision::Forbidden
    );
    assert_eq!(access.check("/x", LOCAL, None).await, Decision::Forbidden);
    assert_eq!(
        access.check("/x", ip("::1"), None).await,
        Decision::Forbidden
    );

    let Decision::Unauthorized(challenge) = access.check("/.status.json", LOCAL, None).await else {
        panic!("no challenge");
    };
    assert_eq!(challenge, "Basic realm=\"Status\", charset=\"UTF-8\"");
    for header in [
        basic("alice", "wrong"),
        basic("bob", "right"),
        HeaderValue::from_static("Bearer abc"),
        HeaderValue::from_static("Basic !!!"),
    ] {
        assert!(matches!(
            access.check("/.status", LOCAL, Some(&header)).await,
            Decision::Unauthorized(_)
        ));
    }
    let good = basic("alice", "right");
    assert_eq!(
        access.check("/.status.html", LOCAL, Some(&good)).await,
        restricted
    );
    // Remembered: the same answer without another bcrypt run.
    assert_eq!(
        access.check("/.status", LOCAL, Some(&good)).await,
        restricted
    );
    assert_eq!(access.verifier.lock().len(), 1);
    let lower =
        HeaderValue::from_str(&good.to_str().unwrap().replacen("Basic", "basic", 1)).unwrap();
    assert_eq!(
        access.check("/.status", LOCAL, Some(&lower)).await,
        restricted
    );

    // A reload that fails keeps the users; one that works replaces them.
    std::fs::remove_file(dir.path().join("htpasswd")).unwrap();
    access.reload();
    assert_eq!(
        access.check("/.status", LOCAL, Some(&good)).await,
        restricted
    );
    let hash = bcrypt::hash("new", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("carol:{hash}\n")).unwrap();
    access.reload();
    assert!(matches!(
        access.check("/.status", LOCAL, Some(&good)).await,
        Decision::Unauthorized(_)
    ));
    assert_eq!(
        access
            .check("/.status", LOCAL, Some(&basic("carol", "new")))
            .await,
        restricted
    );
}

#[tokio::test]
async fn a_flood_of_bad_passwords_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
        dir.path(),
    ))
    .unwrap();
    let slots = access.verifier.slots.available_permits();
    let flood = 200;
    let bad: Vec<HeaderValue> = (0..flood)
        .map(|i| basic("alice", &format!("guess{i}")))
        .collect();
    // Each from its own address: the per-address bound is another test's.
    let peers: Vec<IpAddr> = (0..flood)
        .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(10, 0, (i / 256) as u8, i as u8)))
        .collect();
    let answers = futures_util::future::join_all(
        bad.iter()
            .zip(&peers)
            .map(|(h, peer)| access.check("/x", *peer, Some(h))),
    )
    .await;
    let busy = answers.iter().filter(|a| **a == Decision::Busy).count();
    let refused = answers
        .iter()
        .filter(|a| matches!(a, Decision::Unauthorized(_)))
        .count();
    assert_eq!(busy + refused, flood);
    assert_eq!(
        busy,
        flood.saturating_sub(slots + WAITING_MAX),
        "{slots} slots"
    );
    // Nothing is left waiting, and a good password gets through afterwards.
    assert_eq!(access.verifier.waiting.load(Ordering::Relaxed), 0);
    assert_eq!(
        access
            .check("/x", LOCAL, Some(&basic("alice", "right")))
            .await,
        Decision::Allowed { restricted: true }
    );
}

#[tokio::test]
async fn ipv4_mapped_rules_match_ipv4_clients() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/\"\ndeny = [\"::ffff:203.0.113.5\", \"::ffff:198.51.100.0/120\"]\n",
        dir.path(),
    ))
    .unwrap();
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    for peer in [
        "203.0.113.5",
        "::ffff:203.0.113.5",
        "198.51.100.9",
        "::ffff:198.51.100.9",
    ] {
        assert_eq!(
            access.check("/x", ip(peer), None).await,
            Decision::Forbidden,
            "{peer}"
        );
    }
    assert_eq!(
        access.check("/x", ip("203.0.113.6"), None).await,
        Decision::Allowed { restricted: false }
    );
}

#[tokio::test]
async fn over_long_credentials_are_refused_without_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let long = "x".repeat(CREDENTIAL_MAX + 1);
    let hash = bcrypt::hash(&long[..70], 4).unwrap();
    std::fs::write(
        dir.path().join("htpasswd"),
        format!("alice:{hash}\n{long}:{hash}\n"),
    )
    .unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
        dir.path(),
    ))
    .unwrap();
    // bcrypt only reads the first 72 bytes: without the bound this long password would
    // pass. With it, neither it nor a long user name reaches a hash.
    for header in [basic("alice", &long), basic(&long, &long[..70])] {
        assert!(matches!(
            access.check("/x", LOCAL, Some(&header)).await,
            Decision::Unauthorized(_)
        ));
    }
    assert_eq!(
        access
            .check("/x", LOCAL, Some(&basic("alice", &long[..70])))
            .await,
        Decision::Allowed { restricted: true }
    );
}

#[tokio::test]
async fn one_address_cannot_fill_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
        dir.path(),
    ))
    .unwrap();
    let bad: Vec<HeaderValue> = (0..20)
        .map(|i| basic("alice", &format!("guess{i}")))
        .collect();
    // One IPv4 address, and many addresses of one IPv6 /64.
    let v6 = |i: usize| format!("2001:db8:1:2::{i:x}").parse::<IpAddr>().unwrap();
    for peers in [vec![LOCAL; 20], (1..=20).map(v6).collect::<Vec<_>>()] {
        let answers = futures_util::future::join_all(
            bad.iter()
                .zip(&peers)
                .map(|(h, peer)| access.check("/x", *peer, Some(h))),
        )
        .await;
        let busy = answers.iter().filter(|a| **a == Decision::Busy).count();
        assert_eq!(busy, 20 - PER_ADDRESS_MAX);
        assert!(access.verifier.per_address.lock().unwrap().is_empty());
    }
    // Another address is not held up by them.
    let other = "2001:db8:1:3::1".parse::<IpAddr>().unwrap();
    assert_eq!(
        access
            .check("/x", other, Some(&basic("alice", "right")))
            .await,
        Decision::Allowed { restricted: true }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_verification_is_not_undone() {
    let dir = tempfile::tempdir().unwrap();
    // Slow enough that the reload surely lands while it runs.
    let hash = bcrypt::hash("old", 12).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let access = Arc::new(
        Access::load(&config(
            "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
            dir.path(),
        ))
        .unwrap(),
    );
    let slots = access.verifier.slots.available_permits();
    let old = basic("alice", "old");
    let running = {
        let access = access.clone();
        let old = old.clone();
        tokio::spawn(async move { access.check("/x", LOCAL, Some(&old)).await })
    };
    while access.verifier.slots.available_permits() == slots {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    // The password is revoked while the verification that read the old file runs.
    let hash = bcrypt::hash("new", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    access.reload();
    assert_eq!(
        running.await.unwrap(),
        Decision::Allowed { restricted: true }
    );
    assert!(matches!(
        access.check("/x", LOCAL, Some(&old)).await,
        Decision::Unauthorized(_)
    ));
}

#[test]
fn remembered_keys_depend_on_a_process_secret() {
    let a = Verifier::new();
    let b = Verifier::new();
    assert_eq!(a.key(0, "alice", b"pw"), a.key(0, "alice", b"pw"));
    assert_ne!(a.key(0, "alice", b"pw"), b.key(0, "alice", b"pw"));
    // Not the plain hash an offline guesser could recompute.
    use sha2::Digest;
    let mut plain = Sha256::new();
    plain.update(0u32.to_be_bytes());
    plain.update(b"alice:pw");
    let plain: [u8; 32] = plain.finalize().into();
    assert_ne!(a.key(0, "alice", b"pw"), plain);
}

#[tokio::test]
async fn may_read_all_of_looks_below_the_mount() {
    let dir = tempfile::tempdir().unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/debian/pve/secret\"\ndeny = [\"127.0.0.0/8\"]\n[[access]]\npath = \"/.metrics\"\ndeny = [\"127.0.0.0/8\"]\n",
        dir.path(),
    ))
    .unwrap();
    let other = "192.0.2.1".parse::<IpAddr>().unwrap();
    let mut local = access.reader(LOCAL, None);
    assert!(!local.may_read_all_of("/debian/pve").await);
    assert!(!local.may_read_all_of("/").await);
    assert!(!local.may_read_all_of("/debian/pve/secret/x").await);
    assert!(local.may_read_all_of("/debian/pve-enterprise").await);
    assert!(
        access
            .reader(other, None)
            .may_read_all_of("/debian/pve")
            .await
    );
    assert!(
        Access::open()
            .reader(LOCAL, None)
            .may_read_all_of("/")
            .await
    );
}

#[tokio::test]
async fn a_status_reader_verifies_once_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("right", 4).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
    let access = Access::load(&config(
        "[[access]]\npath = \"/debian/pve\"\nhtpasswd = \"HTPASSWD\"\n[[access]]\npath = \"/debian/pve-enterprise\"\nhtpasswd = \"HTPASSWD\"\n",
        dir.path(),
    ))
    .unwrap();
    let wrong = basic("alice", "wrong");
    let mut reader = access.reader(LOCAL, Some(&wrong));
    assert!(!reader.may_read_all_of("/debian/pve").await);
    assert!(!reader.may_read_all_of("/debian/pve-enterprise").await);
    assert_eq!(reader.verified.len(), 1);
    assert_eq!(reader.verifications, 1);
    let right = basic("alice", "right");
    let mut reader = access.reader(LOCAL, Some(&right));
    assert!(reader.may_read_all_of("/debian/pve").await);
    assert!(reader.may_read_all_of("/debian/pve-enterprise").await);
    assert_eq!(reader.verifications, 1);
}

#[test]
fn a_missing_htpasswd_file_names_config_rule_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let Err(e) = Access::load(&config(
        "[[access]]\npath = \"/debian\"\nhtpasswd = \"HTPASSWD\"\n",
        dir.path(),
    )) else {
        panic!("loaded without its file");
    };
    let message = e.to_string();
    for part in [
        "test.toml",
        "[[access]] #1 (path \"/debian\")",
        "`htpasswd`",
        "htpasswd",
    ] {
        assert!(message.contains(part), "{message}");
    }
}

#[tokio::test]
async fn no_rules_allow_everything() {
    let access = Access::open();
    assert!(!access.has_rules());
    assert_eq!(
        access.check("/anything", LOCAL, None).await,
        Decision::Allowed { restricted: false }
    );
}
