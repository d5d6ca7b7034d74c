//! What a `files` sync asks of the [`Fetcher`]: listing pages as text, and each file fetched
//! the way [`plan`](super) chose.
//!
//! The HTTP itself (client, retries, back-off, bandwidth, counting) is the fetcher's, shared
//! with every other remote sync. What is left here is the translation: the validators kept in
//! the [`FileState`] become the conditions of the request, and a body whose hash is not the
//! one a checksum file gave becomes an [`Outcome::Mismatch`] for the sync to report against
//! that checksum file, rather than a bare download error.

use reqwest::Url;

use super::state::FileState;
use crate::store::{ObjectId, Store, Stored};
use crate::sync::fetch::{Downloaded, Expected, FetchError, Fetcher, Validators};

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
    /// `actual`: its hash and size, as the message to the user gives them.
    Mismatch { actual: String },
}

/// A listing page as text (lossy: a listing is read for its links, not quoted).
pub async fn page(fetcher: &Fetcher, url: &Url) -> Result<String, FetchError> {
    let bytes = fetcher.bounded(url.as_str(), MAX_PAGE).await?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Fetches a file into the store.
///
/// `previous`: what we hold for this path, sent as If-None-Match / If-Modified-Since so
/// an unchanged file costs one request and no body. `sha256`: the hash a checksum file
/// gives; the download then goes through `tmp/partial/` and resumes with `Range` after a
/// cut, and a body with another hash is reported as [`Outcome::Mismatch`]. Without it the
/// body streams into a new object and a cut connection starts the file over. `payload`: a
/// file to publish, which a dry run does not download (see [`Fetcher::payload`]).
pub async fn file(
    fetcher: &Fetcher,
    store: &Store,
    url: &Url,
    previous: Option<&FileState>,
    sha256: Option<ObjectId>,
    payload: bool,
) -> Result<Outcome, FetchError> {
    let stored = |Downloaded { stored, validators }| Outcome::Stored {
        stored,
        etag: validators.etag,
        last_modified: validators.last_modified,
    };
    match sha256 {
        Some(sha256) => {
            // A checksum file gives no size: the hash alone decides.
            let expected = Expected { size: None, sha256 };
            let result = match payload {
                true => {
                    fetcher
                        .payload_with_validators(store, url.as_str(), expected)
                        .await
                }
                false => {
                    fetcher
                        .object_with_validators(store, url.as_str(), expected)
                        .await
                }
            };
            match result {
                Ok(downloaded) => Ok(stored(downloaded)),
                Err(FetchError::Hash { actual, .. }) => Ok(Outcome::Mismatch { actual }),
                Err(error) => Err(error),
            }
        }
        None => {
            let held = previous.map_or_else(Validators::default, |p| Validators {
                etag: p.etag.clone(),
                last_modified: p.last_modified.clone(),
            });
            let result = match payload {
                true => fetcher.changed_payload(store, url.as_str(), &held).await?,
                false => fetcher.changed(store, url.as_str(), &held).await?,
            };
            Ok(result.map_or(Outcome::NotModified, stored))
        }
    }
}
