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
    /// Only for a manifest whose entries are out of path order (it is read from disk, so
    /// outside data); a sorted one is searched in place, without a map of every path.
    unsorted: Option<HashMap<&'a str, &'a Entry>>,
}

impl<'a> Previous<'a> {
    pub fn new(manifest: Option<&'a Manifest>) -> Previous<'a> {
        let entries = manifest.map_or(&[][..], |m| m.entries.as_slice());
        let sorted = entries.windows(2).all(|w| w[0].path < w[1].path);
        Previous {
            manifest,
            unsorted: (!sorted).then(|| entries.iter().map(|e| (e.path.as_str(), e)).collect()),
        }
    }

    /// The previous snapshot's entry at `path`.
    pub fn get(&self, path: &str) -> Option<&'a Entry> {
        if let Some(by_path) = &self.unsorted {
            return by_path.get(path).copied();
        }
        let entries = self.manifest?.entries.as_slice();
        let at = entries
            .binary_search_by(|e| e.path.as_str().cmp(path))
            .ok()?;
        Some(&entries[at])
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

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, byte: u8) -> Entry {
        Entry::plain(path, ObjectId([byte; 32]))
    }

    #[test]
    fn entries_are_found_in_sorted_and_unsorted_manifests() {
        let paths = ["a.txt", "a/b", "a0", "b/c/d", "z"];
        let mut manifest = Manifest::new("s", 0, paths.iter().map(|p| entry(p, 1)).collect());
        for _ in 0..2 {
            let previous = Previous::new(Some(&manifest));
            for path in paths {
                assert_eq!(previous.get(path).map(|e| e.path.as_str()), Some(path));
            }
            assert!(previous.get("a").is_none());
            assert!(previous.get("zz").is_none());
            // The same entries out of order, as a damaged or hand-made manifest may hold.
            manifest.entries.reverse();
        }
        assert!(Previous::new(None).get("a").is_none());
    }
}
