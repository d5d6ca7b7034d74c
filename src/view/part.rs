//! One source's part of a view: its distinct files and a path index per snapshot.
//!
//! A part is built from the source's manifests alone, so publishing a new snapshot of one
//! source rebuilds only that source's part; the others are shared with the previous view.

use std::sync::Arc;

use crate::manifest::{Entry, Manifest};
use crate::store::ObjectId;

use super::clashes::{self, ClashFinder};
use super::files::FileTable;
use super::paths::{PathIndex, PathIndexBuilder};
use super::{is_fill_in_path, SourceSnapshots, SNAPSHOTS_PREFIX, SNAPSHOT_ID_CHARS};

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
    /// A current snapshot that is not among the retained ones (never reused: it has no id).
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
    /// The part for `source`: `previous` itself when it was built from the same snapshots.
    pub fn build(source: &SourceSnapshots, previous: Option<&Arc<SourcePart>>) -> Arc<SourcePart> {
        let key = key_of(source);
        if let Some(previous) = previous {
            if previous.key == key && key.current != CurrentAt::Own {
                return previous.clone();
            }
        }
        let mut files = FileTable::default();
        let mut last: Option<(&Manifest, Vec<(usize, u32)>)> = None;
        let mut retained = Vec::with_capacity(source.retained.len());
        for (id, manifest) in &source.retained {
            let url = format!(
                "{SNAPSHOTS_PREFIX}/{}/{}",
                source.id,
                id.short(SNAPSHOT_ID_CHARS)
            );
            let (index, rows) = index_manifest(manifest, url, &mut files, last.as_ref());
            retained.push(index);
            last = Some((manifest, rows));
        }
        let own_current = match (key.current, &source.current) {
            (CurrentAt::Own, Some(current)) => {
                Some(index_manifest(current, String::new(), &mut files, last.as_ref()).0)
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
        Arc::new(part)
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

fn key_of(source: &SourceSnapshots) -> PartKey {
    let current = match &source.current {
        None => CurrentAt::None,
        Some(current) => source
            .retained
            .iter()
            .position(|(_, m)| Arc::ptr_eq(m, current))
            .or_else(|| source.retained.iter().position(|(_, m)| **m == **current))
            .map_or(CurrentAt::Own, CurrentAt::Retained),
    };
    PartKey {
        id: source.id.clone(),
        mount: source.mount.clone(),
        fill_in: source.fill_in,
        retained: source.retained.iter().map(|(id, _)| *id).collect(),
        current,
    }
}

/// Indexes one manifest, sharing a row with the previous snapshot where the same path holds
/// the same file (a merge walk: both are in path order). Returns the index and, for the
/// next snapshot's walk, the entry positions in path order with their rows.
fn index_manifest(
    manifest: &Manifest,
    url: String,
    files: &mut FileTable,
    previous: Option<&(&Manifest, Vec<(usize, u32)>)>,
) -> (SnapshotIndex, Vec<(usize, u32)>) {
    let order = path_order(&manifest.entries);
    let mut builder = PathIndexBuilder::default();
    let mut rows = Vec::with_capacity(order.len());
    let mut clashes = ClashFinder::default();
    let (mut newest, mut newest_fill_in) = (None, None);
    let mut shared = previous.map(|(m, rows)| (m, rows.iter().peekable()));
    for at in order {
        let entry = &manifest.entries[at];
        let mut row = None;
        if let Some((before, walk)) = &mut shared {
            while let Some(&&(p, r)) = walk.peek() {
                match before.entries[p].path.as_str().cmp(entry.path.as_str()) {
                    std::cmp::Ordering::Less => {
                        walk.next();
                    }
                    std::cmp::Ordering::Equal => {
                        if files.same(r, entry) {
                            row = Some(r);
                        }
                        break;
                    }
                    std::cmp::Ordering::Greater => break,
                }
            }
        }
        let row = row.unwrap_or_else(|| files.push(entry));
        if builder.push(entry.path.as_bytes(), row) {
            rows.push((at, row));
            newest = newest.max(Some(entry.mtime));
            if is_fill_in_path(&entry.path) {
                newest_fill_in = newest_fill_in.max(Some(entry.mtime));
            }
            clashes.see(entry.path.as_bytes());
        }
    }
    let index = SnapshotIndex {
        url: url.into(),
        paths: builder.finish(),
        clashes: clashes.found,
        newest,
        newest_fill_in,
    };
    (index, rows)
}

/// Entry positions in path order, the first of equal paths first. A manifest is written
/// sorted; one that is not (outside data) is served all the same.
fn path_order(entries: &[Entry]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..entries.len()).collect();
    if !entries.windows(2).all(|w| w[0].path < w[1].path) {
        order.sort_by(|&a, &b| entries[a].path.cmp(&entries[b].path));
        order.dedup_by(|a, b| entries[*a].path == entries[*b].path);
    }
    order
}
