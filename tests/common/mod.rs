//! Shared fixtures: a real mirrorbox process on 127.0.0.1 port 0 with a temporary data
//! directory, optional HTTPS with a freshly generated certificate, and helpers to run it.
#![allow(dead_code)]

pub mod aptclient;
pub mod aptrepo;
pub mod gpg;
pub mod heap;
pub mod pebble;
pub mod probe;
pub mod upstream;

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

    /// Runs a CLI command against this site's config: (success, stdout and stderr together).
    pub fn cli_text(&self, args: &[&str]) -> (bool, String) {
        let out = self.cli(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Edits the site's configuration: `from` becomes `to` (which must be there once).
    pub fn edit_config(&self, from: &str, to: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        assert_eq!(text.matches(from).count(), 1, "`{from}` in {text}");
        std::fs::write(&self.config, text.replace(from, to)).unwrap();
    }

    /// Starts a CLI command against this site's config in the background, its output piped.
    pub fn spawn_cli(&self, args: &[&str]) -> Child {
        Command::new(BIN)
            .args(&args[..1])
            .arg("--config")
            .arg(&self.config)
            .args(&args[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mirrorbox")
    }

    pub fn start(&self) -> Server {
        Server::start(&self.config, true)
    }

    /// Starts the server with the source's start-up scan disabled, to look at what is
    /// published without changing it.
    pub fn start_without_sync(&self) -> Server {
        Server::start(&self.config, false)
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
/// The config of an apt source `deb` at `/debian` for the sources.list `line`, trusting `key`,
/// amd64 only, with `extra` keys appended.
pub fn apt_source(line: &str, key: &Path, extra: &str) -> String {
    format!(
        "[[source]]\nid = \"deb\"\nkind = \"apt\"\nmount = \"/debian\"\nrepository = \"{line}\"\narchitectures = [\"amd64\"]\nkeys = [\"{}\"]\n{extra}\n",
        key.display()
    )
}

pub struct Server {
    pub child: Child,
    pub http: SocketAddr,
    pub https: Option<SocketAddr>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    pub fn start(config: &Path, scan: bool) -> Server {
        let mut command = Command::new(BIN);
        command.arg("serve").arg("--config").arg(config);
        if !scan {
            command.arg("--no-initial-sync");
        }
        Server::spawn(command, scan, false)
            .unwrap_or_else(|log| panic!("server did not start:\n{log}"))
    }

    /// Runs `command` (a `mirrorbox serve …`) with its log captured and waits up to 30 s for
    /// its HTTP listener, with `scan` for the first sync to end, and with `need_https` for the
    /// HTTPS listener too (without it, an HTTPS line right after the HTTP one is still taken).
    /// A server that does not get there is killed and its log is the error.
    pub fn spawn(mut command: Command, scan: bool, need_https: bool) -> Result<Server, String> {
        let mut child = command
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
        let mut synced = !scan;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !(http.is_some() && synced && (https.is_some() || !need_https)) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(message) if message == "synced" => synced = true,
                Ok(url) => {
                    if let Some(addr) = url.strip_prefix("http://") {
                        http = addr.parse().ok();
                    } else if let Some(addr) = url.strip_prefix("https://") {
                        https = addr.parse().ok();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    // Let the reader thread take the last lines.
                    std::thread::sleep(Duration::from_millis(100));
                    return Err(log.lock().unwrap().join("\n"));
                }
            }
        }
        // The HTTPS line comes right after the HTTP one; give it a moment if configured.
        while https.is_none() {
            match rx.recv_timeout(Duration::from_millis(300)) {
                Ok(url) => {
                    if let Some(addr) = url.strip_prefix("https://") {
                        https = addr.parse().ok();
                    }
                }
                Err(_) => break,
            }
        }
        Ok(Server {
            child,
            http: http.expect("an http listener"),
            https,
            log,
        })
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

    /// Waits up to 5 s for a log line containing `text` (the log is read by another thread).
    pub fn log_contains(&self, text: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if self.log_text().contains(text) {
                return true;
            }
            if std::time::Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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
/// The status code curl gets for `url` (the body is thrown away).
pub fn status_code(url: &str) -> String {
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", url]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The body `server` serves at `path`; any status other than 2xx fails the test.
pub fn body_at(server: &Server, path: &str) -> Vec<u8> {
    let out = curl(&["-f", &server.url(path)]);
    assert!(out.status.success(), "GET {path}: {out:?}");
    out.stdout
}

/// The status code `server` answers for `path`.
pub fn status_at(server: &Server, path: &str) -> String {
    status_code(&server.url(path))
}

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

/// Status, headers (lowercase names) and body.
pub type Reply = (u16, Vec<(String, String)>, Vec<u8>);

/// A minimal HTTP/1.1 keep-alive client for tests that make many requests: returns status,
/// headers (lowercase names) and body of one GET.
pub struct Client {
    stream: std::io::BufReader<std::net::TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        Ok(Client {
            stream: BufReader::new(stream),
        })
    }

    pub fn get(&mut self, path: &str) -> std::io::Result<Reply> {
        use std::io::{Read, Write};
        let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
        self.stream.get_mut().write_all(request.as_bytes())?;
        let mut status_line = String::new();
        self.stream.read_line(&mut status_line)?;
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {status_line:?}")))?;
        let mut headers = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            self.stream.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap_or((line, ""));
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim().to_string();
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            headers.push((name, value));
        }
        let mut body = vec![0u8; length];
        self.stream.read_exact(&mut body)?;
        Ok((status, headers, body))
    }
}

impl Site {
    /// Adds keys to the `[server]` table.
    pub fn server_keys(&self, keys: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replacen(
            "access_log = false\n",
            &format!("access_log = false\n{keys}\n"),
            1,
        );
        std::fs::write(&self.config, text).unwrap();
    }

    /// Adds keys to the `[store]` table.
    pub fn store_keys(&self, keys: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let text = text.replacen("[store]\n", &format!("[store]\n{keys}\n"), 1);
        std::fs::write(&self.config, text).unwrap();
    }
}
