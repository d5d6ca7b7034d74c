//! The plain view the compact one must equal: every URL path in a hash map, built the
//! simple way (each file and directory a heap node). Tests only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{is_fill_in_path, FileNode, SourceSnapshots, SNAPSHOTS_PREFIX, SNAPSHOT_ID_CHARS};

pub struct Reference {
    /// Every file that won its path, directories or not.
    pub files: HashMap<String, FileNode>,
    /// Every directory: children (name, is a directory) and the newest mtime published below
    /// (by winners and losers of conflicting paths alike).
    pub dirs: BTreeMap<String, (BTreeSet<(String, bool)>, i64)>,
    pub conflicts: Vec<String>,
    /// The newest mtime published at each path, won or lost.
    pub newest: HashMap<String, i64>,
}

impl Reference {
    pub fn build(sources: &[SourceSnapshots]) -> Reference {
        let mut files: HashMap<String, FileNode> = HashMap::new();
        let mut conflicts = Vec::new();
        let mut offered: Vec<(String, i64)> = Vec::new();
        let mut add = |path: String, node: FileNode, files: &mut HashMap<String, FileNode>| {
            offered.push((path.clone(), node.mtime));
            match files.get(&path) {
                Some(existing) if existing.object != node.object => conflicts.push(path),
                Some(_) => {}
                None => {
                    files.insert(path, node);
                }
            }
        };
        for source in sources {
            for entry in source.current.iter().flat_map(|m| &m.entries) {
                add(
                    format!("{}/{}", source.mount, entry.path),
                    node(entry),
                    &mut files,
                );
            }
        }
        let mut filled = Vec::new();
        for source in sources.iter().filter(|s| s.fill_in) {
            for (_, manifest) in source.retained.iter().rev() {
                for entry in manifest.entries.iter().filter(|e| is_fill_in_path(&e.path)) {
                    let path = format!("{}/{}", source.mount, entry.path);
                    filled.push((path.clone(), entry.mtime));
                    files.entry(path).or_insert_with(|| node(entry));
                }
            }
        }
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
                        ..node(entry)
                    };
                    add(format!("{prefix}/{}", entry.path), node, &mut files);
                }
            }
        }
        let mut newest: HashMap<String, i64> = HashMap::new();
        for (path, mtime) in offered.into_iter().chain(filled) {
            let slot = newest.entry(path).or_insert(mtime);
            *slot = (*slot).max(mtime);
        }
        let mut dirs: BTreeMap<String, (BTreeSet<(String, bool)>, i64)> = BTreeMap::new();
        dirs.insert("/".into(), (BTreeSet::new(), 0));
        for path in files.keys() {
            let mtime = newest[path];
            let mut child: &str = path;
            let mut child_is_dir = false;
            while let Some(cut) = child.rfind('/') {
                let parent = if cut == 0 { "/" } else { &child[..cut] };
                let slot = dirs.entry(parent.to_string()).or_default();
                slot.0.insert((child[cut + 1..].to_string(), child_is_dir));
                slot.1 = slot.1.max(mtime);
                if parent == "/" {
                    break;
                }
                child = parent;
                child_is_dir = true;
            }
        }
        conflicts.extend(dirs.keys().filter(|d| files.contains_key(*d)).cloned());
        conflicts.sort();
        conflicts.dedup();
        Reference {
            files,
            dirs,
            conflicts,
            newest,
        }
    }
}

fn node(entry: &crate::manifest::Entry) -> FileNode {
    FileNode {
        object: entry.object,
        size: entry.size,
        mtime: entry.mtime,
        stamp: entry.stamp,
        immutable: entry.immutable,
    }
}
