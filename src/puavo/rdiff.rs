//! An rdiff (librsync delta format) generator: `rdiff patch OLD DELTA NEW` rebuilds NEW.
//!
//! `rdiff` works from a signature because it runs where only one side is known. Here both
//! images are local, so the generator indexes the old image's blocks directly, rolls a hash
//! over the new one, confirms candidates by comparing bytes, and grows every match forwards
//! and backwards byte by byte — so matches are not cut at block edges and deltas come out
//! no larger than rdiff's. The new image is split in as many parts as there are cores.
//!
//! Format (big-endian): magic `72 73 02 36`, commands, `00`. `01..40`: literal of 1..64 bytes
//! that follow; `41..44`: literal with a 1/2/4/8-byte length; `45..54`: COPY with
//! 1/2/4/8-byte start and length (`45 + 4*class(start) + class(len)`); never a zero-length COPY.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

/// The delta file's magic number.
pub const DELTA_MAGIC: u32 = 0x7273_0236;

/// Parameters of a delta (they are part of the cache key for computed deltas).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Bytes per indexed block of the old image (puavo-os uses 128 with rdiff).
    pub block: usize,
    /// Worker threads (0: one per core).
    pub threads: usize,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            block: 128,
            threads: 0,
        }
    }
}

/// What a delta did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub copied: u64,
    pub literal: u64,
    pub commands: u64,
    pub delta_bytes: u64,
}

enum Command {
    Copy {
        start: u64,
        len: u64,
    },
    /// A range of the new image sent as is.
    Literal {
        start: u64,
        end: u64,
    },
}

/// Longest chain of same-hash blocks kept: long runs of identical blocks (zero padding) would
/// otherwise make lookups slow without finding anything better.
const MAX_CHAIN: usize = 8;

/// Index of the old image's blocks: bucket heads plus a next-link per block.
struct Index<'a> {
    old: &'a [u8],
    block: usize,
    mask: usize,
    heads: Vec<u32>,
    next: Vec<u32>,
    /// Each block's full hash: a bucket shares ~40% of lookups with unrelated blocks, and
    /// comparing their bytes would fault the whole old image into memory.
    hashes: Vec<u32>,
}

const MULTIPLIER: u32 = 0x01000193;

/// Weights of the bytes of a window: `MULTIPLIER^(len-1-i)`. With them the window hash is a
/// sum of independent products, which the compiler turns into vector code; rolling it by one
/// byte stays two multiplications.
struct Weights(Vec<u32>);

impl Weights {
    fn new(block: usize) -> Weights {
        let mut weights = vec![1u32; block];
        for i in (0..block.saturating_sub(1)).rev() {
            weights[i] = weights[i + 1].wrapping_mul(MULTIPLIER);
        }
        Weights(weights)
    }

    /// Same value as rolling `h = h * MULTIPLIER + (byte + 1)` over the window.
    fn hash(&self, window: &[u8]) -> u32 {
        window.iter().zip(&self.0).fold(0u32, |h, (b, w)| {
            h.wrapping_add((u32::from(*b) + 1).wrapping_mul(*w))
        })
    }

    /// The weight of the byte that leaves the window.
    fn top(&self) -> u32 {
        self.0[0]
    }
}

impl<'a> Index<'a> {
    fn build(
        old: &'a [u8],
        block: usize,
        weights: &Weights,
        threads: usize,
        release: &dyn Release,
    ) -> Index<'a> {
        let blocks = old.len() / block;
        let buckets = (blocks * 2).next_power_of_two().max(1024);
        let mut index = Index {
            old,
            block,
            mask: buckets - 1,
            heads: vec![u32::MAX; buckets],
            next: vec![u32::MAX; blocks],
            hashes: vec![0; blocks],
        };
        let mut chain_len = vec![0u8; buckets];
        // Hash a chunk of blocks on every core, insert them, give the chunk's pages back.
        let per_chunk = (RELEASE_EVERY / block).max(1);
        let mut hashes = vec![0u32; per_chunk];
        let mut first = 0;
        while first < blocks {
            let count = per_chunk.min(blocks - first);
            let slots = &mut hashes[..count];
            let per_thread = count.div_ceil(threads.max(1));
            std::thread::scope(|scope| {
                for (part, out) in slots.chunks_mut(per_thread).enumerate() {
                    let start_block = first + part * per_thread;
                    scope.spawn(move || {
                        for (i, slot) in out.iter_mut().enumerate() {
                            let start = (start_block + i) * block;
                            *slot = weights.hash(&old[start..start + block]);
                        }
                    });
                }
            });
            index.hashes[first..first + count].copy_from_slice(slots);
            for (i, h) in slots.iter().enumerate() {
                let bucket = *h as usize & index.mask;
                if chain_len[bucket] as usize >= MAX_CHAIN {
                    continue;
                }
                chain_len[bucket] += 1;
                let block_index = first + i;
                index.next[block_index] = index.heads[bucket];
                index.heads[bucket] = block_index as u32;
            }
            release.old_range(first * block, count * block);
            first += count;
        }
        index
    }

    /// An old-image offset whose block equals `window`, if any.
    fn find(&self, h: u32, window: &[u8]) -> Option<usize> {
        let mut candidate = self.heads[h as usize & self.mask];
        while candidate != u32::MAX {
            let start = candidate as usize * self.block;
            if self.hashes[candidate as usize] == h
                && &self.old[start..start + self.block] == window
            {
                return Some(start);
            }
            candidate = self.next[candidate as usize];
        }
        None
    }
}

/// Gives back memory of mapped pages already used (`new` range, or all of `old`); the kernel
/// keeps them in the page cache, so touching them again is cheap. Keeps RSS flat on 10 GB images.
pub trait Release: Sync {
    fn new_range(&self, start: usize, len: usize);
    fn old_range(&self, start: usize, len: usize);
    fn old_all(&self);
}

/// For inputs that are not mapped.
struct KeepAll;

impl Release for KeepAll {
    fn new_range(&self, _: usize, _: usize) {}
    fn old_range(&self, _: usize, _: usize) {}
    fn old_all(&self) {}
}

/// How much of the new image a scan walks before it gives pages back.
const RELEASE_EVERY: usize = 32 << 20;

/// Finds the commands that rebuild `new[from..to]` (matches may reach back before `from` no
/// further than `from`, and forward no further than `to`).
fn scan(
    index: &Index,
    weights: &Weights,
    new: &[u8],
    from: usize,
    to: usize,
    release: &dyn Release,
) -> Vec<Command> {
    let mut released = from;
    let mut maybe_release = |p: usize, literal_start: usize| {
        // Pages before the pending literal are done with until the delta is written.
        let upto = literal_start.min(p) & !4095;
        if upto > released + RELEASE_EVERY {
            release.new_range(released, upto - released);
            release.old_all();
            released = upto;
        }
    };
    let block = index.block;
    let old = index.old;
    let mut commands = Vec::new();
    let mut literal_start = from;
    let mut p = from;
    if to - from < block || old.len() < block {
        if to > from {
            commands.push(Command::Literal {
                start: from as u64,
                end: to as u64,
            });
        }
        return commands;
    }
    let top = weights.top();
    let mut h = weights.hash(&new[p..p + block]);
    loop {
        if let Some(mut source) = index.find(h, &new[p..p + block]) {
            // Grow the match backwards into the pending literal, then forwards.
            let mut start = p;
            while start > literal_start && source > 0 && new[start - 1] == old[source - 1] {
                start -= 1;
                source -= 1;
            }
            let mut end = p + block;
            let mut source_end = source + (end - start);
            // Long runs compare a page at a time (memcmp), the last stretch byte by byte.
            const STRIDE: usize = 4096;
            let mut mark = end;
            while end + STRIDE <= to
                && source_end + STRIDE <= old.len()
                && new[end..end + STRIDE] == old[source_end..source_end + STRIDE]
            {
                end += STRIDE;
                source_end += STRIDE;
                if end - mark >= RELEASE_EVERY {
                    // An unchanged stretch can be gigabytes: give its pages back as we go.
                    let (new_from, old_from) = (mark & !4095, (source_end - (end - mark)) & !4095);
                    release.new_range(new_from, (end & !4095) - new_from);
                    release.old_range(old_from, (source_end & !4095) - old_from);
                    mark = end;
                }
            }
            while end < to && source_end < old.len() && new[end] == old[source_end] {
                end += 1;
                source_end += 1;
            }
            if start > literal_start {
                commands.push(Command::Literal {
                    start: literal_start as u64,
                    end: start as u64,
                });
            }
            match commands.last_mut() {
                // Adjacent in both images: one longer copy.
                Some(Command::Copy { start: s, len })
                    if *s + *len == source as u64 && start == literal_start =>
                {
                    *len += (end - start) as u64
                }
                _ => commands.push(Command::Copy {
                    start: source as u64,
                    len: (end - start) as u64,
                }),
            }
            p = end;
            literal_start = end;
            maybe_release(p, literal_start);
            if p + block > to {
                break;
            }
            h = weights.hash(&new[p..p + block]);
            continue;
        }
        if p + block >= to {
            break;
        }
        let leaving = u32::from(new[p]) + 1;
        let entering = u32::from(new[p + block]) + 1;
        h = h
            .wrapping_sub(leaving.wrapping_mul(top))
            .wrapping_mul(MULTIPLIER)
            .wrapping_add(entering);
        p += 1;
    }
    if literal_start < to {
        commands.push(Command::Literal {
            start: literal_start as u64,
            end: to as u64,
        });
    }
    commands
}

/// The fewest bytes (1, 2, 4 or 8) that hold `value`, as a class 0..=3.
fn class(value: u64) -> (u8, usize) {
    match value {
        0..=0xff => (0, 1),
        0x100..=0xffff => (1, 2),
        0x1_0000..=0xffff_ffff => (2, 4),
        _ => (3, 8),
    }
}

fn write_number(out: &mut impl Write, value: u64, bytes: usize) -> io::Result<()> {
    out.write_all(&value.to_be_bytes()[8 - bytes..])
}

/// Literal commands carry at most this much each (any length is valid; this bounds buffers).
const LITERAL_PIECE: u64 = 1 << 20;

fn write_commands(
    out: &mut impl Write,
    new: &[u8],
    commands: &[Command],
    stats: &mut Stats,
) -> io::Result<()> {
    for command in commands {
        match *command {
            Command::Copy { start, len } => {
                let (start_class, start_bytes) = class(start);
                let (len_class, len_bytes) = class(len);
                out.write_all(&[0x45 + 4 * start_class + len_class])?;
                write_number(out, start, start_bytes)?;
                write_number(out, len, len_bytes)?;
                stats.copied += len;
                stats.commands += 1;
                stats.delta_bytes += 1 + (start_bytes + len_bytes) as u64;
            }
            Command::Literal { start, end } => {
                let mut at = start;
                while at < end {
                    let len = (end - at).min(LITERAL_PIECE);
                    if len <= 64 {
                        out.write_all(&[len as u8])?;
                        stats.delta_bytes += 1;
                    } else {
                        let (len_class, len_bytes) = class(len);
                        out.write_all(&[0x41 + len_class])?;
                        write_number(out, len, len_bytes)?;
                        stats.delta_bytes += 1 + len_bytes as u64;
                    }
                    out.write_all(&new[at as usize..(at + len) as usize])?;
                    stats.literal += len;
                    stats.commands += 1;
                    stats.delta_bytes += len;
                    at += len;
                }
            }
        }
    }
    Ok(())
}

/// Writes the delta that turns `old` into `new`.
pub fn delta_bytes(
    old: &[u8],
    new: &[u8],
    params: Params,
    out: &mut impl Write,
) -> io::Result<Stats> {
    delta_with(old, new, params, out, &KeepAll)
}

fn delta_with(
    old: &[u8],
    new: &[u8],
    params: Params,
    out: &mut impl Write,
    release: &dyn Release,
) -> io::Result<Stats> {
    let block = params.block.max(16);
    let threads = match params.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let weights = Weights::new(block);
    let index = Index::build(old, block, &weights, threads, release);
    // Parts of the new image, scanned at once; a little of each part's start can only become
    // a literal, which costs nothing measurable at these sizes.
    let parts = if new.len() < (1 << 20) { 1 } else { threads };
    let bounds: Vec<usize> = (0..=parts).map(|i| new.len() * i / parts).collect();
    let results: Vec<Vec<Command>> = std::thread::scope(|scope| {
        let index = &index;
        let weights = &weights;
        let handles: Vec<_> = bounds
            .windows(2)
            .map(|w| {
                let (from, to) = (w[0], w[1]);
                scope.spawn(move || scan(index, weights, new, from, to, release))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("scan thread"))
            .collect()
    });
    let mut stats = Stats::default();
    out.write_all(&DELTA_MAGIC.to_be_bytes())?;
    stats.delta_bytes += 4;
    for commands in &results {
        write_commands(out, new, commands, &mut stats)?;
    }
    out.write_all(&[0])?;
    stats.delta_bytes += 1;
    Ok(stats)
}

/// Delta between two files, written to `out`. Both files are mapped, not read into memory.
pub fn delta_files(
    old: &Path,
    new: &Path,
    params: Params,
    out: &mut impl Write,
) -> io::Result<Stats> {
    let old_file = File::open(old)?;
    let new_file = File::open(new)?;
    let old_map = map(&old_file)?;
    let new_map = map(&new_file)?;
    let release = Unmap {
        old: &old_map,
        new: &new_map,
    };
    delta_with(&old_map, &new_map, params, out, &release)
}

struct Unmap<'a> {
    old: &'a Mapped,
    new: &'a Mapped,
}

impl Release for Unmap<'_> {
    fn new_range(&self, start: usize, len: usize) {
        if let Mapped::Map(map) = self.new {
            // SAFETY: a read-only file mapping: dropped pages read back the same bytes.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
            };
        }
    }

    fn old_range(&self, start: usize, len: usize) {
        if let Mapped::Map(map) = self.old {
            // SAFETY: as above.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
            };
        }
    }

    fn old_all(&self) {
        if let Mapped::Map(map) = self.old {
            // SAFETY: as above.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }
}

/// Maps a file read-only. Empty files map to an empty slice.
fn map(file: &File) -> io::Result<Mapped> {
    if file.metadata()?.len() == 0 {
        return Ok(Mapped::Empty);
    }
    // SAFETY: mirrorbox maps only immutable inputs (objects and images it does not write);
    // a file truncated under us would fault, which is why images are stamped and checked.
    let map = unsafe { memmap2::Mmap::map(file)? };
    Ok(Mapped::Map(map))
}

enum Mapped {
    Empty,
    Map(memmap2::Mmap),
}

impl std::ops::Deref for Mapped {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Empty => &[],
            Mapped::Map(map) => map,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Applies a delta the way librsync's patch does (for unit tests; integration tests use
    /// the real `rdiff patch`).
    fn patch(old: &[u8], delta: &[u8]) -> Vec<u8> {
        assert_eq!(&delta[..4], &DELTA_MAGIC.to_be_bytes());
        let mut out = Vec::new();
        let mut i = 4;
        let number = |bytes: &[u8]| bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
        loop {
            let cmd = delta[i];
            i += 1;
            match cmd {
                0 => break,
                1..=0x40 => {
                    out.extend_from_slice(&delta[i..i + cmd as usize]);
                    i += cmd as usize;
                }
                0x41..=0x44 => {
                    let bytes = 1 << (cmd - 0x41);
                    let len = number(&delta[i..i + bytes]) as usize;
                    i += bytes;
                    out.extend_from_slice(&delta[i..i + len]);
                    i += len;
                }
                0x45..=0x54 => {
                    let c = cmd - 0x45;
                    let (sb, lb) = (1 << (c / 4), 1 << (c % 4));
                    let start = number(&delta[i..i + sb]) as usize;
                    let len = number(&delta[i + sb..i + sb + lb]) as usize;
                    assert!(len > 0, "zero-length copy");
                    i += sb + lb;
                    out.extend_from_slice(&old[start..start + len]);
                }
                other => panic!("bad command {other:#x}"),
            }
        }
        assert_eq!(i, delta.len());
        out
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn round_trips_on_edits() {
        let old = data(3_000_000, 1);
        let mut new = old.clone();
        new.splice(1000..1000, data(777, 2)); // insert
        new.drain(500_000..501_234); // delete
        new[2_000_000..2_000_100].copy_from_slice(&data(100, 3)); // overwrite
        new.extend_from_slice(&old[..4000]); // a moved piece
        for threads in [1, 2, 3] {
            let mut delta = Vec::new();
            let stats = delta_bytes(
                &old,
                &new,
                Params {
                    block: 128,
                    threads,
                },
                &mut delta,
            )
            .unwrap();
            assert_eq!(patch(&old, &delta), new);
            assert!(stats.literal < 5_000, "{stats:?}");
            assert_eq!(stats.delta_bytes, delta.len() as u64);
        }
    }

    #[test]
    fn edge_cases() {
        for (old, new) in [
            (vec![], vec![]),
            (vec![], data(1000, 5)),
            (data(1000, 5), vec![]),
            (data(100, 6), data(100, 6)),
            (vec![0u8; 100_000], vec![0u8; 200_000]),
            (data(200_000, 7), data(200_000, 8)),
        ] {
            let mut delta = Vec::new();
            delta_bytes(&old, &new, Params::default(), &mut delta).unwrap();
            assert_eq!(patch(&old, &delta), new);
        }
    }
}

#[cfg(test)]
mod hash_tests {
    use super::*;

    #[test]
    fn weighted_hash_equals_the_rolling_one() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let weights = Weights::new(128);
        let rolling = |w: &[u8]| {
            w.iter().fold(0u32, |h, b| {
                h.wrapping_mul(MULTIPLIER).wrapping_add(u32::from(*b) + 1)
            })
        };
        let mut h = weights.hash(&data[..128]);
        for p in 0..(1000 - 128) {
            assert_eq!(h, rolling(&data[p..p + 128]));
            h = h
                .wrapping_sub((u32::from(data[p]) + 1).wrapping_mul(weights.top()))
                .wrapping_mul(MULTIPLIER)
                .wrapping_add(u32::from(data[p + 128]) + 1);
        }
    }
}
