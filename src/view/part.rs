//! One source's part of a view: its distinct files and a path index per snapshot.
//!
//! A part is built from the source's manifests alone, streamed one entry at a time (no
//! manifest is held whole), so publishing a new snapshot of one
//! source rebuilds only that source's part; the others are shared with the previous view.

use std::sync::Arc;

use crate::manifest::{Entry, ManifestError};
use crate::store::ObjectId;

use super::clashes::{self, ClashFinder};
use super::files::FileTable;
use super::paths::{PathIndex, PathIndexBuilder};
use super::{
    is_fill_in_path, Entries, OpenSnapshot, SourcePlan, SNAPSHOTS_PREFIX, SNAPSHOT_ID_CHARS,
};

/// What a part was built from: a part with an equal key can be reused as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartKey {
    id: String,
    mount: String,
    fill_in: bool,
    retained: Vec<ObjectId>,
    current: CurrentAt,
}

/// Paths relative to a mount or snapshot URL.
pub type Clashes = Vec<Box<str>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CurrentAt {
    None,
    /// The current snapshot is this retained one.
    Retained(usize),
    /// A current snapshot that is not among the retained ones (rare; never reused).
    Own,
}

/// A snapshot's paths, relative to the mount, each naming a row of the part's files.
#[derive(Debug)]
pub struct SnapshotIndex {
    /// Where the snapshot is served: `/.snapshots/<source>/<short id>`.
    pub url: Box<str>,
    pub paths: PathIndex,
    /// Paths that are a file and also have files below them (the directory wins).
    pub clashes: Clashes,
    /// The newest Last-Modified of all paths, and of the fill-in paths.
    pub newest: Option<i64>,
    pub newest_fill_in: Option<i64>,
}

#[derive(Debug)]
pub struct SourcePart {
    key: PartKey,
    pub mount: Box<str>,
    pub fill_in: bool,
    pub files: FileTable,
    /// Retained snapshots, oldest first.
    pub retained: Vec<SnapshotIndex>,
    own_current: Option<SnapshotIndex>,
    /// Clashes among the paths served at the mount (current and fill-ins together).
    pub mount_clashes: Clashes,
}

impl SourcePart {
    /// The part for `source`: `previous` itself when it was built from the same snapshots
    /// (decided from the ids alone), else a new part made from the snapshots' entries as
    /// `open` streams them. Fails, publishing nothing, when a snapshot cannot be read to its
    /// end (a damaged manifest is found only there).
    pub fn build<'a>(
        source: &SourcePlan,
        open: &mut OpenSnapshot<'a>,
        previous: Option<&Arc<SourcePart>>,
    ) -> Result<Arc<SourcePart>, ManifestError> {
        let key = key_of(source);
        if let Some(previous) = previous {
            if previous.key == key && key.current != CurrentAt::Own {
                return Ok(previous.clone());
            }
        }
        let mut files = FileTable::default();
        let mut retained: Vec<SnapshotIndex> = Vec::with_capacity(source.retained.len());
        for id in &source.retained {
            let url = format!(
                "{SNAPSHOTS_PREFIX}/{}/{}",
                source.id,
                id.short(SNAPSHOT_ID_CHARS)
            );
            let before = retained.last().map(|s| &s.paths);
            let kept = previous.and_then(|p| Some((p, p.snapshot(id)?)));
            let index = match kept {
                // Read before, from a manifest checked then: its entries come from the
                // previous part, not from decoding (and hashing) the manifest again.
                Some((part, kept)) => {
                    let entries = Box::new(part.entries_of(kept).map(Ok));
                    let indexed = index_sorted(entries, &url, &mut files, before)?;
                    indexed.expect("a path index is in path order")
                }
                None => index_snapshot(&source.id, id, open, url, &mut files, before)?,
            };
            retained.push(index);
        }
        let own_current = match (key.current, &source.current) {
            (CurrentAt::Own, Some(current)) => {
                let before = retained.last().map(|s| &s.paths);
                let url = String::new();
                Some(index_snapshot(
                    &source.id, current, open, url, &mut files, before,
                )?)
            }
            _ => None,
        };
        files.shrink_to_fit();
        let mut part = SourcePart {
            mount: source.mount.as_str().into(),
            fill_in: source.fill_in,
            files,
            retained,
            own_current,
            key,
            mount_clashes: Vec::new(),
        };
        let fill_ins: Vec<&PathIndex> = match part.fill_in {
            true => part.retained.iter().map(|s| &s.paths).collect(),
            false => Vec::new(),
        };
        part.mount_clashes = clashes::in_union(part.current().map(|s| &s.paths), &fill_ins);
        Ok(Arc::new(part))
    }

    pub fn id(&self) -> &str {
        &self.key.id
    }

    /// The current snapshot's index.
    pub fn current(&self) -> Option<&SnapshotIndex> {
        match self.key.current {
            CurrentAt::None => None,
            CurrentAt::Retained(at) => self.retained.get(at),
            CurrentAt::Own => self.own_current.as_ref(),
        }
    }

    /// The index of retained snapshot `id`, if this part has it.
    pub fn snapshot(&self, id: &ObjectId) -> Option<&SnapshotIndex> {
        let at = self.key.retained.iter().position(|r| r == id)?;
        self.retained.get(at)
    }

    /// The entries of one of this part's snapshots, rebuilt from its index and files.
    fn entries_of<'p>(&'p self, snapshot: &'p SnapshotIndex) -> impl Iterator<Item = Entry> + 'p {
        let mut cursor = snapshot.paths.cursor();
        std::iter::from_fn(move || {
            let (path, row) = cursor.current()?;
            let file = self.files.get(row);
            let entry = Entry {
                path: String::from_utf8_lossy(path).into_owned(),
                object: file.object,
                size: file.size,
                mtime: file.mtime,
                stamp: file.stamp,
                origin: None,
                immutable: file.immutable,
            };
            cursor.advance();
            Some(entry)
        })
    }

    /// Heap bytes held (files and indices).
    pub fn heap_bytes(&self) -> usize {
        self.files.heap_bytes()
            + self
                .retained
                .iter()
                .chain(self.own_current.as_ref())
                .map(|s| s.paths.heap_bytes())
                .sum::<usize>()
    }
}

fn key_of(source: &SourcePlan) -> PartKey {
    let current = match &source.current {
        None => CurrentAt::None,
        Some(current) => source
            .retained
            .iter()
            .position(|id| id == current)
            .map_or(CurrentAt::Own, CurrentAt::Retained),
    };
    PartKey {
        id: source.id.clone(),
        mount: source.mount.clone(),
        fill_in: source.fill_in,
        retained: source.retained.clone(),
        current,
    }
}

/// Indexes one snapshot from its entries as `open` streams them. Entries come in path order
/// (every manifest this program writes is sorted); one that does not (outside data: an old
/// JSON manifest, one made by hand) is read again whole, sorted and indexed from memory, and
/// the rows its first reading added are taken back.
fn index_snapshot<'a>(
    source: &str,
    id: &ObjectId,
    open: &mut OpenSnapshot<'a>,
    url: String,
    files: &mut FileTable,
    previous: Option<&PathIndex>,
) -> Result<SnapshotIndex, ManifestError> {
    let rows_before = files.len();
    if let Some(index) = index_sorted(open(source, id)?, &url, files, previous)? {
        return Ok(index);
    }
    files.truncate(rows_before);
    let mut entries = open(source, id)?.collect::<Result<Vec<Entry>, _>>()?;
    // Stable: of equal paths the first one stays, as a sorted manifest's first one would.
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.dedup_by(|later, earlier| later.path == earlier.path);
    let sorted = Box::new(entries.into_iter().map(Ok));
    Ok(index_sorted(sorted, &url, files, previous)?.expect("entries sorted just above"))
}

/// Indexes entries given in path order, sharing a row with the previous snapshot where the
/// same path holds the same file (a merge walk along its path index: both are in path order).
/// Of repeated paths the first counts. `None` at the first entry out of order.
fn index_sorted(
    entries: Entries<'_>,
    url: &str,
    files: &mut FileTable,
    previous: Option<&PathIndex>,
) -> Result<Option<SnapshotIndex>, ManifestError> {
    let mut builder = PathIndexBuilder::default();
    let mut clashes = ClashFinder::default();
    let (mut newest, mut newest_fill_in) = (None, None);
    let mut walk = previous.map(PathIndex::cursor);
    for entry in entries {
        let entry = entry?;
        let path = entry.path.as_bytes();
        match builder.last().map(|last| path.cmp(last)) {
            Some(std::cmp::Ordering::Less) => return Ok(None),
            Some(std::cmp::Ordering::Equal) => continue,
            _ => {}
        }
        let mut row = None;
        if let Some(walk) = &mut walk {
            while let Some((before, r)) = walk.current() {
                match before.cmp(path) {
                    std::cmp::Ordering::Less => walk.advance(),
                    std::cmp::Ordering::Equal => {
                        if files.same(r, &entry) {
                            row = Some(r);
                        }
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
        }
        let row = row.unwrap_or_else(|| files.push(&entry));
        builder.push(path, row);
        newest = newest.max(Some(entry.mtime));
        if is_fill_in_path(&entry.path) {
            newest_fill_in = newest_fill_in.max(Some(entry.mtime));
        }
        clashes.see(path);
    }
    Ok(Some(SnapshotIndex {
        url: url.into(),
        paths: builder.finish(),
        clashes: clashes.found,
        newest,
        newest_fill_in,
    }))
}
