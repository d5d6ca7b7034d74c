//! Mirror mode: follow series of another Puavo image repository, like a bootserver does, but
//! publishing a repository of our own: `meta/<series>.json` first, then the images and rdiffs
//! [`retention`](super::retention) keeps, each verified by size, SHA-256 and (when listed)
//! SHA-512 and `cksum` before it can be published.
//!
//! Files are fetched from `<upstream>/<image>` and `<upstream>/rdiffs/<rdiff>`, the paths
//! laptops use, not from the meta `urls` (which may name a CDN).

use futures_util::stream::{FuturesUnordered, StreamExt};
use serde_json::Value;

use super::build::{torrent_object, TorrentError};
use super::cache::Cache;
use super::options::{PuavoMode, PuavoOptions};
use super::retention;
use super::{SeriesOutcomes, SyncError, SyncReport, Tree};
use crate::manifest::Entry;
use crate::puavo::meta::{self, Listed, ListedImage};
use crate::store::{ObjectId, Store};
use crate::sync::fetch::{Expected, FetchError, Fetcher};

pub fn run(
    store: &Store,
    source: &str,
    config: &PuavoOptions,
    tree: &mut Tree,
    report: &mut SyncReport,
) -> Result<SeriesOutcomes, SyncError> {
    crate::sync::block_on(mirror(store, source, config, tree, report))
}

async fn mirror(
    store: &Store,
    source: &str,
    config: &PuavoOptions,
    tree: &mut Tree<'_>,
    report: &mut SyncReport,
) -> Result<SeriesOutcomes, SyncError> {
    let PuavoMode::Mirror {
        upstream,
        series,
        retention,
        rewrite_urls,
        fetch,
    } = &config.mode
    else {
        unreachable!("mirror::run is called for mirror mode only");
    };
    // Before anything is fetched: without it, images in use would be dropped.
    let in_use = retention.images_in_use().map_err(SyncError::Upstream)?;
    // Images of every meta file read, and how many were read.
    let listed = std::cell::RefCell::new((std::collections::HashSet::new(), 0));
    let fetcher = Fetcher::new(fetch.clone()).map_err(|e| SyncError::Upstream(e.to_string()))?;
    let cache = Cache::open(store)?;
    // Everything this run fetched (or found) for the series, published or not.
    let held = std::cell::RefCell::new(Vec::new());
    let mut outcomes = Vec::new();
    for name in series {
        let outcome = async {
            let url = format!("{upstream}/meta/{name}.json");
            let fetched = fetcher.small(&url, None).await.map_err(series_error)?;
            let listing = meta::parse(name, &fetched.bytes)
                .map_err(|e| SeriesError::Series(format!("{url}: {e}")))?;
            {
                let mut listed = listed.borrow_mut();
                listed
                    .0
                    .extend(listing.iter().map(|i| i.image.filename.clone()));
                listed.1 += 1;
            }
            let kept = retention::select(&listing, retention, &in_use);
            let mut files =
                download_series(store, &fetcher, &cache, upstream, &kept, tree, &held).await?;
            if config.torrents {
                let urlbase = config.urlbase.as_deref().unwrap_or_default();
                for image in &kept {
                    for diff in &image.diffs {
                        let object: ObjectId = diff.sha256.parse().map_err(|_| {
                            SeriesError::Series(format!("{}: bad sha256", diff.filename))
                        })?;
                        let (torrent, size) = torrent_object(
                            store,
                            &cache,
                            urlbase,
                            &config.torrent_trackers,
                            &diff.filename,
                            &object,
                            diff.size,
                        )
                        .map_err(|e| match e {
                            TorrentError::Store(e) => SeriesError::Store(SyncError::Store(e)),
                            TorrentError::Read(why) => SeriesError::Series(why),
                        })?;
                        files.push(tree.entry(
                            format!("torrents/{}.torrent", diff.filename),
                            torrent,
                            size,
                        ));
                    }
                }
            }
            let whole = retention::is_whole(&kept, &listing);
            let text = if whole && !*rewrite_urls {
                // Nothing to change: the upstream's bytes, as they are.
                fetched.bytes
            } else {
                let urlbase = rewrite_urls.then(|| config.urlbase.as_deref().unwrap_or_default());
                rewrite_meta(name, &fetched.bytes, &kept, urlbase)
                    .map_err(|e| SeriesError::Series(format!("{url}: {e}")))?
            };
            Ok::<_, SeriesError>((files, text))
        }
        .await;
        let outcome = match outcome {
            Ok((files, text)) => {
                tree.add_series(name, files, &text)?;
                Ok(())
            }
            Err(SeriesError::Series(why)) => Err(why),
            Err(SeriesError::Store(e)) => return Err(e),
        };
        tracing::debug!(source, series = %name, ok = outcome.is_ok(), "series mirrored");
        outcomes.push((name.clone(), outcome));
    }
    let (listed, read) = listed.into_inner();
    if read == series.len() {
        for name in retention::unlisted(&in_use, &listed) {
            let message = format!(
                "keep_images_in_use: `{name}` is in no followed series' meta file; nothing is kept for it"
            );
            tracing::warn!(source, "{message}");
            report.problems.push(message);
        }
    }
    fetcher.finish(report);
    // Downloads of a series that failed stay until the next sync, which will want them.
    store.write_held(source, &held.borrow())?;
    Ok(outcomes)
}

enum SeriesError {
    Series(String),
    Store(SyncError),
}

fn series_error(e: FetchError) -> SeriesError {
    match e {
        FetchError::Store(e) => SeriesError::Store(SyncError::Store(e)),
        other => SeriesError::Series(other.to_string()),
    }
}

/// Downloads (or finds in the store) every image and rdiff of `kept`, all verified.
async fn download_series(
    store: &Store,
    fetcher: &Fetcher,
    cache: &Cache<'_>,
    upstream: &str,
    kept: &[ListedImage],
    tree: &Tree<'_>,
    held: &std::cell::RefCell<Vec<ObjectId>>,
) -> Result<Vec<Entry>, SeriesError> {
    let mut wanted: Vec<(String, String, &Listed)> = Vec::new();
    for image in kept {
        wanted.push((
            image.image.filename.clone(),
            format!("{upstream}/{}", image.image.filename),
            &image.image,
        ));
        for diff in &image.diffs {
            wanted.push((
                format!("rdiffs/{}", diff.filename),
                format!("{upstream}/rdiffs/{}", diff.filename),
                diff,
            ));
        }
    }
    let mut tasks = FuturesUnordered::new();
    for (path, url, listed) in wanted {
        tasks.push(async move {
            let sha256: ObjectId = listed.sha256.parse().map_err(|_| {
                SeriesError::Series(format!(
                    "{}: bad sha256 `{}`",
                    listed.filename, listed.sha256
                ))
            })?;
            let stored = fetcher
                .object(
                    store,
                    &url,
                    Expected {
                        size: Some(listed.size),
                        sha256,
                    },
                )
                .await
                .map_err(series_error)?;
            Ok::<_, SeriesError>((path, listed, stored.id))
        });
    }
    let mut files = Vec::new();
    let mut first_error = None;
    // Every download runs to its end even after one fails: what arrived is kept (`held`)
    // for the next run instead of being cut off.
    while let Some(result) = tasks.next().await {
        let (path, listed, object) = match result {
            Ok(done) => done,
            Err(e) => {
                first_error.get_or_insert(e);
                continue;
            }
        };
        held.borrow_mut().push(object);
        if first_error.is_some() {
            continue;
        }
        // SHA-512 and cksum: what laptops and old clients check.
        let facts = cache
            .facts(&object, false)
            .map_err(|e| SeriesError::Store(SyncError::Store(e)))?;
        let mismatch = match &listed.sha512 {
            Some(sha512) if *sha512 != facts.sha512 => Some(format!(
                "{path}: SHA-512 {} does not match the meta file's {sha512}",
                facts.sha512
            )),
            _ if listed.cksum != facts.cksum.to_string() => Some(format!(
                "{path}: cksum {} does not match the meta file's {}",
                facts.cksum, listed.cksum
            )),
            _ => None,
        };
        match mismatch {
            Some(why) => {
                first_error.get_or_insert(SeriesError::Series(why));
            }
            None => files.push(tree.entry(path, object, listed.size)),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(files),
    }
}

/// The upstream meta with only the kept images, and `urls` pointing at `urlbase` if given.
/// Everything else (key order, puavo-conf, unknown keys) stays as the upstream wrote it.
fn rewrite_meta(
    series: &str,
    text: &[u8],
    kept: &[ListedImage],
    urlbase: Option<&str>,
) -> Result<Vec<u8>, String> {
    let mut value: Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let images = value
        .get_mut(series)
        .and_then(|s| s.get_mut("images"))
        .and_then(Value::as_array_mut)
        .ok_or("no images array")?;
    retention::trim_meta(images, kept);
    if let Some(urlbase) = urlbase {
        for image in images.iter_mut() {
            let file = image
                .get("filename")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            image["urls"] = Value::Array(vec![Value::String(format!("{urlbase}/{file}"))]);
            if let Some(Value::Array(diffs)) = image.get_mut("diffs") {
                for diff in diffs {
                    let file = diff
                        .get("filename")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    diff["urls"] =
                        Value::Array(vec![Value::String(format!("{urlbase}/rdiffs/{file}"))]);
                }
            }
        }
    }
    serde_json::to_vec(&value).map_err(|e| e.to_string())
}
