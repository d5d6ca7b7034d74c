//! The walk of a `dir` source: folders in the order of the paths they publish, each file
//! stored or reused as soon as it is met, and handed on.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::cursor::{Cursor, CursorError, Unsorted};
use super::pool::{self, Ingested, Pool};
use super::reuse::{self, Trust};
use crate::manifest::Entry;
use crate::store::Store;
use crate::sync::confine::Confinement;
use crate::sync::snapshot::{same_file, NewEntries};
use crate::sync::spill::Check;
use crate::sync::{SyncError, SyncReport};

/// Why a walk stopped.
pub enum WalkError {
    Sync(SyncError),
    /// The previous snapshot is not in path order: start over with it sorted.
    Unsorted(Unsorted),
}

impl From<SyncError> for WalkError {
    fn from(error: SyncError) -> WalkError {
        WalkError::Sync(error)
    }
}

impl From<CursorError> for WalkError {
    fn from(error: CursorError) -> WalkError {
        match error {
            CursorError::Unsorted(unsorted) => WalkError::Unsorted(unsorted),
            CursorError::Manifest(e) => WalkError::Sync(e.into()),
        }
    }
}

/// Where a walk's entries go.
pub enum Out<'o, 'n> {
    /// Kept in memory (a dry run, tests).
    Collect(Vec<Entry>),
    /// Handed on as they come, with whether each differs from the previous snapshot.
    Stream(&'o mut NewEntries<'n>),
}

/// One scan under way: what it walks, what it has made.
pub struct Walk<'a, 'o, 'n> {
    pub store: &'a Store,
    pub confine: &'a Confinement,
    pub trust: &'a Trust,
    pub previous: Cursor<'a>,
    /// The folders being walked (device, inode), to break loops through symlinks.
    pub ancestors: HashSet<(u64, u64)>,
    pub out: Out<'o, 'n>,
    pub now: i64,
    pub report: &'a mut SyncReport,
    /// How many threads read the files to ingest (see `pool`); 1: the walk reads them.
    pub workers: usize,
}

/// A file the walk met, waiting in the pool's window for its turn to be handed on.
pub struct Met {
    relative: String,
    prev: Option<Entry>,
    meta: fs::Metadata,
    /// The previous entry, kept: the file is not read.
    reused: Option<(Entry, Check)>,
}

impl Walk<'_, '_, '_> {
    /// Walks the whole confinement, then reads the rest of the previous snapshot: a path it
    /// has and the walk did not meet makes the new snapshot differ.
    /// The entries, if kept in memory.
    pub fn run(self) -> Result<Vec<Entry>, WalkError> {
        let (store, workers) = (self.store, self.workers);
        pool::with_pool(store, workers, |pool| self.run_with(pool))
    }

    fn run_with(mut self, pool: &mut Pool<'_, Met>) -> Result<Vec<Entry>, WalkError> {
        let base = self.confine.base().to_path_buf();
        let meta = fs::metadata(&base).map_err(|source| SyncError::Input {
            path: base.clone(),
            source,
        })?;
        let walked = self.folder(&base, &meta, &mut String::new(), pool);
        // The files met before the walk stopped come first, as they would one at a time: an
        // error among them is the sync's error.
        self.hand_on(pool, true)?;
        walked?;
        let gone = self.previous.finish()?;
        match self.out {
            Out::Collect(entries) => Ok(entries),
            Out::Stream(out) => {
                if gone {
                    out.differs();
                }
                Ok(Vec::new())
            }
        }
    }

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
        pool: &mut Pool<'_, Met>,
    ) -> Result<(), WalkError> {
        let input = |source| SyncError::Input {
            path: dir.to_path_buf(),
            source,
        };
        if !meta.is_dir() {
            return Err(input(std::io::Error::other("not a directory")).into());
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
            let path = child.target.unwrap_or_else(|| dir.join(&child.name));
            if child.meta.is_dir() {
                self.folder(&path, &child.meta, prefix, pool)?;
            } else {
                self.file(path, child.meta, prefix, pool)?;
            }
            prefix.truncate(len);
        }
        self.ancestors.remove(&key);
        Ok(())
    }

    /// Meets the file at `path` (resolved), published at `relative`: its previous entry is
    /// kept if it is unchanged, else it goes to the pool to be ingested. Then hands on what
    /// is done at the front of the pool's window.
    fn file(
        &mut self,
        path: PathBuf,
        meta: fs::Metadata,
        relative: &str,
        pool: &mut Pool<'_, Met>,
    ) -> Result<(), WalkError> {
        let prev = self.previous.find(relative)?;
        let relative = relative.to_string();
        match reuse::reused(self.store, self.trust, &meta, relative, prev.as_ref()) {
            Ok(reused) => pool.ready(Met {
                relative: String::new(),
                prev,
                meta,
                reused: Some(reused),
            }),
            Err(relative) => pool.ingest(
                Met {
                    relative,
                    prev,
                    meta,
                    reused: None,
                },
                path,
            ),
        }
        self.hand_on(pool, false)
    }

    /// Hands on the files at the front of the pool's window that are done, in order; with
    /// `all`, every file, waiting for each. The first error gives up the rest.
    fn hand_on(&mut self, pool: &mut Pool<'_, Met>, all: bool) -> Result<(), WalkError> {
        while let Some((met, ingested)) = pool.next(all) {
            if let Err(e) = self.hand_on_one(met, ingested) {
                pool.abandon();
                return Err(e);
            }
        }
        Ok(())
    }

    fn hand_on_one(&mut self, met: Met, ingested: Option<Ingested>) -> Result<(), WalkError> {
        let (entry, check) = match (met.reused, ingested) {
            (Some(reused), _) => reused,
            (None, ingested) => {
                let stored = ingested
                    .expect("a file not reused was ingested")
                    .map_err(SyncError::from)?;
                let entry = reuse::stored_entry(
                    stored,
                    met.relative,
                    met.prev.as_ref(),
                    &met.meta,
                    self.now,
                    self.report,
                );
                (entry, Check::Done)
            }
        };
        match &mut self.out {
            Out::Collect(entries) => entries.push(entry),
            Out::Stream(out) => {
                if !met.prev.is_some_and(|p| same_file(&p, &entry)) {
                    out.differs();
                }
                out.push(entry, check)?;
            }
        }
        Ok(())
    }
}

/// A folder's child that is published: a regular file or a folder (links resolved).
struct Child {
    name: String,
    /// A symlink's resolved target; else the child is read at the folder joined with the name.
    target: Option<PathBuf>,
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
        let Some(name) = entry
            .file_name()
            .to_str()
            .filter(|n| !n.chars().any(char::is_control))
            .map(str::to_string)
        else {
            tracing::warn!(path = %entry.path().display(), "name is not valid UTF-8 text; skipped");
            continue;
        };
        // A link publishes what it points to, read through its resolved path, if allowed.
        // Anything else is stat'ed relative to the open folder (`fstatat`), which spares the
        // kernel the walk of the full path: for what is not a link, the same answer.
        let (target, meta) = if link {
            let Some(target) = confine.follow(&entry.path(), problems) else {
                continue;
            };
            let meta = fs::metadata(&target);
            (Some(target), meta)
        } else {
            (None, entry.metadata())
        };
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) => {
                tracing::warn!(path = %entry.path().display(), error = %e, "cannot stat; skipped");
                continue;
            }
        };
        if !meta.is_dir() && !meta.is_file() {
            tracing::warn!(path = %entry.path().display(), "not a regular file; skipped");
            continue;
        }
        children.push(Child { name, target, meta });
    }
    Ok(children)
}
