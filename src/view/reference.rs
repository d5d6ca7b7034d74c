//! The plain view the compact one must equal: every URL path in a hash map, built the
//! simple way (each file and directory a heap node). Tests only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::{is_fill_in_path, FileNode, SourceSnapshots, SNAPSHOTS_PREFIX, SNAPSHOT_ID_CHARS};

pub struct Reference {
    /// Every file that won its path, directories or not.
    pub files: HashMap<String, FileNode>,
    /// Every directory: children (name, is a directory) and the newest mtime below.
    pub dirs: BTreeMap<String, (BTreeSet<(String, bool)>, i64)>,
    pub conflicts: Vec<String>,
}

impl Reference {
    pub fn build(sources: &[SourceSnapshots]) -> Reference {
        let mut files: HashMap<String, FileNode> = HashMap::new();
        let mut conflicts = Vec::new();
        let mut add =
            |path: String, node: FileNode, files: &mut HashMap<String, FileNode>| match files
                .get(&path)
            {
                Some(existing) if existing.object != node.object => conflicts.push(path),
                Some(_) => {}
                None => {
                    files.insert(path, node);
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
        for source in sources.iter().filter(|s| s.fill_in) {
            for (_, manifest) in source.retained.iter().rev() {
                for entry in manifest.entries.iter().filter(|e| is_fill_in_path(&e.path)) {
                    files
                        .entry(format!("{}/{}", source.mount, entry.path))
                        .or_insert_with(|| node(entry));
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
        let mut dirs: BTreeMap<String, (BTreeSet<(String, bool)>, i64)> = BTreeMap::new();
        dirs.insert("/".into(), (BTreeSet::new(), 0));
        for (path, file) in &files {
            let mut child: &str = path;
            let mut child_is_dir = false;
            while let Some(cut) = child.rfind('/') {
                let parent = if cut == 0 { "/" } else { &child[..cut] };
                let slot = dirs.entry(parent.to_string()).or_default();
                slot.0.insert((child[cut + 1..].to_string(), child_is_dir));
                slot.1 = slot.1.max(file.mtime);
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
