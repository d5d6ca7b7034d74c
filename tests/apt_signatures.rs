//! OpenPGP verification with real data: every InRelease in apt's lists directory verifies
//! against the Debian archive keyring and fails against an unrelated key; fixtures signed by
//! the real `gpg` (binary and armored keys, clear-signed and detached) verify, and any change
//! to the signed text is caught.

mod common;

use std::path::{Path, PathBuf};

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
            assert!(matches!(
                keyring.verify_detached(changed.as_bytes(), &detached),
                Err(VerifyError::BadSignature(_))
            ));
            let changed_inrelease = inrelease.replace("Origin: test", "Origin: evil");
            assert!(matches!(
                keyring.verify_clearsigned(&changed_inrelease),
                Err(VerifyError::BadSignature(_))
            ));
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
