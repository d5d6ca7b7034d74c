//! `mirrorbox export`: the current snapshots written as a plain tree to a folder (an offline
//! medium such as a USB disk), for apt with `file://` sources and for another mirrorbox as a
//! `dir` source.
//!
//! ```text
//! DIR/
//!   <mount>/<path>                  every file of every exported source, as served over HTTP
//!   .mirrorbox-export.json          the manifest: each file's sha256, size and date, written last
//!   .mirrorbox-export.incomplete    the plan of an export under way (or interrupted)
//! ```
//! Plain files only (FAT has no links). The export is incremental: a file the manifest says
//! is there with the same bytes, size and date is not touched; others are copied to a hidden
//! temp name, hashed on the way against the snapshot's sha256, fsynced and renamed into place,
//! so a medium pulled out at any moment holds no half file under a real name. Files of
//! packages and by-hash indices go first and stale files last, so a half-updated medium keeps
//! its old indices and what they name. The marker, written first, lists every path the
//! export may touch, and every path an interrupted export before it may have touched: after
//! an interruption the next export re-checks those paths and removes what its plan does not
//! keep, and `--check` reports the interruption.
//!
//! A medium comes back from elsewhere and may have been prepared by someone hostile, so the
//! export treats it as outside data: a link, FIFO or device where it expects its own files or
//! folders stops it with the name (see `guard`), a manifest may name only files of sources,
//! and the export's folder may neither be inside the data directory nor hold it.
//!
//! The store is read without the data-dir lock (refs are replaced atomically, as for
//! `snapshots`), so a medium can be written while `serve` runs.

mod check;
mod copy;
mod guard;
mod marker;
mod medium;
mod plan;
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::config::Config;
use crate::manifest::{Entry, Manifest};
use crate::store::Store;
use crate::time::unix_now;
use crate::view::is_fill_in_path;

pub use check::check;
use report::ExportReport;

use copy::Placed;
use medium::{MediumFile, MediumManifest, MANIFEST_NAME, MARKER_NAME};

/// Exports the current snapshots of `sources` (every configured source if empty) to `dir`.
pub fn export(config: &Config, dir: &Path, sources: &[String]) -> anyhow::Result<ExportReport> {
    let dir = medium_folder(config, dir)?;
    let store = Store::open(&config.data_dir, &config.store)
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    let previous = medium::read(&dir, MANIFEST_NAME)?;
    let interrupted = medium::read(&dir, MARKER_NAME)?;
    let plan = plan::plan(config, &store, sources, previous.as_ref(), unix_now())?;
    let next = plan.manifest;

    let known = by_path(previous.as_ref());
    // Every path an interrupted export may have touched (its marker carries those of the ones
    // interrupted before it).
    let may_be_touched = by_path(interrupted.as_ref());
    let stale: BTreeSet<String> = known
        .keys()
        .chain(may_be_touched.keys())
        .filter(|path| {
            next.files
                .binary_search_by(|f| f.path.as_str().cmp(path))
                .is_err()
        })
        .map(|path| path.to_string())
        .collect();

    tracing::info!(
        files = next.files.len(),
        bytes = next.files.iter().map(|f| f.size).sum::<u64>(),
        medium = %dir.display(),
        "exporting"
    );
    // Written before the first change: from here on the medium says an export is under way,
    // and which paths this export and any interrupted one before it may have touched.
    medium::write(
        &dir,
        MARKER_NAME,
        &marker::next(&next, interrupted.as_ref()),
    )?;

    let mut order: Vec<&MediumFile> = next.files.iter().collect();
    order.sort_by_key(|f| !is_fill_in_path(&f.path));
    let mut copied = 0;
    let mut bytes_copied = 0;
    let mut touched = BTreeSet::new();
    for file in order {
        // The manifest vouches for a path unless an interrupted export planned other bytes.
        let trusted = known.get(file.path.as_str()).is_some_and(|old| {
            old.sha256 == file.sha256
                && !marker::may_differ(interrupted.as_ref(), &file.path, &old.sha256)
        });
        if copy::place(&dir, &store, file, trusted, &stale)? == Placed::Copied {
            copied += 1;
            bytes_copied += file.size;
            touched.insert(parent(&dir, &file.path));
        }
    }
    for folder in &touched {
        if folder.is_dir() {
            medium::sync_dir(folder)?;
        }
    }
    // Temp files an interrupted copy left at paths this export kept without writing.
    for path in may_be_touched.keys().filter(|p| !stale.contains(**p)) {
        // A link on the way to it stops the export before anything there is removed.
        guard::look(&dir, path)?;
        let leftover = medium::temp_path(&dir.join(path));
        match std::fs::remove_file(&leftover) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", leftover.display()))
            }
        }
    }
    let by_case = by_lowercase(&next);
    let mut emptied = BTreeSet::new();
    for path in &stale {
        if is_a_planned_file(&dir, path, &by_case)? {
            continue;
        }
        copy::remove_stale(&dir, path)?;
        emptied.insert(parent(&dir, path));
    }
    for folder in emptied.iter().filter(|f| f.is_dir()) {
        medium::sync_dir(folder)?;
    }
    medium::write(&dir, MANIFEST_NAME, &next)?;
    medium::remove(&dir, MARKER_NAME)?;

    Ok(ExportReport {
        changes: as_manifest(previous.as_ref()).diff(&as_manifest(Some(&next))),
        files: next.files.len(),
        bytes: next.files.iter().map(|f| f.size).sum(),
        copied,
        bytes_copied,
        resumed: interrupted.is_some(),
        warnings: plan.warnings,
        dir,
    })
}

/// Creates `dir` if needed and refuses a folder inside the data directory, or holding it: the
/// export would write into the store's own tree (GC or `verify` would meet files they do not
/// know), or lay its tree and remove its stale files beside and over the data directory.
fn medium_folder(config: &Config, dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the export folder {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    if let Ok(data) = config.data_dir.canonicalize() {
        if dir.starts_with(&data) {
            bail!(
                "the export folder {} is inside the data directory {}: export to a folder of its own",
                dir.display(),
                data.display()
            );
        }
        if data.starts_with(&dir) {
            bail!(
                "the export folder {} holds the data directory {}: export to a folder of its own",
                dir.display(),
                data.display()
            );
        }
    }
    Ok(dir)
}

fn by_path(manifest: Option<&MediumManifest>) -> BTreeMap<&str, &MediumFile> {
    manifest
        .into_iter()
        .flat_map(|m| &m.files)
        .map(|f| (f.path.as_str(), f))
        .collect()
}

/// The planned paths by their lowercase form, as a medium that ignores case (FAT, exFAT) sees
/// them.
fn by_lowercase(next: &MediumManifest) -> BTreeMap<String, Vec<&str>> {
    let mut by_case: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for file in &next.files {
        by_case
            .entry(file.path.to_lowercase())
            .or_default()
            .push(&file.path);
    }
    by_case
}

/// Whether the stale `path` is the very file of a planned path that differs only in case: on a
/// medium that ignores case, `m/Foo` renamed to `m/foo` is one file, and removing the old name
/// would remove the new file.
fn is_a_planned_file(
    dir: &Path,
    path: &str,
    by_case: &BTreeMap<String, Vec<&str>>,
) -> anyhow::Result<bool> {
    let Some(planned) = by_case.get(&path.to_lowercase()) else {
        return Ok(false);
    };
    let Some(stale) = guard::look(dir, path)? else {
        return Ok(false);
    };
    for other in planned {
        if let Some(meta) = guard::look(dir, other)? {
            if (meta.dev(), meta.ino()) == (stale.dev(), stale.ino()) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

fn parent(dir: &Path, path: &str) -> PathBuf {
    match path.rfind('/') {
        Some(slash) => dir.join(&path[..slash]),
        None => dir.to_path_buf(),
    }
}

/// The medium's files as a manifest, so an export reports its changes as `diff` does.
fn as_manifest(medium: Option<&MediumManifest>) -> Manifest {
    let entries = medium
        .into_iter()
        .flat_map(|m| &m.files)
        .map(|f| Entry {
            path: f.path.clone(),
            object: f.sha256,
            size: f.size,
            mtime: f.mtime,
            stamp: None,
            origin: None,
            immutable: false,
        })
        .collect();
    Manifest::new("medium", 0, entries)
}
