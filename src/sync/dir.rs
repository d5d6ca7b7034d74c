//! `dir` sources: a local directory published as it is.
//!
//! Unchanged files (same size, mtime and inode as recorded in the previous snapshot) are not
//! read again, so a re-scan of a large tree costs one `stat` per file.
//!
//! Symlinks are followed only into the folder itself and the `follow_symlinks_into` roots
//! (see [`super::confine`]).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::confine::Confinement;
use super::kind::{check_folder, name_pins_content, Finding, Kind, KindOptions, Run};
use super::previous::Previous;
use super::{last_modified, SyncError, SyncReport};
use crate::manifest::{Entry, Manifest, Origin};
use crate::store::{mtime_ns, IngestMethod, Store};
use crate::time::unix_now;

/// The options of a `dir` source.
#[derive(Debug, Clone)]
pub struct DirOptions {
    /// The folder to publish.
    pub path: PathBuf,
    /// Folders outside `path` that its symlinks may point into; links to anywhere else are
    /// skipped (see [`super::confine`]).
    pub follow_symlinks_into: Vec<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirKeys {
    path: Option<PathBuf>,
    /// Read as a plain value so a wrong type is reported with the key's name.
    follow_symlinks_into: Option<toml::Value>,
}

impl KindOptions for DirOptions {
    fn keys() -> Vec<&'static str> {
        crate::keys::fields_of::<DirKeys>().to_vec()
    }

    fn parse(table: toml::Table) -> Result<Self, String> {
        let keys: DirKeys = crate::keys::read(table)?;
        Ok(DirOptions {
            path: keys
                .path
                .ok_or("key `path`: missing (the directory to publish)")?,
            follow_symlinks_into: super::confine::parse_roots(keys.follow_symlinks_into)?,
        })
    }
}

impl Kind for DirOptions {
    fn sync(&self, run: Run<'_>) -> Result<Vec<Entry>, SyncError> {
        scan(
            run.store,
            &self.path,
            &self.follow_symlinks_into,
            run.previous,
            run.report,
        )
    }

    /// A folder's files mean nothing in particular: names of package pools and images say.
    fn is_immutable(&self, path: &str) -> bool {
        name_pins_content(path)
    }

    fn check_machine(&self, at: &dyn Fn(&str) -> String, out: &mut Vec<Finding>) {
        check_folder(&self.path, &at("path"), out);
    }

    fn local_paths(&self) -> Vec<&Path> {
        std::iter::once(self.path.as_path())
            .chain(self.follow_symlinks_into.iter().map(PathBuf::as_path))
            .collect()
    }

    fn describe(&self) -> Vec<String> {
        vec![format!("from directory {}", self.path.display())]
    }
}

/// A file found by the walk.
struct Found {
    relative: String,
    path: PathBuf,
    meta: fs::Metadata,
}

/// Scans `root` and stores what is new; returns the entries of the new snapshot. Symlinks
/// are followed only where they lead inside `root` or one of `follow_symlinks_into`.
pub fn scan(
    store: &Store,
    root: &Path,
    follow_symlinks_into: &[PathBuf],
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    let previous = Previous::new(previous);
    let mut found = Vec::new();
    let mut ancestors = HashSet::new();
    let confine =
        Confinement::new(root, follow_symlinks_into).map_err(|source| SyncError::Input {
            path: root.to_path_buf(),
            source,
        })?;
    walk(
        &confine,
        confine.base(),
        "",
        &mut found,
        &mut ancestors,
        &mut report.problems,
    )?;
    let now = unix_now();
    let mut entries = Vec::with_capacity(found.len());
    for file in found {
        let prev = previous.get(&file.relative);
        entries.push(ingest_local(
            store,
            &file.path,
            file.relative,
            &file.meta,
            prev,
            now,
            report,
        )?);
    }
    Ok(entries)
}

/// Puts one local file into the store, or reuses the previous snapshot's entry when the
/// file is unchanged (same size, mtime and inode): a re-scan costs one `stat` per file.
pub(crate) fn ingest_local(
    store: &Store,
    path: &Path,
    relative: String,
    meta: &fs::Metadata,
    prev: Option<&Entry>,
    now: i64,
    report: &mut SyncReport,
) -> Result<Entry, SyncError> {
    let origin = Origin {
        size: meta.len(),
        mtime_ns: mtime_ns(meta),
        inode: meta.ino(),
    };
    if let Some(prev) = prev {
        if prev.origin == Some(origin) && still_good(store, prev) {
            return Ok(prev.clone());
        }
    }
    let stored = store.ingest_file(path)?;
    if stored.method != IngestMethod::Existing {
        report.counts.files_stored += 1;
        report.counts.bytes_stored += stored.size;
    }
    Ok(Entry {
        mtime: last_modified(prev, &stored.id, meta.mtime(), now),
        path: relative,
        object: stored.id,
        size: stored.size,
        stamp: stored.stamp,
        origin: Some(origin),
        immutable: false,
    })
}

/// The previous entry's object is there, and if it shares its inode with an outside file, its
/// stamp still holds and records the ctime: an old stamp (mtime only) or a moved one sends the
/// file through ingest again, which re-hashes and re-stamps it.
fn still_good(store: &Store, prev: &Entry) -> bool {
    let Ok(meta) = fs::metadata(store.object_path(&prev.object)) else {
        return false;
    };
    match prev.stamp {
        None => meta.is_file(),
        Some(stamp) => !stamp.is_legacy() && stamp.matches(&meta),
    }
}

/// Walks a directory tree in name order, following symlinks that stay inside `confine`, but
/// never in a loop (a link to a folder that is being walked already, an ancestor). A folder
/// linked twice side by side is published at both places. Names that cannot be URL paths (not UTF-8, control characters) are skipped
/// with a warning. `dir` is a resolved path, so every plain entry below it is inside too.
fn walk(
    confine: &Confinement,
    dir: &Path,
    prefix: &str,
    found: &mut Vec<Found>,
    ancestors: &mut HashSet<(u64, u64)>,
    problems: &mut Vec<String>,
) -> Result<(), SyncError> {
    let input = |source| SyncError::Input {
        path: dir.to_path_buf(),
        source,
    };
    let meta = fs::metadata(dir).map_err(input)?;
    if !meta.is_dir() {
        return Err(input(std::io::Error::other("not a directory")));
    }
    let key = (meta.dev(), meta.ino());
    if !ancestors.insert(key) {
        tracing::warn!(path = %dir.display(), "directory loop through a symlink; skipped");
        return Ok(());
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(dir).map_err(input)? {
        let entry = entry.map_err(input)?;
        // The type comes with the directory entry on most filesystems: no extra `lstat`.
        let link = entry.file_type().map_err(input)?.is_symlink();
        names.push((entry.file_name(), link));
    }
    names.sort();
    for (name, link) in names {
        let path = dir.join(&name);
        let Some(name) = name.to_str().filter(|n| !n.chars().any(char::is_control)) else {
            tracing::warn!(path = %path.display(), "name is not valid UTF-8 text; skipped");
            continue;
        };
        let relative = if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}/{name}")
        };
        // A link publishes what it points to, read through its resolved path, if allowed.
        let path = if link {
            let Some(target) = confine.follow(&path, problems) else {
                continue;
            };
            target
        } else {
            path
        };
        let meta = match fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot stat; skipped");
                continue;
            }
        };
        if meta.is_dir() {
            walk(confine, &path, &relative, found, ancestors, problems)?;
        } else if meta.is_file() {
            found.push(Found {
                relative,
                path,
                meta,
            });
        } else {
            tracing::warn!(path = %path.display(), "not a regular file; skipped");
        }
    }
    ancestors.remove(&key);
    Ok(())
}
