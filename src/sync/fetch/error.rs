//! Why a download failed, and which failures are worth another attempt.

use std::time::Duration;

use reqwest::header::{self, HeaderMap};
use reqwest::StatusCode;

use crate::store::StoreError;
use crate::sync::SyncError;

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: not found (HTTP 404)")]
    NotFound { url: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    /// No connection to the host could be made (name not resolved, connection refused or
    /// timed out): the network or the host is down, or the URL names the wrong one.
    #[error("cannot reach {host} ({url}: {message})")]
    Unreachable {
        url: String,
        host: String,
        message: String,
    },
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
    pub(super) fn retryable(&self) -> bool {
        match self {
            // A few tries (see `Fetcher::again`) ride out a blip; a host that stays away
            // fails the sync, which the scheduler tries again at the source's next run.
            FetchError::Network { .. } | FetchError::Unreachable { .. } => true,
            FetchError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// A failed download as the failure of the sync that wanted it: the store's errors stay
/// themselves, an unreachable host stays typed (the app adds advice), the rest is text.
impl From<FetchError> for SyncError {
    fn from(error: FetchError) -> Self {
        match error {
            FetchError::Store(e) => SyncError::Store(e),
            FetchError::Unreachable { ref host, .. } => SyncError::Unreachable {
                host: host.clone(),
                message: error.to_string(),
            },
            other => SyncError::Upstream(other.to_string()),
        }
    }
}

/// One attempt's failure, and how long the server asked us to wait before the next.
pub(super) type Failure = (FetchError, Option<Duration>);

/// The failure for an answer that is not the one asked for: 404 is final, other statuses
/// carry the server's `Retry-After`.
pub(super) fn refused(url: &str, response: &reqwest::Response) -> Failure {
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

/// The failure of a request that got no answer: [`FetchError::Unreachable`] when no
/// connection was made (DNS, refused, connect timeout), else [`FetchError::Network`].
pub(super) fn network(url: &str, error: reqwest::Error) -> FetchError {
    let unreachable_host = error
        .is_connect()
        .then(|| error.url().and_then(|u| u.host_str()).map(str::to_string))
        .flatten();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    if let Some(host) = unreachable_host {
        return FetchError::Unreachable {
            url: url.into(),
            host,
            message,
        };
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
