//! A small upstream HTTP server for sync tests: serves a directory on 127.0.0.1 with Range and
//! If-Modified-Since, counts requests and bytes, and injects faults on demand (status bursts
//! with Retry-After, connections cut mid-body, a delay per request).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// A fault to return for the next requests of a path (consumed one per request).
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and `Retry-After: <secs>` if given.
    Status(u16, Option<u64>),
    /// Send the headers and this many body bytes, then close the connection.
    Cut(usize),
    /// Send these bytes instead of the file (an upstream caught mid-update).
    Replace(Vec<u8>),
}

#[derive(Default)]
struct State {
    faults: HashMap<String, Vec<Fault>>,
    log: Vec<(String, u16)>,
    /// A header every request must carry, else 401.
    required: Option<(String, String)>,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub root: PathBuf,
    state: Arc<Mutex<State>>,
    pub requests: Arc<AtomicU64>,
    pub body_bytes: Arc<AtomicU64>,
    delay_ms: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Upstream {
    pub fn serve(root: &Path) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = Upstream {
            addr,
            root: root.to_path_buf(),
            state: Arc::default(),
            requests: Arc::default(),
            body_bytes: Arc::default(),
            delay_ms: Arc::default(),
            stop: Arc::default(),
        };
        let (root, state, requests, bytes, delay, stop) = (
            upstream.root.clone(),
            upstream.state.clone(),
            upstream.requests.clone(),
            upstream.body_bytes.clone(),
            upstream.delay_ms.clone(),
            upstream.stop.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (root, state, requests, bytes, delay) = (
                    root.clone(),
                    state.clone(),
                    requests.clone(),
                    bytes.clone(),
                    delay.clone(),
                );
                std::thread::spawn(move || {
                    let _ = connection(stream, &root, &state, &requests, &bytes, &delay);
                });
            }
        });
        upstream
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Queues faults for a path (`/dists/...`); each request consumes one.
    pub fn fault(&self, path: &str, faults: &[Fault]) {
        self.state
            .lock()
            .unwrap()
            .faults
            .entry(path.to_string())
            .or_default()
            .extend_from_slice(faults);
    }

    /// Every request must carry this header (name lowercase), else 401.
    pub fn require_header(&self, name: &str, value: &str) {
        self.state.lock().unwrap().required = Some((name.to_string(), value.to_string()));
    }

    pub fn set_delay(&self, delay: Duration) {
        self.delay_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
    }

    /// Requests served so far, as (path, status).
    pub fn log(&self) -> Vec<(String, u16)> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn reset_counters(&self) {
        self.requests.store(0, Ordering::Relaxed);
        self.body_bytes.store(0, Ordering::Relaxed);
        self.state.lock().unwrap().log.clear();
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn connection(
    stream: TcpStream,
    root: &Path,
    state: &Mutex<State>,
    requests: &AtomicU64,
    bytes: &AtomicU64,
    delay: &AtomicU64,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut headers = HashMap::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
            }
        }
        requests.fetch_add(1, Ordering::Relaxed);
        let wait = delay.load(Ordering::Relaxed);
        if wait > 0 {
            std::thread::sleep(Duration::from_millis(wait));
        }
        // A request through a proxy names the whole URL: keep its path.
        let target = match target.strip_prefix("http://") {
            Some(rest) => {
                state.lock().unwrap().log.push((
                    format!("proxied:{}", rest.split('/').next().unwrap_or("")),
                    0,
                ));
                format!("/{}", rest.split_once('/').map_or("", |(_, p)| p))
            }
            None => target,
        };
        let path = target.split('?').next().unwrap_or("/").to_string();
        let fault = {
            let mut state = state.lock().unwrap();
            let fault = state
                .faults
                .get_mut(&path)
                .and_then(|q| (!q.is_empty()).then(|| q.remove(0)));
            fault
        };
        let record = |status: u16| state.lock().unwrap().log.push((path.clone(), status));
        let required = state.lock().unwrap().required.clone();
        if let Some((name, value)) = required {
            if headers.get(&name) != Some(&value) {
                record(401);
                write!(
                    out,
                    "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"
                )?;
                continue;
            }
        }
        if let Some(Fault::Replace(body)) = &fault {
            record(200);
            write!(
                out,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )?;
            out.write_all(body)?;
            continue;
        }
        if let Some(Fault::Status(status, retry_after)) = fault {
            record(status);
            let retry = retry_after
                .map(|s| format!("Retry-After: {s}\r\n"))
                .unwrap_or_default();
            write!(
                out,
                "HTTP/1.1 {status} Injected\r\n{retry}Content-Length: 0\r\n\r\n"
            )?;
            continue;
        }
        // The log and faults keep the path as asked; the file is found by its decoded name.
        let file = root.join(percent_decode(path.trim_start_matches('/')));
        let meta = match std::fs::metadata(&file) {
            Ok(meta) if meta.is_file() && !path.contains("..") => meta,
            _ => {
                record(404);
                write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?;
                continue;
            }
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        let last_modified = httpdate::fmt_http_date(modified);
        if let Some(since) = headers
            .get("if-modified-since")
            .and_then(|d| httpdate::parse_http_date(d).ok())
        {
            let modified_secs = modified
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let since_secs = since
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            if modified_secs <= since_secs {
                record(304);
                write!(
                    out,
                    "HTTP/1.1 304 Not Modified\r\nLast-Modified: {last_modified}\r\n\r\n"
                )?;
                continue;
            }
        }
        let data = std::fs::read(&file)?;
        let len = data.len();
        let (status, start) = match headers
            .get("range")
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(start) if start < len => (206, start),
            Some(_) => {
                record(416);
                write!(out, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{len}\r\nContent-Length: 0\r\n\r\n")?;
                continue;
            }
            None => (200, 0),
        };
        record(status);
        let body = &data[start..];
        let mut head = format!(
            "HTTP/1.1 {status} OK\r\nContent-Length: {}\r\nLast-Modified: {last_modified}\r\n",
            body.len()
        );
        if status == 206 {
            head.push_str(&format!(
                "Content-Range: bytes {start}-{}/{len}\r\n",
                len - 1
            ));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes())?;
        if method == "HEAD" {
            continue;
        }
        if let Some(Fault::Cut(n)) = fault {
            let n = n.min(body.len());
            out.write_all(&body[..n])?;
            bytes.fetch_add(n as u64, Ordering::Relaxed);
            out.flush()?;
            return Ok(()); // connection closed mid-body
        }
        out.write_all(body)?;
        bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        let _ = reader.get_ref().read(&mut [0u8; 0]);
    }
}

/// `%XX` escapes decoded (a file name with spaces, `#` or non-ASCII arrives encoded).
fn percent_decode(path: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    PathBuf::from(std::ffi::OsString::from_vec(out))
}
