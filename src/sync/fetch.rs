//! Downloads from upstreams: streamed to disk while hashing, checked against the expected size
//! and sha256 before the object is accepted, resumed after interruptions (`Range` on the kept
//! partial file), retried with back-off that honours `Retry-After`, bounded in parallelism and,
//! if configured, in bandwidth.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use tokio::sync::{Mutex, Semaphore};

use crate::store::{ObjectId, Store, StoreError, Stored};

/// How to talk to one upstream.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub parallel: usize,
    pub retries: u32,
    /// Base delay of the exponential back-off.
    pub backoff: Duration,
    /// Bytes per second over all downloads of a sync; `None`: unlimited.
    pub bandwidth: Option<u64>,
    pub proxy: Option<String>,
    pub basic_auth: Option<(String, String)>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            parallel: 16,
            retries: 5,
            backoff: Duration::from_millis(500),
            bandwidth: None,
            proxy: None,
            basic_auth: None,
            headers: Vec::new(),
            timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    #[error("{url}: size {actual} differs from the signed size {expected} (upstream changing?)")]
    Size {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{url}: sha256 {actual} differs from the signed {expected}")]
    Hash {
        url: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

impl FetchError {
    fn retryable(&self) -> bool {
        match self {
            FetchError::Network { .. } => true,
            FetchError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// What a download expects: the signed size and hash, when known.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub size: Option<u64>,
    pub sha256: ObjectId,
}

/// A small response kept in memory (InRelease, Release.gpg).
#[derive(Debug, Clone)]
pub struct Small {
    pub status: u16,
    pub bytes: Vec<u8>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

/// Counters of one sync.
#[derive(Debug, Default)]
pub struct FetchStats {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    pub files: AtomicU64,
    /// What the sync plans to download (for progress and ETA).
    pub planned_files: AtomicU64,
    pub planned_bytes: AtomicU64,
}

/// Whether long operations draw a progress line (the CLI on a terminal turns this on).
static PROGRESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn enable_progress(on: bool) {
    PROGRESS.store(on, Ordering::Relaxed);
}

pub fn progress_enabled() -> bool {
    PROGRESS.load(Ordering::Relaxed)
}

/// Redraws `label: files, bytes, rate, ETA` on stderr twice a second, forever (select it
/// against the work it describes). Does nothing unless progress is enabled.
pub async fn progress(label: &str, stats: &FetchStats) {
    if !PROGRESS.load(Ordering::Relaxed) {
        return std::future::pending().await;
    }
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let bytes = stats.bytes.load(Ordering::Relaxed);
        let files = stats.files.load(Ordering::Relaxed);
        let planned_files = stats.planned_files.load(Ordering::Relaxed);
        let planned_bytes = stats.planned_bytes.load(Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64().max(0.001);
        let rate = bytes as f64 / seconds;
        let eta = if rate > 0.0 && planned_bytes > bytes {
            let left = (planned_bytes - bytes) as f64 / rate;
            format!("{}:{:02}", left as u64 / 60, left as u64 % 60)
        } else {
            "-".into()
        };
        eprint!(
            "\r{label}: {files}/{planned_files} files, {:.1}/{:.1} MiB, {:.1} MiB/s, ETA {eta}   ",
            bytes as f64 / 1048576.0,
            planned_bytes as f64 / 1048576.0,
            rate / 1048576.0
        );
    }
}

pub struct Fetcher {
    client: reqwest::Client,
    options: FetchOptions,
    slots: Arc<Semaphore>,
    budget: Option<Mutex<(Instant, f64)>>,
    pub stats: FetchStats,
}

impl Fetcher {
    pub fn new(options: FetchOptions) -> Result<Fetcher, FetchError> {
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| FetchError::Client(format!("header `{name}`: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| FetchError::Client(format!("header `{name}` value: {e}")))?;
            headers.insert(name, value);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("mirrorbox/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(options.timeout)
            .pool_max_idle_per_host(options.parallel)
            .redirect(reqwest::redirect::Policy::limited(5));
        builder = match &options.proxy {
            Some(proxy) => builder.proxy(
                reqwest::Proxy::all(proxy)
                    .map_err(|e| FetchError::Client(format!("proxy: {e}")))?,
            ),
            None => builder.no_proxy(),
        };
        let client = builder
            .build()
            .map_err(|e| FetchError::Client(e.to_string()))?;
        Ok(Fetcher {
            client,
            slots: Arc::new(Semaphore::new(options.parallel.max(1))),
            budget: options.bandwidth.map(|_| Mutex::new((Instant::now(), 0.0))),
            options,
            stats: FetchStats::default(),
        })
    }

    fn request(&self, url: &str) -> reqwest::RequestBuilder {
        let request = self.client.get(url);
        match &self.options.basic_auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Waits as long as the bandwidth limit asks for after `bytes` more bytes.
    async fn throttle(&self, bytes: usize) {
        let (Some(budget), Some(rate)) = (&self.budget, self.options.bandwidth) else {
            return;
        };
        let wait = {
            let mut state = budget.lock().await;
            let (start, sent) = &mut *state;
            *sent += bytes as f64;
            let due = Duration::from_secs_f64(*sent / rate as f64);
            due.saturating_sub(start.elapsed())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Sleeps before retry number `attempt`: exponential back-off, or what the server asked.
    async fn pause(&self, attempt: u32, retry_after: Option<Duration>) {
        let backoff = self.options.backoff * 2u32.saturating_pow(attempt.min(6));
        let delay = retry_after.map_or(backoff, |asked| asked.min(Duration::from_secs(300)));
        tokio::time::sleep(delay).await;
    }

    /// Fetches a small file into memory, with retries. `conditional`: (ETag, Last-Modified) of
    /// the copy we have, so an unchanged upstream answers 304 with no body.
    pub async fn small(
        &self,
        url: &str,
        conditional: Option<(&str, &str)>,
    ) -> Result<Small, FetchError> {
        let _slot = self.slots.acquire().await.expect("semaphore open");
        let mut attempt = 0;
        loop {
            let mut request = self.request(url);
            if let Some((etag, modified)) = conditional {
                if !etag.is_empty() {
                    request = request.header(header::IF_NONE_MATCH, etag);
                }
                if !modified.is_empty() {
                    request = request.header(header::IF_MODIFIED_SINCE, modified);
                }
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let result = async {
                let response = request.send().await.map_err(|e| (network(url, e), None))?;
                let status = response.status();
                let retry_after = retry_after(response.headers());
                if status == StatusCode::NOT_FOUND {
                    return Err((FetchError::NotFound { url: url.into() }, None));
                }
                if status == StatusCode::NOT_MODIFIED {
                    return Ok(Small {
                        status: 304,
                        bytes: Vec::new(),
                        etag: None,
                        last_modified: None,
                    });
                }
                if !status.is_success() {
                    return Err((
                        FetchError::Status {
                            url: url.into(),
                            status: status.as_u16(),
                        },
                        retry_after,
                    ));
                }
                let text = |name| {
                    response
                        .headers()
                        .get(name)
                        .and_then(|v: &HeaderValue| v.to_str().ok())
                        .map(str::to_string)
                };
                let etag = text(header::ETAG);
                let last_modified = text(header::LAST_MODIFIED);
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|e| (network(url, e), None))?;
                self.stats
                    .bytes
                    .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                Ok(Small {
                    status: status.as_u16(),
                    bytes: bytes.to_vec(),
                    etag,
                    last_modified,
                })
            }
            .await;
            match result {
                Ok(small) => return Ok(small),
                Err((error, retry_after))
                    if error.retryable() && attempt < self.options.retries =>
                {
                    tracing::warn!(%error, attempt, "retrying");
                    self.pause(attempt, retry_after).await;
                    attempt += 1;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Downloads `url` into the store as the object `expected.sha256`, unless it is there.
    pub async fn object(
        &self,
        store: &Store,
        url: &str,
        expected: Expected,
    ) -> Result<Stored, FetchError> {
        if store.contains(&expected.sha256) {
            return Ok(already_stored(expected));
        }
        let _slot = self.slots.acquire().await.expect("semaphore open");
        // Another sync (another suite sharing this package) may be fetching it right now.
        let _claim = store.claim_download(&expected.sha256).await;
        if store.contains(&expected.sha256) {
            return Ok(already_stored(expected));
        }
        let mut partial = store.partial(&expected.sha256)?;
        let mut attempt = 0;
        loop {
            match self.object_once(url, expected, &mut partial).await {
                Ok(()) => break,
                Err((error, retry_after))
                    if error.retryable() && attempt < self.options.retries =>
                {
                    tracing::warn!(%error, attempt, have = partial.size(), "retrying (resuming what arrived)");
                    self.pause(attempt, retry_after).await;
                    attempt += 1;
                }
                Err((error, _)) => {
                    if !error.retryable() {
                        partial.discard();
                    }
                    return Err(error);
                }
            }
        }
        let size = partial.size();
        match partial.finish()? {
            Ok(stored) => {
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                Ok(stored)
            }
            Err(actual) => Err(FetchError::Hash {
                url: url.into(),
                expected: expected.sha256.to_hex(),
                actual: format!("{} ({size} bytes)", actual.to_hex()),
            }),
        }
    }

    /// One attempt: resumes from what `partial` holds.
    async fn object_once(
        &self,
        url: &str,
        expected: Expected,
        partial: &mut crate::store::PartialWriter<'_>,
    ) -> Result<(), (FetchError, Option<Duration>)> {
        let have = partial.size();
        if let Some(size) = expected.size {
            if have > size {
                partial.restart().map_err(|e| (e.into(), None))?;
            } else if have == size && size > 0 {
                return Ok(());
            }
        }
        let have = partial.size();
        let mut request = self.request(url);
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
        }
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| (network(url, e), None))?;
        let status = response.status();
        let retry_after = retry_after(response.headers());
        match status {
            StatusCode::NOT_FOUND => return Err((FetchError::NotFound { url: url.into() }, None)),
            StatusCode::PARTIAL_CONTENT if have > 0 => {
                let start = response
                    .headers()
                    .get(header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(have) {
                    partial.restart().map_err(|e| (e.into(), None))?;
                    return Err((
                        FetchError::Network {
                            url: url.into(),
                            message: "the server answered a different range; starting over".into(),
                        },
                        None,
                    ));
                }
            }
            StatusCode::RANGE_NOT_SATISFIABLE if have > 0 => {
                // What we have is all there is (or garbage): the hash check decides.
                return Ok(());
            }
            status if status.is_success() => {
                if have > 0 {
                    partial.restart().map_err(|e| (e.into(), None))?;
                }
            }
            status => {
                return Err((
                    FetchError::Status {
                        url: url.into(),
                        status: status.as_u16(),
                    },
                    retry_after,
                ))
            }
        }
        let start = partial.size();
        if let (Some(expected_size), Some(length)) = (expected.size, response.content_length()) {
            if start + length != expected_size {
                partial.restart().map_err(|e| (e.into(), None))?;
                return Err((
                    FetchError::Size {
                        url: url.into(),
                        expected: expected_size,
                        actual: start + length,
                    },
                    None,
                ));
            }
        }
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| (network(url, e), None))?;
            if expected
                .size
                .is_some_and(|size| partial.size() + chunk.len() as u64 > size)
            {
                let actual = partial.size() + chunk.len() as u64;
                partial.restart().map_err(|e| (e.into(), None))?;
                return Err((
                    FetchError::Size {
                        url: url.into(),
                        expected: expected.size.unwrap_or(0),
                        actual,
                    },
                    None,
                ));
            }
            partial.write_chunk(&chunk).map_err(|e| (e.into(), None))?;
            self.stats
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
            self.throttle(chunk.len()).await;
        }
        if let Some(size) = expected.size {
            if partial.size() < size {
                return Err((
                    FetchError::Network {
                        url: url.into(),
                        message: format!(
                            "connection closed after {} of {size} bytes",
                            partial.size()
                        ),
                    },
                    None,
                ));
            }
        }
        Ok(())
    }
}

fn already_stored(expected: Expected) -> Stored {
    Stored {
        id: expected.sha256,
        size: expected.size.unwrap_or(0),
        method: crate::store::IngestMethod::Existing,
        stamp: None,
    }
}

fn network(url: &str, error: reqwest::Error) -> FetchError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    FetchError::Network {
        url: url.into(),
        message,
    }
}

/// `Retry-After: <seconds>` or `<HTTP date>`.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}
