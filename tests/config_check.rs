//! `check-config` and `serve` judge a configuration the same way: for every bad
//! configuration below both run, and both give the same exit status and the same message
//! (errors: status 2 before anything is served; warnings: printed by both, serve starts).

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A config with a `dir` source `web`; `server` and `source` are appended to their tables.
fn write_config(dir: &Path, server: &str, source: &str) -> std::path::PathBuf {
    let public = dir.join("public");
    std::fs::create_dir_all(&public).unwrap();
    let text = format!(
        "data_dir = \"{data}\"\n[server]\naccess_log = false\n{http}{server}\n\n[store]\nfsync = false\n\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"/f\"\n{source}\n",
        data = dir.join("data").display(),
        http = if server.starts_with("http =") {
            ""
        } else {
            "http = [\"127.0.0.1:0\"]\n"
        },
    );
    let source_has_path = source.contains("path =");
    let text = if source_has_path {
        text
    } else {
        format!("{text}path = \"{}\"\n", public.display())
    };
    let path = dir.join("mirrorbox.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// The first line of stderr that carries the error (`mirrorbox: …`).
fn error_line(stderr: &str) -> String {
    stderr
        .lines()
        .find(|l| l.starts_with("mirrorbox: "))
        .unwrap_or("")
        .to_string()
}

/// Runs `serve`; returns its exit status (None: it was still serving after start-up and was
/// stopped) and its stderr.
fn serve(config: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(common::BIN)
        .args(["serve", "--no-initial-sync", "--config"])
        .arg(config)
        .env("MIRRORBOX_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut log = String::new();
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                let serving = line.contains("listening on");
                log.push_str(&line);
                log.push('\n');
                if serving {
                    // Give the start-up warnings (logged before) a moment, then stop.
                    let _ = child.kill();
                    let _ = child.wait();
                    while let Ok(line) = rx.try_recv() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                    return (None, log);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let status = child.wait().unwrap();
                return (status.code(), log);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("serve neither failed nor listened: {log}");
                }
            }
        }
    }
}

/// How a bad configuration is judged.
enum Verdict {
    /// Exit status 2 from both, before serving; the message names these words.
    Error(&'static [&'static str]),
    /// check-config exits 1 with a PROBLEM line, serve starts and logs the same words.
    Warning(&'static [&'static str]),
}

#[test]
fn check_config_and_serve_agree_on_every_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let a_file = dir.path().join("not-a-dir");
    std::fs::write(&a_file, b"x").unwrap();
    let a_file_key = format!("path = \"{}\"", a_file.display());
    let missing = dir.path().join("no-such-folder");
    let missing_key = format!("path = \"{}\"", missing.display());
    let cases: Vec<(&str, String, String, Verdict)> = vec![
        (
            "type error in [server]",
            "max_connections = \"50\"".into(),
            String::new(),
            Verdict::Error(&["[server]", "max_connections", "whole number", "line 5"]),
        ),
        (
            "type error in a source",
            String::new(),
            "keep = \"3\"".into(),
            Verdict::Error(&["source `web`", "`keep`", "whole number"]),
        ),
        (
            "type error in a list",
            "https = [443]".into(),
            String::new(),
            Verdict::Error(&["[server]", "`https #1`", "string"]),
        ),
        (
            "zero header timeout",
            "header_timeout = \"0s\"".into(),
            String::new(),
            Verdict::Error(&["[server]", "header_timeout", "longer than 0s"]),
        ),
        (
            "zero idle timeout",
            "idle_timeout = \"0\"".into(),
            String::new(),
            Verdict::Error(&["[server]", "idle_timeout", "longer than 0s"]),
        ),
        (
            "duplicate http listener",
            "http = [\"127.0.0.1:18099\", \"127.0.0.1:18099\"]".into(),
            String::new(),
            Verdict::Error(&["[server]", "127.0.0.1:18099", "twice in `http`"]),
        ),
        (
            "same address for http and https",
            "http = [\"127.0.0.1:18098\"]\nhttps = [\"127.0.0.1:18098\"]\n[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"".into(),
            String::new(),
            Verdict::Error(&["[server]", "127.0.0.1:18098", "both `http` and `https`"]),
        ),
        (
            "[server.tls] without an https listener",
            "[server.tls]\ncert = \"c.pem\"\nkey = \"k.pem\"".into(),
            String::new(),
            Verdict::Error(&["[server.tls]", "no `https` listener"]),
        ),
        (
            "certificate that cannot be read",
            "https = [\"127.0.0.1:0\"]\n[server.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"".into(),
            String::new(),
            Verdict::Error(&["[server.tls]", "/nonexistent/c.pem"]),
        ),
        (
            "source path is a file",
            String::new(),
            a_file_key,
            Verdict::Error(&["source `web`", "`path`", "is a file, not a directory"]),
        ),
        (
            "missing source folder",
            String::new(),
            missing_key,
            Verdict::Warning(&["source `web`", "`path`", "does not exist"]),
        ),
        (
            "access rule under no mount",
            String::new(),
            format!(
                "path = \"{}\"\n[[access]]\npath = \"/nowhere\"\nallow = [\"10.0.0.0/8\"]",
                dir.path().join("public").display()
            ),
            Verdict::Warning(&["[[access]] #1 (path \"/nowhere\")", "`path`", "no effect"]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, server, source, verdict) in cases {
        let config = write_config(dir.path(), &server, &source);
        let checked = Command::new(common::BIN)
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let check_out = String::from_utf8_lossy(&checked.stdout).to_string();
        let check_err = String::from_utf8_lossy(&checked.stderr).to_string();
        let (served, serve_log) = serve(&config);
        match verdict {
            Verdict::Error(words) => {
                let check_line = error_line(&check_err);
                let serve_line = error_line(&serve_log);
                if checked.status.code() != Some(2) || served != Some(2) {
                    failures.push(format!(
                        "{name}: exit statuses check-config {:?}, serve {served:?} (want 2 and 2)\n{check_out}{check_err}\n{serve_log}",
                        checked.status.code()
                    ));
                    continue;
                }
                if check_line != serve_line {
                    failures.push(format!(
                        "{name}: messages differ:\n  check-config: {check_line}\n  serve:        {serve_line}"
                    ));
                }
                for word in words.iter().chain(&["mirrorbox.toml"]) {
                    if !check_line.contains(word) {
                        failures.push(format!("{name}: `{word}` not in: {check_line}"));
                    }
                }
            }
            Verdict::Warning(words) => {
                if checked.status.code() != Some(1) || served.is_some() {
                    failures.push(format!(
                        "{name}: exit statuses check-config {:?}, serve {served:?} (want 1, and serve running)\n{check_out}{check_err}\n{serve_log}",
                        checked.status.code()
                    ));
                    continue;
                }
                let problem = check_out
                    .lines()
                    .find(|l| l.starts_with("PROBLEM: "))
                    .map(|l| l.trim_start_matches("PROBLEM: ").to_string())
                    .unwrap_or_default();
                if problem.is_empty() || !serve_log.contains(&problem) {
                    failures.push(format!(
                        "{name}: serve does not warn as check-config does:\n  check-config: {problem}\n  serve: {serve_log}"
                    ));
                }
                for word in words.iter().chain(&["mirrorbox.toml"]) {
                    if !problem.contains(word) {
                        failures.push(format!("{name}: `{word}` not in: {problem}"));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn zero_shutdown_grace_is_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "shutdown_grace = \"0s\"", "");
    let checked = Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(checked.status.success(), "{checked:?}");
}
