//! A sorted set of paths, each with a number, front-coded in one byte buffer.
//!
//! Paths of a mirror share long beginnings (`pool/main/l/libfoo/libfoo-dev_…`), so each path
//! is stored as the length it shares with the one before it plus the bytes that differ. Every
//! [`BLOCK`]th path is stored whole, which makes a binary search over blocks possible; within a
//! block the search walks forward comparing only the differing bytes, so a lookup never
//! rebuilds a path and never allocates. A directory is the range of paths that start with its
//! name and `/`, so it needs no entry of its own.

/// Paths per block: the longest forward walk of a lookup.
const BLOCK: usize = 16;

/// An immutable, sorted set of unique paths with a `u32` each.
#[derive(Debug, Default)]
pub struct PathIndex {
    /// Entries: varint shared length, varint suffix length, suffix bytes, varint value.
    bytes: Vec<u8>,
    /// Byte offset of each block's first entry (which shares nothing).
    blocks: Vec<u32>,
    /// Each block's first path again, back to back, where `head_ends` says each one ends: the
    /// binary search over blocks reads only these. Together a few hundred kilobytes at a
    /// million paths, they stay in the processor's cache where probes into `bytes` (tens of
    /// megabytes) would each miss it; about 3 bytes per path.
    heads: Vec<u8>,
    head_ends: Vec<u32>,
    len: usize,
}

/// Where a search for a target stopped: the first path not below the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seek {
    /// The value of the path equal to the target, if there is one.
    pub found: Option<u32>,
    /// How many leading bytes the target shares with the first path not below it.
    pub shared: usize,
    /// Every path is below the target.
    pub past_end: bool,
}

/// Builds a [`PathIndex`] from paths given in strictly increasing order.
#[derive(Default)]
pub struct PathIndexBuilder {
    index: PathIndex,
    last: Vec<u8>,
}

impl PathIndexBuilder {
    /// Adds a path; `false` (and nothing added) when it is not after the previous one.
    pub fn push(&mut self, path: &[u8], value: u32) -> bool {
        if self.index.len > 0 && path <= self.last.as_slice() {
            return false;
        }
        let shared = if self.index.len.is_multiple_of(BLOCK) {
            self.index.blocks.push(self.index.bytes.len() as u32);
            self.index.heads.extend_from_slice(path);
            self.index.head_ends.push(self.index.heads.len() as u32);
            0
        } else {
            common_prefix(&self.last, path)
        };
        let bytes = &mut self.index.bytes;
        put_varint(bytes, shared as u64);
        put_varint(bytes, (path.len() - shared) as u64);
        bytes.extend_from_slice(&path[shared..]);
        put_varint(bytes, u64::from(value));
        self.last.clear();
        self.last.extend_from_slice(path);
        self.index.len += 1;
        true
    }

    /// The last path added, `None` before the first.
    pub fn last(&self) -> Option<&[u8]> {
        (self.index.len > 0).then_some(self.last.as_slice())
    }

    pub fn finish(mut self) -> PathIndex {
        self.index.bytes.shrink_to_fit();
        self.index.blocks.shrink_to_fit();
        self.index.heads.shrink_to_fit();
        self.index.head_ends.shrink_to_fit();
        self.index
    }
}

impl PathIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.bytes.capacity()
            + self.blocks.capacity() * 4
            + self.heads.capacity()
            + self.head_ends.capacity() * 4
    }

    /// The value of `path`, if it is in the set.
    pub fn get(&self, path: &[u8]) -> Option<u32> {
        self.seek(path).found
    }

    /// Whether some path starts with `prefix`.
    pub fn has_prefix(&self, prefix: &[u8]) -> bool {
        let seek = self.seek(prefix);
        !seek.past_end && seek.shared == prefix.len()
    }

    /// Finds the first path not below `target`: binary search over the blocks' first paths,
    /// then a walk through one block that compares only the bytes each path adds.
    pub fn seek(&self, target: &[u8]) -> Seek {
        let after = self.blocks_where(|head| head <= target);
        if after == 0 {
            // Below every path (or empty): the first path, if any, is the answer.
            return match self.blocks.first() {
                Some(&at) => Seek {
                    found: None,
                    shared: common_prefix(self.entry(at as usize).suffix, target),
                    past_end: false,
                },
                None => PAST_END,
            };
        }
        let block = after - 1;
        let end = self.block_end(block);
        let mut at = self.blocks[block] as usize;
        let first = self.entry(at);
        // The block's first path is not above the target.
        let mut matched = common_prefix(first.suffix, target);
        if matched == target.len() && matched == first.suffix.len() {
            return found(first.value, target);
        }
        at = first.next;
        while at < end {
            let e = self.entry(at);
            if e.shared > matched {
                // Agrees with the previous path past where that one left the target: still below.
                at = e.next;
                continue;
            }
            if e.shared < matched {
                // Differs from the previous path at a byte where that one agreed with the
                // target, and is larger there: above the target.
                return Seek {
                    found: None,
                    shared: e.shared,
                    past_end: false,
                };
            }
            let more = common_prefix(e.suffix, &target[matched..]);
            let reach = matched + more;
            let path_ends = more == e.suffix.len();
            let target_ends = reach == target.len();
            match (path_ends, target_ends) {
                (true, true) => return found(e.value, target),
                (false, true) => {
                    return Seek {
                        found: None,
                        shared: reach,
                        past_end: false,
                    }
                }
                (true, false) => {}
                (false, false) if e.suffix[more] > target[reach] => {
                    return Seek {
                        found: None,
                        shared: reach,
                        past_end: false,
                    }
                }
                (false, false) => {}
            }
            matched = reach;
            at = e.next;
        }
        // Every path of the block is below the target: the next block starts above it.
        match self.blocks.get(block + 1) {
            Some(&next) => Seek {
                found: None,
                shared: common_prefix(self.entry(next as usize).suffix, target),
                past_end: false,
            },
            None => PAST_END,
        }
    }

    /// Calls `visit` with every path that starts with `prefix` and its value, in order, until
    /// it returns `false`. The path is rebuilt into one buffer reused for the whole walk.
    pub fn scan_prefix(&self, prefix: &[u8], mut visit: impl FnMut(&[u8], u32) -> bool) {
        let after = self.blocks_where(|head| head < prefix);
        let mut block = after.saturating_sub(1);
        let mut path: Vec<u8> = Vec::new();
        while block < self.blocks.len() {
            let end = self.block_end(block);
            let mut at = self.blocks[block] as usize;
            while at < end {
                let e = self.entry(at);
                path.truncate(e.shared);
                path.extend_from_slice(e.suffix);
                if path.starts_with(prefix) {
                    if !visit(&path, e.value) {
                        return;
                    }
                } else if path.as_slice() > prefix {
                    return;
                }
                at = e.next;
            }
            block += 1;
        }
    }

    /// A cursor on the first path.
    pub fn cursor(&self) -> Cursor<'_> {
        let mut cursor = Cursor {
            index: self,
            next: 0,
            path: Vec::new(),
            value: 0,
            valid: false,
        };
        cursor.advance();
        cursor
    }

    /// Every value, in path order.
    pub fn values(&self) -> impl Iterator<Item = u32> + '_ {
        let mut at = 0;
        std::iter::from_fn(move || {
            if at >= self.bytes.len() {
                return None;
            }
            let e = self.entry(at);
            at = e.next;
            Some(e.value)
        })
    }

    /// How many leading blocks have a first path for which `below` holds (it must hold for a
    /// leading run of blocks only): a binary search over the blocks' first paths.
    fn blocks_where(&self, below: impl Fn(&[u8]) -> bool) -> usize {
        let (mut low, mut high) = (0, self.head_ends.len());
        while low < high {
            let mid = low + (high - low) / 2;
            if below(self.head(mid)) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low
    }

    /// The first path of block `block`.
    fn head(&self, block: usize) -> &[u8] {
        let start = match block {
            0 => 0,
            _ => self.head_ends[block - 1] as usize,
        };
        &self.heads[start..self.head_ends[block] as usize]
    }

    fn block_end(&self, block: usize) -> usize {
        self.blocks
            .get(block + 1)
            .map_or(self.bytes.len(), |&at| at as usize)
    }

    /// The entry at byte offset `at` (always one the builder wrote).
    fn entry(&self, at: usize) -> Entry<'_> {
        let (shared, at) = get_varint(&self.bytes, at);
        let (suffix_len, at) = get_varint(&self.bytes, at);
        let suffix_end = at + suffix_len as usize;
        let suffix = &self.bytes[at..suffix_end];
        let (value, next) = get_varint(&self.bytes, suffix_end);
        Entry {
            shared: shared as usize,
            suffix,
            value: value as u32,
            next,
        }
    }
}

/// Walks the paths in order, rebuilding each into one buffer.
pub struct Cursor<'a> {
    index: &'a PathIndex,
    next: usize,
    path: Vec<u8>,
    value: u32,
    valid: bool,
}

impl Cursor<'_> {
    /// The path the cursor is on, `None` past the last one.
    pub fn path(&self) -> Option<&[u8]> {
        self.valid.then_some(self.path.as_slice())
    }

    /// The path the cursor is on and its value, `None` past the last one.
    pub fn current(&self) -> Option<(&[u8], u32)> {
        self.valid.then_some((self.path.as_slice(), self.value))
    }

    pub fn advance(&mut self) {
        self.valid = self.next < self.index.bytes.len();
        if self.valid {
            let e = self.index.entry(self.next);
            self.path.truncate(e.shared);
            self.path.extend_from_slice(e.suffix);
            self.value = e.value;
            self.next = e.next;
        }
    }
}

struct Entry<'a> {
    shared: usize,
    suffix: &'a [u8],
    value: u32,
    next: usize,
}

const PAST_END: Seek = Seek {
    found: None,
    shared: 0,
    past_end: true,
};

fn found(value: u32, target: &[u8]) -> Seek {
    Seek {
        found: Some(value),
        shared: target.len(),
        past_end: false,
    }
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads a varint the builder wrote at `at`; returns it and the offset after it.
fn get_varint(bytes: &[u8], mut at: usize) -> (u64, usize) {
    let mut value = 0u64;
    let mut shift = 0;
    loop {
        let byte = bytes[at];
        at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return (value, at);
        }
        shift += 7;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeMap;

    fn random_path(rng: &mut rand::rngs::StdRng) -> Vec<u8> {
        let alphabet = b"ab-./z";
        let len = rng.gen_range(0..8);
        (0..len)
            .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
            .collect()
    }

    #[test]
    fn lookups_and_prefixes_equal_a_sorted_map() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        for round in 0..200 {
            let mut reference = BTreeMap::new();
            for i in 0..rng.gen_range(0..60u32) {
                reference.insert(random_path(&mut rng), i + round);
            }
            let mut builder = PathIndexBuilder::default();
            for (path, value) in &reference {
                assert!(builder.push(path, *value));
            }
            let index = builder.finish();
            assert_eq!(index.len(), reference.len());
            assert!(index.values().eq(reference.values().copied()));
            for _ in 0..100 {
                let target = random_path(&mut rng);
                assert_eq!(index.get(&target), reference.get(&target).copied());
                let next = reference.range(target.clone()..).next();
                let seek = index.seek(&target);
                assert_eq!(seek.past_end, next.is_none(), "target {target:?}");
                let expected = next.map_or(0, |(p, _)| common_prefix(p, &target));
                assert_eq!(seek.shared, expected, "target {target:?}");
                assert_eq!(
                    index.has_prefix(&target),
                    reference.keys().any(|p| p.starts_with(&target))
                );
                let mut scanned = Vec::new();
                index.scan_prefix(&target, |p, v| {
                    scanned.push((p.to_vec(), v));
                    true
                });
                let wanted: Vec<_> = reference
                    .iter()
                    .filter(|(p, _)| p.starts_with(&target))
                    .map(|(p, v)| (p.clone(), *v))
                    .collect();
                assert_eq!(scanned, wanted);
            }
        }
    }

    #[test]
    fn paths_out_of_order_are_refused() {
        let mut builder = PathIndexBuilder::default();
        assert!(builder.push(b"b", 0));
        assert!(!builder.push(b"a", 1));
        assert!(!builder.push(b"b", 1));
        assert_eq!(builder.finish().len(), 1);
    }
}
