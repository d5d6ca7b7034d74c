//! Shared fixtures: a real mirrorbox process on 127.0.0.1 port 0 with a temporary data
//! directory, optional HTTPS with a freshly generated certificate, and helpers to run it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_mirrorbox");

/// A test site: a temp folder with `public/` (the dir source), `data/` and the config.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Site {
    /// A site with one `dir` source `site` mounted at `/files` and plain HTTP only.
    pub fn new() -> Site {
        Site::with(false, "")
    }

    /// `tls`: add an HTTPS listener with a generated certificate. `extra`: appended to the
    /// config (more sources, server keys must go through `server_extra`).
    pub fn with(tls: bool, extra: &str) -> Site {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("public")).unwrap();
        let mut server = String::from("[server]\nhttp = [\"127.0.0.1:0\"]\naccess_log = false\n");
        if tls {
            let (cert, key) = generate_cert(root);
            server.push_str(&format!(
                "https = [\"127.0.0.1:0\"]\n[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
                cert.display(),
                key.display()
            ));
        }
        let config = format!(
            "data_dir = \"{data}\"\n{server}\n[store]\nfsync = false\n\n[[source]]\nid = \"site\"\nkind = \"dir\"\nmount = \"/files\"\npath = \"{public}\"\n{extra}\n",
            data = root.join("data").display(),
            public = root.join("public").display(),
        );
        let path = root.join("mirrorbox.toml");
        std::fs::write(&path, config).unwrap();
        Site { dir, config: path }
    }

    pub fn public(&self) -> PathBuf {
        self.dir.path().join("public")
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Runs a CLI command against this site's config.
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(&args[..1])
            .arg("--config")
            .arg(&self.config)
            .args(&args[1..]);
        command.output().expect("run mirrorbox")
    }

    pub fn start(&self) -> Server {
        Server::start(&self.config)
    }
}

fn generate_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()])
        .expect("generate certificate");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.key_pair.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// A running `mirrorbox serve`. Killed on drop.
pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(config: &Path) -> Server {
        let mut child = Command::new(BIN)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env("MIRRORBOX_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mirrorbox");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let _ = tx.send(rest.trim().trim_end_matches('/').to_string());
                }
                if line.contains("sync finished") || line.contains("sync failed") {
                    let _ = tx.send("synced".to_string());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let mut http = None;
        let mut https = None;
        let mut synced = false;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !(http.is_some() && synced) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(message) if message == "synced" => synced = true,
                Ok(url) => {
                    if let Some(addr) = url.strip_prefix("http://") {
                        http = Some(addr.parse().unwrap());
                    } else if let Some(addr) = url.strip_prefix("https://") {
                        https = Some(addr.parse().unwrap());
                    }
                }
                Err(_) => panic!("server did not start: {:?}", log.lock().unwrap()),
            }
        }
        // The HTTPS line comes right after the HTTP one; give it a moment if configured.
        while https.is_none() {
            match rx.recv_timeout(Duration::from_millis(300)) {
                Ok(url) => {
                    if let Some(addr) = url.strip_prefix("https://") {
                        https = Some(addr.parse().unwrap());
                    }
                }
                Err(_) => break,
            }
        }
        Server {
            child,
            http: http.unwrap(),
            https,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    pub fn https_url(&self, path: &str) -> String {
        format!(
            "https://localhost:{}{path}",
            self.https.expect("https configured").port()
        )
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    pub fn signal(&self, signal: &str) {
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs curl with the given arguments; returns (status code, body).
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "--max-time", "60"])
        .args(args)
        .output()
        .expect("curl is installed")
}

/// Deterministic pseudo-random bytes (so failures can be reproduced).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}
