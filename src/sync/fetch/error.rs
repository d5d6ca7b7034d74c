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
    /// The upstream's TLS certificate was refused. Not a blip: it is not retried, and it is
    /// not an unreachable host either (whose advice is to pick another mirror).
    #[error("{url}: the upstream's TLS certificate is not trusted ({problem}){advice}")]
    Certificate {
        url: String,
        problem: String,
        advice: &'static str,
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

/// [`network`] for a client that goes through `proxy`: what could not be reached may be the
/// proxy, so the failure names it and is not taken for an unreachable upstream (whose advice
/// is to change the upstream).
pub(super) fn through_proxy(error: FetchError, proxy: Option<&str>) -> FetchError {
    match (error, proxy) {
        (FetchError::Unreachable { url, message, .. }, Some(proxy)) => FetchError::Network {
            url,
            message: format!(
                "{message} (through the proxy {})",
                crate::secrets::credentials(proxy)
            ),
        },
        (error, _) => error,
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
    if let Some(refused) = refused_certificate(&error) {
        return certificate(url, refused);
    }
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

/// The certificate error rustls gave, if that is why the request failed. It sits somewhere in
/// the chain of sources, often as the payload of an `io::Error` wrapped in another one (an
/// `io::Error`'s `source` skips its payload, so payloads are opened here).
fn refused_certificate(
    error: &(dyn std::error::Error + 'static),
) -> Option<rustls::CertificateError> {
    let mut next = Some(error);
    while let Some(current) = next {
        if let Some(rustls::Error::InvalidCertificate(problem)) =
            current.downcast_ref::<rustls::Error>()
        {
            return Some(problem.clone());
        }
        next = match current.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|payload| payload as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    None
}

/// [`FetchError::Certificate`] with the advice that fits: an unknown issuer is what a private
/// CA looks like (`ca_file` trusts it); an expired certificate or one for another name is for
/// the upstream's operator to fix, or the URL names the wrong host.
fn certificate(url: &str, problem: rustls::CertificateError) -> FetchError {
    use rustls::CertificateError as E;
    let advice = match problem {
        E::UnknownIssuer | E::BadSignature => {
            "; if a private CA issued it, name that CA's PEM file in the source's `ca_file` key"
        }
        E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. } => {
            "; check this host's clock, else the upstream must renew it"
        }
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            "; the URL must use a name the certificate is for"
        }
        _ => "",
    };
    FetchError::Certificate {
        url: url.into(),
        problem: match problem {
            E::UnknownIssuer => "issued by a CA this host does not trust".into(),
            other => other.to_string(),
        },
        advice,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// What a request to `url` fails with, as the fetcher reports it.
    async fn failure(url: &str) -> FetchError {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let error = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .expect_err("nothing answers");
        network(url, error)
    }

    #[tokio::test]
    async fn no_connection_is_an_unreachable_host_and_a_cut_answer_is_not() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let url = format!("http://127.0.0.1:{port}/dists/x/InRelease");
        let refused = failure(&url).await;
        assert!(
            matches!(&refused, FetchError::Unreachable { host, .. } if host == "127.0.0.1"),
            "{refused:?}"
        );
        assert!(refused
            .to_string()
            .starts_with(&format!("cannot reach 127.0.0.1 ({url}: ")));
        assert!(matches!(
            SyncError::from(refused),
            SyncError::Unreachable { .. }
        ));

        // A server that accepts and hangs up was reached: a network error, no advice.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                drop(socket);
            }
        });
        let cut = failure(&format!("http://127.0.0.1:{port}/")).await;
        assert!(matches!(cut, FetchError::Network { .. }), "{cut:?}");
        assert!(SyncError::from(cut).unreachable_host().is_none());
    }

    #[test]
    fn a_refused_certificate_is_found_inside_nested_io_errors_and_gets_its_advice() {
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        let outer = std::io::Error::other(inner);
        let found = refused_certificate(&outer).expect("found");
        assert_eq!(found, rustls::CertificateError::UnknownIssuer);
        let error = certificate("https://up/x", found);
        assert!(!error.retryable());
        let text = error.to_string();
        assert!(text.contains("not trusted"), "{text}");
        assert!(text.contains("`ca_file`"), "{text}");
        let expired = certificate("https://up/x", rustls::CertificateError::Expired).to_string();
        assert!(expired.contains("clock"), "{expired}");
        assert!(!expired.contains("ca_file"), "{expired}");
        let plain = std::io::Error::other("connection reset");
        assert!(refused_certificate(&plain).is_none());
    }
}
