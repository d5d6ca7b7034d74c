//! Whether a local file is ingested or its previous entry reused, and what publishing must
//! still check about the object then.
//!
//! An unchanged file (same size, mtime and inode as recorded) keeps its entry. Its object is
//! then known to be there without looking: the previous snapshot names it and a ref names the
//! snapshot, so GC keeps it, and the only other way out of `objects/` is quarantine (by
//! `verify`, or at start for objects a crash tore), which is read once per sync. So a rescan
//! costs one `stat` per file, of the file only. Objects that share their inode with the file
//! (hard-link ingest) are checked as before: their stamp, against the file's own stat.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::manifest::{Entry, Origin};
use crate::store::{mtime_ns, IngestMethod, ObjectId, Store, Stored};
use crate::sync::spill::Check;
use crate::sync::{last_modified, SyncError, SyncReport};

/// Which objects of the previous snapshot are taken as stored without a look.
pub struct Trust {
    /// The ids in quarantine when the sync started; `None`: trust nothing (a dry run, whose
    /// objects are another store's, an unreadable quarantine, or a snapshot no ref names).
    quarantined: Option<HashSet<ObjectId>>,
}

impl Trust {
    /// Trusts objects of the snapshot the source's ref names, unless quarantined now.
    pub fn previous_snapshot(store: &Store) -> Trust {
        Trust {
            quarantined: crate::sync::snapshot::quarantined(store),
        }
    }

    pub fn nothing() -> Trust {
        Trust { quarantined: None }
    }

    fn trusts(&self, id: &ObjectId) -> bool {
        self.quarantined.as_ref().is_some_and(|q| !q.contains(id))
    }
}

/// Puts one local file into the store, or reuses the previous snapshot's entry when the
/// file is unchanged (same size, mtime and inode) and its object still good.
pub(crate) fn ingest_local(
    store: &Store,
    path: &Path,
    relative: String,
    meta: &fs::Metadata,
    prev: Option<&Entry>,
    now: i64,
    report: &mut SyncReport,
) -> Result<Entry, SyncError> {
    let file = Local {
        path,
        resolved: false,
        meta,
    };
    ingest(store, &Trust::nothing(), file, relative, prev, now, report).map(|(entry, _)| entry)
}

/// A local file met by a sync.
pub struct Local<'a> {
    pub path: &'a Path,
    /// The path holds no symlink (the walk resolved it).
    pub resolved: bool,
    pub meta: &'a fs::Metadata,
}

/// The entry for `file` at `relative`: the previous one if the file is unchanged and its
/// object still good, else the file ingested now.
pub fn ingest(
    store: &Store,
    trust: &Trust,
    file: Local<'_>,
    relative: String,
    prev: Option<&Entry>,
    now: i64,
    report: &mut SyncReport,
) -> Result<(Entry, Check), SyncError> {
    let relative = match reused(store, trust, file.meta, relative, prev) {
        Ok(reused) => return Ok(reused),
        Err(relative) => relative,
    };
    let stored = if file.resolved {
        store.ingest_resolved(file.path)?
    } else {
        store.ingest_file(file.path)?
    };
    let entry = stored_entry(stored, relative, prev, file.meta, now, report);
    Ok((entry, Check::Done))
}

/// What the store records of the file behind `meta`, to know it unchanged next time.
pub fn origin(meta: &fs::Metadata) -> Origin {
    Origin {
        size: meta.len(),
        mtime_ns: mtime_ns(meta),
        inode: meta.ino(),
    }
}

/// The previous entry, moved to `relative`, if the file behind `meta` is unchanged (same
/// size, mtime and inode) and its object still good; else `relative` back, to ingest it.
pub fn reused(
    store: &Store,
    trust: &Trust,
    meta: &fs::Metadata,
    relative: String,
    prev: Option<&Entry>,
) -> Result<(Entry, Check), String> {
    let Some(prev) = prev else {
        return Err(relative);
    };
    if prev.origin != Some(origin(meta)) {
        return Err(relative);
    }
    match reusable(store, trust, prev, meta) {
        // The path is the walk's own string: the previous one is not copied.
        Some(check) => Ok((
            Entry {
                path: relative,
                ..*prev
            },
            check,
        )),
        None => Err(relative),
    }
}

/// The entry of a file just ingested as `stored`, counted in the report if it was new.
/// `meta` is the stat the walk took of the file.
pub fn stored_entry(
    stored: Stored,
    relative: String,
    prev: Option<&Entry>,
    meta: &fs::Metadata,
    now: i64,
    report: &mut SyncReport,
) -> Entry {
    if stored.method != IngestMethod::Existing {
        report.counts.files_stored += 1;
        report.counts.bytes_stored += stored.size;
    }
    Entry {
        mtime: last_modified(prev, &stored.id, meta.mtime(), now),
        path: relative,
        object: stored.id,
        size: stored.size,
        stamp: stored.stamp,
        origin: Some(origin(meta)),
        immutable: false,
    }
}

/// Whether the previous entry's object can serve the unchanged file, and what publishing must
/// check then. If it shares its inode with the file, its stamp must still hold and record the
/// ctime: an old stamp (mtime only) or a moved one sends the file through ingest again, which
/// re-hashes and re-stamps it. A hard-linked object is the source's own inode (`source`,
/// linked more than once): its stat is the object's, and any change of its links (the object
/// removed or quarantined) moves its ctime, so no second stat. A copied object (no stamp) is
/// trusted as [`Trust`] says, else looked at.
fn reusable(store: &Store, trust: &Trust, prev: &Entry, source: &fs::Metadata) -> Option<Check> {
    match prev.stamp {
        Some(stamp)
            if !stamp.is_legacy() && stamp.inode == Some(source.ino()) && source.nlink() > 1 =>
        {
            stamp.matches(source).then_some(Check::Done)
        }
        Some(stamp) => {
            let meta = fs::metadata(store.object_path(&prev.object)).ok()?;
            (!stamp.is_legacy() && stamp.matches(&meta)).then_some(Check::Done)
        }
        None if trust.trusts(&prev.object) => Some(Check::Trusted),
        None => {
            let meta = fs::metadata(store.object_path(&prev.object)).ok()?;
            meta.is_file().then_some(Check::Done)
        }
    }
}
