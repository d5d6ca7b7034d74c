//! Pages made from a view (directory listings), kept with the view that made them.
//!
//! A view never changes, so neither does a page made from it: it is rendered and hashed once
//! and then served as it is until the next publish replaces the view, and this cache with it.
//! Memory is bounded: a page larger than [`MAX_PAGE`] is never kept, and when the pages kept
//! would pass [`BUDGET`] the cache starts over.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use sha2::{Digest, Sha256};

/// The largest page kept (a folder of about 130,000 entries).
pub const MAX_PAGE: usize = 16 * 1024 * 1024;
/// Memory for the pages of one view.
pub const BUDGET: usize = 64 * 1024 * 1024;

/// A rendered page, its strong entity tag (with quotes) made from the bytes, and the
/// Last-Modified of what it shows (worked out while rendering, so it is kept with the page).
#[derive(Debug)]
pub struct Page {
    pub bytes: Bytes,
    pub etag: String,
    pub last_modified: i64,
}

impl Page {
    pub fn new(bytes: Bytes) -> Page {
        Page::dated(bytes, 0)
    }

    pub fn dated(bytes: Bytes, last_modified: i64) -> Page {
        let digest = Sha256::digest(&bytes);
        Page {
            etag: format!("\"{}\"", hex::encode(&digest[..16])),
            bytes,
            last_modified,
        }
    }
}

#[derive(Default)]
pub struct PageCache {
    inner: Mutex<Pages>,
}

#[derive(Default)]
struct Pages {
    map: HashMap<Box<str>, Arc<Page>>,
    bytes: usize,
}

impl PageCache {
    /// The page for `key`, made by `render` (the page and its Last-Modified) the first time.
    /// Rendering happens outside the lock: two first requests at once may both render, and
    /// one result is kept.
    pub fn get_or_render(&self, key: &str, render: impl FnOnce() -> (String, i64)) -> Arc<Page> {
        if let Some(page) = self.lock().map.get(key) {
            return page.clone();
        }
        let (text, last_modified) = render();
        let page = Arc::new(Page::dated(Bytes::from(text), last_modified));
        let size = page.bytes.len();
        if size <= MAX_PAGE {
            let mut pages = self.lock();
            if pages.bytes + size > BUDGET {
                *pages = Pages::default();
            }
            if pages.map.insert(key.into(), page.clone()).is_none() {
                pages.bytes += size;
            }
        }
        page
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pages> {
        // A panic while holding the lock leaves a consistent map; keep using it.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl std::fmt::Debug for PageCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pages = self.lock();
        f.debug_struct("PageCache")
            .field("pages", &pages.map.len())
            .field("bytes", &pages.bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_made_once_and_memory_is_bounded() {
        let cache = PageCache::default();
        let made = std::cell::Cell::new(0);
        let render = || {
            made.set(made.get() + 1);
            ("page".to_string(), 7)
        };
        let first = cache.get_or_render("/a", render);
        let again = cache.get_or_render("/a", || unreachable!("cached"));
        assert!(Arc::ptr_eq(&first, &again));
        assert_eq!(made.get(), 1);
        assert_eq!(first.etag, Page::new(Bytes::from("page")).etag);
        assert_eq!(first.last_modified, 7);

        // Too large to keep: rendered every time, but served all the same.
        let huge = || ("x".repeat(MAX_PAGE + 1), 0);
        assert_eq!(cache.get_or_render("/huge", huge).bytes.len(), MAX_PAGE + 1);
        assert_eq!(cache.lock().map.len(), 1);

        // Past the budget the cache starts over.
        let big = || ("y".repeat(MAX_PAGE), 0);
        for i in 0..(BUDGET / MAX_PAGE + 1) {
            cache.get_or_render(&format!("/big{i}"), big);
        }
        assert!(cache.lock().bytes <= BUDGET);
    }
}
