//! An upstream that answers "not modified" does not end the judgement of what is published:
//! a key removed from `keys` makes the stored InRelease fail again, a passed `Valid-Until` is
//! seen without a new Release (a frozen upstream), and a new upstream URL is asked without the
//! old upstream's validators.

mod common;

use std::path::Path;
use std::process::Command;

use common::aptrepo::{AptRepo, Layout, Pkg};
use common::gpg::Gpg;
use common::upstream::Upstream;
use common::Site;

const INRELEASE: &str = "/dists/bookworm/InRelease";

/// A site with an apt source `deb` at `/debian` for `bookworm main`.
fn apt_site(upstream: &Upstream, key: &Path) -> Site {
    let line = format!("deb {} bookworm main", upstream.url("/"));
    Site::with(false, &common::apt_source(&line, key, ""))
}

fn sync(site: &Site) -> (bool, String) {
    site.cli_text(&["sync", "deb"])
}

fn snapshots(site: &Site) -> String {
    String::from_utf8_lossy(&site.cli(&["snapshots"]).stdout).into_owned()
}

fn packages() -> Vec<Pkg> {
    vec![Pkg::new("alpha", "1.0", 20_000)]
}

#[test]
fn a_key_removed_from_the_configuration_fails_the_next_sync_even_on_a_304() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key());
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    let before = snapshots(&site);

    // The operator replaces the (say, compromised) key by another one.
    let other = Gpg::new("other", "ed25519");
    site.edit_config(
        &repo.key().display().to_string(),
        &other.public.display().to_string(),
    );
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(
        upstream.log().contains(&(INRELEASE.to_string(), 304)),
        "{:?}",
        upstream.log()
    );
    assert!(text.contains("not signed by a configured key"), "{text}");
    assert_eq!(
        before,
        snapshots(&site),
        "the previous snapshot stays current"
    );
}

/// Adds `Valid-Until` (`seconds` from now) to the suite's Release and signs it again.
fn valid_for(repo: &AptRepo, seconds: u64) {
    let path = repo.root().join("dists/bookworm/Release");
    let release = std::fs::read_to_string(&path).unwrap();
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(seconds);
    let release = release.replacen(
        "Date: ",
        &format!("Valid-Until: {}\nDate: ", httpdate::fmt_http_date(until)),
        1,
    );
    std::fs::write(&path, release).unwrap();
    repo.gpg.sign_release(&path);
}

#[test]
fn a_release_past_its_valid_until_fails_the_sync_although_the_upstream_answers_304() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    valid_for(&repo, 4);
    let upstream = Upstream::serve(repo.root());
    let site = apt_site(&upstream, &repo.key());
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    let before = snapshots(&site);

    // A frozen upstream: the same Release for ever, "not modified".
    std::thread::sleep(std::time::Duration::from_secs(6));
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert_eq!(upstream.log(), vec![(INRELEASE.to_string(), 304)]);
    assert!(text.contains("the Release expired"), "{text}");
    assert_eq!(
        before,
        snapshots(&site),
        "the previous snapshot stays current"
    );

    // The operator accepts it knowingly.
    let text = std::fs::read_to_string(&site.config).unwrap();
    std::fs::write(&site.config, format!("{text}allow_expired = true\n")).unwrap();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
}

#[test]
fn a_new_upstream_url_is_asked_without_the_old_upstreams_validators() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite("bookworm", "main", &packages(), false, None);
    let old_root = tempfile::tempdir().unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", repo.root().display()))
        .arg(old_root.path())
        .status()
        .unwrap();
    assert!(copied.success());
    std::thread::sleep(std::time::Duration::from_millis(1100)); // a newer Release Date
    let mut more = packages();
    more.push(Pkg::new("echo", "1.0", 1_000));
    repo.suite("bookworm", "main", &more, false, None);
    // The new upstream's InRelease looks older than the old one's validators.
    let touched = Command::new("touch")
        .args(["-d", "2001-01-01"])
        .arg(repo.root().join("dists/bookworm/InRelease"))
        .status()
        .unwrap();
    assert!(touched.success());

    let old = Upstream::serve(old_root.path());
    let new = Upstream::serve(repo.root());
    let site = apt_site(&old, &repo.key());
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");

    site.edit_config(&old.url("/"), &new.url("/"));
    let (ok, text) = sync(&site);
    assert!(ok && text.contains("published"), "{text}");
    assert!(
        new.log().contains(&(INRELEASE.to_string(), 200)),
        "{:?}",
        new.log()
    );
    let server = site.start_without_sync();
    let echo = repo.deb_path("bookworm", "main", &more[1]);
    let got = common::curl(&["-f", &server.url(&format!("/debian/{echo}"))]);
    assert!(got.status.success(), "{got:?}");
}
