//! Bodies kept in memory: signed indices and directory listings.

use std::sync::atomic::Ordering;

use futures_util::StreamExt;
use reqwest::StatusCode;

use super::error::{network, refused};
use super::{FetchError, Fetcher, Small, Validators};

impl Fetcher {
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
}
