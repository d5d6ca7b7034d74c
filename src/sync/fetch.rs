//! Downloads from upstreams: streamed to disk while hashing, checked against the expected size
//! and sha256 before the object is accepted, resumed after interruptions (`Range` on the kept
//! partial file), retried with back-off that honours `Retry-After`, bounded in parallelism and,
//! if configured, in bandwidth.
//!
//! Every kind of remote sync uses the one [`Fetcher`]: signed indices fetched into memory
//! ([`Fetcher::small`]), objects whose hash an index gives ([`Fetcher::object`]), and for
//! plain file trees, which have no index, listing pages ([`Fetcher::bounded`]) and files
//! whose hash is known only once the last byte is in ([`Fetcher::changed`]).

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

/// What identifies the version of an upstream file we hold: sent back as If-None-Match and
/// If-Modified-Since, so an unchanged file costs a body-less 304.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    /// ETag and Last-Modified of a response.
    fn of(headers: &HeaderMap) -> Validators {
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        Validators {
            etag: text(header::ETAG),
            last_modified: text(header::LAST_MODIFIED),
        }
    }
}

/// A body now in the store, with the validators the upstream gave for it.
#[derive(Debug, Clone)]
pub struct Downloaded {
    pub stored: Stored,
    pub validators: Validators,
}

/// One attempt's failure, and how long the server asked us to wait before the next.
type Failure = (FetchError, Option<Duration>);

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

/// The one HTTP client of remote syncs. Every request of a sync goes through it, so the
/// client settings (proxy, credentials, extra headers, timeouts), the retry rules (back-off,
/// `Retry-After`), the parallelism and the bandwidth limit live here and nowhere else, and
/// [`FetchStats`] counts all of it.
pub struct Fetcher {
    client: reqwest::Client,
    options: FetchOptions,
    slots: Arc<Semaphore>,
    budget: Option<Mutex<(Instant, f64)>>,
    pub stats: FetchStats,
}

impl Fetcher {
    /// Ends a sync's downloading: clears the progress line and puts the request and byte
    /// counts into the report.
    pub fn finish(&self, report: &mut crate::sync::SyncReport) {
        if progress_enabled() {
            eprint!("\r\x1b[K");
        }
        report.upstream_requests = self.stats.requests.load(Ordering::Relaxed);
        report.bytes_fetched = self.stats.bytes.load(Ordering::Relaxed);
    }

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

    /// A GET with the credentials, and the conditions that make an unchanged upstream answer
    /// 304 with no body.
    fn request(
        &self,
        url: &str,
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut request = self.client.get(url);
        if let Some((user, password)) = &self.options.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(etag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = if_modified_since {
            request = request.header(header::IF_MODIFIED_SINCE, date);
        }
        request
    }

    /// Sends one request and counts it. Success, 304 and 416 are answers for the caller to
    /// read (what they mean depends on what was asked); anything else is a failure, retryable
    /// or not, with the server's `Retry-After`.
    async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| (network(url, e), None))?;
        let status = response.status();
        if status.is_success()
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::RANGE_NOT_SATISFIABLE
        {
            return Ok(response);
        }
        Err(refused(url, &response))
    }

    /// Runs conditional GETs of `url` until `read` makes something of a response, the error
    /// is not worth another try, or the retries are used up. `read` sees every answer
    /// [`Fetcher::send`] lets through and may fail retryably itself (a cut body).
    async fn get<T, F, Fut>(
        &self,
        url: &str,
        if_none_match: Option<&str>,
        if_modified_since: Option<&str>,
        mut read: F,
    ) -> Result<T, FetchError>
    where
        F: FnMut(reqwest::Response) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            let request = self.request(url, if_none_match, if_modified_since);
            let attempt = match self.send(url, request).await {
                Ok(response) => read(response).await,
                Err(failure) => Err(failure),
            };
            match attempt {
                Ok(value) => return Ok(value),
                Err(failure) => self.again(url, &mut tries, failure).await?,
            }
        }
    }

    /// After failed attempt number `tries`: waits and returns `Ok` if another attempt is
    /// worth it (network trouble, "try later" statuses, retries left), else the error.
    async fn again(&self, url: &str, tries: &mut u32, failure: Failure) -> Result<(), FetchError> {
        let (error, retry_after) = failure;
        if !error.retryable() || *tries >= self.options.retries {
            return Err(error);
        }
        // URLs in the log without credentials (config refuses them, a redirect may not).
        tracing::warn!(
            url = %crate::http::redact::credentials(url),
            error = %crate::http::redact::credentials(&error.to_string()),
            attempt = *tries,
            "retrying"
        );
        self.pause(*tries, retry_after).await;
        *tries += 1;
        Ok(())
    }

    /// Counts received bytes and waits as long as the bandwidth limit asks for after them.
    async fn count(&self, bytes: usize) {
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
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
        // An empty validator is one the upstream never gave.
        let (etag, modified) = conditional.unwrap_or_default();
        let etag = Some(etag).filter(|v| !v.is_empty());
        let modified = Some(modified).filter(|v| !v.is_empty());
        self.get(url, etag, modified, |response| async move {
            let status = response.status();
            if status == StatusCode::NOT_MODIFIED {
                return Ok(Small {
                    status: 304,
                    bytes: Vec::new(),
                    etag: None,
                    last_modified: None,
                });
            }
            if !status.is_success() {
                return Err(refused(url, &response));
            }
            let Validators {
                etag,
                last_modified,
            } = Validators::of(response.headers());
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
        })
        .await
    }

    /// Fetches a body into memory that has no business being larger than `max` bytes (a
    /// directory listing): streamed and counted against the bandwidth limit like a download,
    /// and given up at `max` so a wrong URL cannot fill the memory.
    pub async fn bounded(&self, url: &str, max: usize) -> Result<Vec<u8>, FetchError> {
        let _slot = self.slots.acquire().await.expect("semaphore open");
        self.get(url, None, None, |response| async move {
            // A 304 or 416 to a plain GET is not a page.
            if !response.status().is_success() {
                return Err(refused(url, &response));
            }
            let mut body = response.bytes_stream();
            let mut bytes = Vec::new();
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| (network(url, e), None))?;
                bytes.extend_from_slice(&chunk);
                self.count(chunk.len()).await;
                if bytes.len() > max {
                    return Err((
                        FetchError::Network {
                            url: url.into(),
                            message: format!(
                                "more than {max} bytes: too large to be what was asked for"
                            ),
                        },
                        None,
                    ));
                }
            }
            Ok(bytes)
        })
        .await
    }

    /// Streams `url` into a new object of the store when its hash is not known in advance
    /// (a plain file tree has no index). `held`: the validators of the copy we have, so an
    /// unchanged file costs one body-less 304, answered as `None`. A cut connection starts
    /// the file over: without the hash there is no telling a kept partial file is still good.
    pub async fn changed(
        &self,
        store: &Store,
        url: &str,
        held: &Validators,
    ) -> Result<Option<Downloaded>, FetchError> {
        let _slot = self.slots.acquire().await.expect("semaphore open");
        let (etag, modified) = (held.etag.as_deref(), held.last_modified.as_deref());
        self.get(url, etag, modified, |response| async move {
            let asked = etag.is_some() || modified.is_some();
            if response.status() == StatusCode::NOT_MODIFIED && asked {
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            // A 304 or 416 we did not ask for has no file in it.
            if !response.status().is_success() {
                return Err(refused(url, &response));
            }
            let validators = Validators::of(response.headers());
            let length = response.content_length();
            let mut writer = store.writer().map_err(|e| (e.into(), None))?;
            let mut body = response.bytes_stream();
            while let Some(chunk) = body.next().await {
                // Dropping the writer on an error removes its temp file.
                let chunk = chunk.map_err(|e| (network(url, e), None))?;
                std::io::Write::write_all(&mut writer, &chunk).map_err(|e| {
                    let error = StoreError {
                        action: "write download",
                        path: store.root().join("tmp"),
                        source: e,
                    };
                    (error.into(), None)
                })?;
                self.count(chunk.len()).await;
            }
            if let Some(length) = length {
                if writer.size() != length {
                    return Err((
                        FetchError::Network {
                            url: url.into(),
                            message: format!(
                                "connection closed after {} of {length} bytes",
                                writer.size()
                            ),
                        },
                        None,
                    ));
                }
            }
            let stored = writer.finish().map_err(|e| (e.into(), None))?;
            self.stats.files.fetch_add(1, Ordering::Relaxed);
            Ok(Some(Downloaded { stored, validators }))
        })
        .await
    }

    /// Downloads `url` into the store as the object `expected.sha256`, unless it is there.
    pub async fn object(
        &self,
        store: &Store,
        url: &str,
        expected: Expected,
    ) -> Result<Stored, FetchError> {
        Ok(self
            .object_with_validators(store, url, expected)
            .await?
            .stored)
    }

    /// [`Fetcher::object`], also returning the validators of the last response, for a sync
    /// that asks "changed since?" next time. An object already stored has none.
    pub async fn object_with_validators(
        &self,
        store: &Store,
        url: &str,
        expected: Expected,
    ) -> Result<Downloaded, FetchError> {
        if store.contains(&expected.sha256) {
            return Ok(already_stored(store, expected));
        }
        let _slot = self.slots.acquire().await.expect("semaphore open");
        // Another sync (another suite sharing this package) may be fetching it right now.
        let _claim = store.claim_download(&expected.sha256).await;
        if store.contains(&expected.sha256) {
            return Ok(already_stored(store, expected));
        }
        let mut partial = store.partial(&expected.sha256)?;
        let mut tries = 0;
        let validators = loop {
            match self.object_once(url, expected, &mut partial).await {
                Ok(validators) => break validators,
                Err(failure) => match self.again(url, &mut tries, failure).await {
                    Ok(()) => tracing::info!(
                        url = %crate::http::redact::credentials(url),
                        have = partial.size(),
                        "resuming what arrived"
                    ),
                    Err(error) => {
                        if !error.retryable() {
                            partial.discard();
                        }
                        return Err(error);
                    }
                },
            }
        };
        let size = partial.size();
        match partial.finish()? {
            Ok(stored) => {
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                Ok(Downloaded { stored, validators })
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
    ) -> Result<Validators, Failure> {
        let have = partial.size();
        if let Some(size) = expected.size {
            if have > size {
                partial.restart().map_err(|e| (e.into(), None))?;
            } else if have == size && size > 0 {
                return Ok(Validators::default());
            }
        }
        let have = partial.size();
        let mut request = self.request(url, None, None);
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
        }
        let response = self.send(url, request).await?;
        let validators = Validators::of(response.headers());
        match response.status() {
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
                return Ok(validators);
            }
            status if status.is_success() => {
                if have > 0 {
                    partial.restart().map_err(|e| (e.into(), None))?;
                }
            }
            // 304 or 416 to a request that did not ask for them.
            _ => return Err(refused(url, &response)),
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
            self.count(chunk.len()).await;
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
        Ok(validators)
    }
}

/// An object the store holds already: nothing to download. Without a signed size (a checksum
/// file gives none), the stored file tells it.
fn already_stored(store: &Store, expected: Expected) -> Downloaded {
    let size = expected.size.unwrap_or_else(|| {
        std::fs::metadata(store.object_path(&expected.sha256)).map_or(0, |m| m.len())
    });
    Downloaded {
        stored: Stored {
            id: expected.sha256,
            size,
            method: crate::store::IngestMethod::Existing,
            stamp: None,
        },
        validators: Validators::default(),
    }
}

/// The failure for an answer that is not the one asked for: 404 is final, other statuses
/// carry the server's `Retry-After`.
fn refused(url: &str, response: &reqwest::Response) -> Failure {
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return (FetchError::NotFound { url: url.into() }, None);
    }
    let error = FetchError::Status {
        url: url.into(),
        status: status.as_u16(),
    };
    (error, retry_after(response.headers()))
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
