//! `files` sources end to end: upstream trees served by nginx (`autoindex on`), by Python's
//! `http.server` and by the counting test upstream, mirrored by the real binary and read back
//! through mirrorbox's own server.
//!
//! What the upstreams log is the evidence: nginx's access log (`$body_bytes_sent`), Python's
//! request log and the test upstream's byte counter show that a second sync sends no file
//! body, that a changed file is fetched, and that excluded paths are never asked for.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use common::upstream::{Fault, Upstream};
use common::{pattern, sha256_hex, Client, Server, Site};

// ---- fixtures -----------------------------------------------------------------------------

/// A date far enough back that every file the tests write later is newer.
fn day(n: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + n * 86_400)
}

/// Writes `bytes` at `root/path` with modification time `when` (so If-Modified-Since is
/// decided by the test, never by the clock's second boundary).
fn put(root: &Path, path: &str, bytes: &[u8], when: SystemTime) {
    let file = root.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, bytes).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

fn sha512_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha512::digest(data))
}

/// A site with one `files` source `mirror` at `/mirror`.
fn files_site(url: &str, keys: &str) -> Site {
    Site::with(
        false,
        &format!(
            "[[source]]\nid = \"mirror\"\nkind = \"files\"\nmount = \"/mirror\"\nurl = \"{url}\"\n{keys}\n"
        ),
    )
}

/// `mirrorbox sync mirror`: success and everything it printed.
fn sync(site: &Site) -> (bool, String) {
    let out = site.cli(&["sync", "mirror"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Status and body of a GET through mirrorbox.
fn fetch(server: &Server, path: &str) -> (u16, Vec<u8>) {
    let (status, _, body) = Client::connect(server.http)
        .unwrap()
        .get(&format!("/mirror/{path}"))
        .unwrap();
    (status, body)
}

/// Asserts that mirrorbox serves exactly the upstream's bytes for each of `paths`.
fn assert_mirrored(server: &Server, root: &Path, paths: &[&str]) {
    for path in paths {
        let encoded = path.replace(' ', "%20");
        let (status, body) = fetch(server, &encoded);
        assert_eq!(status, 200, "{path} is not published");
        let want = std::fs::read(root.join(path)).unwrap();
        assert!(
            body == want,
            "{path}: mirrorbox serves other bytes than the upstream"
        );
    }
}

fn assert_absent(server: &Server, paths: &[&str]) {
    for path in paths {
        assert_eq!(fetch(server, path).0, 404, "{path} must not be published");
    }
}

fn snapshots(site: &Site) -> String {
    String::from_utf8_lossy(&site.cli(&["snapshots", "mirror"]).stdout).into_owned()
}

/// The tree the listing tests mirror, with the paths the filter keeps and leaves out.
struct Tree {
    dir: tempfile::TempDir,
}

const INCLUDE: &str =
    "include = [\"**/*.iso\", \"SHA256SUMS\", \"sub\", \"notes.txt\", \"name with space.txt\"]\nexclude = [\"**/*.tmp\", \"old\"]";
const KEPT: [&str; 7] = [
    "SHA256SUMS",
    "a.iso",
    "b.iso",
    "notes.txt",
    "name with space.txt",
    "sub/c.bin",
    "sub/deep/d.iso",
];
const LEFT_OUT: [&str; 4] = ["skip.tmp", "sub/x.tmp", "old/e.iso", "other.dat"];

impl Tree {
    fn new() -> Tree {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let a = pattern(300_000, 1);
        let b = pattern(70_000, 2);
        put(root, "a.iso", &a, day(1));
        put(root, "b.iso", &b, day(1));
        put(
            root,
            "SHA256SUMS",
            format!("{}  a.iso\n{} *b.iso\n", sha256_hex(&a), sha256_hex(&b)).as_bytes(),
            day(1),
        );
        put(root, "notes.txt", b"release notes\n", day(2));
        put(root, "name with space.txt", b"spaces\n", day(2));
        put(root, "skip.tmp", b"temporary\n", day(2));
        put(root, "other.dat", b"not included\n", day(2));
        put(root, "sub/c.bin", &pattern(50_000, 3), day(3));
        put(root, "sub/x.tmp", b"temporary\n", day(3));
        put(root, "sub/deep/d.iso", &pattern(20_000, 4), day(3));
        put(root, "old/e.iso", &pattern(10_000, 5), day(3));
        Tree { dir }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }
}

/// Requests of one sync as an upstream logged them: (path, status, body bytes if known).
type Requests = Vec<(String, u16, Option<u64>)>;

/// File requests (not listing pages) of a sync.
fn file_requests(requests: &Requests) -> Requests {
    requests
        .iter()
        .filter(|(path, _, _)| !path.ends_with('/'))
        .cloned()
        .collect()
}

// ---- nginx ---------------------------------------------------------------------------------

/// nginx with `autoindex on`, one process as the current user, everything in a temp dir.
struct Nginx {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    /// Access log lines already handed out.
    seen: usize,
    markers: usize,
}

fn nginx_binary() -> PathBuf {
    for candidate in ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"] {
        if Path::new(candidate).is_file() {
            return candidate.into();
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nginx"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    match found {
        Some(path) if !path.is_empty() => path.into(),
        _ => panic!(
            "nginx is not installed: the files sync tests need it as an upstream (Debian: apt-get install nginx-light)"
        ),
    }
}

impl Nginx {
    fn serve(root: &Path) -> Nginx {
        let binary = nginx_binary();
        for _ in 0..5 {
            let port = free_port();
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().display();
            let config = format!(
                "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\nevents {{ worker_connections 256; }}\nhttp {{\n  log_format files '$request_method $request_uri $status $body_bytes_sent';\n  access_log {d}/access.log files;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  default_type application/octet-stream;\n  server {{\n    listen 127.0.0.1:{port};\n    root {root};\n    autoindex on;\n  }}\n}}\n",
                root = root.display()
            );
            std::fs::write(dir.path().join("nginx.conf"), config).unwrap();
            let mut child = Command::new(&binary)
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(dir.path().join("nginx.conf"))
                .arg("-e")
                .arg(dir.path().join("error.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            loop {
                if TcpStream::connect(addr).is_ok() {
                    return Nginx {
                        child,
                        dir,
                        addr,
                        seen: 0,
                        markers: 0,
                    };
                }
                if child.try_wait().unwrap().is_some() || std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    let log =
                        std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
                    eprintln!("nginx did not start on port {port} (trying another): {log}");
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("nginx did not start");
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The requests logged since the last call: a marker request is made first and waited
    /// for, so every request of a finished sync is in.
    fn requests(&mut self) -> Requests {
        let log = self.dir.path().join("access.log");
        requests_until_marker(
            "nginx",
            self.addr,
            &mut self.markers,
            &mut self.seen,
            || {
                std::fs::read_to_string(&log)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect()
            },
            |line| {
                let fields: Vec<&str> = line.split(' ').collect();
                assert_eq!(fields.len(), 4, "unexpected access log line {line}");
                Some((
                    fields[1].to_string(),
                    fields[2].parse().unwrap(),
                    Some(fields[3].parse().unwrap()),
                ))
            },
        )
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests a marker path, waits until the server's log (`read_log`) shows it, and returns
/// the requests logged since the previous call (`seen`: the line after the last marker), so
/// every request of a finished sync is in.
fn requests_until_marker(
    server: &str,
    addr: std::net::SocketAddr,
    markers: &mut usize,
    seen: &mut usize,
    read_log: impl Fn() -> Vec<String>,
    parse: impl Fn(&str) -> Option<(String, u16, Option<u64>)>,
) -> Requests {
    *markers += 1;
    let marker = format!("/__marker_{markers}");
    let _ = common::curl(&["-o", "/dev/null", &format!("http://{addr}{marker}")]);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let lines = read_log();
        if let Some(end) = lines.iter().position(|l| l.contains(&marker)) {
            let out = lines[*seen..end].iter().filter_map(|l| parse(l)).collect();
            *seen = end + 1;
            return out;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{server} never logged {marker}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn nginx_tree_is_mirrored_and_kept_up_to_date() {
    let tree = Tree::new();
    let root = tree.root();
    let mut nginx = Nginx::serve(root);
    let site = files_site(&nginx.url(), INCLUDE);
    let server = site.start_without_sync();

    // 1. The first sync mirrors what the filter keeps, byte for byte.
    let (ok, text) = sync(&site);
    assert!(ok, "{text}\n{}", server.log_text());
    assert_mirrored(&server, root, &KEPT);
    assert_absent(&server, &LEFT_OUT);
    let first = nginx.requests();
    for (path, _, _) in &first {
        assert!(
            !path.contains("/old/") && !path.ends_with(".tmp") && path != "/other.dat",
            "an excluded path was requested: {path}"
        );
    }
    // Dates come from the upstream's Last-Modified.
    let (_, headers, _) = Client::connect(server.http)
        .unwrap()
        .get("/mirror/notes.txt")
        .unwrap();
    let last_modified = headers
        .iter()
        .find(|(name, _)| name == "last-modified")
        .map(|(_, value)| value.clone())
        .unwrap();
    assert_eq!(last_modified, httpdate::fmt_http_date(day(2)));

    // 2. Nothing changed: one conditional request per file, no body.
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let second = file_requests(&nginx.requests());
    let asked: Vec<&str> = second.iter().map(|(p, _, _)| p.as_str()).collect();
    assert_eq!(second.len(), KEPT.len(), "one request per file: {asked:?}");
    for (path, status, bytes) in &second {
        assert_eq!(
            (*status, *bytes),
            (304, Some(0)),
            "{path} was not answered 304 without a body"
        );
    }

    // 3. A changed file is fetched (and only it), a deleted one leaves the snapshot.
    let changed = pattern(60_000, 30);
    put(root, "sub/c.bin", &changed, day(10));
    std::fs::remove_file(root.join("sub/deep/d.iso")).unwrap();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let third = file_requests(&nginx.requests());
    let bodies: BTreeMap<&str, u64> = third
        .iter()
        .filter(|(_, _, bytes)| *bytes != Some(0))
        .map(|(path, _, bytes)| (path.as_str(), bytes.unwrap()))
        .collect();
    assert_eq!(
        bodies,
        BTreeMap::from([("/sub/c.bin", changed.len() as u64)]),
        "{third:?}"
    );
    assert_eq!(fetch(&server, "sub/c.bin").1, changed);
    assert_absent(&server, &["sub/deep/d.iso"]);
    assert_mirrored(&server, root, &["a.iso", "b.iso", "notes.txt"]);

    // 4. A file that no longer matches its SHA256SUMS line fails the sync; the old one stays.
    let old_a = std::fs::read(root.join("a.iso")).unwrap();
    let new_a = pattern(300_000, 40);
    put(root, "a.iso", &new_a, day(11));
    let before = snapshots(&site);
    let (ok, text) = sync(&site);
    assert!(!ok, "a checksum mismatch must fail the sync: {text}");
    for needle in [
        "a.iso",
        &sha256_hex(&old_a),
        &sha256_hex(&new_a),
        "SHA256SUMS",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from: {text}");
    }
    assert_eq!(
        snapshots(&site),
        before,
        "the previous snapshot stays current"
    );
    assert_eq!(fetch(&server, "a.iso").1, old_a);

    // 5. Once SHA256SUMS agrees again, the new file is published.
    let b = std::fs::read(root.join("b.iso")).unwrap();
    put(
        root,
        "SHA256SUMS",
        format!("{}  a.iso\n{} *b.iso\n", sha256_hex(&new_a), sha256_hex(&b)).as_bytes(),
        day(11),
    );
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert_eq!(fetch(&server, "a.iso").1, new_a);
    assert_mirrored(&server, root, &["SHA256SUMS", "b.iso"]);
}

// ---- Python's http.server ------------------------------------------------------------------

/// `python3 -m http.server` on a port it picks, its request log collected from stderr.
struct Python {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
    seen: usize,
    markers: usize,
}

impl Python {
    fn serve(root: &Path) -> Python {
        let mut child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "--bind",
                "127.0.0.1",
                "0",
                "--directory",
            ])
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 is installed");
        // "Serving HTTP on 127.0.0.1 port 38147 (http://127.0.0.1:38147/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line
            .split("port ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("python's http.server said {line:?}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Python {
            child,
            addr: format!("127.0.0.1:{port}").parse().unwrap(),
            log,
            seen: 0,
            markers: 0,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Requests logged since the last call (`"GET /path HTTP/1.1" 304 -`); Python does not
    /// log body sizes, so they are `None`: a 200 carries the body, a 304 none.
    fn requests(&mut self) -> Requests {
        let log = self.log.clone();
        requests_until_marker(
            "python",
            self.addr,
            &mut self.markers,
            &mut self.seen,
            || log.lock().unwrap().clone(),
            |line| {
                let request = line.split('"').nth(1)?;
                let status = line.split('"').nth(2)?.split_whitespace().next()?;
                let path = request.split(' ').nth(1)?;
                Some((path.to_string(), status.parse().ok()?, None))
            },
        )
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn python_http_server_tree_is_mirrored_with_conditional_requests() {
    let tree = Tree::new();
    let root = tree.root();
    let mut python = Python::serve(root);
    let site = files_site(&python.url(), INCLUDE);
    let server = site.start_without_sync();

    let (ok, text) = sync(&site);
    assert!(ok, "{text}\n{}", server.log_text());
    assert_mirrored(&server, root, &KEPT);
    assert_absent(&server, &LEFT_OUT);
    let first = file_requests(&python.requests());
    assert_eq!(first.len(), KEPT.len(), "{first:?}");

    // Python answers If-Modified-Since: an unchanged tree is all 304s.
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let second = file_requests(&python.requests());
    assert_eq!(second.len(), KEPT.len(), "{second:?}");
    for (path, status, _) in &second {
        assert_eq!(*status, 304, "{path} was sent again");
    }

    let changed = b"new release notes\n".to_vec();
    put(root, "notes.txt", &changed, day(20));
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    let third = file_requests(&python.requests());
    let sent: Vec<&str> = third
        .iter()
        .filter(|(_, status, _)| *status == 200)
        .map(|(path, _, _)| path.as_str())
        .collect();
    assert_eq!(sent, ["/notes.txt"], "{third:?}");
    assert_eq!(fetch(&server, "notes.txt").1, changed);
}

// ---- indices, with the counting upstream ---------------------------------------------------

/// An aplinfo.dat paragraph.
fn template(location: &str, sha512: Option<&str>) -> String {
    let mut text = format!(
        "Package: {location}\nVersion: 1.0\nType: lxc\nSection: system\nLocation: {location}\n"
    );
    if let Some(sha512) = sha512 {
        text.push_str(&format!(
            "md5sum: 0123456789abcdef0123456789abcdef\nsha512sum: {sha512}\n"
        ));
    }
    text.push_str("Description: a template\n with a second line\n\n");
    text
}

#[test]
fn aplinfo_indexed_tree() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let t1 = pattern(120_000, 50);
    let t2 = pattern(80_000, 51);
    let t3 = pattern(40_000, 52);
    put(root, "system/t1.tar.zst", &t1, day(1));
    put(root, "system/t2.tar.gz", &t2, day(1));
    put(root, "turnkey/t3.tar.gz", &t3, day(1));
    put(root, "unlisted.tar.gz", b"not in the index", day(1));
    let index = |t1: &[u8], t2: &[u8]| {
        format!(
            "{}{}{}{}",
            template("system/t1.tar.zst", Some(&sha512_hex(t1))),
            template("system/t2.tar.gz", Some(&sha512_hex(t2))),
            template("turnkey/t3.tar.gz", None),
            template("http://elsewhere.example/t4.tar.gz", None),
        )
    };
    put(root, "aplinfo.dat", index(&t1, &t2).as_bytes(), day(1));
    let upstream = Upstream::serve(root);
    // A template without a hash, cut mid-body: fetched again from the start.
    upstream.fault("/turnkey/t3.tar.gz", &[Fault::Cut(10_000)]);
    let site = files_site(&upstream.url("/"), "index = \"aplinfo\"");
    let server = site.start_without_sync();

    let (ok, text) = sync(&site);
    assert!(ok, "{text}\n{}", server.log_text());
    let published = [
        "aplinfo.dat",
        "system/t1.tar.zst",
        "system/t2.tar.gz",
        "turnkey/t3.tar.gz",
    ];
    assert_mirrored(&server, root, &published);
    assert_absent(&server, &["unlisted.tar.gz", "t4.tar.gz"]);
    let total: u64 = published
        .iter()
        .map(|p| std::fs::metadata(root.join(p)).unwrap().len())
        .sum();
    assert_eq!(
        upstream
            .body_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        total + 10_000,
        "each file once, plus the cut attempt"
    );

    // Unchanged: one conditional request per file, no body.
    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert_eq!(
        upstream
            .body_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let mut log = upstream.log();
    log.sort();
    let expected: Vec<(String, u16)> = published.iter().map(|p| (format!("/{p}"), 304)).collect();
    assert_eq!(log, expected);

    // A new template version with its new hash is published.
    let t1_new = pattern(130_000, 60);
    put(root, "system/t1.tar.zst", &t1_new, day(5));
    put(root, "aplinfo.dat", index(&t1_new, &t2).as_bytes(), day(5));
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert_eq!(fetch(&server, "system/t1.tar.zst").1, t1_new);

    // A template that does not match its sha512sum fails the sync; the old one stays.
    let t2_bad = pattern(80_000, 61);
    put(root, "system/t2.tar.gz", &t2_bad, day(6));
    let before = snapshots(&site);
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    for needle in [
        "system/t2.tar.gz",
        "sha512",
        &sha512_hex(&t2),
        &sha512_hex(&t2_bad),
    ] {
        assert!(text.contains(needle), "`{needle}` missing from: {text}");
    }
    assert_eq!(snapshots(&site), before);
    assert_eq!(fetch(&server, "system/t2.tar.gz").1, t2);
}

#[test]
fn checksum_file_index_resumes_cut_downloads() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let big = pattern(2_000_000, 70);
    let small = b"small file\n".to_vec();
    put(root, "iso/big.iso", &big, day(1));
    put(root, "iso/small.txt", &small, day(1));
    put(root, "iso/unlisted.iso", b"not in SHA256SUMS", day(1));
    let sums = format!(
        "{}  big.iso\n{}  ./small.txt\n",
        sha256_hex(&big),
        sha256_hex(&small)
    );
    put(root, "iso/SHA256SUMS", sums.as_bytes(), day(1));
    let upstream = Upstream::serve(root);
    upstream.fault(
        "/iso/big.iso",
        &[Fault::Cut(700_000), Fault::Status(503, Some(0))],
    );
    let site = files_site(&upstream.url("/"), "index = \"iso/SHA256SUMS\"");
    let server = site.start_without_sync();

    let (ok, text) = sync(&site);
    assert!(ok, "{text}\n{}", server.log_text());
    assert_mirrored(
        &server,
        root,
        &["iso/SHA256SUMS", "iso/big.iso", "iso/small.txt"],
    );
    assert_absent(&server, &["iso/unlisted.iso"]);
    // The cut download went on where it stopped: every byte crossed the wire once.
    assert_eq!(
        upstream
            .body_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        (big.len() + small.len() + sums.len()) as u64
    );
    assert!(
        upstream.log().contains(&("/iso/big.iso".to_string(), 206)),
        "{:?}",
        upstream.log()
    );

    upstream.reset_counters();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert_eq!(
        upstream
            .body_bytes
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(upstream.log().iter().all(|(_, status)| *status == 304));
}

#[test]
fn an_unreachable_root_fails_and_names_the_url() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/iso/");
    let site = files_site(&url, "retries = 0");
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(text.contains(&url), "{text}");
}

#[test]
fn a_symlink_loop_upstream_is_bounded_and_can_be_excluded() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    put(root, "file.txt", b"content\n", day(1));
    std::fs::create_dir_all(root.join("sub")).unwrap();
    std::os::unix::fs::symlink("..", root.join("sub/loop")).unwrap();
    let mut nginx = Nginx::serve(root);
    let site = files_site(&nginx.url(), "");
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(text.contains("deeper than"), "{text}");
    let pages = nginx.requests().len();
    assert!(pages < 100, "the walk must stop early: {pages} requests");

    let site = files_site(&nginx.url(), "exclude = [\"**/loop\"]");
    let server = site.start_without_sync();
    let (ok, text) = sync(&site);
    assert!(ok, "{text}");
    assert_mirrored(&server, root, &["file.txt"]);
}

#[test]
fn an_empty_listing_is_not_published() {
    let dir = tempfile::tempdir().unwrap();
    let python = Python::serve(dir.path());
    let site = files_site(&python.url(), "");
    let (ok, text) = sync(&site);
    assert!(!ok, "{text}");
    assert!(text.contains("found no file"), "{text}");
}
