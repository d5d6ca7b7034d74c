//! Directories, derived from the sorted paths: a directory is the range of paths that start
//! with its name and `/`, so listing one is a range scan per layer and no directory is kept
//! in memory. A layer mounted below the directory counts as a whole, with the newest date
//! its index keeps, so the root and `/.snapshots/` list without reading any path.
//!
//! A directory's date is the newest of every file published below it, including one that
//! loses a conflicting path to another source: finding only the winners' dates would cost a
//! lookup per path.

use std::collections::BTreeMap;

use super::layers::{Layer, Role};
use super::{is_fill_in_path, Child, DirNode, View};

/// The listing of directory `key` (`/a/b` form, root `/`), or `None` if nothing is below it.
pub fn list(view: &View, key: &str) -> Option<DirNode> {
    let mut children: BTreeMap<(String, bool), i64> = BTreeMap::new();
    let mut mtime = 0;
    for layer in view.layers() {
        if let Some(name) = mount_below(key, layer.mount) {
            if let Some(below) = layer.newest() {
                mtime = mtime.max(below);
                newest(&mut children, name, true, below);
            }
            continue;
        }
        let Some(rel) = layer.relative(key) else {
            continue;
        };
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        // Paths come sorted, so one child's paths come together: gather each run, then
        // record it once (a run can be a whole subtree of millions of paths).
        let mut run: Option<(String, bool, i64)> = None;
        served(&layer, &prefix, |path, file_mtime| {
            let rest = &path[prefix.len()..];
            let (name, is_dir) = match rest.split_once('/') {
                Some((name, _)) => (name, true),
                None => (rest, false),
            };
            mtime = mtime.max(file_mtime);
            match &mut run {
                Some((n, d, newest_in_run)) if n == name && *d == is_dir => {
                    *newest_in_run = (*newest_in_run).max(file_mtime);
                }
                _ => {
                    if let Some((n, d, m)) = run.replace((name.to_string(), is_dir, file_mtime)) {
                        newest(&mut children, &n, d, m);
                    }
                }
            }
        });
        if let Some((n, d, m)) = run {
            newest(&mut children, &n, d, m);
        }
    }
    if children.is_empty() && key != "/" {
        return None;
    }
    let children = children
        .into_iter()
        .map(|((name, is_dir), mtime)| Child {
            name: name.into_boxed_str(),
            is_dir,
            mtime,
        })
        .collect();
    Some(DirNode { children, mtime })
}

/// Records child `name` with `mtime` if that is newer than what it has.
fn newest(children: &mut BTreeMap<(String, bool), i64>, name: &str, is_dir: bool, mtime: i64) {
    let slot = children.entry((name.to_string(), is_dir)).or_insert(mtime);
    *slot = (*slot).max(mtime);
}

/// The first segment of `mount` below directory `key`, if the mount is strictly below it.
fn mount_below<'m>(key: &str, mount: &'m str) -> Option<&'m str> {
    let rest = if key == "/" {
        mount.strip_prefix('/')?
    } else {
        mount.strip_prefix(key)?.strip_prefix('/')?
    };
    rest.split('/').next().filter(|name| !name.is_empty())
}

/// Calls `visit` with each path (relative to the layer's mount) that the layer serves under
/// `prefix`, and its Last-Modified.
fn served(layer: &Layer<'_>, prefix: &str, mut visit: impl FnMut(&str, i64)) {
    layer.paths().scan_prefix(prefix.as_bytes(), |path, row| {
        let Ok(path) = std::str::from_utf8(path) else {
            return true;
        };
        if layer.role == Role::FillIn && !is_fill_in_path(path) {
            return true;
        }
        visit(path, layer.files.mtime(row));
        true
    });
}
