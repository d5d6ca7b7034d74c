//! Torrents as Puavo clients use them: the same infohash as a bootserver's `mktorrent -w
//! <url> <rdiff>` (mktorrent 1.1, 256 KiB pieces) for files of every size, trackers written
//! as `mktorrent -a` writes them, a real `aria2c` fetching an rdiff over HTTPS through a
//! published torrent (as a laptop does), and mirror mode publishing torrents by default.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::body_at as get;
use common::upstream::Upstream;
use common::{pattern, Server, Site};
use mirrorbox::puavo::torrent;
use sha1::{Digest, Sha1};

const SEED_URL: &str = "https://boot.example.org:873/rdiffs";

/// The end of the bencoded value that starts at `at`.
fn value_end(data: &[u8], at: usize) -> usize {
    match data[at] {
        b'i' => at + data[at..].iter().position(|&b| b == b'e').unwrap() + 1,
        b'l' | b'd' => {
            let mut i = at + 1;
            while data[i] != b'e' {
                i = value_end(data, i);
            }
            i + 1
        }
        _ => {
            let colon = at + data[at..].iter().position(|&b| b == b':').unwrap();
            let len: usize = std::str::from_utf8(&data[at..colon])
                .unwrap()
                .parse()
                .unwrap();
            colon + 1 + len
        }
    }
}

/// A bencoded dictionary's keys, in file order, with the raw bytes of each value.
fn dict(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    assert_eq!(data[0], b'd', "not a dictionary");
    let mut out = Vec::new();
    let mut i = 1;
    while data[i] != b'e' {
        let key_end = value_end(data, i);
        let key = string(&data[i..key_end]);
        let end = value_end(data, key_end);
        out.push((String::from_utf8(key).unwrap(), data[key_end..end].to_vec()));
        i = end;
    }
    assert_eq!(i + 1, data.len(), "bytes after the dictionary");
    out
}

/// The bytes of a bencoded string.
fn string(raw: &[u8]) -> Vec<u8> {
    let colon = raw.iter().position(|&b| b == b':').expect("a string");
    raw[colon + 1..].to_vec()
}

fn lookup(entries: &[(String, Vec<u8>)], key: &str) -> Option<Vec<u8>> {
    entries
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
}

fn infohash(torrent: &[u8]) -> String {
    let info = lookup(&dict(torrent), "info").expect("an info dictionary");
    hex::encode(Sha1::digest(&info))
}

/// What the bootserver runs: `mktorrent -o <out> -w <url> [-a <tracker>]… <file>`.
fn mktorrent(file: &Path, url: &str, trackers: &[&str]) -> Vec<u8> {
    let out = file.with_extension("mktorrent");
    let _ = std::fs::remove_file(&out);
    let mut command = Command::new("mktorrent");
    command.arg("-o").arg(&out).args(["-w", url]);
    for tracker in trackers {
        command.args(["-a", tracker]);
    }
    let run = command
        .arg(file)
        .output()
        .expect("mktorrent (Debian package mktorrent)");
    assert!(run.status.success(), "mktorrent: {run:?}");
    std::fs::read(&out).unwrap()
}

fn ours(file: &Path, url: &str, trackers: &[String]) -> Vec<u8> {
    let size = std::fs::metadata(file).unwrap().len();
    let name = file.file_name().unwrap().to_str().unwrap();
    let info = torrent::TorrentInfo {
        name,
        web_seed: url,
        trackers,
    };
    torrent::build(std::fs::File::open(file).unwrap(), size, &info).unwrap()
}

#[test]
fn infohash_and_web_seed_equal_mktorrents_for_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let piece = 262_144;
    for size in [0, 1, piece - 1, piece, piece + 1, 3 * piece + 77, 5_000_000] {
        let name = format!("a-{size}.rdiff");
        let file = dir.path().join(&name);
        std::fs::write(&file, pattern(size, size as u64)).unwrap();
        let url = format!("{SEED_URL}/{name}");
        let theirs = mktorrent(&file, &url, &[]);
        let mine = ours(&file, &url, &[]);
        let (their_top, my_top) = (dict(&theirs), dict(&mine));
        let their_info = lookup(&their_top, "info").unwrap();
        let my_info = lookup(&my_top, "info").unwrap();
        assert_eq!(infohash(&mine), infohash(&theirs), "size {size}");
        assert!(
            my_info == their_info,
            "size {size}: info dictionaries differ"
        );
        let keys: Vec<String> = dict(&my_info).into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["length", "name", "piece length", "pieces"]);
        // One web seed: a string, as mktorrent writes it.
        assert_eq!(
            lookup(&my_top, "url-list"),
            lookup(&their_top, "url-list"),
            "size {size}"
        );
        assert_eq!(
            string(&lookup(&my_top, "url-list").unwrap()),
            url.as_bytes()
        );
        // Deterministic: no creation date, no tracker unless asked for.
        for key in ["creation date", "announce", "announce-list"] {
            assert!(lookup(&my_top, key).is_none(), "{key} in {my_top:?}");
        }
        assert!(
            ours(&file, &url, &[]) == mine,
            "size {size}: not deterministic"
        );
    }
}

#[test]
fn trackers_are_written_as_mktorrent_a_writes_them() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("t.rdiff");
    std::fs::write(&file, pattern(300_000, 9)).unwrap();
    let url = format!("{SEED_URL}/t.rdiff");
    for trackers in [
        vec!["http://tracker.example/announce"],
        vec![
            "http://tracker.example/announce",
            "udp://other.example:6969/announce",
        ],
    ] {
        let theirs = dict(&mktorrent(&file, &url, &trackers));
        let owned: Vec<String> = trackers.iter().map(|t| t.to_string()).collect();
        let mine = dict(&ours(&file, &url, &owned));
        for key in ["announce", "announce-list", "info", "url-list"] {
            assert_eq!(
                lookup(&mine, key),
                lookup(&theirs, key),
                "{key} with trackers {trackers:?}"
            );
        }
    }
}

#[test]
fn large_files_get_mktorrents_piece_length() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.rdiff");
    let size = 700u64 << 20;
    std::fs::File::create(&file).unwrap().set_len(size).unwrap();
    let theirs = dict(&mktorrent(&file, &format!("{SEED_URL}/big.rdiff"), &[]));
    let info = dict(&lookup(&theirs, "info").unwrap());
    let piece_raw = lookup(&info, "piece length").unwrap();
    let piece: u64 = std::str::from_utf8(&piece_raw[1..piece_raw.len() - 1])
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(torrent::piece_length(size), piece);
    assert_eq!(
        string(&lookup(&info, "pieces").unwrap()).len() as u64,
        size.div_ceil(piece) * 20
    );
}

/// An image tree with a puavo-conf definition and `files` of pseudo-random bytes.
fn make_image(path: &Path, version: usize, files: &[(usize, u64)]) {
    let tree = tempfile::tempdir().unwrap();
    let defs = tree.path().join("usr/share/puavo-conf/definitions");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("puavo-test.json"),
        format!(r#"{{"puavo.test.version": {{"default": "v{version}", "typehint": "string", "description": "test"}}}}"#),
    )
    .unwrap();
    for (i, (len, seed)) in files.iter().enumerate() {
        std::fs::write(tree.path().join(format!("f{i}.bin")), pattern(*len, *seed)).unwrap();
    }
    let out = Command::new("mksquashfs")
        .arg(tree.path())
        .arg(path)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("mksquashfs (Debian package squashfs-tools)");
    assert!(out.status.success(), "mksquashfs: {out:?}");
}

const OLD: &str = "puavo-os-test-bookworm-2024-03-01-101500-amd64.img";
const NEW: &str = "puavo-os-test-bookworm-2024-03-02-101500-amd64.img";
const SERIES: &str = "puavo-os-test-bookworm-amd64";
const RDIFF: &str = "puavo-os-test-bookworm-2024-03-01-101500--2024-03-02-101500-amd64.rdiff";

/// Two images of one series; the rdiff between them spans several 256 KiB pieces.
fn image_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    make_image(&dir.path().join(OLD), 1, &[(400_000, 1), (300_000, 2)]);
    make_image(&dir.path().join(NEW), 2, &[(400_000, 1), (900_000, 3)]);
    dir
}

fn sync(site: &Site, id: &str) -> String {
    let (ok, text) = site.cli_text(&["sync", id]);
    assert!(ok, "sync {id}: {text}");
    text
}

/// A root CA (like the Puavo root CA laptops trust) and a server certificate it signed for
/// 127.0.0.1, written over the site's generated certificate. Returns the CA's file.
fn puavo_like_ca(site: &Site) -> std::path::PathBuf {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test Root CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_params = CertificateParams::new(vec!["127.0.0.1".into()]).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    std::fs::write(site.cert(), leaf.pem()).unwrap();
    std::fs::write(site.dir.path().join("key.pem"), leaf_key.serialize_pem()).unwrap();
    let ca_path = site.dir.path().join("rootca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    ca_path
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[test]
fn aria2c_fetches_an_rdiff_through_the_torrent_like_a_laptop() {
    let images = image_folder();
    let port = free_port();
    let urlbase = format!("https://127.0.0.1:{port}");
    // Torrents are not asked for: they are on by default.
    let source = format!(
        "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/\"\nimage_dir = \"{}\"\nurlbase = \"{urlbase}\"\n",
        images.path().display()
    );
    let site = Site::with(true, &source);
    site.edit_config(
        "https = [\"127.0.0.1:0\"]",
        &format!("https = [\"127.0.0.1:{port}\"]"),
    );
    let ca = puavo_like_ca(&site);
    let server = site.start_without_sync();
    let first = sync(&site, "images");
    let torrent_path = format!("/torrents/{RDIFF}.torrent");
    let published = get(&server, &format!("/rdiffs/{RDIFF}"));
    assert!(published.len() > 2 * 262_144, "{} bytes", published.len());
    let torrent = get(&server, &torrent_path);
    assert_eq!(
        string(&lookup(&dict(&torrent), "url-list").unwrap()),
        format!("{urlbase}/rdiffs/{RDIFF}").as_bytes()
    );
    // A re-sync makes the same torrent: nothing new is stored.
    let again = sync(&site, "images");
    assert!(again.contains("stored 0 new files"), "{first}\n{again}");
    assert!(get(&server, &torrent_path) == torrent);

    // A laptop trusts only its root CA: another one gets nothing.
    let stranger = tempfile::tempdir().unwrap();
    let other_ca = stranger.path().join("other-ca.pem");
    let other = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    std::fs::write(&other_ca, other.cert.pem()).unwrap();
    let refused = aria2c(
        &other_ca,
        stranger.path(),
        &format!("{urlbase}{torrent_path}"),
    );
    assert!(!refused.status.success(), "aria2c trusted another CA");
    assert!(!stranger.path().join(RDIFF).exists());

    let work = tempfile::tempdir().unwrap();
    let out = aria2c(&ca, work.path(), &format!("{urlbase}{torrent_path}"));
    assert!(out.status.success(), "aria2c: {out:?}");
    let fetched = work.path().join(RDIFF);
    assert!(std::fs::read(&fetched).unwrap() == published);

    let rebuilt = work.path().join("rebuilt.img");
    let patch = Command::new("rdiff")
        .arg("patch")
        .arg(images.path().join(OLD))
        .arg(&fetched)
        .arg(&rebuilt)
        .output()
        .expect("rdiff (Debian package rdiff)");
    assert!(patch.status.success(), "rdiff patch: {patch:?}");
    assert!(std::fs::read(&rebuilt).unwrap() == std::fs::read(images.path().join(NEW)).unwrap());
}

/// aria2c as a Puavo laptop runs it on a torrent URL, kept local (no DHT, no LPD) and made
/// to exit once the file is complete.
fn aria2c(ca: &Path, dir: &Path, url: &str) -> std::process::Output {
    Command::new("timeout")
        .arg("120")
        .arg("aria2c")
        .arg(format!("--ca-certificate={}", ca.display()))
        .args([
            "--follow-torrent=mem",
            "--seed-time=0",
            "--bt-enable-lpd=false",
            "--enable-dht=false",
            "--check-integrity=true",
            "--summary-interval=0",
            "--console-log-level=warn",
            "--max-tries=2",
        ])
        .arg(format!("--dir={}", dir.display()))
        .arg(url)
        .output()
        .expect("aria2c (Debian package aria2)")
}

/// Copies a served repository (CKSUMS, the meta file and every file CKSUMS lists) into `dir`.
fn export(server: &Server, mount: &str, dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut paths = vec!["CKSUMS".to_string(), format!("meta/{SERIES}.json")];
    let cksums = String::from_utf8(get(server, &format!("{mount}/CKSUMS"))).unwrap();
    for line in cksums.lines() {
        let file = line.rsplit(' ').next().unwrap();
        paths.push(if file.ends_with(".rdiff") {
            format!("rdiffs/{file}")
        } else {
            file.to_string()
        });
    }
    let mut files = BTreeMap::new();
    for path in paths {
        let bytes = get(server, &format!("{mount}/{path}"));
        let target = dir.join(&path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, &bytes).unwrap();
        files.insert(path, bytes);
    }
    files
}

#[test]
fn mirror_mode_publishes_torrents_by_default() {
    let images = image_folder();
    let upstream_dir = tempfile::tempdir().unwrap();
    let files = {
        let source = format!(
            "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/puavo\"\nimage_dir = \"{}\"\nurlbase = \"https://upstream.example/puavo\"\n",
            images.path().display()
        );
        let site = Site::with(false, &source);
        let server = site.start_without_sync();
        sync(&site, "images");
        export(&server, "/puavo", upstream_dir.path())
    };
    let upstream = Upstream::serve(upstream_dir.path());
    let mirror = |extra: &str| {
        format!(
            "[[source]]\nid = \"mirror\"\nkind = \"puavo\"\nmount = \"/images\"\nupstream = \"{}\"\nseries = [\"{SERIES}\"]\n{extra}\n",
            upstream.url("/").trim_end_matches('/'),
        )
    };
    let here = "https://bootserver.example:873/images";
    let site = Site::with(false, &mirror(&format!("urlbase = \"{here}\"")));
    let server = site.start_without_sync();
    sync(&site, "mirror");
    let rdiff = files
        .get(&format!("rdiffs/{RDIFF}"))
        .expect("upstream rdiff");
    assert!(get(&server, &format!("/images/rdiffs/{RDIFF}")) == *rdiff);
    let torrent = get(&server, &format!("/images/torrents/{RDIFF}.torrent"));
    // This server's web seed, and the infohash a bootserver's mktorrent gives the rdiff.
    let seed = format!("{here}/rdiffs/{RDIFF}");
    let work = tempfile::tempdir().unwrap();
    let copy = work.path().join(RDIFF);
    std::fs::write(&copy, rdiff).unwrap();
    let theirs = mktorrent(&copy, &seed, &[]);
    assert_eq!(infohash(&torrent), infohash(&theirs));
    assert_eq!(
        lookup(&dict(&torrent), "url-list"),
        lookup(&dict(&theirs), "url-list")
    );
    // A re-sync stores nothing new.
    let again = sync(&site, "mirror");
    assert!(again.contains("stored 0 new files"), "{again}");

    // Without urlbase, torrents must be turned off explicitly.
    let bare = Site::with(false, &mirror(""));
    let (ok, text) = bare.cli_text(&["check-config"]);
    assert!(!ok, "{text}");
    for words in [
        "key `urlbase`",
        "torrents are on by default",
        "torrents = false",
    ] {
        assert!(text.contains(words), "`{words}` not in: {text}");
    }
    let off = Site::with(false, &mirror("torrents = false"));
    let (ok, text) = off.cli_text(&["check-config"]);
    assert!(ok, "{text}");
    let off_server = off.start_without_sync();
    sync(&off, "mirror");
    assert_eq!(
        common::status_code(&off_server.url(&format!("/images/torrents/{RDIFF}.torrent"))),
        "404"
    );
}
