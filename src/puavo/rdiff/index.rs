//! The old image's blocks by hash: a compressed-row table of block numbers per bucket, with a
//! tag per entry and a Bloom filter in front, built on all cores. The scan asks it, for a
//! position of the new image, which old blocks may hold the same bytes.

use std::io;

use super::hash::{mix, Weights};
use super::source::{Source, READ_CHUNK};
use super::table::{split_at_offsets, Table};

/// Longest run of blocks kept per bucket: long runs of identical blocks (zero padding) would
/// otherwise make lookups slow without finding anything better.
const MAX_CHAIN: u32 = 8;

/// Index of the old image's blocks: block numbers grouped by bucket (a compressed-row table,
/// no links), each with a 16-bit tag of its hash so that most unrelated blocks in a bucket are
/// turned down without reading the old image; in front of it a filter.
pub(super) struct Index {
    /// Bytes per block.
    pub(super) block: usize,
    /// A hash's bucket is its top bits: `mixed >> shift`.
    shift: u32,
    /// Buckets come in groups of 16: where a group's entries start…
    bases: Table<u32>,
    /// …and its buckets' sizes, 4 bits each. 0.75 bytes a bucket rather than 4 for a start
    /// per bucket, and small enough to be mostly in the CPU's cache.
    sizes: Table<u64>,
    blocks: Table<u32>,
    /// The low 16 bits of each entry's mixed hash: with the bucket's bits, most or all of
    /// the 32 bits are compared before a block is read.
    tags: Table<u16>,
    /// A Bloom filter of the blocks' mixed hashes, two bits in one word (8 bits a bucket):
    /// small enough to stay mostly in the CPU's cache (8 MiB for 1.6 GiB), it turns down
    /// ~90% of lookups, which would otherwise wait for memory twice.
    filter: Table<u64>,
}

/// Filter bits per bucket.
const FILTER_BITS_PER_BUCKET: usize = 8;

/// Buckets per group (16 sizes of 4 bits in a `u64`).
const GROUP: usize = 16;
const _: () = assert!(MAX_CHAIN < 16, "bucket sizes are 4 bits");

/// The sum of the 4-bit fields of `x` (at most 16 × 15).
#[inline]
fn nibble_sum(x: u64) -> u32 {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let bytes = (x & LOW) + ((x >> 4) & LOW);
    (bytes.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// Entries `start..end` of bucket `b`.
#[inline]
fn bucket_range(bases: &[u32], sizes: &[u64], b: usize) -> (u32, u32) {
    let (group, i) = (b / GROUP, 4 * (b % GROUP));
    let word = sizes[group];
    let start = bases[group] + nibble_sum(word & ((1 << i) - 1));
    (start, start + (word >> i & 15) as u32)
}

/// A mixed hash's filter word (the one of its bucket) and the two bits it sets there: with
/// two bits in one word about half as many lookups get through as with one bit (10% rather
/// than 18% at 1.6 GiB), for the same memory and still one read.
#[inline]
fn filter_bits(m: u32, shift: u32) -> (usize, u64) {
    let word = (m >> shift) as usize * FILTER_BITS_PER_BUCKET / 64;
    // The high bits of an odd multiple of `m` draw on all of its bits.
    let g = m.wrapping_mul(0x9e37_79b1);
    (word, 1 << (g >> 26) | 1 << ((g >> 20) & 63))
}

/// Runs `work(i, input)` for every input on a thread of its own; the first error wins.
fn in_parallel<I: Send, T: Send>(
    inputs: Vec<I>,
    work: impl Fn(usize, I) -> io::Result<T> + Sync,
) -> io::Result<Vec<T>> {
    std::thread::scope(|scope| {
        let work = &work;
        let handles: Vec<_> = inputs
            .into_iter()
            .enumerate()
            .map(|(i, input)| scope.spawn(move || work(i, input)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

impl Index {
    pub(super) fn build(
        old: &dyn Source,
        block: usize,
        weights: &Weights,
        threads: usize,
    ) -> io::Result<Index> {
        let count = old.size() / block as u64;
        // Block numbers are u32 (half the memory of u64); u32::MAX is never one.
        let count = usize::try_from(count)
            .ok()
            .filter(|&c| c < u32::MAX as usize)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the old image has {count} blocks of {block} bytes, more than the index holds: use a larger block size"),
                )
            })?;
        // 1–2 blocks per bucket: few tags to compare, and 4–8 filter bits per block, so that
        // most lookups that find nothing (nearly all of them, in changed stretches) stop at
        // the filter.
        let buckets = (count.next_power_of_two() / 2).max(1024);
        let shift = 32 - buckets.trailing_zeros();

        // Every block's mixed hash, each core hashing its share a chunk at a time.
        let mut hashes = vec![0u32; count];
        let per_chunk = (READ_CHUNK / block).max(1);
        let per_thread = count.div_ceil(threads.max(1)).max(1);
        in_parallel(hashes.chunks_mut(per_thread).collect(), |part, share| {
            let mut buf = vec![0u8; per_chunk * block];
            let first = part * per_thread;
            for (c, slots) in share.chunks_mut(per_chunk).enumerate() {
                let bytes = &mut buf[..slots.len() * block];
                old.read_at(((first + c * per_chunk) * block) as u64, bytes)?;
                for (slot, data) in slots.iter_mut().zip(bytes.chunks_exact(block)) {
                    *slot = mix(weights.hash(data));
                }
            }
            Ok(())
        })?;

        // Each core takes a range of buckets (a multiple of 64, so that the filter's words
        // split too) and goes through all hashes for those in its range: the tables are
        // written at random, and that waiting for memory is what is shared out.
        let span = buckets.div_ceil(threads.max(1)).next_multiple_of(64);
        let hashes = &hashes;
        let in_range = |m: u32, first: usize, len: usize| {
            ((m >> shift) as usize)
                .checked_sub(first)
                .filter(|&i| i < len)
        };

        // Bucket sizes (capped) and filter bits; then where each group starts.
        let groups = buckets / GROUP;
        let mut sizes = Table::<u64>::zeroed(groups)?;
        let mut filter = Table::<u64>::zeroed(buckets * FILTER_BITS_PER_BUCKET / 64)?;
        let pieces = sizes
            .chunks_mut(span / GROUP)
            .zip(filter.chunks_mut(span * FILTER_BITS_PER_BUCKET / 64))
            .collect();
        in_parallel(pieces, |part, (sizes, bits)| {
            let first = part * span;
            let first_word = first * FILTER_BITS_PER_BUCKET / 64;
            for &m in hashes {
                if let Some(b) = in_range(m, first, sizes.len() * GROUP) {
                    let (word, i) = (&mut sizes[b / GROUP], 4 * (b % GROUP));
                    *word += u64::from(*word >> i & 15 < u64::from(MAX_CHAIN)) << i;
                    let (word, mask) = filter_bits(m, shift);
                    bits[word - first_word] |= mask;
                }
            }
            Ok(())
        })?;
        let mut bases = Table::<u32>::zeroed(groups)?;
        let mut total = 0;
        for (base, &word) in bases.iter_mut().zip(sizes.iter()) {
            *base = total;
            total += nibble_sum(word);
        }

        // Block numbers and tags into their buckets, earliest blocks first.
        let mut blocks = Table::<u32>::zeroed(total as usize)?;
        let mut tags = Table::<u16>::zeroed(total as usize)?;
        let mut taken = Table::<u64>::zeroed(groups)?;
        let cuts: Vec<usize> = (span..buckets)
            .step_by(span)
            .map(|b| bases[b / GROUP] as usize)
            .collect();
        let pieces = split_at_offsets(&mut blocks, &cuts)
            .into_iter()
            .zip(split_at_offsets(&mut tags, &cuts))
            .zip(taken.chunks_mut(span / GROUP))
            .collect();
        // Slices once, not a table's view checked again for every hash.
        let (bases_ref, sizes_ref): (&[u32], &[u64]) = (&bases, &sizes);
        in_parallel(pieces, |part, ((blocks, tags), taken)| {
            let first = part * span;
            let offset = bases_ref[first / GROUP] as usize;
            for (number, &m) in hashes.iter().enumerate() {
                if let Some(b) = in_range(m, first, taken.len() * GROUP) {
                    let (start, end) = bucket_range(bases_ref, sizes_ref, first + b);
                    let (word, i) = (&mut taken[b / GROUP], 4 * (b % GROUP));
                    let at = start + (*word >> i & 15) as u32;
                    if at < end {
                        blocks[at as usize - offset] = number as u32;
                        tags[at as usize - offset] = m as u16;
                        *word += 1 << i;
                    }
                }
            }
            Ok(())
        })?;
        Ok(Index {
            block,
            shift,
            bases,
            sizes,
            blocks,
            tags,
            filter,
        })
    }

    /// Blocks listed (those of full buckets beyond the cap are not).
    pub(super) fn entries(&self) -> usize {
        self.blocks.len()
    }

    /// Buckets, empty ones included.
    pub(super) fn buckets(&self) -> usize {
        self.sizes.len() * GROUP
    }

    /// The tables as plain slices, for a scanning thread's lookups.
    pub(super) fn lookup(&self) -> Lookup<'_> {
        Lookup {
            block: self.block,
            shift: self.shift,
            bases: &self.bases,
            sizes: &self.sizes,
            blocks: &self.blocks,
            tags: &self.tags,
            filter: &self.filter,
        }
    }
}

/// The index's tables as slices, taken once per scanning thread: a lookup then reads them
/// directly rather than checking each table's view of its mapping again at every position.
#[derive(Clone, Copy)]
pub(super) struct Lookup<'a> {
    /// Bytes per block.
    pub(super) block: usize,
    shift: u32,
    bases: &'a [u32],
    sizes: &'a [u64],
    blocks: &'a [u32],
    tags: &'a [u16],
    filter: &'a [u64],
}

impl Lookup<'_> {
    /// False if no block has the mixed hash `m`; true if one may.
    #[inline]
    pub(super) fn may_hold(&self, m: u32) -> bool {
        let (word, mask) = filter_bits(m, self.shift);
        self.filter[word] & mask == mask
    }

    /// Where the blocks whose mixed hash may be `m` are listed.
    #[inline]
    pub(super) fn bucket(&self, m: u32) -> Bucket {
        let (start, end) = bucket_range(self.bases, self.sizes, (m >> self.shift) as usize);
        Bucket {
            start,
            end,
            tag: m as u16,
            first_tag: 0,
        }
    }

    /// Reads the bucket's first tag, so that the lookups of a batch wait for memory together
    /// rather than one after another.
    #[inline]
    pub(super) fn touch(&self, bucket: &mut Bucket) {
        bucket.first_tag = self.tags.get(bucket.start as usize).copied().unwrap_or(0);
    }

    /// Old-image block numbers in `bucket` whose tag matches (bytes unchecked).
    #[inline]
    pub(super) fn candidates(&self, bucket: Bucket) -> impl Iterator<Item = u32> + '_ {
        let (start, end) = (bucket.start as usize, bucket.end as usize);
        let first = (start < end && bucket.first_tag == bucket.tag).then_some(start);
        let rest = (start + 1..end).filter(move |&i| self.tags[i] == bucket.tag);
        first.into_iter().chain(rest).map(move |i| self.blocks[i])
    }
}

/// A lookup in the index, between its steps.
#[derive(Clone, Copy, Default)]
pub(super) struct Bucket {
    start: u32,
    end: u32,
    tag: u16,
    first_tag: u16,
}

#[cfg(test)]
mod tests {
    use super::super::tests::data;
    use super::*;

    /// Every block can be found, except in a full bucket (a run of identical blocks), and a
    /// bucket's blocks are the earliest ones.
    #[test]
    fn the_index_lists_every_block_up_to_the_cap() {
        let block = 64;
        let mut old = data(block * 5000, 71);
        old.extend_from_slice(&vec![7; block * 100]);
        let weights = Weights::new(block);
        for threads in [1, 2, 3] {
            let index = Index::build(&old.as_slice(), block, &weights, threads).unwrap();
            assert!(index.entries() < 5000 + 100, "{}", index.entries());
            let index = index.lookup();
            let mut missing = 0;
            for (number, bytes) in old.chunks_exact(block).enumerate() {
                let m = mix(weights.hash(bytes));
                assert!(index.may_hold(m));
                let mut bucket = index.bucket(m);
                index.touch(&mut bucket);
                let found: Vec<u32> = index.candidates(bucket).collect();
                if !found.contains(&(number as u32)) {
                    assert_eq!(bucket.end - bucket.start, MAX_CHAIN, "block {number}");
                    assert!(
                        found.iter().all(|&f| (f as usize) < number),
                        "block {number}"
                    );
                    missing += 1;
                }
            }
            assert!(
                (100 - MAX_CHAIN as usize..100).contains(&missing),
                "{missing}"
            );
        }
    }
}
