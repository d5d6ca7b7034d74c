//! Limits that keep one host alive against clients that hold on: HTTP/2 streams that never
//! read, slow HTTP/1.1 readers, idle HTTP/2 connections kept busy with PINGs, a dripped
//! HTTP/2 preface, oversized request heads, and the accept queue. Real binary, real clients
//! (Python's `h2` over plain sockets, curl, `ss`).
//!
//! Python is `$MIRRORBOX_PYTHON`, else the venv `tests/run.sh` makes (`target/pyenv`), else
//! `python3`; it needs the `h2` package.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::probe::{python, rss};
use common::{curl, Server, Site};

const BENCHES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches");

/// Runs a Python script given as text; panics with its output if it cannot start.
fn run_python(script: &str, args: &[String]) -> Output {
    let python = python();
    let output = Command::new(&python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'h2'"),
        "the h2 package is not installed for {python} (run tests/run.sh once, or set \
         MIRRORBOX_PYTHON to a Python that has it)"
    );
    output
}

/// One of the attack clients in `benches/`, running until dropped; `ready` once its
/// connections are all open.
struct Attack(Child);

impl Attack {
    fn start(script: &str, args: &[String]) -> Attack {
        let python = python();
        let mut child = Command::new(&python)
            .arg(Path::new(BENCHES).join(script))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "{script} did not get ready");
        Attack(child)
    }
}

impl Drop for Attack {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The highest RSS seen over `period` (the server keeps filling buffers for a while after the
/// clients are ready).
fn peak_rss(server: &Server, period: Duration) -> u64 {
    let end = Instant::now() + period;
    let mut peak = rss(server);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        peak = peak.max(rss(server));
    }
    peak
}

/// Waits up to `within` for RSS to drop below `limit`; returns the last figure.
fn rss_falls_below(server: &Server, limit: u64, within: Duration) -> u64 {
    let end = Instant::now() + within;
    loop {
        let now = rss(server);
        if now < limit || Instant::now() > end {
            return now;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

const MB: u64 = 1024 * 1024;

/// A site with a 64 MiB file (sparse: the page cache serves it without disk reads), started,
/// warmed with one full download so the figures compare steady states.
fn site_with_big_file(server_keys: &str) -> (Site, Server) {
    let site = Site::new();
    site.server_keys(server_keys);
    let file = std::fs::File::create(site.public().join("big.bin")).unwrap();
    file.set_len(64 * MB).unwrap();
    drop(file);
    let server = site.start();
    let warm = curl(&["-f", "-o", "/dev/null", &server.url("/files/big.bin")]);
    assert!(warm.status.success(), "{warm:?}");
    (site, server)
}

fn addr_args(server: &Server, path: &str) -> Vec<String> {
    vec![
        server.http.ip().to_string(),
        server.http.port().to_string(),
        path.to_string(),
    ]
}

#[test]
fn h2_streams_that_never_read_hold_bounded_memory_and_give_it_back() {
    let (_site, server) = site_with_big_file("");
    let before = rss(&server);
    let mut args = addr_args(&server, "/files/big.bin");
    args.extend(["--connections", "4", "--streams", "256"].map(String::from));
    let attack = Attack::start("h2_stall.py", &args);
    let during = peak_rss(&server, Duration::from_secs(4));
    drop(attack);
    let after = rss_falls_below(&server, before + 2 * MB, Duration::from_secs(15));
    eprintln!(
        "RSS: before {} MB, with 4 stalled h2 connections × 256 streams {} MB, after {} MB",
        before / MB,
        during / MB,
        after / MB
    );
    assert!(
        during < before + 25 * MB,
        "stalled streams grew RSS from {before} to {during}"
    );
    assert!(
        after < before + 10 * MB,
        "RSS stayed at {after} after the clients left (was {before})"
    );
    // Still serving.
    let check = curl(&["-f", "-o", "/dev/null", &server.url("/files/big.bin")]);
    assert!(check.status.success(), "{check:?}");
}

#[test]
fn slow_http1_readers_hold_bounded_memory_and_do_not_starve_others() {
    let (_site, server) = site_with_big_file("");
    let before = rss(&server);
    let mut args = addr_args(&server, "/files/big.bin");
    args.extend(["--connections", "200"].map(String::from));
    let attack = Attack::start("slow_readers.py", &args);
    let during = peak_rss(&server, Duration::from_secs(4));
    // While they hold what they hold, a normal download still goes through.
    let fetch = curl(&[
        "-f",
        "-o",
        "/dev/null",
        "-w",
        "%{size_download}",
        &server.url("/files/big.bin"),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&fetch.stdout),
        (64 * MB).to_string(),
        "{fetch:?}"
    );
    drop(attack);
    let after = rss_falls_below(&server, before + 2 * MB, Duration::from_secs(15));
    eprintln!(
        "RSS: before {} MB, with 200 slow HTTP/1.1 readers {} MB, after {} MB",
        before / MB,
        during / MB,
        after / MB
    );
    assert!(
        during < before + 50 * MB,
        "slow readers grew RSS from {before} to {during}"
    );
    assert!(
        after < before + 10 * MB,
        "RSS stayed at {after} after the clients left (was {before})"
    );
}

/// Makes one request, then keeps the connection busy with PINGs (and answers the server's)
/// without asking for anything; prints how the connection ended.
const PINGER: &str = r#"
import socket, sys, time
import h2.config, h2.connection, h2.events, h2.exceptions
host, port, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
sock = socket.create_connection((host, port))
sock.settimeout(0.3)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", host),
                      (":path", "/files/")], end_stream=True)
sock.sendall(conn.data_to_send())
start = time.monotonic()
n = 0
while time.monotonic() - start < limit:
    n += 1
    conn.ping(n.to_bytes(8, "big"))
    try:
        sock.sendall(conn.data_to_send())
        data = sock.recv(65536)
    except socket.timeout:
        continue
    except OSError as e:
        print("closed: " + str(e)); sys.exit(0)
    if not data:
        print("closed: eof"); sys.exit(0)
    try:
        events = conn.receive_data(data)
    except h2.exceptions.ProtocolError:
        # Frames after a GOAWAY (hyper follows it with a PING) upset a closed connection.
        if conn.state_machine.state == h2.connection.ConnectionState.CLOSED:
            print("closed: goaway"); sys.exit(0)
        raise
    for event in events:
        if isinstance(event, h2.events.ConnectionTerminated):
            print("closed: goaway"); sys.exit(0)
        if isinstance(event, h2.events.DataReceived):
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    sock.sendall(conn.data_to_send())
print("still open")
"#;

#[test]
fn h2_connection_kept_busy_with_pings_is_closed_when_idle() {
    let site = Site::new();
    site.server_keys("idle_timeout = \"2s\"");
    std::fs::write(site.public().join("a.txt"), "a").unwrap();
    let server = site.start();
    let mut args = vec![server.http.ip().to_string(), server.http.port().to_string()];
    args.push("15".into());
    let out = run_python(PINGER, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("closed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Sends `data` one byte every half second (over TLS if asked, after a prompt handshake);
/// prints at which byte the server closed, or that it never did.
const DRIP: &str = r#"
import socket, ssl, sys, time
host, port, tls = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "tls"
data = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
sock = socket.create_connection((host, port))
if tls:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(sock, server_hostname="localhost")
sock.settimeout(0.5)
for i in range(len(data)):
    try:
        sock.sendall(data[i:i + 1])
        if not sock.recv(1024):
            print("closed at byte", i); sys.exit(0)
    except socket.timeout:
        pass
    except (OSError, ssl.SSLError) as e:
        print("closed at byte", i, e); sys.exit(0)
print("never closed")
"#;

fn dripped_preface_is_cut(tls: bool) {
    let site = Site::with(tls, "");
    site.server_keys("header_timeout = \"2s\"");
    let server = site.start();
    let port = match tls {
        true => server.https.expect("https listener").port(),
        false => server.http.port(),
    };
    let args = [
        "127.0.0.1".to_string(),
        port.to_string(),
        if tls { "tls" } else { "plain" }.to_string(),
    ];
    let out = run_python(DRIP, &args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("closed at byte"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dripped_h2_preface_is_cut_at_header_timeout() {
    dripped_preface_is_cut(false);
}

#[test]
fn dripped_h2_preface_over_tls_is_cut_at_header_timeout() {
    dripped_preface_is_cut(true);
}

/// Sends one request with an `x-big` header of the given size over HTTP/2; prints the status.
const BIG_HEADER_H2: &str = r#"
import socket, sys
import h2.config, h2.connection, h2.events
host, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sock = socket.create_connection((host, port))
sock.settimeout(10)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
conn.send_headers(1, [(":method", "GET"), (":scheme", "http"), (":authority", host),
                      (":path", "/files/"), ("x-big", "a" * size)], end_stream=True)
sock.sendall(conn.data_to_send())
while True:
    data = sock.recv(65536)
    if not data:
        print("eof"); break
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived):
            print(dict(event.headers)[b":status"].decode()); sys.exit(0)
        if isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
            print(type(event).__name__); sys.exit(0)
    sock.sendall(conn.data_to_send())
"#;

/// One HTTP/1.1 request with an `X-Big` header of `size` bytes; the status line.
fn h1_with_big_header(server: &Server, size: usize) -> String {
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /files/ HTTP/1.1\r\nHost: test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(size)
    );
    // The server may answer and close before it has read everything.
    let _ = stream.write_all(request.as_bytes());
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while !response.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    text.lines().next().unwrap_or("").to_string()
}

#[test]
fn oversized_request_heads_get_431_over_http1_and_h2() {
    let site = Site::new();
    std::fs::write(site.public().join("a.txt"), "a").unwrap();
    let server = site.start();
    assert_eq!(
        h1_with_big_header(&server, 200_000),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(h1_with_big_header(&server, 32_000), "HTTP/1.1 200 OK");
    let h2 = |size: usize| {
        let mut args = vec![server.http.ip().to_string(), server.http.port().to_string()];
        args.push(size.to_string());
        let out = run_python(BIG_HEADER_H2, &args);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(h2(100_000), "431");
    assert_eq!(h2(32_000), "200");
}

#[test]
fn smaller_header_cap_is_configurable() {
    let site = Site::new();
    site.server_keys("max_header_bytes = \"16k\"");
    std::fs::write(site.public().join("a.txt"), "a").unwrap();
    let server = site.start();
    assert_eq!(
        h1_with_big_header(&server, 20_000),
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    assert_eq!(h1_with_big_header(&server, 4_000), "HTTP/1.1 200 OK");
}

#[test]
fn listen_backlog_is_the_configured_one() {
    let site = Site::new();
    site.server_keys("listen_backlog = 777");
    let server = site.start();
    // For a listening socket, `ss` shows the backlog as Send-Q.
    let out = Command::new("ss")
        .args(["-ltnH", &format!("sport = :{}", server.http.port())])
        .output()
        .expect("ss is installed");
    let text = String::from_utf8_lossy(&out.stdout);
    let send_q = text
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("no listening socket in {text:?}"));
    assert_eq!(send_q, "777", "{text}");
}

#[test]
fn bad_limits_are_refused_naming_the_key() {
    for (keys, key) in [
        ("listen_backlog = 0", "listen_backlog"),
        ("max_header_bytes = \"1k\"", "max_header_bytes"),
        ("max_header_bytes = \"lots\"", "max_header_bytes"),
        ("max_streams = 0", "max_streams"),
        ("buffer_memory = \"1k\"", "buffer_memory"),
        ("connection_buffer = \"1G\"", "connection_buffer"),
    ] {
        let site = Site::new();
        site.server_keys(keys);
        let out = site.cli(&["check-config"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{keys} was accepted");
        assert!(stderr.contains(&format!("`{key}`")), "{keys}: {stderr}");
    }
}
