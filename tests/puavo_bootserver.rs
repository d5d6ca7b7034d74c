//! The Puavo bootserver's image sync loop against mirrorbox, run as a real Ruby program
//! (`tests/puavo_bootserver.rb`) that behaves as bootservers do: HTTPS only through
//! `Net::HTTP` with the root CA file and peer verification, the meta file's `urls` in order,
//! bodies checked by size and SHA-256, an image patched with the real `rdiff` from an older
//! local one when it can be, else downloaded in full, and the 2 newest images kept.
//!
//! The repository is built from squashfs images (real `mksquashfs`) and served over HTTPS with
//! a certificate from a generated root CA, either directly or through a second mirrorbox in
//! mirror mode with `rewrite_urls`. A certificate from another CA, and an `http://` urlbase
//! (which bootservers reach with TLS anyway), make the loop fail.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{pattern, Server};

const SERIES: &str = "puavo-os-test-bookworm-amd64";
const PROGRAM: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/puavo_bootserver.rb");

fn image_name(day: usize) -> String {
    format!("puavo-os-test-bookworm-2024-03-{day:02}-101500-amd64.img")
}

fn rdiff_name(from: usize, to: usize) -> String {
    format!("puavo-os-test-bookworm-2024-03-{from:02}-101500--2024-03-{to:02}-101500-amd64.rdiff")
}

/// The image of `day`: a common file and one more file per day, so the rdiff from the day
/// before is the smallest one to it.
fn make_image(dir: &Path, day: usize) {
    let tree = tempfile::tempdir().unwrap();
    let defs = tree.path().join("usr/share/puavo-conf/definitions");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("puavo-test.json"),
        format!(r#"{{"puavo.test.day": {{"default": "{day}", "typehint": "string", "description": "test"}}}}"#),
    )
    .unwrap();
    std::fs::write(tree.path().join("common.bin"), pattern(300_000, 1)).unwrap();
    for added in 1..=day {
        std::fs::write(
            tree.path().join(format!("day{added}.bin")),
            pattern(150_000, 10 + added as u64),
        )
        .unwrap();
    }
    let out = Command::new("mksquashfs")
        .arg(tree.path())
        .arg(dir.join(image_name(day)))
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("mksquashfs (Debian package squashfs-tools)");
    assert!(out.status.success(), "mksquashfs: {out:?}");
}

/// A root CA (the bootserver's rootca.pem) and a certificate it issued for 127.0.0.1.
/// Returns (CA file, certificate, key).
fn certificates(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(DnType::CommonName, name);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let paths = (
        dir.join(format!("{name}-rootca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// One mirrorbox with a `puavo` source at `/`, HTTP and HTTPS on fixed ports (the urlbase
/// names them), the access log on.
struct Repo {
    config: PathBuf,
    http_port: u16,
    https_port: u16,
}

impl Repo {
    /// `source`: the puavo source's own keys; `{https}` and `{http}` become this server's
    /// base URLs.
    fn new(root: &Path, id: &str, cert: &(PathBuf, PathBuf, PathBuf), source: &str) -> Repo {
        let (http_port, https_port) = (free_port(), free_port());
        let source = source
            .replace("{https}", &format!("https://127.0.0.1:{https_port}"))
            .replace("{http}", &format!("http://127.0.0.1:{http_port}"));
        let text = format!(
            "data_dir = \"{data}\"\n\
             [server]\nhttp = [\"127.0.0.1:{http_port}\"]\nhttps = [\"127.0.0.1:{https_port}\"]\naccess_log = true\n\
             [server.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
             [store]\nfsync = false\n\n\
             [[source]]\nid = \"{id}\"\nkind = \"puavo\"\nmount = \"/\"\n{source}\n",
            data = root.join(format!("{id}-data")).display(),
            cert = cert.1.display(),
            key = cert.2.display(),
        );
        let config = root.join(format!("{id}.toml"));
        std::fs::write(&config, text).unwrap();
        Repo {
            config,
            http_port,
            https_port,
        }
    }

    fn cli(&self, command: &str) -> (bool, String) {
        let out = Command::new(common::BIN)
            .arg(command)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap();
        (out.status.success(), text(&out))
    }

    fn sync(&self) {
        let (ok, text) = self.cli("sync");
        assert!(ok, "sync: {text}");
    }

    fn serve(&self) -> Server {
        Server::start(&self.config, false)
    }

    fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.https_port)
    }

    fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs the bootserver loop: (success, what it printed).
fn bootserver(series_url: &str, ca: &Path, target: &Path) -> (bool, String) {
    let out = Command::new("ruby")
        .arg(PROGRAM)
        .arg(series_url)
        .arg(ca)
        .arg(target)
        .output()
        .expect("ruby (Debian package ruby)");
    (out.status.success(), text(&out))
}

fn lines_starting<'a>(output: &'a str, word: &str) -> Vec<&'a str> {
    output
        .lines()
        .filter(|l| l.starts_with(&format!("{word} ")))
        .collect()
}

/// Every line of the bootserver's CKSUMS is a line of the served one (same cksum, size, name).
fn assert_cksums_match(target: &Path, served: &str) {
    let ours = std::fs::read_to_string(target.join("CKSUMS")).unwrap();
    assert!(ours.lines().count() >= 2, "{ours}");
    for line in ours.lines() {
        assert!(
            served.lines().any(|l| l == line),
            "`{line}` not in {served}"
        );
    }
}

fn assert_same_image(images: &Path, target: &Path, day: usize) {
    let name = image_name(day);
    assert!(
        std::fs::read(target.join(&name)).unwrap() == std::fs::read(images.join(&name)).unwrap(),
        "{name} differs from the source image"
    );
}

/// The access log lines of `server` that asked for `path` exactly.
fn requests_for(server: &Server, path: &str) -> usize {
    let field = format!("path={path} ");
    server
        .log_text()
        .lines()
        .filter(|l| l.contains(" access: ") && l.contains(&field))
        .count()
}

/// Day 1: three images, the loop fetches the two newest. Day 2 (after `add_day_4`): the new
/// image comes by rdiff from the newest local image, never in full; the oldest is dropped.
/// `server` is the one the loop talks to; `base` the URL every request must start with.
fn two_days(
    images: &Path,
    series_url: &str,
    ca: &Path,
    server: &Server,
    base: &str,
    add_day_4: impl FnOnce(),
) {
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("images");
    let (ok, day1) = bootserver(series_url, ca, &target);
    assert!(ok, "day 1: {day1}");
    for get in lines_starting(&day1, "GET") {
        assert!(get.starts_with(&format!("GET {base}/")), "{get}");
        assert!(get.ends_with(" 200"), "{get}");
    }
    assert_same_image(images, &target, 2);
    assert_same_image(images, &target, 3);
    assert!(!target.join(image_name(1)).exists());
    // The newest has no local base: it comes in full. The other may then be patched from it
    // (the series has rdiffs in both directions between its last three images).
    let full = lines_starting(&day1, "full");
    assert!(
        full.iter()
            .any(|l| l.starts_with(&format!("full {} ", image_name(3)))),
        "{day1}"
    );
    assert_eq!(
        full.len() + lines_starting(&day1, "patch").len(),
        2,
        "{day1}"
    );
    let served = String::from_utf8(
        common::curl(&[
            "--fail",
            "--cacert",
            ca.to_str().unwrap(),
            &format!("{base}/CKSUMS"),
        ])
        .stdout,
    )
    .unwrap();
    assert_cksums_match(&target, &served);
    // Each kept image's rdiffs from its two newest bases are there for laptops.
    for (from, to) in [(2, 3), (1, 3)] {
        assert!(
            target.join("rdiffs").join(rdiff_name(from, to)).exists(),
            "{day1}"
        );
    }

    add_day_4();
    let before = requests_for(server, &format!("/{}", image_name(4)));
    let (ok, day2) = bootserver(series_url, ca, &target);
    assert!(ok, "day 2: {day2}");
    assert_eq!(
        lines_starting(&day2, "patch"),
        [format!(
            "patch {} {} {}",
            image_name(4),
            image_name(3),
            rdiff_name(3, 4)
        )],
        "{day2}"
    );
    assert!(lines_starting(&day2, "full").is_empty(), "{day2}");
    assert!(
        day2.lines()
            .any(|l| l == format!("trusted {}", image_name(3))),
        "{day2}"
    );
    assert!(
        day2.lines()
            .any(|l| l == format!("delete {}", image_name(2))),
        "{day2}"
    );
    assert_same_image(images, &target, 4);
    assert_same_image(images, &target, 3);
    assert!(!target.join(image_name(2)).exists());
    // The server saw the rdiff asked for, and never the full image.
    assert!(
        server.log_contains(&format!("path=/rdiffs/{} ", rdiff_name(3, 4))),
        "{}",
        server.log_text()
    );
    assert_eq!(requests_for(server, &format!("/{}", image_name(4))), before);
    let served = String::from_utf8(
        common::curl(&[
            "--fail",
            "--cacert",
            ca.to_str().unwrap(),
            &format!("{base}/CKSUMS"),
        ])
        .stdout,
    )
    .unwrap();
    assert_cksums_match(&target, &served);
}

fn image_dir(root: &Path, days: usize) -> PathBuf {
    let images = root.join("image-dir");
    std::fs::create_dir_all(&images).unwrap();
    for day in 1..=days {
        make_image(&images, day);
    }
    images
}

#[test]
fn a_bootserver_fetches_two_images_then_patches_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let images = image_dir(root, 3);
    let cert = certificates(root, "puavo");
    let repo = Repo::new(
        root,
        "images",
        &cert,
        &format!(
            "image_dir = \"{}\"\nurlbase = \"{{https}}\"\n",
            images.display()
        ),
    );
    repo.sync();
    let server = repo.serve();
    let series_url = repo.https(&format!("/meta/{SERIES}.json"));
    two_days(
        &images,
        &series_url,
        &cert.0,
        &server,
        &repo.https(""),
        || {
            make_image(&images, 4);
            repo.sync();
        },
    );
}

#[test]
fn a_bootserver_syncs_the_same_from_a_mirror_with_rewritten_urls() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let images = image_dir(root, 3);
    let cert = certificates(root, "puavo");
    let upstream = Repo::new(
        root,
        "upstream",
        &cert,
        &format!(
            "image_dir = \"{}\"\nurlbase = \"{{https}}\"\n",
            images.display()
        ),
    );
    upstream.sync();
    let _upstream_server = upstream.serve();
    // The mirror follows its upstream over HTTPS, trusting the site's root CA as the
    // bootservers do; without it, the upstream's certificate is refused.
    let mirror_keys = |ca: &str| {
        format!(
            "upstream = \"{}\"\nseries = [\"{SERIES}\"]\nrewrite_urls = true\nurlbase = \"{{https}}\"\n{ca}",
            upstream.https("")
        )
    };
    let untrusting = Repo::new(root, "untrusting", &cert, &mirror_keys("retries = 0\n"));
    let (ok, refused) = untrusting.cli("sync");
    assert!(!ok, "{refused}");
    assert!(refused.contains("certificate is not trusted"), "{refused}");
    assert!(refused.contains("`ca_file`"), "{refused}");
    let mirror = Repo::new(
        root,
        "mirror",
        &cert,
        &mirror_keys(&format!("ca_file = \"{}\"\n", cert.0.display())),
    );
    mirror.sync();
    let server = mirror.serve();
    let series_url = mirror.https(&format!("/meta/{SERIES}.json"));
    two_days(
        &images,
        &series_url,
        &cert.0,
        &server,
        &mirror.https(""),
        || {
            make_image(&images, 4);
            upstream.sync();
            mirror.sync();
        },
    );
}

#[test]
fn a_bootserver_refuses_another_ca_and_an_http_urlbase() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let images = image_dir(root, 2);
    let cert = certificates(root, "puavo");
    let (stranger_ca, _, _) = certificates(root, "stranger");
    let repo = Repo::new(
        root,
        "images",
        &cert,
        &format!(
            "image_dir = \"{}\"\nurlbase = \"{{http}}\"\n",
            images.display()
        ),
    );
    // mirrorbox warns: the urlbase is not https.
    let (_, check) = repo.cli("check-config");
    assert!(check.contains("is not https://"), "{check}");
    repo.sync();
    let _server = repo.serve();
    let series_url = repo.https(&format!("/meta/{SERIES}.json"));

    // A certificate that does not chain to the bootserver's CA: nothing is fetched.
    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("images");
    let (ok, out) = bootserver(&series_url, &stranger_ca, &target);
    assert!(!ok, "{out}");
    assert!(out.contains("certificate verify failed"), "{out}");
    assert!(!target.join(image_name(2)).exists());

    // The right CA: the meta file is read, but the http:// urls are fetched with TLS (on the
    // plain HTTP port) and every download fails, though the image is there over HTTP.
    let (ok, out) = bootserver(&series_url, &cert.0, &target);
    assert!(!ok, "{out}");
    let image_url = repo.http(&format!("/{}", image_name(2)));
    assert!(
        out.contains(&format!("{image_url}: OpenSSL::SSL::SSLError")),
        "{out}"
    );
    assert!(out.contains("every url failed"), "{out}");
    assert!(!target.join(image_name(2)).exists());
    assert_eq!(common::status_code(&image_url), "200");

    // A series URL given as http:// is fetched with TLS too.
    let (ok, out) = bootserver(
        &repo.http(&format!("/meta/{SERIES}.json")),
        &cert.0,
        &target,
    );
    assert!(!ok, "{out}");
    assert!(out.contains("SSL"), "{out}");
}

#[test]
fn a_body_of_the_wrong_size_or_hash_is_dropped_and_the_next_url_tried() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let images = image_dir(root, 2);
    let cert = certificates(root, "puavo");
    let local = root.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let repo = Repo::new(
        root,
        "images",
        &cert,
        &format!(
            "image_dir = \"{}\"\nurlbase = \"{{https}}\"\n\n[[source]]\nid = \"local\"\nkind = \"dir\"\nmount = \"/local\"\npath = \"{}\"\n",
            images.display(),
            local.display()
        ),
    );
    repo.sync();
    let _server = repo.serve();
    // A meta file whose newest image lists two wrong urls before the right one: one with a
    // byte changed (same size, another SHA-256), one of another size.
    let newest = image_name(2);
    let mut damaged = std::fs::read(images.join(&newest)).unwrap();
    damaged[1000] ^= 0xff;
    std::fs::write(local.join("damaged.img"), &damaged).unwrap();
    std::fs::write(local.join("short.img"), &damaged[..1000]).unwrap();
    let meta = common::curl(&[
        "--fail",
        "--cacert",
        cert.0.to_str().unwrap(),
        &repo.https(&format!("/meta/{SERIES}.json")),
    ]);
    assert!(meta.status.success(), "{meta:?}");
    let mut meta: serde_json::Value = serde_json::from_slice(&meta.stdout).unwrap();
    let listed = meta[SERIES]["images"].as_array_mut().unwrap();
    let entry = listed
        .iter_mut()
        .find(|i| i["filename"] == newest.as_str())
        .expect("the newest image in the meta file");
    let right = entry["urls"][0].as_str().unwrap().to_string();
    let wrong = [
        repo.https("/local/damaged.img"),
        repo.https("/local/short.img"),
    ];
    entry["urls"] = serde_json::json!([wrong[0], wrong[1], right]);
    std::fs::write(local.join("series.json"), meta.to_string()).unwrap();
    repo.sync();

    let work = tempfile::tempdir().unwrap();
    let target = work.path().join("images");
    let (ok, out) = bootserver(&repo.https("/local/series.json"), &cert.0, &target);
    assert!(ok, "{out}");
    let rejected = lines_starting(&out, "reject");
    assert_eq!(rejected.len(), 2, "{out}");
    assert!(
        rejected[0].starts_with(&format!("reject {}: ", wrong[0])),
        "{out}"
    );
    assert!(rejected[0].contains("sha256"), "{out}");
    assert!(
        rejected[1].starts_with(&format!("reject {}: ", wrong[1])),
        "{out}"
    );
    assert!(rejected[1].contains("got 1000 bytes"), "{out}");
    assert!(
        out.lines().any(|l| l == format!("full {newest} {right}")),
        "{out}"
    );
    assert_same_image(&images, &target, 2);
    assert!(!target.join(format!("{newest}.partial")).exists());

    // With only the wrong urls, the loop fails and leaves nothing behind.
    entry_urls_only(&local, &newest, &wrong);
    repo.sync();
    let empty = work.path().join("empty");
    let (ok, out) = bootserver(&repo.https("/local/series.json"), &cert.0, &empty);
    assert!(!ok, "{out}");
    assert!(out.contains("every url failed"), "{out}");
    assert!(!empty.join(&newest).exists());
    assert!(!empty.join(format!("{newest}.partial")).exists());
}

/// Rewrites `local/series.json` so that `image` lists only `urls`.
fn entry_urls_only(local: &Path, image: &str, urls: &[String]) {
    let path = local.join("series.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    for entry in meta[SERIES]["images"].as_array_mut().unwrap() {
        if entry["filename"] == image {
            entry["urls"] = serde_json::json!(urls);
        }
    }
    std::fs::write(&path, meta.to_string()).unwrap();
}
