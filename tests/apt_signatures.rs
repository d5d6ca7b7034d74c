//! OpenPGP verification with real data: every InRelease in apt's lists directory verifies
//! against the Debian archive keyring and fails against an unrelated key; fixtures signed by
//! the real `gpg` (binary and armored keys, clear-signed and detached) verify, and any change
//! to the signed text is caught. Then the signature policy, each rule through a real sync of a
//! generated repository: a refused signature fails the sync with the rule's name and the
//! published snapshot stays; the `weak_crypto` relaxations accept what they name, never MD5.

mod common;

use std::path::{Path, PathBuf};

use common::aptrepo::{AptRepo, Layout, Pkg};
use common::gpg::{now, Gpg, Signing};
use common::upstream::Upstream;
use common::Site;
use mirrorbox::sync::apt::keyring::{Keyring, VerifyError};

const DEBIAN_KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

fn apt_lists() -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/var/lib/apt/lists")
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with("_InRelease"))
                // Only Debian's own archives: a host may also list third-party repositories
                // (signed by their own keys), which this test is not about.
                .filter(|p| {
                    std::fs::read_to_string(p)
                        .map(|text| text.lines().any(|l| l == "Origin: Debian"))
                        .unwrap_or(false)
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

#[test]
fn debian_inrelease_files_verify_against_the_debian_keyring_only() {
    let lists = apt_lists();
    assert!(
        !lists.is_empty(),
        "no InRelease files in /var/lib/apt/lists: run `apt-get update` first (tests/run.sh does)"
    );
    assert!(
        Path::new(DEBIAN_KEYRING).exists(),
        "install debian-archive-keyring"
    );
    let debian = Keyring::load(&[PathBuf::from(DEBIAN_KEYRING)]).unwrap();
    let fixture = common::gpg::Gpg::new("fixture", "ed25519");
    let stranger = Keyring::load(std::slice::from_ref(&fixture.public)).unwrap();
    for file in &lists {
        let text = std::fs::read_to_string(file).unwrap();
        let signed = debian
            .verify_clearsigned(&text)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(signed.contains("SHA256:"), "{}", file.display());
        match stranger.verify_clearsigned(&text) {
            Err(VerifyError::UnknownKey { .. }) => {}
            other => panic!(
                "{}: expected an unknown-key error, got {other:?}",
                file.display()
            ),
        }
        // One changed byte in the signed text breaks it.
        let tampered = text.replacen("Origin: Debian", "Origin: Debiam", 1);
        assert_ne!(tampered, text);
        assert!(
            debian.verify_clearsigned(&tampered).is_err(),
            "{}",
            file.display()
        );
    }
    eprintln!("verified {} InRelease files", lists.len());
}

#[test]
fn gpg_signed_fixtures_verify_with_binary_and_armored_keys() {
    for algo in ["ed25519", "rsa3072"] {
        let gpg = common::gpg::Gpg::new("archive", algo);
        let dir = tempfile::tempdir().unwrap();
        let release = dir.path().join("Release");
        let text = "Origin: test\nDate: Sat, 10 Feb 2024 10:12:33 UTC\n- a dash line\nSHA256:\n 1111111111111111111111111111111111111111111111111111111111111111 1 main/binary-amd64/Packages\n";
        std::fs::write(&release, text).unwrap();
        gpg.sign_release(&release);
        let inrelease = std::fs::read_to_string(dir.path().join("InRelease")).unwrap();
        let detached = std::fs::read(dir.path().join("Release.gpg")).unwrap();
        for key in [&gpg.public, &gpg.public_armored] {
            let keyring = Keyring::load(std::slice::from_ref(key)).unwrap();
            assert_eq!(
                keyring.verify_clearsigned(&inrelease).unwrap(),
                text,
                "{algo} {}",
                key.display()
            );
            keyring.verify_detached(text.as_bytes(), &detached).unwrap();
            let changed = text.replace("test", "evil");
            let error = keyring
                .verify_detached(changed.as_bytes(), &detached)
                .unwrap_err();
            assert!(error.to_string().contains("bad signature"), "{error}");
            let changed_inrelease = inrelease.replace("Origin: test", "Origin: evil");
            let error = keyring.verify_clearsigned(&changed_inrelease).unwrap_err();
            assert!(error.to_string().contains("bad signature"), "{error}");
        }
        let other = common::gpg::Gpg::new("other", algo);
        let wrong = Keyring::load(std::slice::from_ref(&other.public)).unwrap();
        let error = wrong.verify_clearsigned(&inrelease).unwrap_err();
        assert!(matches!(error, VerifyError::UnknownKey { .. }), "{error}");
        assert!(error.to_string().contains("configured keys are"), "{error}");
    }
}

#[test]
fn unreadable_key_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.gpg");
    std::fs::write(&junk, b"not a key").unwrap();
    let error = Keyring::load(std::slice::from_ref(&junk)).err().unwrap();
    assert!(error.to_string().contains("junk.gpg"), "{error}");
    let missing = Keyring::load(&[dir.path().join("missing.gpg")])
        .err()
        .unwrap();
    assert!(missing.to_string().contains("missing.gpg"), "{missing}");
}

const DAY: i64 = 86_400;

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 2_000),
        Pkg::new("bravo", "2.1", 3_000),
    ]
}

fn more_packages() -> Vec<Pkg> {
    let mut list = packages();
    list.push(Pkg::new("charlie", "0.3", 1_000));
    list
}

/// A repository signed by `gpg` (its main key named `archive`), one suite built.
fn repo_with(gpg: Gpg) -> AptRepo {
    let repo = AptRepo {
        dir: tempfile::tempdir().unwrap(),
        gpg,
        layout: Layout::Debian,
    };
    repo.suite("bookworm", "main", &packages(), false, None);
    repo
}

/// A site with an apt source `deb` trusting `keys`, `extra` appended to the source.
fn apt_site(upstream: &Upstream, keys: &[&Path], extra: &str) -> Site {
    let keys: Vec<String> = keys
        .iter()
        .map(|k| format!("\"{}\"", k.display()))
        .collect();
    let source = format!(
        "[[source]]\nid = \"deb\"\nkind = \"apt\"\nmount = \"/debian\"\nrepository = \"deb {} bookworm main\"\narchitectures = [\"amd64\"]\nkeys = [{}]\nretries = 1\n{extra}\n",
        upstream.url("/"),
        keys.join(", ")
    );
    Site::with(false, &source)
}

/// `mirrorbox sync deb` without a server: (success, output).
fn sync(site: &Site) -> (bool, String) {
    site.cli_text(&["sync", "deb"])
}

fn snapshots(site: &Site) -> String {
    String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned()
}

/// Syncs once (accepted), re-signs the upstream the way `break_it` says, and checks the next
/// sync fails naming every text of `expect` while the published snapshot stays current.
/// Returns the upstream, for a second site that relaxes the rule.
fn refused(
    repo: &AptRepo,
    keys: &[&Path],
    break_it: impl FnOnce(&AptRepo),
    expect: &[&str],
) -> Upstream {
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, keys, "");
    let (ok, text) = sync(&site);
    assert!(ok, "the first sync should be accepted: {text}");
    let before = snapshots(&site);
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a newer Release Date
    break_it(repo);
    let (ok, text) = sync(&site);
    assert!(!ok, "the sync should be refused: {text}");
    for want in expect {
        assert!(text.contains(want), "expected `{want}` in: {text}");
    }
    eprintln!("refused as expected: {}", text.lines().next().unwrap_or(""));
    assert_eq!(before, snapshots(&site), "the published snapshot must stay");
    upstream
}

/// A site trusting `keys` with `weak_crypto` set to `relax` syncs `upstream`: accepted or not.
fn relaxed(upstream: &Upstream, keys: &[&Path], relax: &str) -> (bool, String) {
    let site = apt_site(upstream, keys, &format!("weak_crypto = {{ {relax} }}"));
    sync(&site)
}

fn resign(repo: &AptRepo, signing: Signing) {
    repo.gpg.set_signing(signing);
    repo.suite("bookworm", "main", &more_packages(), false, None);
}

fn archive(digest: &str) -> Signing {
    Signing {
        keys: vec!["archive".into()],
        digest: digest.into(),
        at: None,
    }
}

#[test]
fn sha1_signatures_are_refused_unless_allow_sha1() {
    // RSA: OpenPGP forbids SHA-1 with Ed25519 outright, whatever the policy.
    let repo = repo_with(Gpg::new("archive", "rsa3072"));
    let key = repo.key();
    let upstream = refused(
        &repo,
        &[&key],
        |repo| resign(repo, archive("SHA1")),
        &[
            &format!("signature by key 0x{}", repo.gpg.fingerprint()),
            "uses SHA-1 (weak_crypto.allow_sha1 relaxes this rule)",
        ],
    );
    let (ok, text) = relaxed(&upstream, &[&key], "allow_sha1 = true");
    assert!(ok, "allow_sha1 should accept a SHA-1 signature: {text}");
}

#[test]
fn a_relaxation_withdrawn_fails_the_next_sync_although_the_upstream_answers_304() {
    let repo = repo_with(Gpg::new("archive", "rsa3072"));
    resign(&repo, archive("SHA1"));
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(
        &upstream,
        &[&repo.key()],
        "weak_crypto = { allow_sha1 = true }",
    );
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let before = snapshots(&site);
    let config = std::fs::read_to_string(&site.config).unwrap();
    let strict = config.replace("weak_crypto = { allow_sha1 = true }", "");
    assert_ne!(config, strict);
    std::fs::write(&site.config, strict).unwrap();
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(text.contains("uses SHA-1"), "{text}");
    assert!(
        upstream.log().iter().any(|(_, status)| *status == 304),
        "{:?}",
        upstream.log()
    );
    assert_eq!(before, snapshots(&site), "the published snapshot must stay");
}

#[test]
fn md5_signatures_are_refused_whatever_weak_crypto_says() {
    // RSA, which OpenPGP libraries still verify with MD5 (Ed25519 refuses it by itself).
    let repo = repo_with(Gpg::new("archive", "rsa3072"));
    let key = repo.key();
    let upstream = refused(
        &repo,
        &[&key],
        |repo| resign(repo, archive("MD5")),
        &["uses MD5 (never accepted)"],
    );
    let (ok, text) = relaxed(
        &upstream,
        &[&key],
        "allow_sha1 = true, min_rsa_bits = 1024, min_dsa_bits = 1024",
    );
    assert!(!ok, "no relaxation accepts MD5: {text}");
    assert!(text.contains("uses MD5 (never accepted)"), "{text}");
}

/// A repository re-signed by a small `algo` key (1024 bits) is refused with `rule`, accepted
/// by a site whose `weak_crypto.<relax_key>` is 1024, and still refused at 1536.
fn small_key_refused_unless_relaxed(algo: &str, rule: &str, relax_key: &str) {
    let repo = repo_with(Gpg::new("archive", "ed25519"));
    let weak = repo.gpg.add_key("weak", algo);
    let key = repo.key();
    let upstream = refused(
        &repo,
        &[&key, &weak],
        |repo| {
            resign(
                repo,
                Signing {
                    keys: vec!["weak".into()],
                    ..archive("SHA512")
                },
            )
        },
        &[rule],
    );
    let (ok, text) = relaxed(&upstream, &[&key, &weak], &format!("{relax_key} = 1024"));
    assert!(ok, "{relax_key} = 1024 should accept it: {text}");
    let (ok, text) = relaxed(&upstream, &[&key, &weak], &format!("{relax_key} = 1536"));
    assert!(!ok, "{relax_key} = 1536 still refuses 1024 bits: {text}");
}

#[test]
fn small_rsa_keys_are_refused_unless_min_rsa_bits_allows_them() {
    small_key_refused_unless_relaxed(
        "rsa1024",
        "is RSA of 1024 bits, less than 2048 (weak_crypto.min_rsa_bits relaxes this rule)",
        "min_rsa_bits",
    );
}

#[test]
fn small_dsa_keys_are_refused_unless_min_dsa_bits_allows_them() {
    small_key_refused_unless_relaxed(
        "dsa1024",
        "is DSA of 1024 bits, less than 2048 (weak_crypto.min_dsa_bits relaxes this rule)",
        "min_dsa_bits",
    );
}

#[test]
fn one_acceptable_signature_among_several_is_enough_and_otherwise_each_refusal_is_listed() {
    let repo = repo_with(Gpg::new("archive", "ed25519"));
    let weak = repo.gpg.add_key("weak", "rsa1024");
    let key = repo.key();
    let upstream = Upstream::serve(repo.root());
    // Signed by the small RSA key and the good key: the good signature carries it.
    resign(
        &repo,
        Signing {
            keys: vec!["weak".into(), "archive".into()],
            ..archive("SHA512")
        },
    );
    let site = apt_site(&upstream, &[&key, &weak], "");
    let (ok, text) = sync(&site);
    assert!(ok, "one acceptable signature is enough: {text}");
    // Both signatures refused: each refusal is named.
    resign(
        &repo,
        Signing {
            keys: vec!["weak".into(), "archive".into()],
            ..archive("SHA1")
        },
    );
    let (ok, text) = sync(&apt_site(&upstream, &[&key, &weak], ""));
    assert!(!ok, "{text}");
    let failed = text
        .lines()
        .find(|l| l.contains("FAILED"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(failed.contains("is RSA of 1024 bits"), "{failed}");
    assert_eq!(failed.matches("uses SHA-1").count(), 2, "{failed}");
}

#[test]
fn a_key_expired_before_the_signature_is_refused() {
    let created = now() - 10 * DAY;
    let repo = repo_with(Gpg::created_at("archive", "ed25519", Some(created)));
    let key = repo.key();
    refused(
        &repo,
        &[&key],
        |repo| {
            // Signed now, then the key gets an expiry nine days ago (a self-signature made an
            // hour after its creation): the signature was made after the key expired.
            resign(repo, archive("SHA512"));
            repo.gpg.set_expiry(created + 3600, "1d");
        },
        &[
            &format!("signature by key 0x{}", repo.gpg.fingerprint()),
            &format!("key 0x{} expired", repo.gpg.fingerprint()),
            "before the signature was made",
        ],
    );
}

#[test]
fn a_revoked_key_is_refused() {
    let repo = repo_with(Gpg::new("archive", "ed25519"));
    let key = repo.key();
    refused(
        &repo,
        &[&key],
        |repo| {
            resign(repo, archive("SHA512"));
            repo.gpg.revoke();
        },
        &[
            &format!("signature by key 0x{}", repo.gpg.fingerprint()),
            "is revoked",
        ],
    );
}

#[test]
fn a_signature_made_in_the_future_is_refused_beyond_the_clock_skew() {
    let created = now() - DAY;
    let repo = repo_with(Gpg::created_at("archive", "ed25519", Some(created)));
    let key = repo.key();
    let upstream = refused(
        &repo,
        &[&key],
        |repo| {
            resign(
                repo,
                Signing {
                    at: Some(now() + DAY),
                    ..archive("SHA512")
                },
            )
        },
        &["was made in the future", "30 minutes"],
    );
    // Five minutes ahead is within the tolerated clock skew.
    resign(
        &repo,
        Signing {
            at: Some(now() + 300),
            ..archive("SHA512")
        },
    );
    let site = apt_site(&upstream, &[&key], "");
    let (ok, text) = sync(&site);
    assert!(
        ok,
        "a signature five minutes ahead is within the skew: {text}"
    );
}

/// A key created ten days ago with a signing subkey that signs the repository.
fn repo_signed_by_a_subkey() -> (AptRepo, String, i64) {
    let created = now() - 10 * DAY;
    let gpg = Gpg::created_at("archive", "ed25519", Some(created));
    let subkey = gpg.add_signing_subkey(Some(created + 60));
    gpg.set_signing(by_subkey(&subkey));
    (repo_with(gpg), subkey, created)
}

fn by_subkey(subkey: &str) -> Signing {
    Signing {
        // The `!` makes gpg sign with this very subkey.
        keys: vec![format!("{subkey}!")],
        ..archive("SHA512")
    }
}

#[test]
fn a_signing_subkey_expired_before_the_signature_is_refused() {
    let (repo, subkey, created) = repo_signed_by_a_subkey();
    let key = repo.key();
    // The first sync (in `refused`) accepts the subkey's signature while it is valid.
    refused(
        &repo,
        &[&key],
        |repo| {
            resign(repo, by_subkey(&subkey));
            repo.gpg.set_subkey_expiry(&subkey, created + 3600, "1d");
        },
        &[
            &format!("(subkey 0x{subkey})"),
            &format!("subkey 0x{subkey} expired"),
            "before the signature was made",
        ],
    );
}

#[test]
fn a_revoked_signing_subkey_is_refused() {
    let (repo, subkey, _) = repo_signed_by_a_subkey();
    let key = repo.key();
    refused(
        &repo,
        &[&key],
        |repo| {
            resign(repo, by_subkey(&subkey));
            repo.gpg.revoke_first_subkey(1, None);
        },
        &[&format!("subkey 0x{subkey} is revoked (compromised")],
    );
}

#[test]
fn a_signature_dated_before_its_key_was_created_is_refused() {
    let repo = repo_with(Gpg::new("archive", "ed25519"));
    let key = repo.key();
    refused(
        &repo,
        &[&key],
        |repo| {
            resign(
                repo,
                Signing {
                    at: Some(now() - DAY),
                    ..archive("SHA512")
                },
            )
        },
        &["before its key was created"],
    );
}

#[test]
fn a_superseded_subkey_voids_only_signatures_made_after_its_revocation() {
    // Signed two hours ago, superseded now: the signature stands.
    let (repo, subkey, _) = repo_signed_by_a_subkey();
    resign(
        &repo,
        Signing {
            at: Some(now() - 7200),
            ..by_subkey(&subkey)
        },
    );
    repo.gpg.revoke_first_subkey(2, None);
    let upstream = Upstream::serve(repo.root());
    let (ok, text) = sync(&apt_site(&upstream, &[&repo.key()], ""));
    assert!(
        ok,
        "a signature made before a soft revocation stands: {text}"
    );
    // Signed now, superseded an hour ago: refused.
    let (repo, subkey, _) = repo_signed_by_a_subkey();
    let key = repo.key();
    refused(
        &repo,
        &[&key],
        |repo| {
            resign(repo, by_subkey(&subkey));
            repo.gpg.revoke_first_subkey(2, Some(now() - 3600));
        },
        &[
            &format!("subkey 0x{subkey} is revoked (superseded) since"),
            "before the signature was made",
        ],
    );
}

#[test]
fn detached_release_signatures_meet_the_same_policy() {
    let gpg = Gpg::new("archive", "rsa3072");
    gpg.set_signing(archive("SHA1"));
    let dir = tempfile::tempdir().unwrap();
    let release = dir.path().join("Release");
    let text = "Origin: test\nDate: Sat, 10 Feb 2024 10:12:33 UTC\n";
    std::fs::write(&release, text).unwrap();
    gpg.sign_release(&release);
    let detached = std::fs::read(dir.path().join("Release.gpg")).unwrap();
    let strict = Keyring::load(std::slice::from_ref(&gpg.public)).unwrap();
    let error = strict
        .verify_detached(text.as_bytes(), &detached)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("uses SHA-1 (weak_crypto.allow_sha1 relaxes this rule)"),
        "{error}"
    );
    let relaxed = Keyring::load(std::slice::from_ref(&gpg.public))
        .unwrap()
        .with_weak_crypto(&mirrorbox::sync::apt::policy::WeakCrypto {
            allow_sha1: true,
            ..Default::default()
        });
    relaxed.verify_detached(text.as_bytes(), &detached).unwrap();
}
