//! The skeleton every kind's sync shares: the previous snapshot by path (what is unchanged
//! keeps its object and date), dating new entries, and running downloads with progress lines.

use std::collections::HashMap;
use std::future::Future;

use super::fetch::Fetcher;
use super::last_modified;
use crate::manifest::{Entry, Manifest};
use crate::store::ObjectId;

/// The snapshot a sync starts from, looked up by path.
pub struct Previous<'a> {
    manifest: Option<&'a Manifest>,
    by_path: HashMap<&'a str, &'a Entry>,
}

impl<'a> Previous<'a> {
    pub fn new(manifest: Option<&'a Manifest>) -> Previous<'a> {
        Previous {
            manifest,
            by_path: manifest
                .map(|m| m.entries.iter().map(|e| (e.path.as_str(), e)).collect())
                .unwrap_or_default(),
        }
    }

    /// The previous snapshot's entry at `path`.
    pub fn get(&self, path: &str) -> Option<&'a Entry> {
        self.by_path.get(path).copied()
    }

    /// The whole previous snapshot.
    pub fn manifest(&self) -> Option<&'a Manifest> {
        self.manifest
    }

    /// An entry for `object` at `path`: its date stays while its bytes do; new bytes get
    /// `candidate` (the upstream's date) within the rules of [`last_modified`]. `now` is
    /// taken when the entries are made, after the downloads, so no client can have seen the
    /// new bytes before their date.
    pub fn entry(
        &self,
        path: String,
        object: ObjectId,
        size: u64,
        candidate: i64,
        now: i64,
    ) -> Entry {
        Entry {
            mtime: last_modified(self.get(&path), &object, candidate, now),
            path,
            object,
            size,
            stamp: None,
            origin: None,
            immutable: false,
        }
    }
}

/// Runs a remote sync's work with a progress line every few seconds (the caller then counts
/// what the downloads did with `Fetcher::finish`).
pub async fn with_progress<T>(source: &str, fetcher: &Fetcher, work: impl Future<Output = T>) -> T {
    tokio::select! {
        result = work => result,
        _ = super::fetch::progress(source, &fetcher.stats) => unreachable!("progress never ends"),
    }
}
