//! What changed between two snapshots of a source, as data: the paths added, removed and
//! changed (different content), with their sizes. Kept apart from any printing so that the
//! CLI, and anything else that wants it later, shows the same answer.

use std::collections::HashMap;

use super::{Entry, Manifest};

/// The difference from an older manifest to a newer one (see [`Manifest::diff`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDiff {
    /// One per path that differs, sorted by path.
    pub changes: Vec<PathChange>,
    /// Sum of the sizes of every file in the older manifest.
    pub bytes_before: u64,
    /// Sum of the sizes of every file in the newer manifest.
    pub bytes_after: u64,
}

/// One path that differs between the two manifests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathChange {
    pub path: String,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Only in the newer manifest.
    Added { size: u64 },
    /// Only in the older manifest.
    Removed { size: u64 },
    /// In both, with different content (object), whatever the sizes.
    Changed { old_size: u64, new_size: u64 },
}

impl ManifestDiff {
    /// True when both manifests publish the same content at the same paths.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    pub fn added(&self) -> usize {
        self.count(|kind| matches!(kind, ChangeKind::Added { .. }))
    }

    pub fn removed(&self) -> usize {
        self.count(|kind| matches!(kind, ChangeKind::Removed { .. }))
    }

    pub fn changed(&self) -> usize {
        self.count(|kind| matches!(kind, ChangeKind::Changed { .. }))
    }

    fn count(&self, wanted: impl Fn(&ChangeKind) -> bool) -> usize {
        self.changes.iter().filter(|c| wanted(&c.kind)).count()
    }
}

impl Manifest {
    /// What changed from `self` (the older snapshot) to `other` (the newer one). A path counts
    /// as changed when its object differs: a new date alone is not a change of content.
    pub fn diff(&self, other: &Manifest) -> ManifestDiff {
        let before = by_path(&self.entries);
        let after = by_path(&other.entries);
        let mut changes = Vec::new();
        for entry in &other.entries {
            match before.get(entry.path.as_str()) {
                None => changes.push(PathChange {
                    path: entry.path.clone(),
                    kind: ChangeKind::Added { size: entry.size },
                }),
                Some(prev) if prev.object != entry.object => changes.push(PathChange {
                    path: entry.path.clone(),
                    kind: ChangeKind::Changed {
                        old_size: prev.size,
                        new_size: entry.size,
                    },
                }),
                Some(_) => {}
            }
        }
        for entry in &self.entries {
            if !after.contains_key(entry.path.as_str()) {
                changes.push(PathChange {
                    path: entry.path.clone(),
                    kind: ChangeKind::Removed { size: entry.size },
                });
            }
        }
        // Stable, so that a path listed twice in a damaged manifest keeps its order.
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        ManifestDiff {
            changes,
            bytes_before: self.total_bytes(),
            bytes_after: other.total_bytes(),
        }
    }
}

fn by_path(entries: &[Entry]) -> HashMap<&str, &Entry> {
    entries.iter().map(|e| (e.path.as_str(), e)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectId;

    fn entry(path: &str, object: u8, size: u64) -> Entry {
        Entry {
            path: path.into(),
            object: ObjectId([object; 32]),
            size,
            mtime: 1,
            stamp: None,
            origin: None,
            immutable: false,
        }
    }

    #[test]
    fn added_removed_and_changed_paths_sorted_by_path() {
        let old = Manifest::new(
            "s",
            1,
            vec![entry("a", 1, 10), entry("c", 2, 20), entry("d", 3, 30)],
        );
        let new = Manifest::new(
            "s",
            2,
            vec![entry("b", 4, 5), entry("c", 5, 25), entry("d", 3, 30)],
        );
        let diff = old.diff(&new);
        assert_eq!(
            diff.changes,
            vec![
                PathChange {
                    path: "a".into(),
                    kind: ChangeKind::Removed { size: 10 }
                },
                PathChange {
                    path: "b".into(),
                    kind: ChangeKind::Added { size: 5 }
                },
                PathChange {
                    path: "c".into(),
                    kind: ChangeKind::Changed {
                        old_size: 20,
                        new_size: 25
                    }
                },
            ]
        );
        assert_eq!((diff.added(), diff.removed(), diff.changed()), (1, 1, 1));
        assert_eq!((diff.bytes_before, diff.bytes_after), (60, 60));
    }

    #[test]
    fn same_content_with_new_dates_is_no_change() {
        let old = Manifest::new("s", 1, vec![entry("a", 1, 10)]);
        let mut moved = entry("a", 1, 10);
        moved.mtime = 99;
        let new = Manifest::new("s", 2, vec![moved]);
        let diff = old.diff(&new);
        assert!(diff.is_empty());
        assert_eq!((diff.bytes_before, diff.bytes_after), (10, 10));
    }

    #[test]
    fn diff_with_itself_is_empty_and_reversal_swaps_sides() {
        let old = Manifest::new("s", 1, vec![entry("a", 1, 10)]);
        let new = Manifest::new("s", 2, vec![entry("b", 2, 3)]);
        assert!(old.diff(&old).is_empty());
        let forward = old.diff(&new);
        let back = new.diff(&old);
        assert_eq!((forward.added(), forward.removed()), (1, 1));
        let kinds: Vec<ChangeKind> = back.changes.iter().map(|c| c.kind).collect();
        assert_eq!(
            kinds,
            vec![
                ChangeKind::Added { size: 10 },
                ChangeKind::Removed { size: 3 }
            ]
        );
    }
}
