//! The files of a new apt snapshot as a sync planned them, handed over one at a time.
//!
//! A cold sync of a large archive must not hold its files three times over (the parsed
//! list, the planned entries, the entries): the package files stay in the compact
//! [`PoolList`] they were parsed into, the few other files (Release files, indices under their
//! names and by-hash names, installer images) beside it, and the entries are made from both in
//! path order as they go into the new snapshot. The previous snapshot is read alongside as a
//! stream (each path's date stays while its bytes do), never loaded whole: only a manifest
//! found out of path order is loaded, and the entries handed over again.

use super::current::Current;
use super::index::PoolList;
use super::Planned;
use crate::manifest::{Entry, StoredEntries};
use crate::store::ObjectId;
use crate::sync::dir::cursor::{Cursor, CursorError};
use crate::sync::last_modified;
use crate::sync::previous::Previous;
use crate::sync::snapshot::{same_file, NewEntries};
use crate::sync::spill::Check;
use crate::sync::SyncError;

/// The new snapshot's files, before they get their dates.
pub(super) struct Plan {
    /// Every file but the package files: few, in path order, each path once (the first
    /// planned).
    others: Vec<Planned>,
    /// The package files, in path order, each path once.
    pool: PoolList,
    /// Positions in `pool` of the files left out, in order.
    failed: Vec<usize>,
    /// When the entries are dated: after the downloads, so no client can have seen new bytes
    /// before their date.
    now: i64,
}

/// Why handing the entries over stopped.
enum Stop {
    /// The previous snapshot is out of path order: start over with it loaded whole.
    Unsorted,
    Failed(SyncError),
}

impl From<CursorError> for Stop {
    fn from(error: CursorError) -> Self {
        match error {
            CursorError::Unsorted(_) => Stop::Unsorted,
            CursorError::Manifest(e) => Stop::Failed(e.into()),
        }
    }
}

impl Plan {
    pub fn new(mut others: Vec<Planned>, pool: PoolList, failed: Vec<usize>, now: i64) -> Plan {
        // Stable: of the files planned under one path, the first planned stays.
        others.sort_by(|a, b| a.path.cmp(&b.path));
        others.dedup_by(|later, first| later.path == first.path);
        Plan {
            others,
            pool,
            failed,
            now,
        }
    }

    /// Every file (path, object, size) in path order, each path once: a package file at the
    /// path of another file (an index, a Release file) is left to that file.
    fn files(&self) -> impl Iterator<Item = (&str, ObjectId, u64)> + '_ {
        let mut others = (self.others.iter())
            .map(|p| (p.path.as_str(), p.object, p.size))
            .peekable();
        let mut failed = self.failed.iter().copied().peekable();
        let mut pool = (self.pool.iter().enumerate())
            .filter(move |(n, _)| match failed.peek() {
                Some(f) if f == n => {
                    failed.next();
                    false
                }
                _ => true,
            })
            .map(|(_, file)| (file.path, file.sha256, file.size))
            .peekable();
        std::iter::from_fn(move || match (others.peek(), pool.peek()) {
            (Some(other), Some(file)) => match other.0.cmp(file.0) {
                std::cmp::Ordering::Less => others.next(),
                std::cmp::Ordering::Equal => {
                    pool.next();
                    others.next()
                }
                std::cmp::Ordering::Greater => pool.next(),
            },
            (Some(_), None) => others.next(),
            (None, _) => pool.next(),
        })
    }

    /// The entry of file `path`, dated by the previous snapshot's entry there (`before`).
    fn entry(&self, path: &str, object: ObjectId, size: u64, before: Option<&Entry>) -> Entry {
        Entry {
            mtime: last_modified(before, &object, self.now, self.now),
            path: path.to_string(),
            object,
            size,
            stamp: None,
            origin: None,
            immutable: false,
        }
    }

    /// Every entry at once, dated by `previous` (a dry run's plan).
    pub fn entries(&self, previous: &Previous<'_>) -> Vec<Entry> {
        (self.files())
            .map(|(path, object, size)| self.entry(path, object, size, previous.get(path)))
            .collect()
    }

    /// Hands every entry to `out`, in path order, dated by the current snapshot read
    /// alongside, and tells `out` whether anything differs from it.
    pub fn push_into(
        &self,
        out: &mut NewEntries<'_>,
        current: &Current<'_>,
    ) -> Result<(), SyncError> {
        out.set_previous_selection(current.summary().and_then(|m| m.selection.clone()));
        if let Some((store, id)) = current.stored_id() {
            let mut cursor = Cursor::new(Box::new(StoredEntries::open(store, &id)?));
            let pushed = self.push_each(out, |path| Ok(cursor.find(path)?));
            match pushed.and_then(|()| Ok(cursor.finish()?)) {
                Ok(went_away) => {
                    if went_away {
                        out.differs();
                    }
                    return Ok(());
                }
                Err(Stop::Failed(e)) => return Err(e),
                Err(Stop::Unsorted) => out.clear(true)?,
            }
        }
        let whole = current.whole()?;
        let previous = Previous::new(whole);
        let mut found = 0;
        let pushed = self.push_each(out, |path| {
            let before = previous.get(path);
            found += usize::from(before.is_some());
            Ok(before.cloned())
        });
        match pushed {
            Ok(()) => {}
            Err(Stop::Failed(e)) => return Err(e),
            Err(Stop::Unsorted) => unreachable!("a loaded manifest is looked up by path"),
        }
        if found != whole.map_or(0, |m| m.entries.len()) {
            out.differs();
        }
        Ok(())
    }

    /// Hands every entry to `out`, each dated by `before(path)`, the previous entry there.
    fn push_each(
        &self,
        out: &mut NewEntries<'_>,
        mut before: impl FnMut(&str) -> Result<Option<Entry>, Stop>,
    ) -> Result<(), Stop> {
        for (path, object, size) in self.files() {
            let before = before(path)?;
            let entry = self.entry(path, object, size, before.as_ref());
            if !before.is_some_and(|b| same_file(&b, &entry)) {
                out.differs();
            }
            out.push(entry, Check::Needed).map_err(Stop::Failed)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn planned(path: &str, byte: u8) -> Planned {
        Planned {
            path: path.into(),
            object: ObjectId([byte; 32]),
            size: 1,
        }
    }

    #[test]
    fn files_merge_in_path_order_leaving_out_failures_and_shadowed_package_files() {
        let mut pool = PoolList::default();
        for (path, byte) in [("a", 1), ("c", 2), ("d", 3), ("f", 4)] {
            pool.add(path, 1, ObjectId([byte; 32]), "p").unwrap();
        }
        let pool = pool.into_unique().unwrap();
        let others = vec![
            planned("e", 9),
            planned("c", 8),
            planned("b", 7),
            planned("e", 6),
        ];
        // "d" failed; "c" is also another file's path: that file wins.
        let plan = Plan::new(others, pool, vec![2], 0);
        let files: Vec<(&str, u8)> = plan.files().map(|(p, o, _)| (p, o.0[0])).collect();
        assert_eq!(files, [("a", 1), ("b", 7), ("c", 8), ("e", 9), ("f", 4)]);
    }
}
