//! The scan of the new image: rolls the block hash over a stretch of it, looks positions up
//! in the index in batches, confirms candidates by comparing bytes, and grows every match
//! backwards and forwards into the copy and literal commands that rebuild the stretch.

use std::io;

use super::delta::Command;
use super::hash::{mix, Weights};
use super::index::{Bucket, Index, Lookup};
use super::source::{Source, READ_CHUNK};

/// Positions of the new image looked up together. A lookup reads the filter, then maybe a
/// bucket's size and its tags, each at a random place in a table larger than the CPU's
/// caches: position after position, the scan would wait for memory at every byte. In a batch,
/// each step's loads for all positions are in flight at once (it made the scan 2.5× faster).
const BATCH: usize = 256;
const _: () = assert!(BATCH <= 256, "positions in a batch are u8");

/// Bytes of the new image a scanning thread holds at once.
pub(super) const WINDOW: usize = READ_CHUNK;

/// Bytes before the scan position a window keeps when it moves on, so that a match usually
/// grows backwards without a read (rarely further than a block: the block before would have
/// matched).
const LOOKBACK: usize = 4096;

/// Largest read of the new image before the window, when a match grows back that far.
const BACK_READ: usize = 64 << 10;

/// First read of the old image when a match grows forwards; reads double up to
/// [`READ_CHUNK`], so short matches read little and long ones (gigabytes) make few syscalls.
const FIRST_READ: usize = 4096;

/// A stretch of the new image in memory: bytes `base..base + filled`, never past `end` (the
/// end of the segment being scanned).
struct Window<'a> {
    source: &'a dyn Source,
    end: u64,
    buf: Vec<u8>,
    base: u64,
    filled: usize,
}

impl<'a> Window<'a> {
    fn new(source: &'a dyn Source, block: usize) -> Window<'a> {
        Window {
            source,
            end: 0,
            buf: vec![0; WINDOW.max(2 * block + 1) + LOOKBACK],
            base: 0,
            filled: 0,
        }
    }

    /// First byte after the window.
    fn limit(&self) -> u64 {
        self.base + self.filled as u64
    }

    fn load(&mut self, start: u64) -> io::Result<()> {
        let len = (self.end - start).min(self.buf.len() as u64) as usize;
        self.source.read_at(start, &mut self.buf[..len])?;
        self.base = start;
        self.filled = len;
        Ok(())
    }

    /// Brings `start..start + len` (at most a block and a byte, all before `end`) in, with
    /// up to [`LOOKBACK`] bytes before it but none before `keep_from`.
    fn ensure(&mut self, start: u64, len: usize, keep_from: u64) -> io::Result<()> {
        if start >= self.base && start + len as u64 <= self.limit() {
            return Ok(());
        }
        let back = (start - keep_from).min(LOOKBACK as u64);
        self.load(start - back)
    }

    /// Bytes `start..start + len`, which must be in the window.
    fn slice(&self, start: u64, len: usize) -> &[u8] {
        let at = (start - self.base) as usize;
        &self.buf[at..at + len]
    }

    fn contains(&self, start: u64, len: usize) -> bool {
        start >= self.base && start + len as u64 <= self.limit()
    }
}

/// How many leading bytes `a` and `b` share.
fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    // Whole stretches by memcmp, then the differing one word by word.
    const STRETCH: usize = 256;
    let mut same = 0;
    for (x, y) in a.chunks(STRETCH).zip(b.chunks(STRETCH)) {
        if x == y {
            same += x.len();
            continue;
        }
        let mut words = x.chunks_exact(8).zip(y.chunks_exact(8));
        for (u, v) in &mut words {
            let diff = u64::from_le_bytes(u.try_into().expect("8 bytes"))
                ^ u64::from_le_bytes(v.try_into().expect("8 bytes"));
            if diff != 0 {
                return same + (diff.trailing_zeros() / 8) as usize;
            }
            same += 8;
        }
        let tail = x.len() / 8 * 8;
        return same
            + x[tail..]
                .iter()
                .zip(&y[tail..])
                .take_while(|(p, q)| p == q)
                .count();
    }
    same
}

/// A scanning thread's state: the buffers it keeps from segment to segment.
pub(super) struct Scan<'a> {
    index: Lookup<'a>,
    weights: &'a Weights,
    old: &'a dyn Source,
    new: Window<'a>,
    /// Old-image bytes: a candidate block, or the next stretch a match grows into.
    old_buf: Vec<u8>,
    /// New-image bytes before the window, when a match grows back that far.
    back_buf: Vec<u8>,
}

impl<'a> Scan<'a> {
    /// A scanning thread's state, its buffers allocated once for all its segments.
    pub(super) fn new(
        index: &'a Index,
        weights: &'a Weights,
        old: &'a dyn Source,
        new: &'a dyn Source,
    ) -> Scan<'a> {
        let block = index.block;
        Scan {
            index: index.lookup(),
            weights,
            old,
            new: Window::new(new, block),
            old_buf: vec![0; READ_CHUNK.max(block)],
            back_buf: vec![0; BACK_READ.max(block)],
        }
    }

    /// An old-image offset whose block equals `window`, if any.
    fn find(
        index: &Lookup,
        old: &dyn Source,
        old_buf: &mut [u8],
        bucket: Bucket,
        window: &[u8],
    ) -> io::Result<Option<u64>> {
        let block = window.len();
        for number in index.candidates(bucket) {
            let start = u64::from(number) * block as u64;
            old.read_at(start, &mut old_buf[..block])?;
            if old_buf[..block] == *window {
                return Ok(Some(start));
            }
        }
        Ok(None)
    }

    /// How far `new[..at]` and `old[..source]` agree backwards, up to `max` bytes.
    fn grow_back(&mut self, at: u64, source: u64, max: u64) -> io::Result<u64> {
        let mut grown = 0;
        let mut chunk = self.index.block;
        while grown < max {
            let len = (max - grown).min(chunk as u64) as usize;
            let (new_from, old_from) = (at - grown - len as u64, source - grown - len as u64);
            let old_bytes = &mut self.old_buf[..len];
            self.old.read_at(old_from, old_bytes)?;
            let new_bytes = if self.new.contains(new_from, len) {
                self.new.slice(new_from, len)
            } else {
                let bytes = &mut self.back_buf[..len];
                self.new.source.read_at(new_from, bytes)?;
                bytes
            };
            let same = new_bytes
                .iter()
                .rev()
                .zip(old_bytes.iter().rev())
                .take_while(|(a, b)| a == b)
                .count();
            grown += same as u64;
            if same < len {
                break;
            }
            chunk = (chunk * 2).min(self.back_buf.len());
        }
        Ok(grown)
    }

    /// How far `new[at..]` and `old[source..]` agree, up to `max` bytes. Moves the window
    /// (to `at` or later) when the match runs past it.
    fn grow_forward(&mut self, at: u64, source: u64, max: u64) -> io::Result<u64> {
        let mut grown = 0;
        let mut chunk = FIRST_READ;
        while grown < max {
            let pos = at + grown;
            if !self.new.contains(pos, 1) {
                self.new.load(pos)?;
            }
            let len = (self.new.limit() - pos).min(max - grown).min(chunk as u64) as usize;
            let old_bytes = &mut self.old_buf[..len];
            self.old.read_at(source + grown, old_bytes)?;
            let same = common_prefix(self.new.slice(pos, len), old_bytes);
            grown += same as u64;
            if same < len {
                break;
            }
            chunk = (chunk * 2).min(READ_CHUNK);
        }
        Ok(grown)
    }

    /// The commands that rebuild `new[from..to]` (matches reach back no further than `from`).
    pub(super) fn run(&mut self, from: u64, to: u64) -> io::Result<Vec<Command>> {
        let block = self.index.block;
        let block64 = block as u64;
        let old_size = self.old.size();
        let mut commands = Vec::new();
        if to - from < block64 || old_size < block64 {
            if to > from {
                commands.push(Command::Literal {
                    start: from,
                    end: to,
                });
            }
            return Ok(commands);
        }
        self.new.end = to;
        self.new.filled = 0;
        let mut literal_start = from;
        let mut p = from;
        self.new.ensure(p, block, literal_start)?;
        let mut h = self.weights.hash(self.new.slice(p, block));
        loop {
            // Roll through the window until a block matches or the window ends.
            let found = 'roll: loop {
                let Scan {
                    index,
                    weights,
                    old,
                    new,
                    old_buf,
                    ..
                } = &mut *self;
                let buf = &new.buf[..new.filled];
                // The window ends (in the buffer) at `stop`; `i` is the next position to look
                // up, its hash `h`, and `i + block <= stop`.
                let stop = (to.min(new.limit()) - new.base) as usize;
                let mut i = (p - new.base) as usize;
                let mut hashes = [0u32; BATCH];
                let mut hits = [false; BATCH];
                let mut passed = [0u8; BATCH];
                let mut buckets = [Bucket::default(); BATCH];
                let (last, h_last) = loop {
                    let n = BATCH.min(stop + 1 - block - i);
                    hashes[0] = h;
                    for k in 1..n {
                        let q = i + k - 1;
                        hashes[k] = weights.roll(hashes[k - 1], buf[q], buf[q + block]);
                    }
                    let h_last = hashes[n - 1];
                    // Filter, then the survivors' bucket sizes, then their tags: each step's
                    // loads in flight together.
                    for (h, hit) in hashes[..n].iter_mut().zip(&mut hits) {
                        *h = mix(*h);
                        *hit = index.may_hold(*h);
                    }
                    let mut survivors = 0;
                    for (k, &hit) in hits[..n].iter().enumerate() {
                        passed[survivors] = k as u8;
                        survivors += usize::from(hit);
                    }
                    for (bucket, &k) in buckets.iter_mut().zip(&passed[..survivors]) {
                        *bucket = index.bucket(hashes[k as usize]);
                    }
                    for bucket in &mut buckets[..survivors] {
                        index.touch(bucket);
                    }
                    for (&bucket, &k) in buckets.iter().zip(&passed[..survivors]) {
                        let q = i + k as usize;
                        let window = &buf[q..q + block];
                        if let Some(source) = Self::find(index, *old, old_buf, bucket, window)? {
                            p = new.base + q as u64;
                            break 'roll Some(source);
                        }
                    }
                    let last = i + n - 1;
                    if last + block >= stop {
                        break (last, h_last);
                    }
                    h = weights.roll(h_last, buf[last], buf[last + block]);
                    i = last + 1;
                };
                // `last` was looked up; roll past it, moving the window on if need be.
                p = new.base + last as u64;
                if p + block64 >= to {
                    break None;
                }
                new.ensure(p, block + 1, literal_start)?;
                let bytes = new.slice(p, block + 1);
                h = weights.roll(h_last, bytes[0], bytes[block]);
                p += 1;
            };
            let Some(source) = found else { break };
            // Grow the match backwards into the pending literal, then forwards.
            let back = self.grow_back(p, source, (p - literal_start).min(source))?;
            let (start, source) = (p - back, source - back);
            let ahead = (to - (p + block64)).min(old_size - (source + back + block64));
            let end =
                p + block64 + self.grow_forward(p + block64, source + back + block64, ahead)?;
            if start > literal_start {
                commands.push(Command::Literal {
                    start: literal_start,
                    end: start,
                });
            }
            match commands.last_mut() {
                // Adjacent in both images: one longer copy.
                Some(Command::Copy { start: s, len })
                    if *s + *len == source && start == literal_start =>
                {
                    *len += end - start
                }
                _ => commands.push(Command::Copy {
                    start: source,
                    len: end - start,
                }),
            }
            p = end;
            literal_start = end;
            if p + block64 > to {
                break;
            }
            self.new.ensure(p, block, literal_start)?;
            h = self.weights.hash(self.new.slice(p, block));
        }
        if literal_start < to {
            commands.push(Command::Literal {
                start: literal_start,
                end: to,
            });
        }
        Ok(commands)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::data;
    use super::*;

    /// A match that grows backwards past the window and past a read's worth.
    #[test]
    fn grows_back_beyond_the_window() {
        let block = 128;
        let old = data(3 * WINDOW, 21);
        let at = 2 * WINDOW as u64 + 100;
        let mut new = old.clone();
        new[at as usize - 5000] ^= 1;
        new[at as usize + 300_000] ^= 1;
        let (old, new) = (old.as_slice(), new.as_slice());
        let weights = Weights::new(block);
        let index = Index::build(&old, block, &weights, 1).unwrap();
        let mut scan = Scan::new(&index, &weights, &old, &new);
        scan.new.end = new.len() as u64;
        scan.new.ensure(at, block, at).unwrap();
        assert_eq!(scan.grow_back(at, at, at).unwrap(), 4999);
        let ahead = (new.len() as u64) - at;
        assert_eq!(scan.grow_forward(at, at, ahead).unwrap(), 300_000);
        assert_eq!(
            scan.grow_forward(at + 300_001, at + 300_001, 1000).unwrap(),
            1000
        );
    }

    #[test]
    fn common_prefix_finds_the_first_difference() {
        let a = data(1000, 31);
        for diff in [0, 1, 7, 8, 255, 256, 257, 999] {
            let mut b = a.clone();
            b[diff] ^= 1;
            assert_eq!(common_prefix(&a, &b), diff);
        }
        assert_eq!(common_prefix(&a, &a), 1000);
        assert_eq!(common_prefix(&a[..10], &a), 10);
    }
}
