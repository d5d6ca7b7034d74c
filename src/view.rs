//! The published view: an immutable map from URL path to file or directory, built from every
//! source's current and retained manifests, and swapped in atomically after each publish.
//!
//! This is where the old "snapshot symlink" is resolved, in memory: a request loads the view
//! once and uses it to the end, so it never sees half of one snapshot and half of another.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};

use arc_swap::ArcSwap;

use crate::manifest::Manifest;
use crate::page_cache::PageCache;
use crate::store::ObjectId;

/// Where retained snapshots appear: `/.snapshots/<source>/<id>/…`.
pub const SNAPSHOTS_PREFIX: &str = "/.snapshots";

/// Hex digits of a manifest id used in snapshot URLs.
pub const SNAPSHOT_ID_CHARS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
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
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirNode {
    /// Sorted by name.
    pub children: Vec<Child>,
    /// The newest mtime below this directory.
    pub mtime: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File(FileNode),
    Dir(DirNode),
}

/// One source's contribution to a view.
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
#[derive(Debug, Default)]
pub struct View {
    nodes: HashMap<Box<str>, Node>,
    /// Paths claimed by two sources with different content: the first source in config order
    /// wins, and the status page says so.
    pub conflicts: Vec<String>,
    /// Directory listings of this view, rendered on first request (see [`PageCache`]).
    pub listings: PageCache,
}

impl View {
    /// Builds a view. Sources are laid out in order; a path that two sources both publish goes
    /// to the first one (and is recorded in `conflicts` if the content differs).
    pub fn build(sources: &[SourceSnapshots]) -> View {
        let mut files: HashMap<Box<str>, FileNode> = HashMap::new();
        let mut conflicts = Vec::new();
        let mut add =
            |path: String, node: FileNode, files: &mut HashMap<Box<str>, FileNode>| match files
                .get(path.as_str())
            {
                Some(existing) if existing.object != node.object => conflicts.push(path),
                Some(_) => {}
                None => {
                    files.insert(path.into_boxed_str(), node);
                }
            };
        // Current snapshots first: they win every path they name.
        for source in sources {
            if let Some(current) = &source.current {
                for entry in &current.entries {
                    add(
                        format!("{}/{}", source.mount, entry.path),
                        file_node(entry),
                        &mut files,
                    );
                }
            }
        }
        // Then what retained snapshots fill in at current paths, newest first.
        for source in sources.iter().filter(|s| s.fill_in) {
            for (_, manifest) in source.retained.iter().rev() {
                for entry in manifest.entries.iter().filter(|e| is_fill_in_path(&e.path)) {
                    files
                        .entry(format!("{}/{}", source.mount, entry.path).into_boxed_str())
                        .or_insert_with(|| file_node(entry));
                }
            }
        }
        // Every retained snapshot at its own stable URL.
        for source in sources {
            for (id, manifest) in &source.retained {
                let prefix = format!(
                    "{SNAPSHOTS_PREFIX}/{}/{}",
                    source.id,
                    id.short(SNAPSHOT_ID_CHARS)
                );
                for entry in &manifest.entries {
                    let node = FileNode {
                        immutable: true,
                        ..file_node(entry)
                    };
                    add(format!("{prefix}/{}", entry.path), node, &mut files);
                }
            }
        }

        // Directories: every ancestor of every file, with its children and newest mtime.
        let mut dirs: BTreeMap<String, (BTreeSet<(String, bool)>, i64)> = BTreeMap::new();
        dirs.insert("/".into(), (BTreeSet::new(), 0));
        for (path, node) in &files {
            let mut child: &str = path;
            let mut child_is_dir = false;
            loop {
                let cut = child.rfind('/').expect("view paths start with /");
                let parent = if cut == 0 { "/" } else { &child[..cut] };
                let name = &child[cut + 1..];
                let slot = dirs
                    .entry(parent.to_string())
                    .or_insert((BTreeSet::new(), 0));
                slot.0.insert((name.to_string(), child_is_dir));
                slot.1 = slot.1.max(node.mtime);
                if parent == "/" {
                    break;
                }
                child = parent;
                child_is_dir = true;
            }
        }
        let mut nodes: HashMap<Box<str>, Node> = HashMap::with_capacity(files.len() + dirs.len());
        for (path, (children, mtime)) in dirs {
            if files.contains_key(path.as_str()) {
                // A file and a directory of the same name: the directory wins, say so.
                conflicts.push(path.clone());
            }
            let children = children
                .into_iter()
                .map(|(name, is_dir)| Child {
                    name: name.into_boxed_str(),
                    is_dir,
                })
                .collect();
            nodes.insert(
                path.into_boxed_str(),
                Node::Dir(DirNode { children, mtime }),
            );
        }
        for (path, node) in files {
            nodes.entry(path).or_insert(Node::File(node));
        }
        conflicts.sort();
        conflicts.dedup();
        View {
            nodes,
            conflicts,
            listings: PageCache::default(),
        }
    }

    pub fn get(&self, path: &str) -> Option<&Node> {
        self.nodes.get(path)
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every object this view can serve.
    pub fn objects(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.nodes.values().filter_map(|node| match node {
            Node::File(file) => Some(file.object),
            Node::Dir(_) => None,
        })
    }
}

fn file_node(entry: &crate::manifest::Entry) -> FileNode {
    FileNode {
        object: entry.object,
        size: entry.size,
        mtime: entry.mtime,
        stamp: entry.stamp,
        immutable: entry.immutable,
    }
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

    /// Objects of the current view and of every replaced view some request still holds.
    pub fn live_objects(&self) -> HashSet<ObjectId> {
        let mut live: HashSet<ObjectId> = self.load().objects().collect();
        let retired = self.retired.lock().expect("not poisoned");
        for view in retired.iter().filter_map(Weak::upgrade) {
            live.extend(view.objects());
        }
        live
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Entry;

    fn entry(path: &str, byte: u8, mtime: i64) -> Entry {
        Entry {
            path: path.into(),
            object: ObjectId([byte; 32]),
            size: 1,
            mtime,
            stamp: None,
            origin: None,
            immutable: false,
        }
    }

    fn source(id: &str, mount: &str, entries: Vec<Entry>) -> SourceSnapshots {
        let manifest = Arc::new(Manifest::new(id, 0, entries));
        SourceSnapshots {
            id: id.into(),
            mount: mount.into(),
            current: Some(manifest.clone()),
            retained: vec![(ObjectId([9; 32]), manifest)],
            fill_in: false,
        }
    }

    #[test]
    fn retained_packages_and_by_hash_fill_in_current_paths() {
        let old = Arc::new(Manifest::new(
            "a",
            0,
            vec![
                entry("dists/x/InRelease", 1, 0),
                entry("dists/x/main/binary-amd64/by-hash/SHA256/old", 2, 0),
                entry("pool/main/a/a_1_amd64.deb", 3, 0),
            ],
        ));
        let new = Arc::new(Manifest::new(
            "a",
            1,
            vec![
                entry("dists/x/InRelease", 4, 1),
                entry("pool/main/a/a_2_amd64.deb", 5, 1),
            ],
        ));
        let view = View::build(&[SourceSnapshots {
            id: "a".into(),
            mount: "/d".into(),
            current: Some(new.clone()),
            retained: vec![(ObjectId([7; 32]), old), (ObjectId([8; 32]), new)],
            fill_in: true,
        }]);
        assert!(
            matches!(view.get("/d/dists/x/InRelease"), Some(Node::File(f)) if f.object == ObjectId([4; 32]))
        );
        assert!(view
            .get("/d/dists/x/main/binary-amd64/by-hash/SHA256/old")
            .is_some());
        assert!(view.get("/d/pool/main/a/a_1_amd64.deb").is_some());
        assert!(view.get("/d/pool/main/a/a_2_amd64.deb").is_some());
        assert!(view.conflicts.is_empty());
    }

    #[test]
    fn shared_mount_makes_one_tree() {
        let view = View::build(&[
            source(
                "a",
                "/debian/pve",
                vec![entry("dists/bookworm/Release", 1, 10)],
            ),
            source(
                "b",
                "/debian/pve",
                vec![entry("dists/bullseye/Release", 2, 20)],
            ),
        ]);
        let Some(Node::Dir(dists)) = view.get("/debian/pve/dists") else {
            panic!("dists is a directory")
        };
        let names: Vec<&str> = dists.children.iter().map(|c| &*c.name).collect();
        assert_eq!(names, ["bookworm", "bullseye"]);
        assert_eq!(dists.mtime, 20);
        assert!(
            matches!(view.get("/debian/pve/dists/bookworm/Release"), Some(Node::File(f)) if f.mtime == 10)
        );
        let Some(Node::Dir(root)) = view.get("/") else {
            panic!("root is a directory")
        };
        let names: Vec<&str> = root.children.iter().map(|c| &*c.name).collect();
        assert_eq!(names, [".snapshots", "debian"]);
        assert!(view
            .get("/.snapshots/a/0909090909090909/dists/bookworm/Release")
            .is_some());
        assert!(view.conflicts.is_empty());
    }

    #[test]
    fn first_source_wins_a_conflict() {
        let view = View::build(&[
            source("a", "/x", vec![entry("f", 1, 0)]),
            source("b", "/x", vec![entry("f", 2, 0)]),
        ]);
        assert!(matches!(view.get("/x/f"), Some(Node::File(f)) if f.object == ObjectId([1; 32])));
        assert_eq!(view.conflicts, vec!["/x/f".to_string()]);
    }

    #[test]
    fn root_mount() {
        let view = View::build(&[source("a", "", vec![entry("index.html", 1, 0)])]);
        assert!(matches!(view.get("/index.html"), Some(Node::File(_))));
    }

    #[test]
    fn retired_views_keep_their_objects_alive_while_used() {
        let handle = ViewHandle::new(View::build(&[source("a", "/x", vec![entry("f", 1, 0)])]));
        let held = handle.load();
        handle.publish(View::build(&[source("a", "/x", vec![entry("f", 2, 0)])]));
        assert!(handle.live_objects().contains(&ObjectId([1; 32])));
        drop(held);
        assert!(!handle.live_objects().contains(&ObjectId([1; 32])));
    }
}
