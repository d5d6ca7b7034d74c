//! Paths two layers disagree on, found once when a view is built: a path two sources publish
//! with different content (the first in config order wins), and a path that is a file in one
//! place and a directory in another (the directory wins).
//!
//! Only layers whose mounts overlap are compared, so a view whose sources have mounts of
//! their own costs one pass over nothing. A source's retained snapshots filling in its
//! current paths are not compared with its current snapshot: they only ever add what the
//! current one lacks.

use std::sync::Arc;

use super::is_fill_in_path;
use super::layers::{relative, Layer, Role};
use super::part::SourcePart;

/// Whether two layers can serve the same path, or a file where the other has a directory.
/// Mounts nest or are apart; when they nest, the shared ground is the inner mount's tree
/// and its ancestors, which the inner layer fills if it serves anything at all.
pub fn touch(a: &Layer<'_>, b: &Layer<'_>) -> bool {
    if within(b.mount, a.mount) {
        reaches(a, b.mount)
    } else if within(a.mount, b.mount) {
        reaches(b, a.mount)
    } else {
        false
    }
}

/// Whether `mount` is `outer` or below it.
fn within(mount: &str, outer: &str) -> bool {
    outer.is_empty() || relative(mount, outer).is_some()
}

/// Whether `layer` serves something at or below `mount`, or a file at one of its ancestors.
fn reaches(layer: &Layer<'_>, mount: &str) -> bool {
    let key = if mount.is_empty() { "/" } else { mount };
    if layer.has_below(key) || layer.file(key).is_some() {
        return true;
    }
    let mut at = mount;
    while let Some(cut) = at.rfind('/') {
        at = &at[..cut];
        if !at.is_empty() && layer.file(at).is_some() {
            return true;
        }
    }
    false
}

/// Every conflicting path, sorted.
pub fn find(parts: &[Arc<SourcePart>], layers: &[Layer<'_>]) -> Vec<String> {
    let mut conflicts = Vec::new();
    for part in parts {
        let at_mount = part.mount_clashes.iter().map(|rel| join(&part.mount, rel));
        conflicts.extend(at_mount);
        for snapshot in &part.retained {
            conflicts.extend(snapshot.clashes.iter().map(|rel| join(&snapshot.url, rel)));
        }
    }
    for (j, later) in layers.iter().enumerate() {
        // One source's layers at its own mount are covered by its `mount_clashes`, and its
        // fill-ins only add what nobody before them serves.
        let touching: Vec<&Layer<'_>> = layers[..j]
            .iter()
            .filter(|earlier| !(earlier.part == later.part && earlier.mount == later.mount))
            .filter(|earlier| touch(earlier, later))
            .collect();
        if touching.is_empty() {
            continue;
        }
        if later.role != Role::FillIn {
            compare(&layers[..j], later, &mut conflicts);
        }
        for earlier in touching {
            clashes(earlier, later, &mut conflicts);
            clashes(later, earlier, &mut conflicts);
        }
    }
    conflicts.sort();
    conflicts.dedup();
    conflicts
}

/// Paths of `later` that the layers before it serve with other content.
fn compare(earlier: &[Layer<'_>], later: &Layer<'_>, conflicts: &mut Vec<String>) {
    later.paths().scan_prefix(b"", |path, row| {
        if let Ok(path) = std::str::from_utf8(path) {
            let full = join(later.mount, path);
            let winner = earlier.iter().find_map(|layer| layer.file(&full));
            if winner.is_some_and(|f| f.object != later.files.get(row).object) {
                conflicts.push(full);
            }
        }
        true
    });
}

/// Files of `files` that are directories in `dirs`.
fn clashes(files: &Layer<'_>, dirs: &Layer<'_>, conflicts: &mut Vec<String>) {
    files.paths().scan_prefix(b"", |path, _| {
        let path = std::str::from_utf8(path)
            .ok()
            .filter(|p| files.role != Role::FillIn || is_fill_in_path(p));
        if let Some(path) = path {
            let full = join(files.mount, path);
            if dirs.has_below(&full) {
                conflicts.push(full);
            }
        }
        true
    });
}

pub fn join(mount: &str, rel: &str) -> String {
    format!("{mount}/{rel}")
}
