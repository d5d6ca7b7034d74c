//! `dir` sources: a local directory published as it is.
//!
//! Unchanged files (same size, mtime and inode as recorded in the previous snapshot) are not
//! read again, and their objects are not looked at (see `reuse`), so a re-scan of a large
//! tree costs one `stat` per file. The previous snapshot is read as a stream alongside the
//! walk (see `cursor`) and the new entries go straight to disk (`sync::snapshot`): a sync
//! holds neither snapshot in memory.
//!
//! Symlinks are followed only into the folder itself and the `follow_symlinks_into` roots
//! (see [`super::confine`]).

pub(crate) mod cursor;
mod pool;
mod reuse;
mod walk;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::confine::Confinement;
use super::kind::{check_folder, name_pins_content, Finding, Kind, KindOptions, Run, StreamRun};
use super::{SyncError, SyncReport};
use crate::manifest::{Entry, Manifest, ManifestError, StoredEntries};
use crate::store::Store;
use crate::time::unix_now;
use cursor::Cursor;
pub(crate) use reuse::ingest_local;
use reuse::Trust;
use walk::{Out, Walk, WalkError};

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

    /// The previous snapshot is read as a stream alongside the walk, and the new entries go
    /// straight on: nothing of the tree is held but the folders being walked.
    fn sync_into(&self, run: StreamRun<'_, '_>) -> Result<(), SyncError> {
        let confine = confinement(&self.path, &self.follow_symlinks_into)?;
        let trust = Trust::previous_snapshot(run.store);
        let problems = run.report.problems.len();
        let stream = match run.previous {
            Some(id) => {
                let stream = StoredEntries::open(run.store, &id)?;
                run.out
                    .set_previous_selection(stream.header().selection.clone());
                Cursor::new(Box::new(stream))
            }
            None => Cursor::empty(),
        };
        let walk = Walk {
            store: run.store,
            confine: &confine,
            trust: &trust,
            previous: stream,
            ancestors: HashSet::new(),
            out: Out::Stream(&mut *run.out),
            now: unix_now(),
            report: &mut *run.report,
            workers: pool::workers(run.store),
        };
        match walk.run() {
            Ok(_) => Ok(()),
            Err(WalkError::Sync(e)) => Err(e),
            Err(WalkError::Unsorted(_)) => {
                // Only a hand-made or very old manifest: loaded whole and sorted, then the
                // walk starts over (what it stored already is found in the store).
                let id = run.previous.ok_or(SyncError::Upstream(
                    "previous entries out of order without a previous snapshot".into(),
                ))?;
                tracing::warn!(source = run.source, snapshot = %id, "previous snapshot not in path order; scanning again against it sorted");
                let mut previous = Manifest::load(run.store, &id)?;
                previous.entries.sort_by(|a, b| a.path.cmp(&b.path));
                run.report.problems.truncate(problems);
                run.out.clear(true)?;
                run.out.set_previous_selection(previous.selection.clone());
                let walk = Walk {
                    store: run.store,
                    confine: &confine,
                    trust: &trust,
                    previous: Cursor::new(Box::new(previous.entries.into_iter().map(Ok))),
                    ancestors: HashSet::new(),
                    out: Out::Stream(&mut *run.out),
                    now: unix_now(),
                    report: &mut *run.report,
                    workers: pool::workers(run.store),
                };
                walk.run().map(drop).map_err(|e| match e {
                    WalkError::Sync(e) => e,
                    WalkError::Unsorted(_) => {
                        SyncError::Upstream(format!("snapshot {id} has a path twice"))
                    }
                })
            }
        }
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

fn confinement(root: &Path, follow_symlinks_into: &[PathBuf]) -> Result<Confinement, SyncError> {
    Confinement::new(root, follow_symlinks_into).map_err(|source| SyncError::Input {
        path: root.to_path_buf(),
        source,
    })
}

/// Scans `root` and stores what is new; returns the entries of the new snapshot, held in
/// memory (a dry run; a sync streams them, see [`Kind::sync_into`]). Symlinks are followed
/// only where they lead inside `root` or one of `follow_symlinks_into`.
///
/// The walk visits files in the order of their paths as strings, the order of a manifest, so
/// the previous snapshot is read alongside as one sorted stream (see `cursor`) and each file
/// is stored or reused as soon as it is met. Its objects are all looked at (`previous` need
/// not be a snapshot a ref names).
pub fn scan(
    store: &Store,
    root: &Path,
    follow_symlinks_into: &[PathBuf],
    previous: Option<&Manifest>,
    report: &mut SyncReport,
) -> Result<Vec<Entry>, SyncError> {
    let confine = confinement(root, follow_symlinks_into)?;
    let recorded = previous.map_or(&[][..], |m| m.entries.as_slice());
    let capacity = recorded.len();
    // Entries are copied one at a time as the walk reaches them; only a manifest out of path
    // order is copied whole, to be sorted.
    let stream: Box<dyn Iterator<Item = Result<Entry, ManifestError>>> =
        if recorded.windows(2).all(|w| w[0].path < w[1].path) {
            Box::new(recorded.iter().cloned().map(Ok))
        } else {
            let mut sorted = recorded.to_vec();
            sorted.sort_by(|a, b| a.path.cmp(&b.path));
            sorted.dedup_by(|a, b| a.path == b.path);
            Box::new(sorted.into_iter().map(Ok))
        };
    let walk = Walk {
        store,
        confine: &confine,
        trust: &Trust::nothing(),
        previous: Cursor::new(stream),
        ancestors: HashSet::new(),
        out: Out::Collect(Vec::with_capacity(capacity)),
        now: unix_now(),
        report,
        workers: pool::workers(store),
    };
    walk.run().map_err(|e| match e {
        WalkError::Sync(e) => e,
        WalkError::Unsorted(_) => SyncError::Upstream("previous entries out of order".into()),
    })
}

#[cfg(test)]
mod pool_tests;
#[cfg(test)]
mod scale;
#[cfg(test)]
mod stream_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Origin;
    use crate::store::tests::store;
    use crate::store::{mtime_ns, IngestMode};
    use std::fs;
    use std::os::unix::fs::MetadataExt;

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
