//! Build mode: a Puavo image repository made from the images in a local folder, like
//! puavo-update-repository + puavo-os `make rdiffs`, but in one process and remembering every
//! delta it has made, so a new image costs only the new pairs.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::Map;

use super::super::confine::{is_symlink, Confinement};
use super::cache::{Cache, CacheKey};
use super::options::{PuavoMode, PuavoOptions};
use super::{SeriesOutcomes, SyncError, SyncReport, Tree};
use crate::manifest::Entry;
use crate::puavo::meta::{self, FileFacts, ImageEntry};
use crate::puavo::series::{self, ImageName, Series};
use crate::puavo::{rdiff, squashfs, torrent};
use crate::store::{ObjectId, Store};

/// Version of the delta generator's output; part of every delta's cache key.
const GENERATOR: &[u8] = b"mirrorbox-rdiff-1";

/// Builds every series; returns each series' outcome in publishing order.
pub fn run(
    store: &Store,
    source: &str,
    config: &PuavoOptions,
    follow_symlinks_into: &[PathBuf],
    tree: &mut Tree,
    report: &mut SyncReport,
) -> Result<SeriesOutcomes, SyncError> {
    let PuavoMode::Build {
        image_dir,
        series_config,
        write_config,
        block_size,
        ..
    } = &config.mode
    else {
        unreachable!("build::run is called for build mode only");
    };
    let input = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SyncError::Input { path, source }
    };
    let confine = Confinement::new(image_dir, follow_symlinks_into).map_err(input(image_dir))?;
    let files = image_files(&confine, &mut report.problems).map_err(input(image_dir))?;
    if series_config.is_none() || *write_config {
        let (_, ignored) = series::group_by_name(&files);
        for file in ignored {
            let message = format!(
                "{file}: not named <prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img, so in no series; not published"
            );
            tracing::warn!(source, "{message}");
            report.problems.push(message);
        }
    }
    let all_series = match series_config {
        None => {
            let (series, _) = series::group_by_name(&files);
            series
        }
        Some(config_path) if *write_config => write_series_config(config_path, &files)?,
        Some(config_path) => read_series_config(config_path)?,
    };
    let builder = Builder {
        store,
        source,
        confine,
        urlbase: config.urlbase.as_deref().unwrap_or_default(),
        torrents: config.torrents,
        trackers: &config.torrent_trackers,
        params: rdiff::Params {
            block: *block_size,
            threads: 0,
        },
        cache: Cache::open(store)?,
    };
    let mut outcomes = Vec::new();
    for series in &all_series {
        let outcome = match builder.series(series, tree, report) {
            Ok((files, meta_text)) => {
                tree.add_series(&series.name, files, &meta_text)?;
                Ok(())
            }
            Err(BuildError::Series(why)) => Err(why),
            Err(BuildError::Store(e)) => return Err(e),
        };
        outcomes.push((series.name.clone(), outcome));
    }
    Ok(outcomes)
}

/// `*.img` regular files directly in the image folder, by name, and links to such files
/// where `confine` allows them (a link elsewhere is left out with a warning).
fn image_files(confine: &Confinement, problems: &mut Vec<String>) -> std::io::Result<Vec<String>> {
    let mut files = Vec::new();
    for entry in fs::read_dir(confine.base())? {
        let entry = entry?;
        let Some(name) = entry.file_name().to_str().map(str::to_string) else {
            continue;
        };
        if !series::is_plain_image_file(&name) {
            continue;
        }
        let path = entry.path();
        let path = if is_symlink(&path) {
            let Some(target) = confine.follow(&path, problems) else {
                continue;
            };
            target
        } else {
            path
        };
        if path.is_file() {
            files.push(name);
        }
    }
    files.sort();
    Ok(files)
}

/// The `<dist>.json` files of a folder (name order), or the one file given.
fn config_files(path: &Path) -> Result<Vec<PathBuf>, SyncError> {
    let input = |source| SyncError::Input {
        path: path.to_path_buf(),
        source,
    };
    if !path.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut files = Vec::new();
    for entry in fs::read_dir(path).map_err(input)? {
        let entry = entry.map_err(input)?;
        if entry.path().extension().is_some_and(|e| e == "json") && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn read_series_config(path: &Path) -> Result<Vec<Series>, SyncError> {
    let mut all: Vec<Series> = Vec::new();
    for file in config_files(path)? {
        let text = fs::read(&file).map_err(|source| SyncError::Input {
            path: file.clone(),
            source,
        })?;
        let series = series::parse_config(&text).map_err(|why| {
            SyncError::Upstream(format!("series config {}: {why}", file.display()))
        })?;
        for s in series {
            if all.iter().any(|known| known.name == s.name) {
                return Err(SyncError::Upstream(format!(
                    "series config {}: series `{}` is defined twice",
                    file.display(),
                    s.name
                )));
            }
            all.push(s);
        }
    }
    Ok(all)
}

/// Groups the folder's images by name and writes the series into `dir`, like
/// puavo-update-repository: a series goes back into the file that already defines it (so
/// no series is ever defined twice), a new one into `<dist>.json`; `extra_rdiffs` already
/// written there are kept. Files the admin wrote that no scanned series belongs to stay as
/// they are.
fn write_series_config(dir: &Path, files: &[String]) -> Result<Vec<Series>, SyncError> {
    let (mut grouped, _) = series::group_by_name(files);
    fs::create_dir_all(dir).map_err(|source| SyncError::Input {
        path: dir.to_path_buf(),
        source,
    })?;
    // Which file defines which series now (a file that cannot be read is rewritten).
    let mut home: std::collections::HashMap<String, (PathBuf, Series)> = Default::default();
    for file in config_files(dir)? {
        let Ok(text) = fs::read(&file) else { continue };
        match series::parse_config(&text) {
            Ok(defined) => {
                for s in defined {
                    home.entry(s.name.clone()).or_insert((file.clone(), s));
                }
            }
            Err(why) => {
                tracing::warn!(file = %file.display(), %why, "series config unreadable; rewritten")
            }
        }
    }
    let mut by_file: std::collections::BTreeMap<PathBuf, Vec<Series>> = Default::default();
    for series in &mut grouped {
        let file = match home.get(&series.name) {
            Some((file, old)) => {
                series.extra_rdiffs = old.extra_rdiffs.clone();
                file.clone()
            }
            None => {
                let dist = series
                    .images
                    .first()
                    .and_then(|f| ImageName::parse(f))
                    .map(|n| n.dist().to_string())
                    .unwrap_or_else(|| "images".into());
                dir.join(format!("{dist}.json"))
            }
        };
        by_file.entry(file).or_default().push(series.clone());
    }
    for (path, series) in &by_file {
        let text = series::render_config(series);
        if fs::read(path).ok().as_deref() != Some(text.as_slice()) {
            let tmp = path.with_extension("json.tmp");
            fs::write(&tmp, &text)
                .and_then(|_| fs::rename(&tmp, path))
                .map_err(|source| SyncError::Input {
                    path: path.clone(),
                    source,
                })?;
            tracing::info!(file = %path.display(), "series config written");
        }
    }
    // Publishing order follows the files, as reading them back would.
    Ok(by_file.into_values().flatten().collect())
}

enum BuildError {
    /// This series cannot be built (the others still can).
    Series(String),
    /// The store itself failed: the whole sync stops.
    Store(SyncError),
}

impl From<crate::store::StoreError> for BuildError {
    fn from(e: crate::store::StoreError) -> Self {
        BuildError::Store(SyncError::Store(e))
    }
}

struct Builder<'a> {
    store: &'a Store,
    source: &'a str,
    /// Where images may be read from: `image_dir` and the `follow_symlinks_into` roots.
    confine: Confinement,
    urlbase: &'a str,
    torrents: bool,
    trackers: &'a [String],
    params: rdiff::Params,
    cache: Cache<'a>,
}

/// An rdiff of a target: its name, its source's version and its facts.
type Diff = (String, String, FileFacts);

/// An image of the series, in the store.
struct Image {
    file: String,
    name: ImageName,
    object: ObjectId,
}

impl Builder<'_> {
    /// Builds one series: its images, rdiffs, torrents and meta file.
    fn series(
        &self,
        series: &Series,
        tree: &Tree,
        report: &mut SyncReport,
    ) -> Result<(Vec<Entry>, Vec<u8>), BuildError> {
        let fail = |why: String| BuildError::Series(why);
        let mut files = Vec::new();
        let mut images: Vec<Image> = Vec::new();
        for file in series.all_images() {
            let name = ImageName::parse(&file).ok_or_else(|| {
                fail(format!(
                    "`{file}` is not named <prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img"
                ))
            })?;
            // An `extra_rdiffs` source that cannot be stored fails the series, as it fails
            // puavo-os's make-rdiffs run: publishing the target without the rdiff the
            // admin asked for would send the laptops on that old image a full image
            // download each, with nothing in the meta file to say why.
            let entry = self.image(&file, tree, report).map_err(|e| match e {
                BuildError::Series(why) if !series.images.contains(&file) => {
                    fail(format!("extra_rdiffs source: {why}"))
                }
                other => other,
            })?;
            images.push(Image {
                file: file.clone(),
                name,
                object: entry.object,
            });
            if series.images.contains(&file) {
                files.push(entry);
            }
        }
        let find = |file: &str| {
            images
                .iter()
                .find(|i| i.file == file)
                .expect("every image of the series was stored")
        };
        let pairs = series.rdiff_pairs();
        let total: usize = pairs.iter().map(|(_, sources)| sources.len()).sum();
        let mut done = 0;
        // target image → (rdiff name, source version, facts)
        let mut diffs_of: Vec<(String, Vec<Diff>)> = Vec::new();
        for (target, sources) in &pairs {
            let target = find(target);
            let mut diffs = Vec::new();
            for source in sources {
                let source = find(source);
                done += 1;
                let name = series::rdiff_name(&source.name, &target.name);
                let (object, size) = self.delta(source, target, &name, done, total)?;
                let facts = self.cache.facts(&object, false)?.file_facts(&object);
                files.push(tree.entry(format!("rdiffs/{name}"), object, size));
                if self.torrents {
                    let (torrent, length) = self.torrent(&name, &object, size)?;
                    files.push(tree.entry(format!("torrents/{name}.torrent"), torrent, length));
                }
                diffs.push((name, source.name.version(), facts));
            }
            diffs_of.push((target.file.clone(), diffs));
        }
        let mut facts = Vec::new();
        for file in &series.images {
            let image = find(file);
            let mut image_facts = self.cache.facts(&image.object, true)?;
            if image_facts.puavo_conf_problem.is_some() {
                // Read again rather than trust a remembered failure (an I/O error then, or
                // a rule since relaxed); the answer now decides.
                let conf = squashfs::puavo_conf(&self.store.object_path(&image.object))
                    .map_err(|why| fail(format!("image `{file}`: puavo-conf: {why}")))?;
                image_facts.puavo_conf = Some(conf);
                image_facts.puavo_conf_problem = None;
            }
            facts.push((image, image_facts.file_facts(&image.object), image_facts));
        }
        let empty = Map::new();
        let entries: Vec<ImageEntry> = facts
            .iter()
            .map(|(image, file_facts, all)| ImageEntry {
                filename: &image.file,
                version: image.name.version(),
                facts: file_facts,
                puavo_conf: all.puavo_conf.as_ref().unwrap_or(&empty),
                diffs: diffs_of
                    .iter()
                    .find(|(target, _)| *target == image.file)
                    .map(|(_, diffs)| {
                        diffs
                            .iter()
                            .map(|(n, v, f)| (n.clone(), v.clone(), f))
                            .collect()
                    })
                    .unwrap_or_default(),
            })
            .collect();
        let text = meta::render(&series.name, self.urlbase, &entries);
        Ok((files, text))
    }

    /// Stores an image (unchanged images cost a `stat`), checking new ones first.
    fn image(&self, file: &str, tree: &Tree, report: &mut SyncReport) -> Result<Entry, BuildError> {
        // A link in image_dir stands for the file it points to: the store links or copies
        // that file, never the link (a hard link to a symlink would dangle with its target).
        // Series configs name images too, so the link rule is checked here as well.
        let path = self
            .confine
            .resolve(&self.confine.base().join(file))
            .map_err(|refused| {
                tracing::warn!(source = self.source, "{refused}");
                BuildError::Series(format!("image `{file}`: {refused}"))
            })?;
        let meta =
            fs::metadata(&path).map_err(|e| BuildError::Series(format!("image `{file}`: {e}")))?;
        let prev = tree.previous(file);
        let unchanged = prev.is_some_and(|p| {
            p.origin
                == Some(crate::manifest::Origin {
                    size: meta.len(),
                    mtime_ns: crate::store::mtime_ns(&meta),
                    inode: std::os::unix::fs::MetadataExt::ino(&meta),
                })
        });
        if !unchanged {
            squashfs::check_image(&path).map_err(|e| BuildError::Series(e.to_string()))?;
        }
        super::super::dir::ingest_local(
            self.store,
            &path,
            file.to_string(),
            &meta,
            prev,
            tree.now,
            report,
        )
        .map_err(|e| match e {
            SyncError::Store(e) if e.path == path => {
                BuildError::Series(format!("image `{file}`: {e}"))
            }
            other => BuildError::Store(other),
        })
    }

    /// The delta from `source` to `target`: remembered, or made now.
    fn delta(
        &self,
        source: &Image,
        target: &Image,
        name: &str,
        done: usize,
        total: usize,
    ) -> Result<(ObjectId, u64), BuildError> {
        let block = (self.params.block as u64).to_le_bytes();
        let key = CacheKey::new(&[GENERATOR, &source.object.0, &target.object.0, &block]);
        if let Some(object) = self.cache.made(&key) {
            let size = fs::metadata(self.store.object_path(&object))
                .map(|m| m.len())
                .map_err(|e| BuildError::Series(format!("{name}: {e}")))?;
            tracing::debug!(source = self.source, rdiff = name, "rdiff remembered");
            return Ok((object, size));
        }
        let started = Instant::now();
        let progress = crate::sync::fetch::progress_enabled();
        if progress {
            eprint!("\r{}: rdiff {done}/{total} {name} ...", self.source);
        }
        let mut writer = self.store.writer()?;
        let result = {
            let mut out = BufWriter::with_capacity(1 << 20, &mut writer);
            rdiff::delta_files(
                &self.store.object_path(&source.object),
                &self.store.object_path(&target.object),
                self.params,
                &mut out,
            )
            .and_then(|stats| out.flush().map(|_| stats))
        };
        let stats = match result {
            Ok(stats) => stats,
            Err(e) => {
                writer.abort();
                return Err(BuildError::Series(format!("making {name}: {e}")));
            }
        };
        let stored = writer.finish()?;
        self.cache.remember(&key, &stored.id);
        let seconds = started.elapsed().as_secs_f64();
        if progress {
            eprintln!(
                "\r{}: rdiff {done}/{total} {name}: {:.1} MiB in {seconds:.1} s",
                self.source,
                stored.size as f64 / 1048576.0
            );
        }
        tracing::info!(
            source = self.source,
            rdiff = name,
            pair = format!("{done}/{total}"),
            bytes = stored.size,
            copied = stats.copied,
            literal = stats.literal,
            seconds = format!("{seconds:.1}"),
            "rdiff made"
        );
        Ok((stored.id, stored.size))
    }

    /// `torrents/<rdiff>.torrent`, remembered per (delta, URL, trackers).
    fn torrent(
        &self,
        name: &str,
        delta: &ObjectId,
        size: u64,
    ) -> Result<(ObjectId, u64), BuildError> {
        torrent_object(
            self.store,
            &self.cache,
            self.urlbase,
            self.trackers,
            name,
            delta,
            size,
        )
        .map_err(|e| match e {
            TorrentError::Store(e) => BuildError::Store(SyncError::Store(e)),
            TorrentError::Read(why) => BuildError::Series(why),
        })
    }
}

pub enum TorrentError {
    Store(crate::store::StoreError),
    Read(String),
}

/// Makes (or recalls) the torrent of an rdiff object whose web seed is
/// `<urlbase>/rdiffs/<name>`.
pub fn torrent_object(
    store: &Store,
    cache: &Cache,
    urlbase: &str,
    trackers: &[String],
    name: &str,
    delta: &ObjectId,
    size: u64,
) -> Result<(ObjectId, u64), TorrentError> {
    let web_seed = format!("{urlbase}/rdiffs/{name}");
    let trackers_text = trackers.join("\n");
    let key = CacheKey::new(&[
        b"torrent-2",
        &delta.0,
        web_seed.as_bytes(),
        trackers_text.as_bytes(),
    ]);
    if let Some(object) = cache.made(&key) {
        if let Ok(meta) = fs::metadata(store.object_path(&object)) {
            return Ok((object, meta.len()));
        }
    }
    let file = fs::File::open(store.object_path(delta))
        .map_err(|e| TorrentError::Read(format!("{name}: {e}")))?;
    let bytes = torrent::build(
        std::io::BufReader::new(file),
        size,
        &torrent::TorrentInfo {
            name,
            web_seed: &web_seed,
            trackers,
        },
    )
    .map_err(|e| TorrentError::Read(format!("torrent of {name}: {e}")))?;
    let object = store.put_bytes(&bytes).map_err(TorrentError::Store)?;
    cache.remember(&key, &object);
    Ok((object, bytes.len() as u64))
}
