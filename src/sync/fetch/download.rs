//! Streaming a download into the store: hashed as it arrives, checked against the signed size
//! and sha256 before the object is accepted, resumed from the kept partial file (`Range`).

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use reqwest::header;
use reqwest::StatusCode;

use super::error::{network, refused, Failure};
use super::{Downloaded, Expected, FetchError, Fetcher, Validators};
use crate::store::{IngestMethod, PartialWriter, Store, StoreError, Stored};

impl Fetcher {
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
                        url = %crate::secrets::credentials(url),
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
        partial: &mut PartialWriter<'_>,
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
            method: IngestMethod::Existing,
            stamp: None,
        },
        validators: Validators::default(),
    }
}
