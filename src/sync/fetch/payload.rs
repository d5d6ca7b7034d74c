//! Payload files (packages, images, plain files): what a sync exists to fetch, as opposed to
//! the indices that say which payload there is. A kind asks for each payload file with
//! [`Fetcher::payload`]; against a real store that is [`Fetcher::object`], against a scratch
//! store (`sync --dry-run`, see `Store::scratch_over`) a file not held is only counted as
//! one that would be fetched, and nothing is downloaded.

use super::{Expected, FetchError, Fetcher};
use crate::store::{IngestMethod, Store, Stored};

impl Fetcher {
    /// Downloads payload file `url` as object `expected.sha256`, unless it is held; a dry run
    /// (a scratch store) counts it instead of downloading. `expected.size` must be given: a
    /// dry run reports it as the bytes it would fetch.
    pub async fn payload(
        &self,
        store: &Store,
        url: &str,
        expected: Expected,
    ) -> Result<Stored, FetchError> {
        if !store.is_scratch() || store.contains(&expected.sha256) {
            return self.object(store, url, expected).await;
        }
        // Named by the hash the index gives; the dry run's caller sees it is not stored.
        Ok(Stored {
            id: expected.sha256,
            size: expected.size.unwrap_or(0),
            method: IngestMethod::Copy,
            stamp: None,
        })
    }
}
