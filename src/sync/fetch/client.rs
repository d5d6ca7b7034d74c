//! The HTTP client of a sync: built once from the source's options (proxy, extra headers,
//! timeouts), and the one place requests are made and counted.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::StatusCode;
use tokio::sync::{Mutex, Semaphore};

use super::error::{network, refused, through_proxy, Failure};
use super::{FetchError, FetchOptions, FetchStats, Fetcher};

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
        for certificate in &options.root_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
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
    pub(super) fn request(
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
    pub(super) async fn send(
        &self,
        url: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, Failure> {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(|e| {
            let error = through_proxy(network(url, e), self.options.proxy.as_deref());
            (error, None)
        })?;
        let status = response.status();
        if status.is_success()
            || status == StatusCode::NOT_MODIFIED
            || status == StatusCode::RANGE_NOT_SATISFIABLE
        {
            return Ok(response);
        }
        Err(refused(url, &response))
    }
}
