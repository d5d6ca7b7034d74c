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

/// Scans `root` and stores what is new; returns the entries of the new snapshot. Symlinks
/// are followed only where they lead inside `root` or one of `follow_symlinks_into`.
///
/// The walk visits files in the order of their paths as strings, the order of a manifest, so
/// the previous snapshot is read alongside as one sorted stream (see [`Cursor`]) and each file
/// is stored or reused as soon as it is met: nothing of the tree is held but the folders
/// being walked and the entries made.
pub fn scan(
    store: &Store,
    root: &Path,
    follow_symlinks_into: &[PathBuf],
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    let confine =
        Confinement::new(root, follow_symlinks_into).map_err(|source| SyncError::Input {
            path: root.to_path_buf(),
            source,
        })?;
    let mut walk = Walk {
        store,
        confine: &confine,
        previous: Cursor::new(previous),
        ancestors: HashSet::new(),
        entries: Vec::with_capacity(previous.map_or(0, |m| m.entries.len())),
        now: unix_now(),
        report,
    };
    let base = confine.base();
    let meta = fs::metadata(base).map_err(|source| SyncError::Input {
        path: base.to_path_buf(),
        source,
    })?;
    walk.folder(base, &meta, &mut String::new())?;
    Ok(walk.entries)
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
    ingest(store, Source::Any(path), relative, meta, prev, now, report)
}

/// A local file's path: any (symlinks resolved at ingest), or resolved already by the walk.
enum Source<'a> {
    Any(&'a Path),
    Resolved(&'a Path),
}

/// [`ingest_local`], told whether the path is resolved already.
fn ingest(
    store: &Store,
    source: Source<'_>,
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
        if prev.origin == Some(origin) && still_good(store, prev, meta) {
            // The path is the walk's own string: the previous one is not copied.
            return Ok(Entry {
                path: relative,
                ..*prev
            });
        }
    }
    let stored = match source {
        Source::Any(path) => store.ingest_file(path)?,
        Source::Resolved(path) => store.ingest_resolved(path)?,
    };
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
/// file through ingest again, which re-hashes and re-stamps it. A hard-linked object is the
/// source's own inode (`source`, linked more than once): its stat is the object's, and any
/// change of its links (the object removed or quarantined) moves its ctime, so no second stat.
fn still_good(store: &Store, prev: &Entry, source: &fs::Metadata) -> bool {
    if let Some(stamp) = prev.stamp {
        if !stamp.is_legacy() && stamp.inode == Some(source.ino()) && source.nlink() > 1 {
            return stamp.matches(source);
        }
    }
    let Ok(meta) = fs::metadata(store.object_path(&prev.object)) else {
        return false;
    };
    match prev.stamp {
        None => meta.is_file(),
        Some(stamp) => !stamp.is_legacy() && stamp.matches(&meta),
    }
}

/// One scan under way: what it walks, what it has made.
struct Walk<'a, 'r> {
    store: &'a Store,
    confine: &'a Confinement,
    previous: Cursor<'a>,
    /// The folders being walked (device, inode), to break loops through symlinks.
    ancestors: HashSet<(u64, u64)>,
    entries: Vec<Entry>,
    now: i64,
    report: &'r mut SyncReport,
}

impl Walk<'_, '_> {
    /// Walks folder `dir` (published at `prefix`, empty for the top), in the order of the
    /// paths it publishes, following symlinks that stay inside the confinement, but never in
    /// a loop (a link to a folder being walked already, an ancestor). A folder linked twice
    /// side by side is published at both places. `dir` is a resolved path, so every plain
    /// entry below it is inside too. `meta` is its stat (taken by the caller, so once).
    fn folder(
        &mut self,
        dir: &Path,
        meta: &fs::Metadata,
        prefix: &mut String,
    ) -> Result<(), SyncError> {
        let input = |source| SyncError::Input {
            path: dir.to_path_buf(),
            source,
        };
        if !meta.is_dir() {
            return Err(input(std::io::Error::other("not a directory")));
        }
        let key = (meta.dev(), meta.ino());
        if !self.ancestors.insert(key) {
            tracing::warn!(path = %dir.display(), "directory loop through a symlink; skipped");
            return Ok(());
        }
        let mut children = children(self.confine, dir, &mut self.report.problems)?;
        children.sort_by(|a, b| a.walk_order(b));
        for child in children {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(&child.name);
            let path = child.path;
            if child.meta.is_dir() {
                self.folder(&path, &child.meta, prefix)?;
            } else {
                let prev = self.previous.find(prefix);
                let entry = ingest(
                    self.store,
                    Source::Resolved(&path),
                    prefix.clone(),
                    &child.meta,
                    prev,
                    self.now,
                    self.report,
                )?;
                self.entries.push(entry);
            }
            prefix.truncate(len);
        }
        self.ancestors.remove(&key);
        Ok(())
    }
}

/// A folder's child that is published: a regular file or a folder (links resolved).
struct Child {
    name: String,
    /// Where to read it: the folder joined with the name, or a symlink's resolved target.
    path: PathBuf,
    meta: fs::Metadata,
}

impl Child {
    /// The order of the paths published: a folder's name is compared as if it ended in `/`,
    /// so `a.txt` < `a/…` < `a0`, as the strings of the paths below them compare.
    fn walk_order(&self, other: &Child) -> std::cmp::Ordering {
        self.walk_key().cmp(other.walk_key())
    }

    fn walk_key(&self) -> impl Iterator<Item = &u8> {
        let slash: &[u8] = if self.meta.is_dir() { b"/" } else { b"" };
        self.name.as_bytes().iter().chain(slash)
    }
}

/// The children of `dir` worth publishing, each stat'ed (through its link, if allowed).
/// Names that cannot be URL paths (not UTF-8, control characters), what cannot be stat'ed and
/// what is neither a file nor a folder are skipped with a warning.
fn children(
    confine: &Confinement,
    dir: &Path,
    problems: &mut Vec<String>,
) -> Result<Vec<Child>, SyncError> {
    let input = |source| SyncError::Input {
        path: dir.to_path_buf(),
        source,
    };
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(input)? {
        let entry = entry.map_err(input)?;
        // The type comes with the directory entry on most filesystems: no extra `lstat`.
        let link = entry.file_type().map_err(input)?.is_symlink();
        let path = entry.path();
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| !n.chars().any(char::is_control))
            .map(str::to_string)
        else {
            tracing::warn!(path = %path.display(), "name is not valid UTF-8 text; skipped");
            continue;
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
        if !meta.is_dir() && !meta.is_file() {
            tracing::warn!(path = %path.display(), "not a regular file; skipped");
            continue;
        }
        children.push(Child { name, path, meta });
    }
    Ok(children)
}

/// The previous snapshot's entries read in path order alongside the walk: each lookup moves
/// forward, so a scan costs one pass over them and no map. A manifest is outside data: if its
/// entries were out of order, some lookups would miss and those files would be read again
/// (the result is the same, only slower).
struct Cursor<'a> {
    entries: &'a [Entry],
    next: usize,
}

impl<'a> Cursor<'a> {
    fn new(previous: Option<&'a Manifest>) -> Cursor<'a> {
        Cursor {
            entries: previous.map_or(&[], |m| m.entries.as_slice()),
            next: 0,
        }
    }

    /// The previous entry at `path`, which must not come before any path asked for earlier.
    fn find(&mut self, path: &str) -> Option<&'a Entry> {
        while let Some(entry) = self.entries.get(self.next) {
            match entry.path.as_str().cmp(path) {
                std::cmp::Ordering::Less => self.next += 1,
                std::cmp::Ordering::Equal => {
                    self.next += 1;
                    return Some(entry);
                }
                std::cmp::Ordering::Greater => return None,
            }
        }
        None
    }
}

#[cfg(test)]
mod scale;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store;
    use crate::store::IngestMode;

    /// Paths whose order as strings differs from the order of names folder by folder.
    const PATHS: &[&str] = &[
        "a b/c", "a-b/c", "a.txt", "a/b.c/d", "a/b/c", "a/b0", "a0", "b",
    ];

    fn tree() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("tree");
        for path in PATHS {
            let file = root.join(path);
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(&file, path.as_bytes()).unwrap();
        }
        (dir, root)
    }

    #[test]
    fn files_are_met_in_the_order_of_their_paths() {
        let (dir, root) = tree();
        let store = store(&dir.path().join("data"), IngestMode::Copy);
        let entries = scan(&store, &root, &[], None, &mut SyncReport::default()).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(paths, PATHS, "walked in manifest order, nothing else");
        for entry in &entries {
            assert_eq!(store.read(&entry.object).unwrap(), entry.path.as_bytes());
        }
    }

    /// Every unchanged file is found in the previous snapshot while walking: its recorded
    /// entry is kept as it is (here an object other than the file's bytes, which only a
    /// lookup that hit can give) and the file is not read again.
    #[test]
    fn every_unchanged_file_is_found_in_the_previous_snapshot() {
        let (dir, root) = tree();
        let store = store(&dir.path().join("data"), IngestMode::Copy);
        let marker = store.put_bytes(b"recorded before").unwrap();
        let previous: Vec<Entry> = PATHS
            .iter()
            .map(|path| {
                let meta = fs::metadata(root.join(path)).unwrap();
                Entry {
                    path: path.to_string(),
                    object: marker,
                    size: meta.len(),
                    mtime: 7,
                    stamp: None,
                    origin: Some(Origin {
                        size: meta.len(),
                        mtime_ns: mtime_ns(&meta),
                        inode: meta.ino(),
                    }),
                    immutable: false,
                }
            })
            .collect();
        let previous = Manifest::new("s", 0, previous);
        let mut report = SyncReport::default();
        let entries = scan(&store, &root, &[], Some(&previous), &mut report).unwrap();
        assert_eq!(entries, previous.entries);
        assert_eq!(report.counts.files_stored, 0);
    }
}
