//! Looking at a running server from outside: its resident memory, and the Python that runs the
//! attack clients in `benches/`.

use std::path::Path;

use super::Server;

/// `$MIRRORBOX_PYTHON`, else the venv `tests/run.sh` makes, else `python3`.
pub fn python() -> String {
    if let Some(python) = std::env::var("MIRRORBOX_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
    {
        return python;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/target/pyenv/bin/python");
    if Path::new(venv).exists() {
        return venv.to_string();
    }
    "python3".to_string()
}

/// The server's resident memory in bytes.
pub fn rss(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/PID/status");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kb * 1024
}
