//! The file server with real clients: curl and wget resume, pipelining, HTTPS with h2 and
//! HTTP/1.1, protocol edge cases over a raw socket.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use common::{curl, pattern, Site};

fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

#[test]
fn curl_resumes_an_interrupted_download_byte_for_byte() {
    let site = Site::new();
    let data = pattern(8 * 1024 * 1024 + 123, 1);
    std::fs::write(site.public().join("big.bin"), &data).unwrap();
    let server = site.start();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("big.bin");
    // An interrupted download: the first 3 MB and a little.
    std::fs::write(&target, &data[..3_000_017]).unwrap();
    let result = curl(&[
        "-f",
        "-C",
        "-",
        "-o",
        target.to_str().unwrap(),
        &server.url("/files/big.bin"),
    ]);
    assert!(result.status.success(), "{result:?}");
    assert_eq!(std::fs::read(&target).unwrap(), data);
    // Resuming a complete file: 416 with the length, which curl treats as done.
    let again = curl(&[
        "-C",
        "-",
        "-o",
        target.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &server.url("/files/big.bin"),
    ]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), "416");
    assert_eq!(std::fs::read(&target).unwrap(), data);
}

#[test]
fn wget_continue_resumes_byte_for_byte() {
    let site = Site::new();
    let data = pattern(5 * 1024 * 1024 + 7, 2);
    std::fs::write(site.public().join("image.img"), &data).unwrap();
    let server = site.start();
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("image.img");
    std::fs::write(&target, &data[..1_234_567]).unwrap();
    let status = Command::new("wget")
        .args(["-q", "--continue", "-O"])
        .arg(&target)
        .arg(server.url("/files/image.img"))
        .status()
        .expect("wget is installed");
    assert!(status.success());
    assert_eq!(std::fs::read(&target).unwrap(), data);
}

#[test]
fn ten_pipelined_requests_come_back_in_order() {
    let site = Site::new();
    for i in 0..10 {
        std::fs::write(
            site.public().join(format!("f{i}.txt")),
            format!("file number {i}\n").repeat(i + 1),
        )
        .unwrap();
    }
    let server = site.start();
    let mut request = Vec::new();
    for i in 0..10 {
        let connection = if i == 9 { "close" } else { "keep-alive" };
        request.extend_from_slice(
            format!(
                "GET /files/f{i}.txt HTTP/1.1\r\nHost: test\r\nConnection: {connection}\r\n\r\n"
            )
            .as_bytes(),
        );
    }
    let response = raw(server.http, &request);
    let mut position = 0;
    for i in 0..10 {
        let body = format!("file number {i}\n").repeat(i + 1);
        let found = response[position..]
            .find(&body)
            .unwrap_or_else(|| panic!("response {i} missing or out of order: {response}"));
        position += found + body.len();
    }
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 10);
}

#[test]
fn https_serves_http2_and_http11() {
    let site = Site::with(true, "");
    let data = pattern(3 * 1024 * 1024, 3);
    std::fs::write(site.public().join("blob"), &data).unwrap();
    let server = site.start();
    let cert = site.cert();
    let url = server.https_url("/files/blob");
    let resolve = format!("localhost:{}:127.0.0.1", server.https.unwrap().port());
    for (flag, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let out = curl(&[
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            flag,
            "-o",
            "-",
            "-w",
            "%{stderr}%{http_version}",
            &url,
        ]);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), version);
        assert_eq!(out.stdout, data);
        // A range over each protocol too.
        let out = curl(&[
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            flag,
            "-r",
            "100-199",
            &url,
        ]);
        assert_eq!(out.stdout, &data[100..200]);
    }
}

#[test]
fn protocol_edge_cases() {
    let site = Site::new();
    std::fs::create_dir_all(site.public().join("dir")).unwrap();
    std::fs::write(site.public().join("dir/a b+c.txt"), b"hello").unwrap();
    let server = site.start();
    let cases: &[(&str, &str)] = &[
        (
            "GET /files/dir/a%20b%2bc.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            "GET /files/dir/a%20b+c.txt?x=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            "GET /files//dir///a%20b%2Bc.txt HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            "GET /files/dir/a%20b%2bc.txt/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404",
        ),
        ("GET /files/dir HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 301"),
        (
            "GET /files/dir?q=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            "location: dir/?q=1",
        ),
        (
            "GET /files/dir/ HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 200",
        ),
        (
            "GET /files/../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "GET /files/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "GET /files/%252e%252e/x HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 404",
        ),
        (
            "GET /files/a%00 HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        (
            "GET /files/a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
            "HTTP/1.1 400",
        ),
        ("GET /files/ HTTP/1.1\r\n\r\n", "HTTP/1.1 400"),
        (
            "GET /files/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            "HTTP/1.1 400",
        ),
        ("GET /files/ HTTP/1.0\r\n\r\n", "HTTP/1.0 200"),
        (
            "POST /files/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            "allow: GET, HEAD",
        ),
        ("DELETE /files/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405"),
        ("BREW /files/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 501"),
        (
            "GET /files/dir/a%20b%2bc.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=9-\r\n\r\n",
            "content-range: bytes */5",
        ),
        (
            "GET /files/dir/a%20b%2bc.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1-2\r\n\r\n",
            "content-range: bytes 1-2/5",
        ),
        (
            "GET /files/dir/a%20b%2bc.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=2-1\r\n\r\n",
            "HTTP/1.1 200",
        ),
        ("GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404"),
        (
            "GET /.status.json HTTP/1.1\r\nHost: x\r\n\r\n",
            "\"id\": \"site\"",
        ),
    ];
    for (request, expected) in cases {
        let request = request.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n");
        let response = raw(server.http, request.as_bytes());
        assert!(response.contains(expected), "{request:?} → {response}");
    }
    // HEAD carries the GET headers, no body.
    let response = raw(
        server.http,
        b"HEAD /files/dir/a%20b%2bc.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(response.contains("content-length: 5"), "{response}");
    assert!(response.ends_with("\r\n\r\n"), "{response}");
}

#[test]
fn sighup_reloads_the_certificate() {
    let site = Site::with(true, "");
    std::fs::write(site.public().join("x"), b"x").unwrap();
    let server = site.start();
    let resolve = format!("localhost:{}:127.0.0.1", server.https.unwrap().port());
    let url = server.https_url("/files/x");
    let old_cert = site.dir.path().join("old.pem");
    std::fs::copy(site.cert(), &old_cert).unwrap();
    // A new certificate and key, swapped in on disk, then SIGHUP.
    let fresh = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    std::fs::write(site.cert(), fresh.cert.pem()).unwrap();
    std::fs::write(
        site.dir.path().join("key.pem"),
        fresh.key_pair.serialize_pem(),
    )
    .unwrap();
    let with = |cert: &std::path::Path| {
        curl(&[
            "--cacert",
            cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            &url,
        ])
        .status
        .success()
    };
    assert!(
        with(&old_cert),
        "the old certificate is in use until SIGHUP"
    );
    server.signal("HUP");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !with(&site.cert()) {
        assert!(
            std::time::Instant::now() < deadline,
            "new certificate never served: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!with(&old_cert));
    // A broken certificate file on SIGHUP keeps the working one.
    std::fs::write(site.cert(), b"garbage").unwrap();
    server.signal("HUP");
    std::thread::sleep(Duration::from_millis(500));
    assert!(server.log_contains("certificate reload failed"));
    let fresh_pem = site.dir.path().join("fresh.pem");
    std::fs::write(&fresh_pem, fresh.cert.pem()).unwrap();
    assert!(with(&fresh_pem));
}

#[test]
fn sigterm_lets_a_running_download_finish() {
    let site = Site::new();
    let data = pattern(3 * 1024 * 1024, 9);
    std::fs::write(site.public().join("big"), &data).unwrap();
    let mut server = site.start();
    let url = server.url("/files/big");
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("big");
    let download = Command::new("curl")
        .args(["-s", "-f", "--limit-rate", "2M", "-o"])
        .arg(&target)
        .arg(&url)
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    server.signal("TERM");
    let result = download.wait_with_output().unwrap();
    assert!(result.status.success());
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "server exit: {status:?}");
    // And it no longer accepts connections.
    assert!(std::net::TcpStream::connect(server.http).is_err());
}

#[test]
fn slow_and_idle_connections_are_closed() {
    let site = Site::new();
    site.server_keys("header_timeout = \"1s\"\nidle_timeout = \"2s\"");
    std::fs::write(site.public().join("x"), b"x").unwrap();
    let server = site.start();
    // Half a request line, then silence: closed after the header timeout.
    let started = std::time::Instant::now();
    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(b"GET /files/x HTTP/1.1\r\nHo").unwrap();
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(8),
        "slow client kept for {waited:?}"
    );
    // An idle keep-alive connection is closed too.
    let started = std::time::Instant::now();
    let mut client = common::Client::connect(server.http).unwrap();
    assert_eq!(client.get("/files/x").unwrap().0, 200);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        client.get("/files/x").is_err(),
        "idle connection still open"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn listing_escapes_names_and_links_them() {
    let site = Site::new();
    std::fs::write(site.public().join("<b>&x y.txt"), b"1").unwrap();
    std::fs::create_dir_all(site.public().join("sub dir")).unwrap();
    std::fs::write(site.public().join("sub dir/f"), b"2").unwrap();
    let server = site.start();
    let out = curl(&[&server.url("/files/")]);
    let html = String::from_utf8_lossy(&out.stdout);
    assert!(
        html.contains("href=\"%3Cb%3E%26x%20y.txt\">&lt;b&gt;&amp;x y.txt</a>"),
        "{html}"
    );
    assert!(html.contains("href=\"sub%20dir/\">sub dir/</a>"), "{html}");
    assert!(!html.contains("<b>&x"), "unescaped name in {html}");
    // The links work.
    let file = curl(&["-f", &server.url("/files/%3Cb%3E%26x%20y.txt")]);
    assert_eq!(file.stdout, b"1");
    let sub = curl(&["-f", &server.url("/files/sub%20dir/f")]);
    assert_eq!(sub.stdout, b"2");
}

#[test]
fn connections_over_the_cap_wait_their_turn() {
    let site = Site::new();
    site.server_keys("max_connections = 2");
    std::fs::write(site.public().join("x"), b"x").unwrap();
    let server = site.start();
    let mut first = common::Client::connect(server.http).unwrap();
    let mut second = common::Client::connect(server.http).unwrap();
    assert_eq!(first.get("/files/x").unwrap().0, 200);
    assert_eq!(second.get("/files/x").unwrap().0, 200);
    // A third connection is queued, not served, while two are open.
    let mut third = TcpStream::connect(server.http).unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .unwrap();
    third
        .write_all(b"GET /files/x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut buffer = [0u8; 64];
    assert!(third.read(&mut buffer).is_err(), "served over the cap");
    // Closing one lets it in.
    drop(first);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut response = Vec::new();
    third.read_to_end(&mut response).unwrap();
    assert!(String::from_utf8_lossy(&response).starts_with("HTTP/1.1 200"));
    assert_eq!(second.get("/files/x").unwrap().0, 200);
}

/// Plain-HTTP file bodies go out with sendfile, in chunks of a few MiB: the bytes must be exact
/// for a whole file of several chunks, a range across a chunk boundary, a multirange, and a big
/// body between small ones on one pipelined connection.
#[test]
fn plain_http_file_bodies_are_exact() {
    let site = Site::new();
    let data = pattern(17 * 1024 * 1024 + 5, 3);
    std::fs::write(site.public().join("big.bin"), &data).unwrap();
    std::fs::write(site.public().join("small.txt"), b"small file\n").unwrap();
    let server = site.start();
    let url = server.url("/files/big.bin");

    let whole = curl(&["-sf", &url]);
    assert!(whole.status.success(), "{whole:?}");
    assert!(whole.stdout == data, "whole file differs");

    let (from, to) = (8 * 1024 * 1024 - 1000, 16 * 1024 * 1024 + 77);
    let range = curl(&["-sf", "-r", &format!("{from}-{to}"), &url]);
    assert!(range.stdout == data[from..=to], "range differs");

    let multi = curl(&["-sf", "-r", "0-9,8388600-8388620,17825790-", &url]);
    let text = &multi.stdout;
    let boundary_end = text[4..].iter().position(|&b| b == b'\r').unwrap() + 4;
    let boundary = std::str::from_utf8(&text[4..boundary_end]).unwrap();
    let mut expected = Vec::new();
    for (start, end) in [(0, 9), (8388600, 8388620), (17825790, data.len() - 1)] {
        expected.extend_from_slice(
            format!(
                "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes {start}-{end}/{}\r\n\r\n",
                data.len()
            )
            .as_bytes(),
        );
        expected.extend_from_slice(&data[start..=end]);
    }
    expected.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(*text == expected, "multipart body differs");

    let mut stream = TcpStream::connect(server.http).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream
        .write_all(
            b"GET /files/small.txt HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /files/big.bin HTTP/1.1\r\nHost: t\r\n\r\n\
              GET /files/small.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        )
        .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let find = |from: usize, needle: &[u8]| {
        response[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    let first = find(0, b"small file\n").expect("first small body");
    let big_start = find(first, b"\r\n\r\n").expect("big head") + 4;
    assert!(
        response[big_start..big_start + data.len()] == data[..],
        "big body differs"
    );
    let rest = &response[big_start + data.len()..];
    assert!(rest.starts_with(b"HTTP/1.1 200 OK"));
    assert!(rest.ends_with(b"small file\n"));
}
