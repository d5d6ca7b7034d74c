//! The distinct files of one source, in flat arrays shared by all its snapshots.
//!
//! Most paths hold the same file in every retained snapshot, so a snapshot's path index
//! names a row here instead of carrying the file itself. Rows are columns of plain values
//! (no per-row heap allocation); the rare stamped rows (hard-linked objects) keep their stamp
//! in a small side table.

use crate::manifest::Entry;
use crate::store::{ObjectId, Stamp};

use super::FileNode;

/// Rows of files: object, size, Last-Modified and whether the bytes can never change.
#[derive(Debug, Default)]
pub struct FileTable {
    objects: Vec<ObjectId>,
    sizes: Vec<u64>,
    mtimes: Vec<i64>,
    /// One bit per row.
    immutable: Vec<u64>,
    /// `(row, stamp)` sorted by row, for the rows that have one.
    stamps: Vec<(u32, Stamp)>,
}

impl FileTable {
    /// Adds a row for `entry` and returns its number.
    pub fn push(&mut self, entry: &Entry) -> u32 {
        let row = self.objects.len();
        self.objects.push(entry.object);
        self.sizes.push(entry.size);
        self.mtimes.push(entry.mtime);
        if row.is_multiple_of(64) {
            self.immutable.push(0);
        }
        if entry.immutable {
            self.immutable[row / 64] |= 1 << (row % 64);
        }
        if let Some(stamp) = entry.stamp {
            self.stamps.push((row as u32, stamp));
        }
        row as u32
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Takes back the rows from `len` on (added for a snapshot that is then indexed again).
    pub fn truncate(&mut self, len: usize) {
        self.objects.truncate(len);
        self.sizes.truncate(len);
        self.mtimes.truncate(len);
        self.immutable.truncate(len.div_ceil(64));
        if let Some(last) = self.immutable.last_mut() {
            if !len.is_multiple_of(64) {
                *last &= (1u64 << (len % 64)) - 1;
            }
        }
        self.stamps.retain(|(row, _)| (*row as usize) < len);
    }

    /// Whether row `row` holds exactly what `entry` describes (and can be shared).
    pub fn same(&self, row: u32, entry: &Entry) -> bool {
        let file = self.get(row);
        file.object == entry.object
            && file.size == entry.size
            && file.mtime == entry.mtime
            && file.stamp == entry.stamp
            && file.immutable == entry.immutable
    }

    pub fn get(&self, row: u32) -> FileNode {
        let at = row as usize;
        FileNode {
            object: self.objects[at],
            size: self.sizes[at],
            mtime: self.mtimes[at],
            stamp: self
                .stamps
                .binary_search_by_key(&row, |(r, _)| *r)
                .ok()
                .map(|i| self.stamps[i].1),
            immutable: self.immutable[at / 64] & (1 << (at % 64)) != 0,
        }
    }

    /// The object and size of row `row`.
    pub fn object_and_size(&self, row: u32) -> (ObjectId, u64) {
        (self.objects[row as usize], self.sizes[row as usize])
    }

    pub fn mtime(&self, row: u32) -> i64 {
        self.mtimes[row as usize]
    }

    /// Every object named by a row (with repeats when rows share an object).
    pub fn objects(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.objects.iter().copied()
    }

    pub fn shrink_to_fit(&mut self) {
        self.objects.shrink_to_fit();
        self.sizes.shrink_to_fit();
        self.mtimes.shrink_to_fit();
        self.immutable.shrink_to_fit();
        self.stamps.shrink_to_fit();
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.objects.capacity() * 32
            + self.sizes.capacity() * 8
            + self.mtimes.capacity() * 8
            + self.immutable.capacity() * 8
            + self.stamps.capacity() * std::mem::size_of::<(u32, Stamp)>()
    }
}
