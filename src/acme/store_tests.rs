//! The files on disk: round trip, private modes, a changed domain set, damage and a swap cut
//! short by a crash.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn issue(domains: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(domains.iter().map(|d| d.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn domains(list: &[&str]) -> Vec<String> {
    list.iter().map(|d| d.to_string()).collect()
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn open(dir: &Path) -> AcmeStore {
    AcmeStore::open(dir, "https://127.0.0.1:14000/dir", "a.example.org").unwrap()
}

#[test]
fn folder_per_directory() {
    assert_eq!(
        directory_folder("https://127.0.0.1:14000/dir"),
        "127.0.0.1_14000"
    );
    assert_eq!(
        directory_folder("https://acme-v02.api.letsencrypt.org/directory"),
        "acme-v02.api.letsencrypt.org"
    );
    assert_eq!(directory_folder("https://[::1]:14000/dir"), "__1_14000");
}

#[test]
fn certificate_round_trip_with_private_modes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store
        .read_certificate(&domains(&["a.example.org"]))
        .unwrap()
        .is_none());
    let (chain, key) = issue(&["a.example.org", "b.example.org"]);
    store.write_certificate(&chain, &key).unwrap();

    let read = store
        .read_certificate(&domains(&["b.example.org", "a.example.org"]))
        .unwrap()
        .expect("stored certificate");
    let expected = CertificateDer::pem_slice_iter(chain.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(read.certified.cert[0], expected);

    let cert_dir = store.certificate_dir();
    assert_eq!(mode(&cert_dir.join(KEY)), 0o600);
    assert_eq!(mode(&cert_dir.join(CHAIN)), 0o600);
    assert_eq!(mode(&dir.path().join("acme")), 0o700);
    assert_eq!(mode(cert_dir), 0o700);
    assert!(!cert_dir.join("key.pem.new").exists());
    assert!(!cert_dir.join("fullchain.pem.new").exists());
}

#[test]
fn account_round_trip_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.read_account().unwrap(), None);
    store.write_account("{\"id\":\"x\"}").unwrap();
    assert_eq!(
        store.read_account().unwrap().as_deref(),
        Some("{\"id\":\"x\"}")
    );
    assert_eq!(mode(&store.account_file()), 0o600);
    // The account is per directory, the certificate folder below it.
    assert_eq!(
        store.account_file(),
        dir.path().join("acme/127.0.0.1_14000/account.json")
    );
    assert!(store
        .certificate_dir()
        .ends_with("acme/127.0.0.1_14000/a.example.org"));
}

#[test]
fn another_domain_set_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (chain, key) = issue(&["a.example.org"]);
    store.write_certificate(&chain, &key).unwrap();
    let more = store.read_certificate(&domains(&["a.example.org", "b.example.org"]));
    assert!(more.unwrap().is_none());
}

#[test]
fn damaged_files_are_an_error_not_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (chain, key) = issue(&["a.example.org"]);
    store.write_certificate(&chain, &key).unwrap();
    let chain_path = store.certificate_dir().join(CHAIN);
    fs::write(&chain_path, &chain.as_bytes()[..chain.len() / 2]).unwrap();
    let error = store
        .read_certificate(&domains(&["a.example.org"]))
        .err()
        .expect("a truncated chain is refused");
    assert!(error.to_string().contains("fullchain.pem"), "{error}");

    // A key of another certificate: refused too.
    let (_, other_key) = issue(&["a.example.org"]);
    fs::write(&chain_path, &chain).unwrap();
    fs::write(store.certificate_dir().join(KEY), other_key).unwrap();
    let error = store
        .read_certificate(&domains(&["a.example.org"]))
        .err()
        .expect("a key that does not match is refused");
    assert!(error.to_string().contains("does not go with"), "{error}");
}

#[test]
fn a_swap_cut_between_the_renames_is_completed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (old_chain, old_key) = issue(&["a.example.org"]);
    store.write_certificate(&old_chain, &old_key).unwrap();
    // The crash: the new key renamed into place, the new chain still under its pending name.
    let (new_chain, new_key) = issue(&["a.example.org"]);
    let cert_dir = store.certificate_dir();
    fs::write(cert_dir.join(KEY), &new_key).unwrap();
    fs::write(cert_dir.join("fullchain.pem.new"), &new_chain).unwrap();

    let read = store
        .read_certificate(&domains(&["a.example.org"]))
        .unwrap()
        .expect("the new pair");
    let expected = CertificateDer::pem_slice_iter(new_chain.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(read.certified.cert[0], expected);
    assert_eq!(fs::read_to_string(cert_dir.join(CHAIN)).unwrap(), new_chain);
    assert!(!cert_dir.join("fullchain.pem.new").exists());
}

#[test]
fn a_crash_before_the_renames_keeps_the_old_pair() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (old_chain, old_key) = issue(&["a.example.org"]);
    store.write_certificate(&old_chain, &old_key).unwrap();
    let (new_chain, new_key) = issue(&["a.example.org"]);
    let cert_dir = store.certificate_dir();
    fs::write(cert_dir.join("key.pem.new"), &new_key).unwrap();
    fs::write(cert_dir.join("fullchain.pem.new"), &new_chain).unwrap();
    let read = store
        .read_certificate(&domains(&["a.example.org"]))
        .unwrap()
        .expect("the old pair");
    let expected = CertificateDer::pem_slice_iter(old_chain.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(read.certified.cert[0], expected);
}
