//! Downloads from upstreams: streamed to disk while hashing, checked against the expected size
//! and sha256 before the object is accepted, resumed after interruptions (`Range` on the kept
//! partial file), retried with back-off that honours `Retry-After`, bounded in parallelism and,
//! if configured, in bandwidth.
//!
//! Every kind of remote sync uses the one [`Fetcher`]: signed indices fetched into memory
//! ([`Fetcher::small`]), objects whose hash an index gives ([`Fetcher::object`]; payload
//! files through [`Fetcher::payload`], which a dry run only counts), and for
//! plain file trees, which have no index, listing pages ([`Fetcher::bounded`]) and files
//! whose hash is known only once the last byte is in ([`Fetcher::changed`]).

mod client;
mod download;
pub mod dry_run;
mod error;
mod keys;
mod memory;
mod payload;
mod progress;
mod retry;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::sync::{Mutex, Semaphore};

use crate::store::{ObjectId, Stored};

pub use error::FetchError;
pub(crate) use keys::read_ca_file;
pub use keys::FetchKeys;
pub use progress::{enable_progress, progress, progress_enabled};

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
    /// Root CAs trusted besides the public web roots (`ca_file`).
    pub root_certificates: Vec<reqwest::Certificate>,
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
            root_certificates: Vec::new(),
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
        report.counts.upstream_requests = self.stats.requests.load(Ordering::Relaxed);
        report.counts.bytes_fetched = self.stats.bytes.load(Ordering::Relaxed);
    }
}
