//! Known HTTP/2 attacks against the real binary, with frames built by hand
//! (`benches/h2_attacks.py`), the stalled-response rule over HTTP/2, and the no-bytes timer
//! doing that job over HTTP/1.1. Every
//! attack runs while a second client keeps fetching a file with curl: the server must keep
//! answering it, stay under a generous memory bound, and end the attacker's connection (or
//! refuse what it asks for) the way the protocol says.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::probe::{python, rss};
use common::{curl, Server, Site};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/h2_attacks.py");
const MB: u64 = 1024 * 1024;
/// How much an attack may add to the server's RSS: generous, far below what an unbounded
/// buffer would reach in the same time.
const RSS_BOUND: u64 = 40 * MB;

/// A site with a small and a 16 MiB file (sparse), and `keys` in `[server]`.
fn site(keys: &str) -> (Site, Server) {
    site_with(false, keys)
}

/// [`site`], with an HTTPS listener too if `tls`.
fn site_with(tls: bool, keys: &str) -> (Site, Server) {
    let site = Site::with(tls, "");
    site.server_keys(keys);
    std::fs::write(site.public().join("a.txt"), "a").unwrap();
    let file = std::fs::File::create(site.public().join("big.bin")).unwrap();
    file.set_len(16 * MB).unwrap();
    drop(file);
    let server = site.start();
    assert!(
        served(&server),
        "the server does not answer before the attack"
    );
    (site, server)
}

/// One small download by another client.
fn served(server: &Server) -> bool {
    let out = curl(&[
        "--max-time",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.url("/files/a.txt"),
    ]);
    String::from_utf8_lossy(&out.stdout) == "200"
}

/// What an attack run saw.
struct Outcome {
    /// The script's `key=value` report; `end` says how the connection ended.
    report: HashMap<String, String>,
    before: u64,
    peak: u64,
    /// Downloads by the second client during the attack: answered, and not.
    served: usize,
    missed: usize,
    elapsed: Duration,
    /// The server's CPU time (user + system) during the attack.
    cpu: Duration,
}

impl Outcome {
    fn get(&self, key: &str) -> &str {
        self.report.get(key).map(String::as_str).unwrap_or("")
    }

    /// The checks every attack shares: bounded memory, the second client served throughout,
    /// and still served afterwards.
    fn assert_survived(&self, server: &Server, what: &str) {
        eprintln!(
            "{what}: {:?}; RSS before {} MB, peak {} MB; second client served {} times, missed {}; \
             {:.1} s, server CPU {:.1} s",
            self.report,
            self.before / MB,
            self.peak / MB,
            self.served,
            self.missed,
            self.elapsed.as_secs_f64(),
            self.cpu.as_secs_f64()
        );
        assert!(
            self.peak < self.before + RSS_BOUND,
            "{what}: RSS grew from {} to {}",
            self.before,
            self.peak
        );
        assert!(
            self.served > 0,
            "{what}: the second client was never served"
        );
        assert_eq!(self.missed, 0, "{what}: the second client was refused");
        assert!(served(server), "{what}: not serving after the attack");
    }
}

/// Runs one mode of the attack script against `path` while another client downloads.
fn attack(server: &Server, mode: &str, path: &str, extra: &[&str]) -> Outcome {
    attack_on(server, false, mode, path, extra)
}

/// [`attack`], over HTTPS (h2 by ALPN) if `tls`.
fn attack_on(server: &Server, tls: bool, mode: &str, path: &str, extra: &[&str]) -> Outcome {
    let before = rss(server);
    let cpu_before = cpu(server);
    let started = Instant::now();
    let addr = match tls {
        true => server.https.expect("an HTTPS listener"),
        false => server.http,
    };
    let mut child = Command::new(python())
        .arg(SCRIPT)
        .args([mode, &addr.ip().to_string()])
        .arg(addr.port().to_string())
        .arg(path)
        .args(extra)
        .args(tls.then_some("--tls"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python()));
    let (mut peak, mut served_n, mut missed) = (before, 0, 0);
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(rss(server));
        if served(server) {
            served_n += 1;
        } else {
            missed += 1;
        }
        peak = peak.max(rss(server));
        std::thread::sleep(Duration::from_millis(100));
    }
    let elapsed = started.elapsed();
    let mut line = String::new();
    let stdout = child.stdout.take().expect("piped stdout");
    BufReader::new(stdout).read_line(&mut line).unwrap();
    assert!(child.wait().unwrap().success(), "{mode} failed: {line}");
    let report = line
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Outcome {
        report,
        before,
        peak,
        served: served_n,
        missed,
        elapsed,
        cpu: cpu(server).saturating_sub(cpu_before),
    }
}

/// The server's CPU time so far, user and system (from `/proc/PID/stat`, in clock ticks of
/// 1/100 s on Linux).
fn cpu(server: &Server) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", server.child.id())).unwrap();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')').expect("(comm) in stat") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

/// The connection was ended by the server, not left open.
fn closed(outcome: &Outcome) -> bool {
    let end = outcome.get("end");
    end.starts_with("goaway") || end == "eof" || end == "reset"
}

#[test]
fn h2_stream_stalled_by_flow_control_is_closed_despite_pings() {
    let (_site, server) = site("idle_timeout = \"2s\"");
    let outcome = attack(&server, "stall", "/files/big.bin", &["--seconds", "30"]);
    outcome.assert_survived(&server, "stalled stream");
    assert!(closed(&outcome), "{:?}", outcome.report);
    // idle_timeout, plus a second for the GOAWAY; generous on a loaded machine.
    assert!(
        outcome.elapsed < Duration::from_secs(15),
        "closed only after {:?}",
        outcome.elapsed
    );
}

#[test]
fn h2_stream_stalled_by_flow_control_over_tls_is_closed_despite_pings() {
    let (_site, server) = site_with(true, "idle_timeout = \"2s\"");
    let outcome = attack_on(
        &server,
        true,
        "stall",
        "/files/big.bin",
        &["--seconds", "30"],
    );
    outcome.assert_survived(&server, "stalled stream over TLS");
    assert!(closed(&outcome), "{:?}", outcome.report);
    assert!(
        outcome.elapsed < Duration::from_secs(15),
        "closed only after {:?}",
        outcome.elapsed
    );
}

#[test]
fn stalled_h2_clients_cannot_hold_every_connection_slot() {
    let (_site, server) = site_with(false, "idle_timeout = \"2s\"\nmax_connections = 2");
    let stall = || {
        Command::new(python())
            .arg(SCRIPT)
            .args(["stall", &server.http.ip().to_string()])
            .arg(server.http.port().to_string())
            .args(["/files/big.bin", "--seconds", "60"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start the attack script")
    };
    let mut attackers = [stall(), stall()];
    std::thread::sleep(Duration::from_millis(500));
    // Both slots are taken; this one waits in the accept queue until the stalled ones are
    // closed, which takes idle_timeout, not the attackers' 60 s.
    let started = Instant::now();
    let out = curl(&[
        "--max-time",
        "20",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &server.url("/files/a.txt"),
    ]);
    let waited = started.elapsed();
    for attacker in &mut attackers {
        let _ = attacker.kill();
        let _ = attacker.wait();
    }
    eprintln!("served after {waited:?} with both slots held by stalled streams");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{out:?}");
}

/// HTTP/1.1 has no stall rule: hyper does not read the next request while a response goes
/// out, so bytes dripped meanwhile do not count as progress and the no-bytes timer closes it.
#[test]
fn http1_reader_that_stops_reading_but_drips_bytes_is_closed() {
    let (_site, server) = site("idle_timeout = \"2s\"");
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .write_all(b"GET /files/big.bin HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    // Never read; drip a pipelined request head, a byte at a time, so bytes keep arriving.
    let drip = b"GET /files/a.txt HTTP/1.1\r\nHost: test\r\nX-Pad: ".repeat(10);
    let started = Instant::now();
    let mut closed_after = None;
    for byte in drip.iter().copied() {
        if stream.write_all(&[byte]).is_err() {
            closed_after = Some(started.elapsed());
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let closed_after = closed_after.expect("the connection was never closed");
    eprintln!("stalled HTTP/1.1 download closed after {closed_after:?}");
    assert!(closed_after < Duration::from_secs(15));
    assert!(served(&server));
}

#[test]
fn h2_rapid_reset_is_cut_and_others_are_served() {
    rapid_reset(false);
}

#[test]
fn h2_rapid_reset_over_tls_is_cut_and_others_are_served() {
    rapid_reset(true);
}

fn rapid_reset(tls: bool) {
    let (_site, server) = site_with(tls, "");
    let outcome = attack_on(
        &server,
        tls,
        "rapid-reset",
        "/files/a.txt",
        &["--seconds", "5"],
    );
    outcome.assert_survived(
        &server,
        if tls {
            "rapid reset over TLS"
        } else {
            "rapid reset"
        },
    );
    // The client opens another connection only when the server ended the last one.
    let connections: u32 = outcome.get("connections").parse().unwrap_or(0);
    assert!(connections >= 2, "{:?}", outcome.report);
    assert!(
        outcome.get("ends").contains("goaway:11") || outcome.get("ends").contains("reset"),
        "{:?}",
        outcome.report
    );
}

#[test]
fn h2_streams_the_server_must_reset_are_limited() {
    let (_site, server) = site("");
    let outcome = attack(
        &server,
        "made-you-reset",
        "/files/big.bin",
        &["--seconds", "20"],
    );
    outcome.assert_survived(&server, "server-side resets (MadeYouReset)");
    // 1024 streams reset for the client's errors, then GOAWAY ENHANCE_YOUR_CALM (11).
    assert_eq!(outcome.get("end"), "goaway:11", "{:?}", outcome.report);
}

#[test]
fn h2_continuation_flood_is_cut() {
    let (_site, server) = site("");
    let outcome = attack(&server, "continuation", "/files/a.txt", &["--seconds", "5"]);
    outcome.assert_survived(&server, "CONTINUATION flood");
    // A handful of frames (what `max_header_bytes` needs), then GOAWAY ENHANCE_YOUR_CALM (11).
    assert_eq!(outcome.get("end"), "goaway:11", "{:?}", outcome.report);
}

#[test]
fn h2_ping_flood_holds_bounded_memory() {
    let (_site, server) = site("");
    let outcome = attack(&server, "ping-flood", "/files/a.txt", &["--seconds", "4"]);
    outcome.assert_survived(&server, "PING flood");
}

#[test]
fn h2_settings_flood_holds_bounded_memory() {
    let (_site, server) = site("");
    let outcome = attack(
        &server,
        "settings-flood",
        "/files/a.txt",
        &["--seconds", "4"],
    );
    outcome.assert_survived(&server, "SETTINGS flood");
}

#[test]
fn h2_streams_beyond_max_streams_are_refused() {
    let (_site, server) = site("max_streams = 10");
    let outcome = attack(
        &server,
        "streams",
        "/files/big.bin",
        &["--streams", "30", "--seconds", "2"],
    );
    outcome.assert_survived(&server, "streams beyond max_streams");
    // Windows of 0: the first ten can only get their heads; the rest are refused at once.
    assert_eq!(outcome.get("answered"), "10", "{:?}", outcome.report);
    assert_eq!(outcome.get("refused"), "20", "{:?}", outcome.report);
}

#[test]
fn h2_hpack_bomb_is_bounded_by_max_header_bytes() {
    let (_site, server) = site("");
    let outcome = attack(&server, "hpack-bomb", "/files/a.txt", &["--seconds", "3"]);
    outcome.assert_survived(&server, "HPACK bomb");
    // 8 MB of decoded headers against a 64 KiB cap: the connection or the request is refused.
    assert!(
        outcome.get("status") == "431" || outcome.get("end").starts_with("goaway"),
        "{:?}",
        outcome.report
    );
}

#[test]
fn h2_huge_hpack_table_size_is_not_used() {
    let (_site, server) = site("");
    let outcome = attack(
        &server,
        "table-size",
        "/files/a.txt",
        &["--streams", "2000"],
    );
    outcome.assert_survived(&server, "HPACK table size 2^32-1");
    assert_eq!(outcome.get("ok"), "2000", "{:?}", outcome.report);
}

#[test]
fn h2_window_update_overflow_is_a_flow_control_error() {
    let (_site, server) = site("");
    let outcome = attack(
        &server,
        "window-overflow",
        "/files/a.txt",
        &["--seconds", "3"],
    );
    outcome.assert_survived(&server, "connection window overflow");
    // GOAWAY with FLOW_CONTROL_ERROR (3).
    assert_eq!(outcome.get("end"), "goaway:3", "{:?}", outcome.report);
    let outcome = attack(
        &server,
        "stream-window-overflow",
        "/files/big.bin",
        &["--seconds", "3"],
    );
    outcome.assert_survived(&server, "stream window overflow");
    // RST_STREAM with FLOW_CONTROL_ERROR (3).
    assert_eq!(outcome.get("reset"), "3", "{:?}", outcome.report);
}
