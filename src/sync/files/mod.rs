//! `files` sources: an upstream HTTP directory tree (Proxmox `iso/`, `images/`), mirrored
//! like `wget --mirror` would, but into snapshots.
//!
//! One sync: discover the files ([`listing`] pages walked from the root, or an index:
//! `aplinfo.dat` ([`aplinfo`]) or a checksum file ([`checksums`])); keep those the
//! [`filter`] wants; read every checksum file met on the way; fetch each file with one
//! conditional request (ETag / Last-Modified from the last published sync, see [`state`]),
//! so an unchanged file costs a body-less 304; stream changed files into the store
//! ([`download`]); check every file a checksum file or the index names against its hash.
//! Any failure fails the sync and the previous snapshot stays published: a mirror that
//! publishes half a tree, or an ISO that does not match its SHA256SUMS, is worse than a
//! mirror that is an hour late.

pub mod aplinfo;
pub mod checksums;
pub mod download;
pub mod filter;
pub mod listing;
pub mod options;
mod plan;
pub mod state;

use std::collections::HashSet;
use std::io::Read;

use futures_util::stream::{self, StreamExt};
use reqwest::Url;

use super::fetch::{FetchError, Fetcher};
use super::previous::{with_progress, Previous};
use super::{SyncError, SyncReport};
use crate::manifest::{Entry, Manifest};
use crate::store::{IngestMethod, ObjectId, Store};
use crate::time::unix_now;
use checksums::{Algorithm, Expectations};
use download::Outcome;
use listing::Link;
pub use options::{FilesIndex, FilesOptions};
use plan::{plan, Plan};
use state::{FileState, State};

/// Directory levels a listing walk goes down: deeper is a symlink loop, not a mirror.
pub const MAX_DEPTH: usize = 32;
/// Listing pages one walk reads at most.
pub const MAX_DIRECTORIES: usize = 20_000;
/// Files one source publishes at most.
pub const MAX_FILES: usize = 1_000_000;
/// Checksum files and indices are read into memory: anything bigger is not one.
const MAX_INDEX: u64 = 64 * 1024 * 1024;
/// The index of `index = "aplinfo"`, at the root.
pub const APLINFO: &str = "aplinfo.dat";

fn upstream_error(message: impl Into<String>) -> SyncError {
    SyncError::Upstream(message.into())
}

/// Runs a `files` sync (blocking: it drives its own async work).
pub fn sync(
    store: &Store,
    source: &str,
    config: &FilesOptions,
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    let mirror = Mirror::new(store, source, config, previous)?;
    super::block_on(mirror.run(report))
}

struct Mirror<'a> {
    store: &'a Store,
    source: &'a str,
    config: &'a FilesOptions,
    /// `config.url`, parsed; ends with `/`.
    root: Url,
    previous: Previous<'a>,
    /// Validators of the last published sync.
    state: State,
    fetcher: Fetcher,
}

/// A file of the new snapshot (or an index read for it), once fetched or kept.
struct Got {
    path: String,
    url: Url,
    object: ObjectId,
    size: u64,
    /// What to remember for the next sync.
    state: FileState,
    /// The object was new to the store.
    stored: bool,
}

impl<'a> Mirror<'a> {
    fn new(
        store: &'a Store,
        source: &'a str,
        config: &'a FilesOptions,
        previous: Option<&'a Manifest>,
    ) -> Result<Mirror<'a>, SyncError> {
        let root = Url::parse(&config.url)
            .map_err(|e| upstream_error(format!("url `{}`: {e}", config.url)))?;
        Ok(Mirror {
            store,
            source,
            config,
            root,
            previous: Previous::new(previous),
            state: state::load(store, source),
            fetcher: Fetcher::new(config.fetch.clone())?,
        })
    }

    async fn run(self, report: &mut SyncReport) -> Result<Vec<Entry>, SyncError> {
        let result = with_progress(self.source, &self.fetcher, self.attempt(report)).await;
        self.fetcher.finish(report);
        result
    }

    async fn attempt(&self, report: &mut SyncReport) -> Result<Vec<Entry>, SyncError> {
        let mut expectations = Expectations::default();
        // Indices and checksum files: fetched first, read, published if the filter wants them.
        let mut read: Vec<Got> = Vec::new();
        let candidates: Vec<Link> = match &self.config.index {
            FilesIndex::Listing => {
                let found = self.walk().await?;
                let (sums, files): (Vec<Link>, Vec<Link>) = found
                    .into_iter()
                    .partition(|l| checksums::is_checksum_file(&l.path));
                let fetched = self.fetch_all(&sums, &expectations, false).await?;
                for got in fetched {
                    let text = self.read_index(&got)?;
                    let parsed = checksums::parse(&got.path, &text)
                        .map_err(|m| upstream_error(format!("{}: {m}", got.url)))?;
                    expectations
                        .add_file(&got.path, &parsed)
                        .map_err(upstream_error)?;
                    read.push(got);
                }
                files
            }
            FilesIndex::Aplinfo => {
                let index = self.link(APLINFO)?;
                let got = self.fetch_one(&index, &expectations, false).await?;
                let text = self.read_index(&got)?;
                let templates = aplinfo::parse(&text)
                    .map_err(|m| upstream_error(format!("{}: {m}", got.url)))?;
                let mut files = Vec::new();
                for template in templates {
                    // Locations are paths as written, not URLs: encode them, unless absolute.
                    let href = if template.location.contains("://") {
                        template.location.clone()
                    } else {
                        listing::encode_path(&template.location)
                    };
                    let Some(link) =
                        listing::resolve(&href, &got.url, &self.root).filter(|l| !l.is_dir)
                    else {
                        let message = format!(
                            "{APLINFO}: location `{}` is not a file below {}; left out",
                            template.location, self.root
                        );
                        tracing::warn!(source = self.source, "{message}");
                        report.problems.push(message);
                        continue;
                    };
                    if let Some(sha512) = &template.sha512 {
                        expectations
                            .add(&link.path, Algorithm::Sha512, sha512, APLINFO)
                            .map_err(upstream_error)?;
                    }
                    files.push(link);
                }
                read.push(got);
                files
            }
            FilesIndex::Checksums(name) => {
                let index = self.link(name)?;
                let got = self.fetch_one(&index, &expectations, false).await?;
                let text = self.read_index(&got)?;
                let sums = checksums::parse(name, &text)
                    .map_err(|m| upstream_error(format!("{}: {m}", got.url)))?;
                let dir = got.path.rsplit_once('/').map(|(d, _)| format!("{d}/"));
                let mut files = Vec::new();
                for sum in &sums {
                    let relative = format!("{}{}", dir.as_deref().unwrap_or(""), sum.name);
                    let Some(link) = self.link(&relative).ok() else {
                        return Err(upstream_error(format!(
                            "{}: `{}` is not a path below {}",
                            got.url, sum.name, self.root
                        )));
                    };
                    files.push(link);
                }
                expectations
                    .add_file(&got.path, &sums)
                    .map_err(upstream_error)?;
                read.push(got);
                files
            }
        };

        let already: HashSet<&str> = read.iter().map(|g| g.path.as_str()).collect();
        let mut seen = HashSet::new();
        let wanted: Vec<Link> = candidates
            .into_iter()
            .filter(|l| {
                !already.contains(l.path.as_str())
                    && self.config.filter.wants(&l.path)
                    && seen.insert(l.path.clone())
            })
            .collect();
        if wanted.len() > MAX_FILES {
            return Err(upstream_error(format!(
                "{} lists {} files, more than the {MAX_FILES} a files source takes; narrow it with `include`/`exclude`",
                self.root,
                wanted.len()
            )));
        }
        let fetched = self.fetch_all(&wanted, &expectations, true).await?;

        let (mut published, unpublished_indices): (Vec<Got>, Vec<Got>) = read
            .into_iter()
            .partition(|g| self.config.filter.wants(&g.path));
        published.extend(fetched);
        if published.is_empty() {
            // An error page answered 200, or a filter that matches nothing: publishing an
            // empty tree would delete the whole mirror for its users.
            return Err(upstream_error(format!(
                "found no file to publish below {} (is it a directory listing? do `include`/`exclude` match anything?)",
                self.root
            )));
        }
        self.verify_sha512(&mut published, &expectations)?;

        // The new state covers what was read, published or not: an index excluded from the
        // snapshot is still fetched conditionally next time.
        let mut new_state = State::default();
        let now = unix_now();
        let mut entries = Vec::with_capacity(published.len());
        for got in published.iter().chain(&unpublished_indices) {
            new_state.files.insert(got.path.clone(), got.state.clone());
        }
        for got in published {
            if got.stored {
                report.counts.files_stored += 1;
                report.counts.bytes_stored += got.size;
            }
            let candidate = got
                .state
                .last_modified
                .as_deref()
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(now, |d| d.as_secs() as i64);
            entries.push(
                self.previous
                    .entry(got.path, got.object, got.size, candidate, now),
            );
        }
        report.pending_state = Some((state::path(self.store, self.source), new_state.to_bytes()));
        Ok(entries)
    }

    /// The link for a path below the root (from an index, not a listing).
    fn link(&self, relative: &str) -> Result<Link, SyncError> {
        listing::resolve(&listing::encode_path(relative), &self.root, &self.root)
            .filter(|l| !l.is_dir && l.path == relative)
            .ok_or_else(|| {
                upstream_error(format!(
                    "`{relative}` is not a file path below {}",
                    self.root
                ))
            })
    }

    /// Walks the listing pages from the root, level by level (each level's pages in
    /// parallel), into the directories the filter may want. Returns every file seen.
    async fn walk(&self) -> Result<Vec<Link>, SyncError> {
        let mut files = Vec::new();
        let mut level: Vec<(String, Url)> = vec![(String::new(), self.root.clone())];
        let mut pages = 0usize;
        let mut depth = 0usize;
        while !level.is_empty() {
            if depth > MAX_DEPTH {
                return Err(upstream_error(format!(
                    "directories nest deeper than {MAX_DEPTH} levels below {} (a symlink loop upstream?), e.g. {}; leave them out with `exclude`",
                    self.root, level[0].1
                )));
            }
            pages += level.len();
            if pages > MAX_DIRECTORIES {
                return Err(upstream_error(format!(
                    "more than {MAX_DIRECTORIES} directories below {}; narrow the tree with `include`/`exclude`",
                    self.root
                )));
            }
            let listed: Vec<_> = stream::iter(level)
                .map(|(dir, url)| async move {
                    let page = download::page(&self.fetcher, &url).await;
                    (dir, url, page)
                })
                .buffer_unordered(self.config.fetch.parallel.max(1))
                .collect()
                .await;
            let mut next = Vec::new();
            for (dir, url, page) in listed {
                let html = page.map_err(listing_error)?;
                for link in listing::links(&html, &url, &self.root) {
                    // Only the page's own entries: links elsewhere in the tree are listed by
                    // their own pages, and following them could go round in circles.
                    let parent = link.path.rsplit_once('/').map_or("", |(p, _)| p);
                    if parent != dir {
                        continue;
                    }
                    if link.is_dir {
                        if self.config.filter.may_descend(&link.path) {
                            next.push((link.path.clone(), link.url));
                        }
                    } else {
                        files.push(link);
                    }
                }
                if files.len() > MAX_FILES {
                    return Err(upstream_error(format!(
                        "more than {MAX_FILES} files below {}; narrow the tree with `include`/`exclude`",
                        self.root
                    )));
                }
            }
            next.sort();
            level = next;
            depth += 1;
        }
        Ok(files)
    }

    /// Fetches files in parallel (at most `parallel` at once); every failure is collected
    /// and the first few reported together.
    async fn fetch_all(
        &self,
        links: &[Link],
        expectations: &Expectations,
        payload: bool,
    ) -> Result<Vec<Got>, SyncError> {
        let stats = &self.fetcher.stats;
        stats
            .planned_files
            .fetch_add(links.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let results: Vec<Result<Got, SyncError>> = stream::iter(links)
            .map(|link| self.fetch_one(link, expectations, payload))
            .buffer_unordered(self.config.fetch.parallel.max(1))
            .collect()
            .await;
        let mut got = Vec::with_capacity(results.len());
        let mut failures = Vec::new();
        for result in results {
            match result {
                Ok(g) => got.push(g),
                Err(SyncError::Store(e)) => return Err(SyncError::Store(e)),
                Err(e) => failures.push(e.to_string()),
            }
        }
        if !failures.is_empty() {
            failures.sort();
            let shown = failures
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; ");
            return Err(upstream_error(if failures.len() == 1 {
                shown
            } else {
                format!("{} files failed: {shown}", failures.len())
            }));
        }
        Ok(got)
    }

    /// Fetches one file: at most one request when we hold it already (a conditional GET),
    /// checked against the sha256 a checksum file gives.
    /// `payload`: a file to publish, not an index to read (a dry run does not fetch it).
    async fn fetch_one(
        &self,
        link: &Link,
        expectations: &Expectations,
        payload: bool,
    ) -> Result<Got, SyncError> {
        let expected = match expectations.get(&link.path, Algorithm::Sha256) {
            Some(e) => Some((
                e.hex.parse::<ObjectId>().map_err(|_| {
                    upstream_error(format!(
                        "{}: bad sha256 `{}` in {}",
                        link.path, e.hex, e.from
                    ))
                })?,
                e,
            )),
            None => None,
        };
        // Validators only count if we still hold the bytes they describe.
        let held = self
            .state
            .files
            .get(&link.path)
            .filter(|s| self.store.contains(&s.object));
        let (conditional, resumable) = match plan(expected.map(|(id, _)| id), held, |id| {
            self.store.contains(id)
        }) {
            Plan::Keep(id) => {
                let size = std::fs::metadata(self.store.object_path(&id)).map_or(0, |m| m.len());
                return Ok(Got {
                    path: link.path.clone(),
                    url: link.url.clone(),
                    object: id,
                    size,
                    state: FileState {
                        object: id,
                        size,
                        etag: None,
                        last_modified: None,
                        sha512: None,
                    },
                    stored: false,
                });
            }
            Plan::Conditional(held) => (Some(held), None),
            Plan::Resumable(id) => (None, Some(id)),
            Plan::Plain => (None, None),
        };
        let outcome = download::file(
            &self.fetcher,
            self.store,
            &link.url,
            conditional,
            resumable,
            payload,
        )
        .await
        .map_err(SyncError::from)?;
        let got = match outcome {
            Outcome::NotModified => {
                let Some(held) = conditional else {
                    return Err(upstream_error(format!(
                        "{}: answered 304 Not Modified to a request without conditions",
                        link.url
                    )));
                };
                Got {
                    path: link.path.clone(),
                    url: link.url.clone(),
                    object: held.object,
                    size: held.size,
                    state: held.clone(),
                    stored: false,
                }
            }
            Outcome::Stored {
                stored,
                etag,
                last_modified,
            } => Got {
                path: link.path.clone(),
                url: link.url.clone(),
                object: stored.id,
                size: stored.size,
                state: FileState {
                    object: stored.id,
                    size: stored.size,
                    etag,
                    last_modified,
                    sha512: None,
                },
                stored: stored.method != IngestMethod::Existing,
            },
            Outcome::Mismatch { actual } => {
                let (id, from) = expected.expect("only known downloads can mismatch");
                return Err(mismatch(
                    &link.path,
                    Algorithm::Sha256,
                    &id.to_hex(),
                    &from.from,
                    &actual,
                ));
            }
        };
        if let Some((id, from)) = expected {
            if got.object != id {
                return Err(mismatch(
                    &link.path,
                    Algorithm::Sha256,
                    &id.to_hex(),
                    &from.from,
                    &format!("{} ({} bytes)", got.object.to_hex(), got.size),
                ));
            }
        }
        Ok(got)
    }

    /// Checks the SHA-512 an index gives (aplinfo.dat, SHA512SUMS), hashing the stored object
    /// unless the state already knows its SHA-512.
    fn verify_sha512(
        &self,
        files: &mut [Got],
        expectations: &Expectations,
    ) -> Result<(), SyncError> {
        for got in files {
            let Some(expected) = expectations.get(&got.path, Algorithm::Sha512) else {
                continue;
            };
            if !self.store.contains(&got.object) {
                continue; // a dry run's payload, not fetched
            }
            let actual = match &got.state.sha512 {
                Some(known) => known.clone(),
                None => sha512_of(self.store, &got.object)?,
            };
            if !actual.eq_ignore_ascii_case(&expected.hex) {
                return Err(mismatch(
                    &got.path,
                    Algorithm::Sha512,
                    &expected.hex,
                    &expected.from,
                    &format!("{actual} ({} bytes)", got.size),
                ));
            }
            got.state.sha512 = Some(actual);
        }
        Ok(())
    }

    /// The text of an index or checksum file we just fetched (or kept).
    fn read_index(&self, got: &Got) -> Result<String, SyncError> {
        if got.size > MAX_INDEX {
            return Err(upstream_error(format!(
                "{}: {} bytes is too big for an index or checksum file",
                got.url, got.size
            )));
        }
        let bytes = self.store.read(&got.object)?;
        String::from_utf8(bytes).map_err(|_| upstream_error(format!("{}: not UTF-8 text", got.url)))
    }
}

fn listing_error(error: FetchError) -> SyncError {
    match error {
        FetchError::Store(e) => SyncError::Store(e),
        e @ FetchError::Unreachable { .. } => SyncError::from(e),
        other => upstream_error(format!("cannot read the directory listing: {other}")),
    }
}

/// The message for a file whose hash is not the one its checksum file gives.
fn mismatch(
    path: &str,
    algorithm: Algorithm,
    expected: &str,
    from: &str,
    actual: &str,
) -> SyncError {
    upstream_error(format!(
        "{path}: {} mismatch: {from} says {expected}, the download has {actual}; the upstream is inconsistent or in the middle of an update",
        algorithm.name()
    ))
}

/// SHA-512 of a stored object, read in large chunks.
fn sha512_of(store: &Store, object: &ObjectId) -> Result<String, SyncError> {
    use sha2::Digest;
    let path = store.object_path(object);
    let io_error = |source| {
        SyncError::Store(crate::store::StoreError {
            action: "read object",
            path: path.clone(),
            source,
        })
    };
    let mut file = std::fs::File::open(&path).map_err(io_error)?;
    let mut hasher = sha2::Sha512::new();
    let mut buffer = vec![0u8; crate::store::CHUNK];
    loop {
        let n = file.read(&mut buffer).map_err(io_error)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
