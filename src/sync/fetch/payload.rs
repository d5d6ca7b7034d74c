//! Payload files (packages, images, plain files): what a sync exists to fetch, as opposed to
//! the indices that say which payload there is. A kind asks for each payload file through the
//! calls here; against a real store they are [`Fetcher::object`] and [`Fetcher::changed`],
//! against a scratch store (`sync --dry-run`, see `Store::scratch_over`) a file not held is
//! only counted as one that would be fetched, and its body is never asked for.

use reqwest::header;
use reqwest::StatusCode;

use super::error::refused;
use super::{Downloaded, Expected, FetchError, Fetcher, Validators};
use crate::store::{IngestMethod, ObjectId, Store, Stored};

impl Fetcher {
    /// Downloads payload file `url` as object `expected.sha256`, unless it is held; a dry run
    /// (a scratch store) counts it instead.
    pub async fn payload(
        &self,
        store: &Store,
        url: &str,
        expected: Expected,
    ) -> Result<Stored, FetchError> {
        Ok(self
            .payload_with_validators(store, url, expected)
            .await?
            .stored)
    }

    /// [`Fetcher::payload`], also returning the validators of the response (a dry run has
    /// none). Without a signed size a dry run asks the upstream with HEAD.
    pub async fn payload_with_validators(
        &self,
        store: &Store,
        url: &str,
        expected: Expected,
    ) -> Result<Downloaded, FetchError> {
        if !store.is_scratch() || store.contains(&expected.sha256) {
            return self.object_with_validators(store, url, expected).await;
        }
        let size = match expected.size {
            Some(size) => size,
            None => self.head(url, &Validators::default()).await?.unwrap_or(0),
        };
        Ok(planned(expected.sha256, size))
    }

    /// [`Fetcher::changed`] for a payload file. A dry run asks with a conditional HEAD: an
    /// unchanged file is `None` as usual; a changed one is named by a stand-in id no store
    /// holds (its hash is not known without its bytes), with the size the upstream gives.
    pub async fn changed_payload(
        &self,
        store: &Store,
        url: &str,
        held: &Validators,
    ) -> Result<Option<Downloaded>, FetchError> {
        if !store.is_scratch() {
            return self.changed(store, url, held).await;
        }
        Ok(self
            .head(url, held)
            .await?
            .map(|size| planned(stand_in(url), size)))
    }

    /// A HEAD request, conditional on `held`: `None` for 304, else the Content-Length.
    async fn head(&self, url: &str, held: &Validators) -> Result<Option<u64>, FetchError> {
        let _slot = self.slots.acquire().await.expect("semaphore open");
        let mut request = self.client.head(url);
        if let Some((user, password)) = &self.options.basic_auth {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(etag) = &held.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(date) = &held.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, date);
        }
        let response = self.send(url, request).await.map_err(|(e, _)| e)?;
        let asked = held.etag.is_some() || held.last_modified.is_some();
        if response.status() == StatusCode::NOT_MODIFIED && asked {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(refused(url, &response).0);
        }
        // The header itself: a HEAD response has no body for the client to measure.
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok(Some(length.unwrap_or(0)))
    }
}

/// What a dry run reports for a payload file it would download.
fn planned(id: ObjectId, size: u64) -> Downloaded {
    Downloaded {
        stored: Stored {
            id,
            size,
            method: IngestMethod::Copy,
            stamp: None,
        },
        validators: Validators::default(),
    }
}

/// The id a dry run gives a file whose hash it cannot know: a hash of its URL, which is no
/// file's content hash in practice, so no store holds it and it counts as new.
fn stand_in(url: &str) -> ObjectId {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("mirrorbox dry run: {url}").as_bytes());
    ObjectId(digest.into())
}
