//! Paths that are a file and also have files below them (served as a directory, which
//! wins). In sorted order every path that starts with `p` comes right after `p`, so the paths
//! that are a prefix of the current one form a chain and one pass with a stack finds them all.

use super::is_fill_in_path;
use super::paths::{Cursor, PathIndex};

#[derive(Default)]
pub struct ClashFinder {
    /// The last path seen.
    last: Vec<u8>,
    /// Lengths of the chain: each `last[..len]` is a path seen, and a prefix of the next.
    chain: Vec<usize>,
    pub found: Vec<Box<str>>,
}

impl ClashFinder {
    /// Takes the next path; paths must come in strictly increasing order.
    pub fn see(&mut self, path: &[u8]) {
        while let Some(&len) = self.chain.last() {
            if path.starts_with(&self.last[..len]) {
                break;
            }
            self.chain.pop();
        }
        if let Some(&len) = self
            .chain
            .last()
            .filter(|&&len| path.get(len) == Some(&b'/'))
        {
            let name = String::from_utf8_lossy(&self.last[..len]);
            if self.found.last().map(|f| &**f) != Some(&*name) {
                self.found.push(name.into());
            }
        }
        self.last.clear();
        self.last.extend_from_slice(path);
        self.chain.push(path.len());
    }
}

/// Clashes in the union of the paths served at one mount: all of `whole`, and only the
/// fill-in paths of each of `fill_in`. A k-way merge of the sorted indices.
pub fn in_union(whole: Option<&PathIndex>, fill_in: &[&PathIndex]) -> Vec<Box<str>> {
    let mut cursors: Vec<(Cursor<'_>, bool)> = whole
        .map(|index| (index.cursor(), false))
        .into_iter()
        .chain(fill_in.iter().map(|index| (index.cursor(), true)))
        .collect();
    for (cursor, filtered) in &mut cursors {
        skip_unserved(cursor, *filtered);
    }
    let mut finder = ClashFinder::default();
    let mut last: Vec<u8> = Vec::new();
    let mut first = true;
    while let Some(min) = cursors.iter().filter_map(|(c, _)| c.path()).min() {
        if first || min != last.as_slice() {
            finder.see(min);
            last.clear();
            last.extend_from_slice(min);
            first = false;
        }
        for (cursor, filtered) in &mut cursors {
            if cursor.path() == Some(last.as_slice()) {
                cursor.advance();
                skip_unserved(cursor, *filtered);
            }
        }
    }
    finder.found
}

fn skip_unserved(cursor: &mut Cursor<'_>, filtered: bool) {
    while filtered
        && cursor
            .path()
            .is_some_and(|p| !std::str::from_utf8(p).is_ok_and(is_fill_in_path))
    {
        cursor.advance();
    }
}
