//! The published view: an immutable map from URL path to file or directory, built from every
//! source's current and retained manifests, and swapped in atomically after each publish.
//!
//! This is where the old "snapshot symlink" is resolved, in memory: a request loads the view
//! once and uses it to the end, so it never sees half of one snapshot and half of another.
//!
//! Memory stays close to the information held, because a mirror has up to millions of paths
//! and keeps several snapshots that mostly agree:
//! - each source's part (`part`) keeps its distinct files once, in flat arrays (`files`),
//!   shared by its snapshots;
//! - each snapshot is a sorted, front-coded path index naming rows of those arrays (`paths`):
//!   lookups are binary searches that never allocate;
//! - directories are not stored: a directory is a range of paths (`dirs`);
//! - who wins a path is the order of the layers (`layers`); disagreements are found once per
//!   build, comparing only layers that can meet (`conflicts`, `clashes`).
//!
//! Publishing one source builds only that source's part; the others are shared with the
//! previous view ([`View::build_after`]).

mod clashes;
mod conflicts;
mod dirs;
mod files;
mod layers;
mod part;
mod paths;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;

use crate::manifest::{Entry, Manifest, ManifestError};
use crate::page_cache::PageCache;
use crate::store::ObjectId;

use layers::Layer;
use part::SourcePart;

/// Where retained snapshots appear: `/.snapshots/<source>/<id>/…`.
pub const SNAPSHOTS_PREFIX: &str = "/.snapshots";

/// Hex digits of a manifest id used in snapshot URLs.
pub const SNAPSHOT_ID_CHARS: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileNode {
    pub object: ObjectId,
    pub size: u64,
    /// Last-Modified, unix seconds.
    pub mtime: i64,
    /// See [`crate::store::Stored::stamp`].
    pub stamp: Option<crate::store::Stamp>,
    /// The bytes at this path never change (see [`crate::manifest::Entry::immutable`]);
    /// every pinned snapshot URL is.
    pub immutable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: Box<str>,
    pub is_dir: bool,
    /// The newest Last-Modified published at or below this name (by any snapshot the view
    /// serves there, the one that wins a conflicting path or not).
    pub mtime: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DirNode {
    /// Sorted by name.
    pub children: Vec<Child>,
    /// The newest Last-Modified published below this directory (see [`Child::mtime`]).
    pub mtime: i64,
}

/// What a URL path names. A directory's listing comes from [`View::dir`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Node {
    File(FileNode),
    Dir,
}

/// What one source's part of a view is made of: its refs (manifest ids). A part is reused as
/// it is when these are the same as the previous view's; otherwise it is built from the
/// manifests' entries, streamed.
#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub id: String,
    pub mount: String,
    /// Retained snapshots' manifest ids, oldest first, without repeats.
    pub retained: Vec<ObjectId>,
    /// The current snapshot's manifest id: one of `retained` (a part built for any other is
    /// never reused).
    pub current: Option<ObjectId>,
    /// See [`SourceSnapshots::fill_in`].
    pub fill_in: bool,
}

/// A snapshot's entries one at a time, in path order for every manifest this program writes;
/// the last item is an error if the manifest is damaged.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<Entry, ManifestError>> + 'a>;

/// Opens the entries of a source's snapshot (source id, manifest id). Called once per
/// snapshot a build reads, twice for one stored out of path order.
pub type OpenSnapshot<'a> = dyn FnMut(&str, &ObjectId) -> Result<Entries<'a>, ManifestError> + 'a;

/// One source's contribution to a view, its manifests in memory (tests, and callers that
/// have a manifest at hand rather than in the store).
pub struct SourceSnapshots {
    pub id: String,
    pub mount: String,
    pub current: Option<Arc<Manifest>>,
    /// Retained snapshots with their manifest ids, oldest first.
    pub retained: Vec<(ObjectId, Arc<Manifest>)>,
    /// Serve immutable files of retained snapshots (by-hash indices, packages) at the current
    /// paths too, so a client that read an older index can still download what it names.
    pub fill_in: bool,
}

impl SourceSnapshots {
    /// The refs of these snapshots: the current one is the retained one it is (the same `Arc`
    /// or equal), else one of its own under an id no retained snapshot has.
    fn plan(&self) -> SourcePlan {
        let retained: Vec<ObjectId> = self.retained.iter().map(|(id, _)| *id).collect();
        let current = self.current.as_ref().map(|current| {
            self.retained
                .iter()
                .find(|(_, m)| Arc::ptr_eq(m, current))
                .or_else(|| self.retained.iter().find(|(_, m)| **m == **current))
                .map_or_else(|| own_id(&retained), |(id, _)| *id)
        });
        SourcePlan {
            id: self.id.clone(),
            mount: self.mount.clone(),
            retained,
            current,
            fill_in: self.fill_in,
        }
    }

    /// The manifest `plan` names `id`.
    fn manifest(&self, plan: &SourcePlan, id: &ObjectId) -> &Arc<Manifest> {
        match self.retained.iter().find(|(r, _)| r == id) {
            Some((_, manifest)) => manifest,
            None if plan.current == Some(*id) => self.current.as_ref().expect("a current one"),
            None => panic!("no snapshot {id} in source {}", self.id),
        }
    }
}

/// An id none of `taken` is, for a current snapshot held in memory only.
fn own_id(taken: &[ObjectId]) -> ObjectId {
    (0..=u8::MAX)
        .map(|byte| ObjectId([byte; 32]))
        .find(|id| !taken.contains(id))
        .expect("fewer than 256 retained snapshots")
}

/// Files whose name pins their content: safe to serve from an older snapshot when the current
/// one no longer has them.
pub fn is_fill_in_path(path: &str) -> bool {
    if path.contains("/by-hash/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    name.ends_with(".deb")
        || name.ends_with(".udeb")
        || name.ends_with(".ddeb")
        || name.ends_with(".dsc")
        || name.contains(".tar.")
        || name.ends_with(".diff.gz")
}

/// An immutable snapshot of everything served. Keys are `/a/b` (no trailing slash), root `/`.
///
/// Each source's part holds its distinct files in flat arrays and one sorted, front-coded
/// path index per snapshot (see `paths`); a lookup asks the parts in the order that decides
/// who wins a path (see `layers`), and directories are ranges of those indices (see `dirs`).
#[derive(Debug, Default)]
pub struct View {
    parts: Vec<Arc<SourcePart>>,
    /// Paths claimed by two sources with different content: the first source in config order
    /// wins, and the status page says so.
    pub conflicts: Vec<String>,
    /// Directory listings of this view, rendered on first request (see [`PageCache`]).
    pub listings: PageCache,
}

impl View {
    /// Builds a view from manifests in memory. Sources are laid out in order; a path that two
    /// sources both publish goes to the first one (and is recorded in `conflicts` if the
    /// content differs).
    pub fn build(sources: &[SourceSnapshots]) -> View {
        View::build_after(sources, &View::default())
    }

    /// [`View::build_streamed`] from manifests in memory.
    pub fn build_after(sources: &[SourceSnapshots], previous: &View) -> View {
        let plans: Vec<SourcePlan> = sources.iter().map(SourceSnapshots::plan).collect();
        let mut open = |source: &str, id: &ObjectId| -> Result<Entries<'_>, ManifestError> {
            let (snapshots, plan) = sources
                .iter()
                .zip(&plans)
                .find(|(s, _)| s.id == source)
                .expect("a source of this build");
            let manifest = snapshots.manifest(plan, id).clone();
            let entries =
                (0..manifest.entries.len()).map(move |at| Ok(manifest.entries[at].clone()));
            Ok(Box::new(entries))
        };
        View::build_streamed(&plans, &mut open, previous).expect("manifests in memory read whole")
    }

    /// Builds a view, reusing the parts of `previous` whose source still has the same
    /// snapshots (by id): publishing one source rebuilds only that source's part, from its
    /// manifests as `open` streams them. Fails if one cannot be read to its end.
    pub fn build_streamed(
        sources: &[SourcePlan],
        open: &mut OpenSnapshot<'_>,
        previous: &View,
    ) -> Result<View, ManifestError> {
        let parts = sources
            .iter()
            .map(|source| {
                let before = previous.parts.iter().find(|p| p.id() == source.id);
                SourcePart::build(source, open, before)
            })
            .collect::<Result<Vec<Arc<SourcePart>>, ManifestError>>()?;
        let mut view = View {
            parts,
            ..View::default()
        };
        let layers: Vec<Layer<'_>> = view.layers().collect();
        let conflicts = conflicts::find(&view.parts, &layers);
        drop(layers);
        view.conflicts = conflicts;
        Ok(view)
    }

    fn layers(&self) -> impl Iterator<Item = Layer<'_>> + '_ {
        layers::layers(&self.parts)
    }

    /// What `path` names: a directory if any layer serves something below it, else the
    /// first layer's file. Allocation-free; a binary search per layer asked. A file is
    /// answered without asking for a directory unless its path is among the conflicts, which
    /// name every path that is both.
    pub fn get(&self, path: &str) -> Option<Node> {
        if !is_key(path) {
            return None;
        }
        let file = self.file(path);
        if let Some(file) = file {
            let clash = self
                .conflicts
                .binary_search_by(|c| c.as_str().cmp(path))
                .is_ok();
            if !clash {
                return Some(Node::File(file));
            }
        }
        if self.is_dir(path) {
            return Some(Node::Dir);
        }
        file.map(Node::File)
    }

    fn is_dir(&self, path: &str) -> bool {
        path == "/" || self.layers().any(|layer| layer.has_below(path))
    }

    /// The file served at `path`, ignoring directories.
    fn file(&self, path: &str) -> Option<FileNode> {
        self.layers().find_map(|layer| layer.file(path))
    }

    /// The listing of directory `path`: its children sorted by name and the newest mtime
    /// below it. Scans the directory's range in every layer; pages cache the result.
    pub fn dir(&self, path: &str) -> Option<DirNode> {
        is_key(path).then(|| dirs::list(self, path)).flatten()
    }

    /// Paths across all layers (a path served by two layers counts twice).
    pub fn len(&self) -> usize {
        self.layers().map(|layer| layer.paths().len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes of the parts (files and path indices), for measuring.
    pub fn heap_bytes(&self) -> usize {
        self.parts.iter().map(|p| p.heap_bytes()).sum()
    }

    /// Calls `each` with the object and size of every file of the snapshot whose manifest is
    /// `id`, read from the view (no manifest read); `false`, calling nothing, if the view does
    /// not hold that snapshot.
    pub fn each_file_of(&self, id: &ObjectId, mut each: impl FnMut(ObjectId, u64)) -> bool {
        for part in &self.parts {
            if let Some(snapshot) = part.snapshot(id) {
                for row in snapshot.paths.values() {
                    let (object, size) = part.files.object_and_size(row);
                    each(object, size);
                }
                return true;
            }
        }
        false
    }

    /// Every object this view can serve (with repeats).
    pub fn objects(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.parts.iter().flat_map(|part| part.files.objects())
    }
}

/// Whether `path` has the form of a view key: `/`, or `/`-separated non-empty segments after
/// a leading `/`. Other strings would meet a mount or a path index half-way.
fn is_key(path: &str) -> bool {
    path == "/" || path.starts_with('/') && path[1..].split('/').all(|s| !s.is_empty())
}

/// The one place the current view lives. Readers load it without locks; a publish swaps it.
pub struct ViewHandle {
    current: ArcSwap<View>,
    /// Views that were replaced but may still be in use by requests. GC keeps their objects.
    retired: Mutex<Vec<Weak<View>>>,
}

impl ViewHandle {
    pub fn new(view: View) -> ViewHandle {
        ViewHandle {
            current: ArcSwap::from_pointee(view),
            retired: Mutex::new(Vec::new()),
        }
    }

    /// The view a request uses from start to end.
    pub fn load(&self) -> Arc<View> {
        self.current.load_full()
    }

    pub fn publish(&self, view: View) {
        let old = self.current.swap(Arc::new(view));
        let mut retired = self.retired.lock().expect("not poisoned");
        retired.retain(|weak| weak.strong_count() > 0);
        retired.push(Arc::downgrade(&old));
    }

    /// Calls `each` with the objects of the current view and of every replaced view some
    /// request still holds (with repeats). Read from the parts' file tables; a part shared by
    /// several views is read once. Nothing when no view was ever built (a CLI process).
    pub fn each_live_object(&self, mut each: impl FnMut(ObjectId)) {
        let mut views = vec![self.load()];
        let retired = self.retired.lock().expect("not poisoned");
        views.extend(retired.iter().filter_map(Weak::upgrade));
        let mut seen: HashSet<*const SourcePart> = HashSet::new();
        for part in views.iter().flat_map(|view| view.parts.iter()) {
            if seen.insert(Arc::as_ptr(part)) {
                part.files.objects().for_each(&mut each);
            }
        }
    }
}

#[cfg(test)]
mod allocation_tests;
#[cfg(test)]
mod random_tests;
#[cfg(test)]
mod reference;
#[cfg(test)]
mod scale_tests;
#[cfg(test)]
mod stream_tests;
#[cfg(test)]
mod tests;
