//! `puavo` sources: a Puavo image repository (images, `rdiffs/`, `meta/<series>.json`,
//! `CKSUMS`, optional `torrents/`), built from a folder of images ([`build`]) or mirrored from
//! another repository ([`mirror`]).
//!
//! Series are independent: a series that fails (a corrupt image, a refused download) keeps
//! what the previous snapshot published for it, the others go ahead, and the run reports the
//! failure. `CKSUMS` is always derived from the published meta files, so the two agree.

pub mod build;
pub mod cache;
pub mod layout;
pub mod mirror;
pub mod options;
pub mod retention;

use std::collections::HashMap;

use super::kind::{
    check_folder, ClientCheck, ClientContext, ClientUse, Finding, Kind, KindOptions, Run, Serving,
    Severity,
};
use super::previous::Previous;
use super::{SyncError, SyncReport};
use crate::manifest::{Entry, Manifest};
use crate::puavo::meta::{self, ListedImage};
use crate::store::{ObjectId, Store};
use crate::time::unix_now;
pub use options::{PuavoMode, PuavoOptions};

/// Each series' name and whether it was built/mirrored (else why not), in publishing order.
pub type SeriesOutcomes = Vec<(String, Result<(), String>)>;

impl KindOptions for PuavoOptions {
    fn keys() -> Vec<&'static str> {
        PuavoOptions::keys()
    }

    fn parse(table: toml::Table) -> Result<Self, String> {
        PuavoOptions::parse(table)
    }
}

impl Kind for PuavoOptions {
    fn sync(&self, run: Run<'_>) -> Result<Vec<Entry>, SyncError> {
        sync(run.store, run.source, self, run.previous, run.report)
    }

    /// Images carry their build time in the name; an rdiff is named by the two images it
    /// joins. Meta files, CKSUMS and torrents change with every new image.
    fn is_immutable(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        name.ends_with(".rdiff") || crate::puavo::image_name::is_versioned(name)
    }

    fn check_machine(&self, at: &dyn Fn(&str) -> String, out: &mut Vec<Finding>) {
        match &self.mode {
            PuavoMode::Build {
                image_dir,
                series_config,
                write_config,
                ..
            } => {
                let before = out.len();
                check_folder(image_dir, &at("image_dir"), out);
                if out.len() == before && !write_config {
                    if let Some(path) = series_config {
                        check_series(path, image_dir, &at("series_config"), out);
                    }
                }
            }
            // The in-use list is read before every sync, which fails without it: say so now.
            PuavoMode::Mirror { retention, .. } => {
                if let Err(why) = retention.images_in_use() {
                    let key = at("keep_images_in_use");
                    let why = why
                        .strip_prefix("key `keep_images_in_use`: ")
                        .unwrap_or(&why);
                    out.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{key}: {why} (syncs of this source fail until it can be read; the last snapshot stays served)"
                        ),
                    });
                }
            }
        }
    }

    fn local_paths(&self) -> Vec<&std::path::Path> {
        match &self.mode {
            PuavoMode::Build {
                image_dir,
                series_config,
                follow_symlinks_into,
                ..
            } => std::iter::once(image_dir.as_path())
                .chain(series_config.as_deref())
                .chain(follow_symlinks_into.iter().map(|p| p.as_path()))
                .collect(),
            PuavoMode::Mirror { .. } => Vec::new(),
        }
    }

    fn describe(&self) -> Vec<String> {
        PuavoOptions::describe(self)
    }

    fn client_use(&self, at: &ClientContext<'_>, usage: &mut ClientUse) {
        let series: Vec<String> = at
            .files_in("meta")
            .into_iter()
            .filter(|name| name.ends_with(".json"))
            .collect();
        PuavoOptions::client_use(self, at.base_url, at.mount.is_empty(), &series, usage)
    }

    fn client_checks(&self, at: &Serving<'_>) -> Vec<ClientCheck> {
        layout::checks(self, at)
    }
}

/// Series files must parse and name only images that are in `image_dir`.
fn check_series(
    path: &std::path::Path,
    image_dir: &std::path::Path,
    at: &str,
    out: &mut Vec<Finding>,
) {
    match build::read_series_config(path) {
        Ok(all) => {
            for s in &all {
                let missing: Vec<String> = s
                    .all_images()
                    .into_iter()
                    .filter(|f| !image_dir.join(f).is_file())
                    .collect();
                if !missing.is_empty() {
                    out.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{at}: series {}: not in {}: {}",
                            s.name,
                            image_dir.display(),
                            missing.join(", ")
                        ),
                    });
                }
            }
        }
        Err(e) => out.push(Finding {
            severity: Severity::Warning,
            message: format!("{at}: {e}"),
        }),
    }
}

/// Runs a Puavo sync (blocking).
pub fn sync(
    store: &Store,
    source: &str,
    config: &PuavoOptions,
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    let mut tree = Tree::new(store, previous);
    let outcomes = match &config.mode {
        PuavoMode::Build {
            follow_symlinks_into,
            ..
        } => build::run(
            store,
            source,
            config,
            follow_symlinks_into,
            &mut tree,
            report,
        )?,
        PuavoMode::Mirror { .. } => mirror::run(store, source, config, &mut tree, report)?,
    };
    let mut failed = 0;
    for (series, outcome) in &outcomes {
        if let Err(why) = outcome {
            failed += 1;
            let kept = tree.keep_previous_series(series)?;
            let note = if kept {
                "the previous snapshot's files of this series stay published"
            } else {
                "it is not published"
            };
            let message = format!("series `{series}` failed: {why}; {note}");
            tracing::warn!(source, "{message}");
            report.problems.push(message);
        }
    }
    if failed > 0 && failed == outcomes.len() {
        return Err(SyncError::Upstream(report.problems.join("; ")));
    }
    report.partial = failed > 0;
    let known: std::collections::HashSet<ObjectId> = previous
        .map(|m| m.entries.iter().map(|e| e.object).collect())
        .unwrap_or_default();
    let entries = tree.finish(outcomes.iter().map(|(s, _)| s.as_str()))?;
    // New to this source: made (rdiffs, meta, CKSUMS, torrents), fetched or ingested now.
    let mut counted = std::collections::HashSet::new();
    report.counts.files_stored = 0;
    report.counts.bytes_stored = 0;
    for entry in &entries {
        if !known.contains(&entry.object) && counted.insert(entry.object) {
            report.counts.files_stored += 1;
            report.counts.bytes_stored += entry.size;
        }
    }
    Ok(entries)
}

/// The published tree being assembled: entries by path, and each series' meta listing.
pub struct Tree<'a> {
    store: &'a Store,
    previous: Previous<'a>,
    entries: Vec<Entry>,
    metas: HashMap<String, Vec<ListedImage>>,
    now: i64,
}

impl<'a> Tree<'a> {
    fn new(store: &'a Store, previous: Option<&'a Manifest>) -> Tree<'a> {
        Tree {
            store,
            previous: Previous::new(previous),
            entries: Vec::new(),
            metas: HashMap::new(),
            now: unix_now(),
        }
    }

    /// The previous snapshot's entry at `path`.
    pub fn previous(&self, path: &str) -> Option<&'a Entry> {
        self.previous.get(path)
    }

    /// An entry for a file made or fetched by this sync; its date moves only when its bytes
    /// change.
    pub fn entry(&self, path: String, object: ObjectId, size: u64) -> Entry {
        self.previous.entry(path, object, size, self.now, self.now)
    }

    /// Publishes a series that succeeded: its files and its meta file (whose listing
    /// `CKSUMS` is made from).
    pub fn add_series(
        &mut self,
        series: &str,
        files: Vec<Entry>,
        meta_text: &[u8],
    ) -> Result<(), SyncError> {
        let listing = meta::parse(series, meta_text)
            .map_err(|e| SyncError::Upstream(format!("meta of series `{series}`: {e}")))?;
        let object = self.store.put_bytes(meta_text)?;
        let meta = self.entry(
            format!("meta/{series}.json"),
            object,
            meta_text.len() as u64,
        );
        self.entries.extend(files);
        self.entries.push(meta);
        self.metas.insert(series.to_string(), listing);
        Ok(())
    }

    /// Carries a failed series over from the previous snapshot: its meta file and every file
    /// that meta lists. Returns false when the previous snapshot had no such series.
    fn keep_previous_series(&mut self, series: &str) -> Result<bool, SyncError> {
        let meta_path = format!("meta/{series}.json");
        let Some(meta_entry) = self.previous(&meta_path) else {
            return Ok(false);
        };
        let text = self.store.read(&meta_entry.object)?;
        let Ok(listing) = meta::parse(series, &text) else {
            return Ok(false);
        };
        let mut paths = vec![meta_path];
        for image in &listing {
            paths.push(image.image.filename.clone());
            for diff in &image.diffs {
                paths.push(format!("rdiffs/{}", diff.filename));
                paths.push(format!("torrents/{}.torrent", diff.filename));
            }
        }
        for path in paths {
            if let Some(prev) = self.previous(&path) {
                self.entries.push(prev.clone());
            }
        }
        self.metas.insert(series.to_string(), listing);
        Ok(true)
    }

    /// `CKSUMS` over the series in order, then the entries (one per path; later wins).
    fn finish<'s>(mut self, order: impl Iterator<Item = &'s str>) -> Result<Vec<Entry>, SyncError> {
        let mut cksums = String::new();
        for series in order {
            if let Some(listing) = self.metas.get(series) {
                cksums.push_str(&meta::cksums(listing));
            }
        }
        let object = self.store.put_bytes(cksums.as_bytes())?;
        let entry = self.entry("CKSUMS".into(), object, cksums.len() as u64);
        self.entries.push(entry);
        let mut by_path: HashMap<String, Entry> = HashMap::new();
        for entry in self.entries {
            by_path.insert(entry.path.clone(), entry);
        }
        Ok(by_path.into_values().collect())
    }
}
