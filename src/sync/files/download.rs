//! HTTP for `files` sources: listing pages into memory, files streamed into the store.
//!
//! [`Fetcher`](crate::sync::fetch::Fetcher) downloads objects whose hash an index gives in
//! advance and returns no response headers. A plain file tree needs two more things: a
//! conditional GET whose 304 means "keep what you have", with the ETag and Last-Modified of
//! a 200 kept for next time, and a download whose hash is only known once the last byte is
//! in. Both live here, with the same options and the same retry, back-off and bandwidth
//! rules, counted in the same [`FetchStats`].

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::sync::{Mutex, Semaphore};

use super::state::FileState;
use crate::store::{ObjectId, Store, Stored};
use crate::sync::fetch::{FetchError, FetchOptions, FetchStats};

/// A listing page larger than this is not a listing (or not one we should hold in memory).
pub const MAX_PAGE: usize = 32 * 1024 * 1024;

/// What a file request ended with.
#[derive(Debug)]
pub enum Outcome {
    /// 304: the upstream still has the bytes the validators describe.
    NotModified,
    /// A new body, now in the store.
    Stored {
        stored: Stored,
        etag: Option<String>,
        last_modified: Option<String>,
    },
    /// The body did not have the sha256 a checksum file gave (nothing was stored).
    Mismatch { actual: ObjectId, size: u64 },
}

/// One attempt's failure, and how long the server asked us to wait before the next.
type Failure = (FetchError, Option<Duration>);

pub struct Client {
    http: reqwest::Client,
    options: FetchOptions,
    slots: Semaphore,
    budget: Option<Mutex<(Instant, f64)>>,
    pub stats: FetchStats,
}

impl Client {
    pub fn new(options: &FetchOptions) -> Result<Client, FetchError> {
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
        Ok(Client {
            http: builder
                .build()
                .map_err(|e| FetchError::Client(e.to_string()))?,
            slots: Semaphore::new(options.parallel.max(1)),
            budget: options.bandwidth.map(|_| Mutex::new((Instant::now(), 0.0))),
            options: options.clone(),
            stats: FetchStats::default(),
        })
    }

    fn get(&self, url: &Url) -> reqwest::RequestBuilder {
        let request = self.http.get(url.clone());
        match &self.options.basic_auth {
            Some((user, password)) => request.basic_auth(user, Some(password)),
            None => request,
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are used up.
    async fn with_retries<T, F, Fut>(&self, url: &Url, mut attempt: F) -> Result<T, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut tries = 0;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                Err((error, retry_after)) if retryable(&error) && tries < self.options.retries => {
                    tracing::warn!(%url, %error, attempt = tries, "retrying");
                    self.pause(tries, retry_after).await;
                    tries += 1;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Sleeps before retry number `tries`: exponential back-off, or what the server asked.
    async fn pause(&self, tries: u32, retry_after: Option<Duration>) {
        let backoff = self.options.backoff * 2u32.saturating_pow(tries.min(6));
        let delay = retry_after.map_or(backoff, |asked| asked.min(Duration::from_secs(300)));
        tokio::time::sleep(delay).await;
    }

    /// A listing page (or an index) as text; at most [`MAX_PAGE`] bytes.
    pub async fn page(&self, url: &Url) -> Result<String, FetchError> {
        let _slot = self.slots.acquire().await.expect("semaphore open");
        let bytes = self
            .with_retries(url, || async {
                let response = self.send(url, self.get(url)).await?;
                let mut body = response.bytes_stream();
                let mut bytes = Vec::new();
                while let Some(chunk) = body.next().await {
                    let chunk = chunk.map_err(|e| (network(url, e), None))?;
                    bytes.extend_from_slice(&chunk);
                    self.count(chunk.len()).await;
                    if bytes.len() > MAX_PAGE {
                        return Err((
                            FetchError::Network {
                                url: url.to_string(),
                                message: format!(
                                    "more than {MAX_PAGE} bytes: not a directory listing"
                                ),
                            },
                            None,
                        ));
                    }
                }
                Ok(bytes)
            })
            .await?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// Fetches a file into the store.
    ///
    /// `previous`: what we hold for this path, sent as If-None-Match / If-Modified-Since so
    /// an unchanged file costs one request and no body. `sha256`: the hash a checksum file
    /// gives; the download then goes through `tmp/partial/` and resumes with `Range` after a
    /// cut, and a body with another hash is reported as [`Outcome::Mismatch`]. Without it the
    /// body streams into a new object and a cut connection starts the file over.
    pub async fn file(
        &self,
        store: &Store,
        url: &Url,
        previous: Option<&FileState>,
        sha256: Option<ObjectId>,
    ) -> Result<Outcome, FetchError> {
        let _slot = self.slots.acquire().await.expect("semaphore open");
        match sha256 {
            Some(expected) => self.known(store, url, expected).await,
            None => {
                self.with_retries(url, || self.unknown_once(store, url, previous))
                    .await
            }
        }
    }

    /// A download whose hash is known: resumable.
    async fn known(
        &self,
        store: &Store,
        url: &Url,
        expected: ObjectId,
    ) -> Result<Outcome, FetchError> {
        // Another source of this process may be fetching the same bytes right now.
        let _claim = store.claim_download(&expected).await;
        if store.contains(&expected) {
            let size = std::fs::metadata(store.object_path(&expected)).map_or(0, |m| m.len());
            return Ok(Outcome::Stored {
                stored: Stored {
                    id: expected,
                    size,
                    method: crate::store::IngestMethod::Existing,
                    stamp: None,
                },
                etag: None,
                last_modified: None,
            });
        }
        let mut partial = store.partial(&expected)?;
        let mut tries = 0;
        let validators = loop {
            match self.known_once(url, &mut partial).await {
                Ok(validators) => break validators,
                Err((error, retry_after)) if retryable(&error) && tries < self.options.retries => {
                    tracing::warn!(%url, %error, attempt = tries, have = partial.size(), "retrying (resuming what arrived)");
                    self.pause(tries, retry_after).await;
                    tries += 1;
                }
                Err((error, _)) => {
                    if !retryable(&error) {
                        partial.discard();
                    }
                    return Err(error);
                }
            }
        };
        let size = partial.size();
        match partial.finish()? {
            Ok(stored) => {
                self.stats.files.fetch_add(1, Ordering::Relaxed);
                Ok(Outcome::Stored {
                    stored,
                    etag: validators.0,
                    last_modified: validators.1,
                })
            }
            Err(actual) => Ok(Outcome::Mismatch { actual, size }),
        }
    }

    /// One attempt of a known-hash download, continuing what `partial` holds.
    async fn known_once(
        &self,
        url: &Url,
        partial: &mut crate::store::PartialWriter<'_>,
    ) -> Result<(Option<String>, Option<String>), Failure> {
        let have = partial.size();
        let mut request = self.get(url);
        if have > 0 {
            request = request.header(header::RANGE, format!("bytes={have}-"));
        }
        let response = self.send(url, request).await?;
        let validators = validators(response.headers());
        match response.status() {
            StatusCode::PARTIAL_CONTENT => {
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
                            url: url.to_string(),
                            message: "the server answered another range; starting over".into(),
                        },
                        None,
                    ));
                }
            }
            // What we have is all there is: the hash check decides.
            StatusCode::RANGE_NOT_SATISFIABLE => return Ok(validators),
            _ => {
                if have > 0 {
                    partial.restart().map_err(|e| (e.into(), None))?;
                }
            }
        }
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| (network(url, e), None))?;
            partial.write_chunk(&chunk).map_err(|e| (e.into(), None))?;
            self.count(chunk.len()).await;
        }
        Ok(validators)
    }

    /// One attempt of a download whose hash is not known: a conditional GET, the body
    /// streamed into a new object.
    async fn unknown_once(
        &self,
        store: &Store,
        url: &Url,
        previous: Option<&FileState>,
    ) -> Result<Outcome, Failure> {
        let mut request = self.get(url);
        if let Some(previous) = previous {
            if let Some(etag) = &previous.etag {
                request = request.header(header::IF_NONE_MATCH, etag);
            }
            if let Some(date) = &previous.last_modified {
                request = request.header(header::IF_MODIFIED_SINCE, date);
            }
        }
        let response = self.send(url, request).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            self.stats.files.fetch_add(1, Ordering::Relaxed);
            return Ok(Outcome::NotModified);
        }
        let (etag, last_modified) = validators(response.headers());
        let length = response.content_length();
        let mut writer = store.writer().map_err(|e| (e.into(), None))?;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            // Dropping the writer on an error removes its temp file.
            let chunk = chunk.map_err(|e| (network(url, e), None))?;
            std::io::Write::write_all(&mut writer, &chunk).map_err(|e| {
                (
                    FetchError::Store(crate::store::StoreError {
                        action: "write download",
                        path: store.root().join("tmp"),
                        source: e,
                    }),
                    None,
                )
            })?;
            self.count(chunk.len()).await;
        }
        if let Some(length) = length {
            if writer.size() != length {
                return Err((
                    FetchError::Network {
                        url: url.to_string(),
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
        Ok(Outcome::Stored {
            stored,
            etag,
            last_modified,
        })
    }

    /// Sends a request; answers that are not success, 206, 304 or 416 become errors.
    async fn send(
        &self,
        url: &Url,
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
        let retry_after = retry_after(response.headers());
        let error = if status == StatusCode::NOT_FOUND {
            FetchError::NotFound {
                url: url.to_string(),
            }
        } else {
            FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
            }
        };
        Err((error, retry_after))
    }

    /// Counts received bytes and waits as long as the bandwidth limit asks.
    async fn count(&self, bytes: usize) {
        self.stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        let (Some(budget), Some(rate)) = (&self.budget, self.options.bandwidth) else {
            return;
        };
        let wait = {
            let mut state = budget.lock().await;
            let (start, sent) = &mut *state;
            *sent += bytes as f64;
            Duration::from_secs_f64(*sent / rate as f64).saturating_sub(start.elapsed())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Network trouble and the statuses that mean "try again later" are retried.
fn retryable(error: &FetchError) -> bool {
    match error {
        FetchError::Network { .. } => true,
        FetchError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
        _ => false,
    }
}

/// ETag and Last-Modified of a response.
fn validators(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    (text(header::ETAG), text(header::LAST_MODIFIED))
}

fn network(url: &Url, error: reqwest::Error) -> FetchError {
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    FetchError::Network {
        url: url.to_string(),
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
