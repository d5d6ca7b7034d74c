//! The admin socket seen from the command line: a server that dies in the middle of a call
//! must never look like success to `mirrorbox sync`.

mod common;

use std::io::Read;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::Site;

/// An upstream that accepts connections and never answers, so a sync of it runs until
/// its timeouts: long enough to kill the server in the middle of the call.
fn silent_upstream() -> (TcpListener, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let accept = listener.try_clone().unwrap();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in accept.incoming() {
            match stream {
                Ok(mut stream) => {
                    let mut buffer = [0u8; 1024];
                    let _ = stream.set_read_timeout(Some(Duration::from_millis(50)));
                    let _ = stream.read(&mut buffer);
                    held.push(stream);
                }
                Err(_) => break,
            }
            if held.len() > 64 {
                break;
            }
        }
    });
    (listener, handle)
}

#[test]
fn sync_reports_failure_when_the_server_dies_mid_call() {
    let (upstream, _thread) = silent_upstream();
    let site = Site::with(
        false,
        &format!(
            "[[source]]\nid = \"slow\"\nkind = \"files\"\nmount = \"/slow\"\nurl = \"http://{}/\"\nretries = 0\n",
            upstream.local_addr().unwrap()
        ),
    );
    let mut server = site.start_without_sync();
    let cli = site.spawn_cli(&["sync", "slow"]);
    assert!(
        server.log_contains("sync started"),
        "the server never started the sync: {}",
        server.log_text()
    );
    // Let the CLI settle into waiting for the answer, then kill the server outright.
    std::thread::sleep(Duration::from_millis(300));
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let started = Instant::now();
    let out = cli.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the CLI hung after the server died"
    );
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the server went away"), "{text}");
    assert!(text.contains("outcome"), "{text}");
    assert!(text.contains("no outcome for: slow"), "{text}");
}

#[test]
fn gc_and_sync_through_the_server_still_succeed() {
    let site = Site::new();
    std::fs::write(site.public().join("a"), b"a").unwrap();
    let _server = site.start();
    for args in [&["sync"][..], &["gc"], &["verify"]] {
        let out = site.cli(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
