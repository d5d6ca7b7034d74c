//! The shipped systemd unit and the readiness protocol it relies on: `systemd-analyze verify`
//! accepts the unit, and `mirrorbox serve` speaks `Type=notify` (READY, RELOADING + READY on
//! SIGHUP, STOPPING on SIGTERM) to a real notify socket.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Site;

#[test]
fn systemd_analyze_accepts_the_unit() {
    let unit = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mirrorbox.service"),
    )
    .unwrap();
    for needed in [
        "Type=notify",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/mirrorbox",
        "User=mirrorbox",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed}");
    }
    // verify checks that ExecStart's binary exists: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("mirrorbox.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/mirrorbox", common::BIN)).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .expect("systemd-analyze (Debian package systemd)");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    // Warnings count too: every line it prints is about the unit.
    assert!(
        !text.contains("mirrorbox.service"),
        "systemd-analyze complains: {text}"
    );
}

/// Reads notify messages until one contains `wanted` (or 20 s pass).
fn wait_for(socket: &UnixDatagram, wanted: &str, seen: &mut Vec<String>) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut buffer = [0u8; 4096];
    while std::time::Instant::now() < deadline {
        if let Ok(n) = socket.recv(&mut buffer) {
            let message = String::from_utf8_lossy(&buffer[..n]).to_string();
            seen.push(message.clone());
            if message.lines().any(|l| l == wanted) {
                return;
            }
        }
    }
    panic!("no {wanted} from mirrorbox; got {seen:?}");
}

#[test]
fn serve_speaks_the_notify_protocol() {
    let site = Site::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut child = Command::new(common::BIN)
        .arg("serve")
        .arg("--config")
        .arg(&site.config)
        .env("NOTIFY_SOCKET", &path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    wait_for(&socket, "READY=1", &mut seen);
    assert!(
        seen.concat().contains("STATUS=serving 1 sources"),
        "{seen:?}"
    );
    Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for(&socket, "RELOADING=1", &mut seen);
    assert!(seen.last().unwrap().contains("MONOTONIC_USEC="), "{seen:?}");
    wait_for(&socket, "READY=1", &mut seen);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    wait_for(&socket, "STOPPING=1", &mut seen);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_example_config_is_valid_and_mirrors_every_proxmox_repository() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/mirrorbox.example.toml");
    let config = mirrorbox::config::Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    let lines: Vec<String> = config
        .sources
        .iter()
        .filter_map(|s| match &s.kind {
            mirrorbox::config::SourceKind::Apt(apt) => {
                Some(format!("{} {}", apt.repository.url, apt.repository.suite))
            }
            _ => None,
        })
        .collect();
    for suite in ["buster", "bullseye", "bookworm"] {
        for product in ["pve", "pbs", "pbs-client", "pmg"] {
            let wanted = format!("download.proxmox.com/debian/{product}");
            assert!(
                lines
                    .iter()
                    .any(|l| l.contains(&wanted) && l.ends_with(&format!(" {suite}"))),
                "{product} {suite} missing: {lines:?}"
            );
        }
        assert!(
            lines
                .iter()
                .any(|l| l.contains("/debian/ceph-") && l.ends_with(&format!(" {suite}"))),
            "no Ceph for {suite}"
        );
    }
    let kinds: Vec<&str> = config.sources.iter().map(|s| s.kind.name()).collect();
    assert!(
        kinds.contains(&"files") && kinds.contains(&"puavo"),
        "{kinds:?}"
    );
}
