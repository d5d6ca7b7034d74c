//! A complete Puavo image server on one host, fetched the way Puavo devices fetch it: the
//! `puavo` source at `/` (images, rdiffs, torrents, CKSUMS, meta) beside two `dir` sources at
//! `/puavo-pkg` and `/preseeds`, over HTTPS with a certificate from a generated root CA that
//! the clients are given as their only trust (as devices carry the Puavo root CA). The clients
//! are the real ones with the options the devices use: `wget --ca-certificate` for installers,
//! meta files, rdiffs and images (`--continue`), `curl --cacert --fail` for preseeds and the
//! `POST /deviceid` a mirror has no backend for (answered 405). The shipped example config,
//! whose paths are rewritten into a temporary folder, passes `check-config` without a problem.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{pattern, Server};

const SERIES: &str = "puavo-os-school-bookworm-amd64";
const PKG: &str = "geogebra";
const PKG_ID: &str = "geogebra-6.0.841-3f2a9c1d";

fn image_name(day: usize) -> String {
    format!("puavo-os-school-bookworm-2024-05-{day:02}-101500-amd64.img")
}

/// `<src prefix>-<src date>--<dst date>-<src suffix>.rdiff`, as laptops build the name.
fn rdiff_name(from: usize, to: usize) -> String {
    format!("puavo-os-school-bookworm-2024-05-{from:02}-101500--2024-05-{to:02}-101500-amd64.rdiff")
}

/// A squashfs image whose files change with `version`, with puavo-conf definitions.
fn make_image(dir: &Path, file: &str, version: usize) {
    let tree = tempfile::tempdir().unwrap();
    let defs = tree.path().join("usr/share/puavo-conf/definitions");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("puavo-school.json"),
        format!(r#"{{"puavo.school.motd": {{"default": "v{version}", "typehint": "string", "description": "test"}}}}"#),
    )
    .unwrap();
    let data = tree.path().join("usr/lib/data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..4 {
        let seed = if i == version % 4 { 100 + version } else { i };
        std::fs::write(
            data.join(format!("lib{i}.so")),
            pattern(120_000 + i * 5_000, seed as u64),
        )
        .unwrap();
    }
    let out = Command::new("mksquashfs")
        .arg(tree.path())
        .arg(dir.join(file))
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("mksquashfs (Debian package squashfs-tools)");
    assert!(out.status.success(), "mksquashfs: {out:?}");
}

/// A root CA (what devices carry as rootca.pem) and a server certificate it issued for
/// `localhost`. Returns (CA file, certificate, key).
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name
        .push(DnType::CommonName, "Puavo Root CA (test)");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = leaf.signed_by(&key, &ca_cert, &ca_key).unwrap();
    let paths = (
        dir.join("rootca.pem"),
        dir.join("fullchain.pem"),
        dir.join("privkey.pem"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    (paths.0, paths.1, paths.2)
}

fn run(command: &mut Command) -> Output {
    let out = command.output().expect("run a client tool");
    assert!(out.status.success(), "{command:?}: {out:?}");
    out
}

/// The signed installer of [`PKG`]: a `.tar.gz` with `.puavo-pkg-version` inside, signed with
/// gpg as the package server's key. Returns (the `.tar.gz`, the signing key home).
fn signed_installer(dir: &Path, pkg_dir: &Path) -> (Vec<u8>, common::gpg::Gpg) {
    let tree = dir.join("pkgtree").join(PKG);
    std::fs::create_dir_all(&tree).unwrap();
    std::fs::write(
        tree.join(".puavo-pkg-version"),
        format!("package-id {PKG_ID}\n"),
    )
    .unwrap();
    std::fs::write(tree.join("rules"), "#!/bin/sh\nexit 0\n").unwrap();
    let tarball = dir.join("installer.tar.gz");
    run(Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(dir.join("pkgtree"))
        .arg(PKG));
    let gpg = common::gpg::Gpg::new("Puavo packages", "ed25519");
    std::fs::create_dir_all(pkg_dir).unwrap();
    let signed = pkg_dir.join(format!("{PKG_ID}.tar.gz.gpg"));
    run(Command::new("gpg")
        .arg("--homedir")
        .arg(gpg.home.path())
        .args(["--batch", "--yes", "--output"])
        .arg(&signed)
        .arg("--sign")
        .arg(&tarball));
    // The names puavo-pkg-update asks for, as symlinks to the one file.
    for alias in ["latest.tar.gz.gpg", "version-2.tar.gz.gpg"] {
        std::os::unix::fs::symlink(format!("{PKG_ID}.tar.gz.gpg"), pkg_dir.join(alias)).unwrap();
    }
    (std::fs::read(&tarball).unwrap(), gpg)
}

/// A temp folder with three images, the puavo-pkg and preseeds trees, certificates and a
/// config serving them all on one host.
struct ImageServer {
    dir: tempfile::TempDir,
    config: PathBuf,
    ca: PathBuf,
    tarball: Vec<u8>,
    gpg: common::gpg::Gpg,
}

impl ImageServer {
    /// `folders`: the `dir` sources after the `puavo` one, as config text; `{root}` is the
    /// temp folder.
    fn new(folders: &str) -> ImageServer {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let images = root.join("images");
        std::fs::create_dir_all(&images).unwrap();
        for day in 1..=3 {
            make_image(&images, &image_name(day), day);
        }
        let www = root.join("www");
        let (tarball, gpg) = signed_installer(root, &www.join("puavo-pkg").join(PKG));
        std::fs::create_dir_all(www.join("preseeds")).unwrap();
        std::fs::write(
            www.join("preseeds/index.json"),
            r#"{"preseeds":{"classroom":{"name":"Classroom laptop","operation":"install"}}}"#,
        )
        .unwrap();
        let (ca, cert, key) = certificates(root);
        let text = format!(
            "data_dir = \"{data}\"\n\
             [server]\nhttp = [\"127.0.0.1:0\"]\nhttps = [\"127.0.0.1:0\"]\naccess_log = false\n\
             [server.tls]\ncert = \"{cert}\"\nkey = \"{key}\"\n\
             [store]\nfsync = false\n\n\
             [[source]]\nid = \"puavo\"\nkind = \"puavo\"\nmount = \"/\"\nimage_dir = \"{images}\"\n\
             urlbase = \"https://localhost\"\ntorrents = true\n\n{folders}\n",
            data = root.join("data").display(),
            cert = cert.display(),
            key = key.display(),
            images = images.display(),
            folders = folders.replace("{root}", &root.display().to_string()),
        );
        let config = root.join("mirrorbox.toml");
        std::fs::write(&config, text).unwrap();
        ImageServer {
            dir,
            config,
            ca,
            tarball,
            gpg,
        }
    }

    fn images(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    fn mirrorbox(&self, command: &str) -> Output {
        Command::new(common::BIN)
            .arg(command)
            .arg("--config")
            .arg(&self.config)
            .output()
            .unwrap()
    }

    /// Syncs every source, then serves what was published.
    fn start(&self) -> Server {
        let out = self.mirrorbox("sync");
        assert!(out.status.success(), "sync: {out:?}");
        Server::start(&self.config, false)
    }

    fn ca_arg(&self) -> String {
        format!("--ca-certificate={}", self.ca.display())
    }
}

/// check-config: exit status 0 and no PROBLEM line; returns its output.
fn assert_check_config_clean(config: &Path) -> String {
    let out = Command::new(common::BIN)
        .arg("check-config")
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(!text.to_lowercase().contains("warn"), "{text}");
    text
}

fn wget(server: &ImageServer, url: &str, to: &Path, extra: &[&str]) {
    run(Command::new("wget")
        .arg("-q")
        .arg(server.ca_arg())
        .args(extra)
        .arg(format!("--output-document={}", to.display()))
        .arg(url));
}

/// curl as devices run it: the Puavo root CA only, `--fail`.
fn device_curl(server: &ImageServer, extra: &[&str], url: &str) -> Output {
    Command::new("curl")
        .arg("--cacert")
        .arg(&server.ca)
        .args(extra)
        .arg(url)
        .output()
        .expect("curl is installed")
}

const SEPARATE_MOUNTS: &str = "[[source]]\nid = \"puavo_pkg\"\nkind = \"dir\"\nmount = \"/puavo-pkg\"\npath = \"{root}/www/puavo-pkg\"\n\n[[source]]\nid = \"preseeds\"\nkind = \"dir\"\nmount = \"/preseeds\"\npath = \"{root}/www/preseeds\"\n";

#[test]
fn devices_get_everything_from_one_https_image_server() {
    let site = ImageServer::new(SEPARATE_MOUNTS);
    let _ = assert_check_config_clean(&site.config);
    let server = site.start();
    let base = format!("https://localhost:{}", server.https.unwrap().port());
    let work = tempfile::tempdir().unwrap();
    let work = work.path();

    // puavo-pkg-update: wget from the first image server, each name it asks for; the bytes are
    // the signed file, and gpg verifies and unpacks it with the package key.
    let keyring = work.join("pkg-gnupg");
    std::fs::create_dir(&keyring).unwrap();
    std::fs::set_permissions(
        &keyring,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    run(Command::new("gpg")
        .arg("--homedir")
        .arg(&keyring)
        .args(["--batch", "--import"])
        .arg(&site.gpg.public));
    let signed = std::fs::read(
        site.dir
            .path()
            .join(format!("www/puavo-pkg/{PKG}/{PKG_ID}.tar.gz.gpg")),
    )
    .unwrap();
    for version in ["latest", "version-2", PKG_ID] {
        let file = work.join(format!("{version}.tar.gz.gpg"));
        wget(
            &site,
            &format!("{base}/puavo-pkg/{PKG}/{version}.tar.gz.gpg"),
            &file,
            &[],
        );
        assert!(std::fs::read(&file).unwrap() == signed, "{version}");
        let out = run(Command::new("gpg")
            .arg("--homedir")
            .arg(&keyring)
            .args(["--batch", "--decrypt"])
            .arg(&file));
        assert!(out.stdout == site.tarball, "{version}: unpacked wrong");
    }
    let missing = Command::new("wget")
        .args(["-q", &site.ca_arg(), "-O", "/dev/null"])
        .arg(format!("{base}/puavo-pkg/{PKG}/version-3.tar.gz.gpg"))
        .status()
        .unwrap();
    assert_eq!(
        missing.code(),
        Some(8),
        "a missing installer is a server error to wget"
    );

    // The boot menu and puavo-install: the preseeds, with curl --fail.
    let out = device_curl(
        &site,
        &["--fail", "--show-error", "--silent", "--max-time", "5"],
        &format!("{base}/preseeds/index.json"),
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        out.stdout,
        std::fs::read(site.dir.path().join("www/preseeds/index.json")).unwrap()
    );

    // Meta files, as get_meta_files fetches them: they list every image's sha512.
    let meta = work.join(format!("{SERIES}.json"));
    wget(
        &site,
        &format!("{base}/meta/{SERIES}.json"),
        &meta,
        &["--continue"],
    );
    let meta = std::fs::read_to_string(&meta).unwrap();
    for day in 1..=3 {
        let image = site.images().join(image_name(day));
        let sum = run(Command::new("sha512sum").arg(&image)).stdout;
        let sum = String::from_utf8_lossy(&sum);
        let hex = sum.split_whitespace().next().unwrap();
        assert!(meta.contains(hex), "meta lacks the sha512 of day {day}");
        assert!(
            meta.contains(&format!("\"https://localhost/{}\"", image_name(day))),
            "meta urls: {meta}"
        );
    }

    // CKSUMS holds coreutils cksum's line for every image.
    let out = device_curl(&site, &["--fail", "--silent"], &format!("{base}/CKSUMS"));
    assert!(out.status.success(), "{out:?}");
    let cksums = String::from_utf8_lossy(&out.stdout).into_owned();
    for day in 1..=3 {
        let line = run(Command::new("cksum")
            .arg(image_name(day))
            .current_dir(site.images()))
        .stdout;
        let line = String::from_utf8_lossy(&line).into_owned();
        assert!(cksums.contains(&line), "{line} not in {cksums}");
    }

    // An interrupted rdiff and an interrupted image, resumed by wget --continue as laptops
    // do; the rdiff then patches the old image into the new one.
    let rdiff = rdiff_name(1, 3);
    let whole = device_curl(
        &site,
        &["--fail", "--silent"],
        &format!("{base}/rdiffs/{rdiff}"),
    );
    assert!(whole.status.success(), "{whole:?}");
    let newest = std::fs::read(site.images().join(image_name(3))).unwrap();
    for (path, bytes) in [
        (format!("rdiffs/{rdiff}"), whole.stdout.clone()),
        (image_name(3), newest.clone()),
    ] {
        let file = work.join(format!("{}.tmp", path.replace('/', "_")));
        std::fs::write(&file, &bytes[..bytes.len() / 3]).unwrap();
        wget(
            &site,
            &format!("{base}/{path}"),
            &file,
            &["--continue", "--progress=dot:mega"],
        );
        assert!(
            std::fs::read(&file).unwrap() == bytes,
            "{path} resumed wrong"
        );
    }
    let rebuilt = work.join("rebuilt.img");
    run(Command::new("rdiff")
        .arg("patch")
        .arg(site.images().join(image_name(1)))
        .arg(work.join(format!("rdiffs_{rdiff}.tmp")))
        .arg(&rebuilt));
    assert!(std::fs::read(&rebuilt).unwrap() == newest);

    // The torrent laptops ask for, with this server's rdiff URL as its web seed.
    let torrent = device_curl(
        &site,
        &["--fail", "--silent"],
        &format!("{base}/torrents/{rdiff}.torrent"),
    );
    assert!(torrent.status.success(), "{torrent:?}");
    let seed = format!("https://localhost/rdiffs/{rdiff}");
    assert!(
        torrent
            .stdout
            .windows(seed.len())
            .any(|w| w == seed.as_bytes()),
        "no web seed {seed}"
    );

    // POST /deviceid, as the boot menu and puavo-install send it: a mirror has no device
    // backend, so it is refused like any POST; curl --fail exits 22 (the HTTP error) with
    // nothing on stdout, which the boot menu reads as "server does not support device
    // backend", and puavo-install as a failed (tolerated) notification. Every time: the
    // refusal must not race the request body (over HTTP/2 that ended in a stream reset and
    // curl's exit status 92, about one time in five).
    let deviceid = format!("{base}/deviceid");
    let hw_info = format!(
        r#"{{"hw_info": {{"productname": "Laptop 14", "resolution": "1920,1080", "pci": "{}"}}}}"#,
        "0000:00:02.0 VGA ".repeat(200)
    );
    let bodies = [
        hw_info.as_str(),
        r#"{"serialnumber": "PF0ABCDE", "preseed": "classroom"}"#,
    ];
    for body in bodies.iter().cycle().take(20) {
        let out = device_curl(
            &site,
            &[
                "-d",
                body,
                "--fail",
                "-H",
                "Content-Type: application/json",
                "--max-time",
                "5",
                "--silent",
                "-X",
                "POST",
            ],
            &deviceid,
        );
        assert_eq!(out.status.code(), Some(22), "{out:?}");
        assert!(out.stdout.is_empty(), "{out:?}");
    }
    let out = device_curl(
        &site,
        &[
            "-d",
            "{}",
            "-H",
            "Content-Type: application/json",
            "--silent",
            "-X",
            "POST",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ],
        &deviceid,
    );
    let head = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        head.starts_with("http/2 405") || head.starts_with("http/1.1 405"),
        "{head}"
    );
    assert!(head.contains("allow: get, head"), "{head}");

    // One host, three sources, no path two of them publish, nothing to warn about.
    let log = server.log_text();
    assert!(!log.contains("two sources publish"), "{log}");
    assert!(!log.contains("WARN"), "{log}");
}

#[test]
fn one_folder_at_the_root_beside_the_puavo_source_works_and_a_shared_path_is_reported() {
    // Both trees in one `dir` source, also at `/`, plus a CKSUMS the puavo source makes too.
    let site = ImageServer::new(
        "[[source]]\nid = \"www\"\nkind = \"dir\"\nmount = \"/\"\npath = \"{root}/www\"\n",
    );
    let _ = assert_check_config_clean(&site.config);
    let www = site.dir.path().join("www");
    std::fs::write(www.join("CKSUMS"), "stale\n").unwrap();
    let server = site.start();
    let base = format!("https://localhost:{}", server.https.unwrap().port());
    let get = |path: &str| {
        let out = device_curl(&site, &["--fail", "--silent"], &format!("{base}{path}"));
        assert!(out.status.success(), "{path}: {out:?}");
        out.stdout
    };
    assert_eq!(
        get(&format!("/puavo-pkg/{PKG}/latest.tar.gz.gpg")),
        std::fs::read(www.join(format!("puavo-pkg/{PKG}/{PKG_ID}.tar.gz.gpg"))).unwrap()
    );
    assert_eq!(
        get("/preseeds/index.json"),
        std::fs::read(www.join("preseeds/index.json")).unwrap()
    );
    assert!(get(&format!("/rdiffs/{}", rdiff_name(2, 3))).len() > 100);
    // The puavo source comes first in the file, so its CKSUMS wins, and the log names the path.
    let cksums = String::from_utf8(get("/CKSUMS")).unwrap();
    assert!(cksums.contains(&image_name(3)), "{cksums}");
    assert!(
        server.log_contains("two sources publish different content"),
        "{}",
        server.log_text()
    );
    assert!(server.log_contains("/CKSUMS"), "{}", server.log_text());
    assert!(server.log_contains("WARN"), "{}", server.log_text());
}

/// The shipped example config, with its absolute paths moved into a temp folder that has what
/// they name (folders, a signing keyring, a certificate and key), passes check-config clean.
#[test]
fn the_example_config_passes_check_config_clean() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mirrorbox.example.toml");
    let text = std::fs::read_to_string(&example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    let mut rewritten = text.clone();
    for prefix in ["/etc/", "/srv/", "/var/"] {
        rewritten = rewritten.replace(&format!("\"{prefix}"), &format!("\"{root}{prefix}"));
    }
    let gpg = common::gpg::Gpg::new("Archive key", "ed25519");
    let (_, cert, key) = certificates(dir.path());
    // Every path a setting line (not a comment) names.
    for line in rewritten
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
    {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        for path in value.split('"').skip(1).step_by(2) {
            let Some(path) = path.strip_prefix(&root).map(|_| Path::new(path)) else {
                continue;
            };
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            match name.trim() {
                "cert" => std::fs::copy(&cert, path).map(drop).unwrap(),
                "key" => std::fs::copy(&key, path).map(drop).unwrap(),
                "keys" => std::fs::copy(&gpg.public, path).map(drop).unwrap(),
                _ => std::fs::create_dir_all(path).unwrap(),
            }
        }
    }
    assert!(rewritten != text, "the example names no absolute path");
    let config = dir.path().join("mirrorbox.toml");
    std::fs::write(&config, &rewritten).unwrap();
    let text = assert_check_config_clean(&config);
    for line in [
        "source puavo (puavo): served at /,",
        "source puavo_pkg (dir): served at /puavo-pkg/,",
        "source preseeds (dir): served at /preseeds/,",
    ] {
        assert!(text.contains(line), "{line}: {text}");
    }

    // The image server's parts are there, all at the root of the host.
    let parsed = mirrorbox::config::Config::load(&config).unwrap();
    let mount_of = |kind: &str, mount: &str| {
        parsed
            .sources
            .iter()
            .any(|s| s.kind.name() == kind && s.mount == mount)
    };
    assert!(mount_of("puavo", ""), "the puavo source is not at /");
    assert!(mount_of("dir", "/puavo-pkg"), "no /puavo-pkg");
    assert!(mount_of("dir", "/preseeds"), "no /preseeds");
    assert!(!parsed.server.https.is_empty() && parsed.server.tls.is_some());
}
