//! An rdiff (librsync delta format) generator: `rdiff patch OLD DELTA NEW` rebuilds NEW.
//!
//! `rdiff` works from a signature because it runs where only one side is known. Here both
//! images are local, so the generator indexes the old image's blocks directly, rolls a hash
//! over the new one, confirms candidates by comparing bytes, and grows every match forwards
//! and backwards — so matches are not cut at block edges and deltas come out no larger than
//! rdiff's. All cores index, then scan the new image a segment at a time while the calling
//! thread writes the delta in order.
//!
//! Memory: the inputs are read with `pread` into small buffers, never mapped — mapped file
//! pages count in the process's RSS (the page cache hands out large folios, so even
//! `MADV_DONTNEED` every few MB left a gigabyte resident); pages read stay in the page cache,
//! outside the process. What the process holds grows with the old image (its index), never
//! with the new one:
//!
//! * the index: per old block its number and a tag (6 bytes), per bucket (½–1 per block) a
//!   4-bit size, a quarter of a group's start and a byte of filter — at most 7.75 bytes per
//!   block, 92 MB for a 1.6 GiB image at 128-byte blocks. While it is built, each block's
//!   hash and each bucket's fill count on top: at most 12.25 bytes per block, 148 MB there;
//! * per scanning thread 2.1 MiB of buffers (1 MiB of the new image, 1 MiB of the old one,
//!   64 KiB to grow matches backwards), a block or two more if blocks are larger than that;
//!   1 MiB for the writer;
//! * delta commands scanned but not yet written: at most `MAX_HELD` (12 MiB) plus those of
//!   the segments being scanned (at most 3 MiB each at 128-byte blocks) — usually a few
//!   thousand for a whole image.
//!
//! Format (big-endian): magic `72 73 02 36`, commands, `00`. `01..40`: literal of 1..64 bytes
//! that follow; `41..44`: literal with a 1/2/4/8-byte length; `45..54`: COPY with
//! 1/2/4/8-byte start and length (`45 + 4*class(start) + class(len)`); never a zero-length COPY.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

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

/// Random access to one input: a file read with `pread`, or bytes already in memory.
trait Source: Sync {
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (all of them, or an error).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

struct FileSource {
    file: File,
    size: u64,
    path: PathBuf,
}

impl FileSource {
    fn open(path: &Path) -> io::Result<FileSource> {
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()));
        let file = File::open(path).map_err(context)?;
        let size = file.metadata().map_err(context)?.len();
        Ok(FileSource {
            file,
            size,
            path: path.to_owned(),
        })
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "reading {} bytes at offset {offset} of {} (was it changed while read?): {e}",
                    buf.len(),
                    self.path.display()
                ),
            )
        })
    }
}

/// Largest read of an input at once: big enough that syscalls cost nothing measurable,
/// small enough to stay in the CPU's caches.
const READ_CHUNK: usize = 1 << 20;

/// Longest run of blocks kept per bucket: long runs of identical blocks (zero padding) would
/// otherwise make lookups slow without finding anything better.
const MAX_CHAIN: u32 = 8;

/// Index of the old image's blocks: block numbers grouped by bucket (a compressed-row table,
/// no links), each with a 16-bit tag of its hash so that most unrelated blocks in a bucket are
/// turned down without reading the old image; in front of it a filter.
struct Index {
    block: usize,
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
fn nibble_sum(x: u64) -> u32 {
    const LOW: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    let bytes = (x & LOW) + ((x >> 4) & LOW);
    (bytes.wrapping_mul(0x0101_0101_0101_0101) >> 56) as u32
}

/// Entries `start..end` of bucket `b`.
fn bucket_range(bases: &[u32], sizes: &[u64], b: usize) -> (u32, u32) {
    let (group, i) = (b / GROUP, 4 * (b % GROUP));
    let word = sizes[group];
    let start = bases[group] + nibble_sum(word & ((1 << i) - 1));
    (start, start + (word >> i & 15) as u32)
}

/// A mixed hash's filter word (the one of its bucket) and the two bits it sets there: with
/// two bits in one word about half as many lookups get through as with one bit (10% rather
/// than 18% at 1.6 GiB), for the same memory and still one read.
fn filter_bits(m: u32, shift: u32) -> (usize, u64) {
    let word = (m >> shift) as usize * FILTER_BITS_PER_BUCKET / 64;
    // The high bits of an odd multiple of `m` draw on all of its bits.
    let g = m.wrapping_mul(0x9e37_79b1);
    (word, 1 << (g >> 26) | 1 << ((g >> 20) & 63))
}

/// Integers: any bytes, zeros included, are a valid value.
trait Plain: Copy {}
impl Plain for u8 {}
impl Plain for u16 {}
impl Plain for u32 {}
impl Plain for u64 {}

/// A zeroed array in an anonymous mapping that asks for huge pages. The index is read at
/// random; with 4 KiB pages nearly every lookup would also miss the TLB, and a page walk
/// under a hypervisor is several more trips to memory.
struct Table<T: Plain> {
    map: Option<memmap2::MmapMut>,
    len: usize,
    _type: std::marker::PhantomData<T>,
}

impl<T: Plain> Table<T> {
    fn zeroed(len: usize) -> io::Result<Table<T>> {
        let map = if len == 0 {
            None
        } else {
            let bytes = len.checked_mul(std::mem::size_of::<T>()).ok_or_else(|| {
                io::Error::new(io::ErrorKind::OutOfMemory, "index table too large")
            })?;
            let map = memmap2::MmapMut::map_anon(bytes).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("allocating {bytes} bytes for the delta index: {e}"),
                )
            })?;
            // A speed-up, not a need: without huge pages the table works the same.
            #[cfg(target_os = "linux")]
            let _ = map.advise(memmap2::Advice::HugePage);
            Some(map)
        };
        Ok(Table {
            map,
            len,
            _type: std::marker::PhantomData,
        })
    }
}

impl<T: Plain> std::ops::Deref for Table<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.map {
            // SAFETY: the mapping is page-aligned, so aligned for `T`, holds `len` `T`s, and
            // any bytes are a valid `T` (`Plain`); the slice borrows `self`, which owns it.
            Some(map) => unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<T>(), self.len) },
            None => &[],
        }
    }
}

impl<T: Plain> std::ops::DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        match &mut self.map {
            // SAFETY: as in `deref`, and the borrow of `self` is exclusive.
            Some(map) => unsafe {
                std::slice::from_raw_parts_mut(map.as_mut_ptr().cast::<T>(), self.len)
            },
            None => &mut [],
        }
    }
}

/// Splits `slice` at the given ascending offsets (the last one at most its length).
fn split_at_offsets<'a, T>(mut slice: &'a mut [T], offsets: &[usize]) -> Vec<&'a mut [T]> {
    let mut pieces = Vec::with_capacity(offsets.len() + 1);
    let mut at = 0;
    for &offset in offsets {
        let (piece, rest) = slice.split_at_mut(offset - at);
        pieces.push(piece);
        slice = rest;
        at = offset;
    }
    pieces.push(slice);
    pieces
}

/// Spreads a rolling hash over all 32 bits (murmur3's finalizer, a bijection): the rolling
/// hash's low bits depend on few input bits, and buckets are taken from the top.
fn mix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
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

    /// The hash of the window one byte on: `leaving` drops out, `entering` comes in.
    fn roll(&self, h: u32, leaving: u8, entering: u8) -> u32 {
        h.wrapping_sub((u32::from(leaving) + 1).wrapping_mul(self.0[0]))
            .wrapping_mul(MULTIPLIER)
            .wrapping_add(u32::from(entering) + 1)
    }
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
    fn build(
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
        let (bases_ref, sizes_ref) = (&bases, &sizes);
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

    /// False if no block has the mixed hash `m`; true if one may.
    fn may_hold(&self, m: u32) -> bool {
        let (word, mask) = filter_bits(m, self.shift);
        self.filter[word] & mask == mask
    }

    /// Where the blocks whose mixed hash may be `m` are listed.
    fn bucket(&self, m: u32) -> Bucket {
        let (start, end) = bucket_range(&self.bases, &self.sizes, (m >> self.shift) as usize);
        Bucket {
            start,
            end,
            tag: m as u16,
            first_tag: 0,
        }
    }

    /// Reads the bucket's first tag, so that the lookups of a batch wait for memory together
    /// rather than one after another.
    fn touch(&self, bucket: &mut Bucket) {
        bucket.first_tag = self.tags.get(bucket.start as usize).copied().unwrap_or(0);
    }

    /// Old-image block numbers in `bucket` whose tag matches (bytes unchecked).
    fn candidates(&self, bucket: Bucket) -> impl Iterator<Item = u32> + '_ {
        let (start, end) = (bucket.start as usize, bucket.end as usize);
        let first = (start < end && bucket.first_tag == bucket.tag).then_some(start);
        let rest = (start + 1..end).filter(move |&i| self.tags[i] == bucket.tag);
        first.into_iter().chain(rest).map(move |i| self.blocks[i])
    }
}

/// A lookup in the index, between its steps.
#[derive(Clone, Copy, Default)]
struct Bucket {
    start: u32,
    end: u32,
    tag: u16,
    first_tag: u16,
}

/// Positions of the new image looked up together. A lookup reads the filter, then maybe a
/// bucket's size and its tags, each at a random place in a table larger than the CPU's
/// caches: position after position, the scan would wait for memory at every byte. In a batch,
/// each step's loads for all positions are in flight at once (it made the scan 2.5× faster).
const BATCH: usize = 256;
const _: () = assert!(BATCH <= 256, "positions in a batch are u8");

/// Bytes of the new image a scanning thread holds at once.
const WINDOW: usize = READ_CHUNK;

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
struct Scan<'a> {
    index: &'a Index,
    weights: &'a Weights,
    old: &'a dyn Source,
    new: Window<'a>,
    /// Old-image bytes: a candidate block, or the next stretch a match grows into.
    old_buf: Vec<u8>,
    /// New-image bytes before the window, when a match grows back that far.
    back_buf: Vec<u8>,
}

impl Scan<'_> {
    /// An old-image offset whose block equals `window`, if any.
    fn find(
        index: &Index,
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
    fn run(&mut self, from: u64, to: u64) -> io::Result<Vec<Command>> {
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
const LITERAL_PIECE: u64 = READ_CHUNK as u64;

fn write_commands(
    out: &mut impl Write,
    new: &dyn Source,
    commands: &[Command],
    buf: &mut [u8],
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
                    let bytes = &mut buf[..len as usize];
                    new.read_at(at, bytes)?;
                    out.write_all(bytes)?;
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
    delta_with(&old, &new, params, out)
}

/// Delta between two files, written to `out`. The files are read a little at a time, not
/// mapped or read whole (see the module's documentation for the memory this takes).
pub fn delta_files(
    old: &Path,
    new: &Path,
    params: Params,
    out: &mut impl Write,
) -> io::Result<Stats> {
    let old = FileSource::open(old)?;
    let new = FileSource::open(new)?;
    delta_with(&old, &new, params, out)
}

fn delta_with(
    old: &dyn Source,
    new: &dyn Source,
    params: Params,
    out: &mut impl Write,
) -> io::Result<Stats> {
    delta_in_segments(old, new, params, SEGMENT, out)
}

/// Bytes of the new image a thread scans at a time. Segments are handed out as threads free
/// up, so a stretch that is slow to scan (changed data: a lookup per byte) does not leave the
/// other cores idle; each cut costs at most a block of literal.
const SEGMENT: u64 = 8 << 20;

/// Largest block size: buffers hold a few blocks.
const MAX_BLOCK: usize = 16 << 20;

/// Commands (24 bytes each) of scanned segments held for the writer at most before threads
/// wait to take more: what bounds memory however large the image and however many its
/// changes, without making fast threads wait for a slow one in the usual case (a few
/// thousand commands for a whole image).
const MAX_HELD: usize = 1 << 19;

fn delta_in_segments(
    old: &dyn Source,
    new: &dyn Source,
    params: Params,
    segment: u64,
    out: &mut impl Write,
) -> io::Result<Stats> {
    let block = params.block.max(16);
    if block > MAX_BLOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("block size {block} is larger than {MAX_BLOCK}"),
        ));
    }
    // A segment shorter than a block could only be a literal.
    let segment = segment.max(4 * block as u64);
    let threads = match params.threads {
        0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
        n => n,
    };
    let weights = Weights::new(block);
    let started = std::time::Instant::now();
    let index = Index::build(old, block, &weights, threads)?;
    tracing::debug!(
        blocks = index.blocks.len(),
        buckets = index.sizes.len() * GROUP,
        ms = started.elapsed().as_millis() as u64,
        "old image indexed"
    );
    let new_size = new.size();
    let segments = usize::try_from(new_size.div_ceil(segment).max(1))
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the new image is too large"))?;
    let workers = threads.clamp(1, segments);
    let queue = Queue::new(segments);
    let stats = std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                let _stop = StopOnPanic(&queue);
                let mut scan = Scan {
                    index: &index,
                    weights: &weights,
                    old,
                    new: Window::new(new, block),
                    old_buf: vec![0; READ_CHUNK.max(block)],
                    back_buf: vec![0; BACK_READ.max(block)],
                };
                while let Some(j) = queue.take() {
                    let from = j as u64 * segment;
                    let to = (from + segment).min(new_size);
                    queue.put(j, scan.run(from, to));
                }
            });
        }
        // This thread writes, segment after segment, while the others scan.
        let written = write_delta(out, new, segments, &queue);
        if written.is_err() {
            queue.stop();
        }
        written
    })?;
    tracing::debug!(
        ms = started.elapsed().as_millis() as u64,
        "new image scanned, delta written"
    );
    Ok(stats)
}

fn write_delta(
    out: &mut impl Write,
    new: &dyn Source,
    segments: usize,
    queue: &Queue,
) -> io::Result<Stats> {
    let mut stats = Stats::default();
    out.write_all(&DELTA_MAGIC.to_be_bytes())?;
    stats.delta_bytes += 4;
    let mut buf = vec![0; LITERAL_PIECE as usize];
    for j in 0..segments {
        let commands = queue.wait_for(j)?;
        write_commands(out, new, &commands, &mut buf, &mut stats)?;
    }
    out.write_all(&[0])?;
    stats.delta_bytes += 1;
    Ok(stats)
}

/// Hands segments of the new image to the scanning threads, and their commands, in order,
/// to the writer.
struct Queue {
    state: std::sync::Mutex<QueueState>,
    changed: std::sync::Condvar,
    segments: usize,
}

struct QueueState {
    /// The next segment to scan.
    next: usize,
    /// Scanned segments' commands, until written.
    done: Vec<Option<Vec<Command>>>,
    /// Commands in `done`.
    held: usize,
    error: Option<io::Error>,
    /// Set on an error, a panic or a failed write: threads take no more segments.
    stopped: bool,
}

impl Queue {
    fn new(segments: usize) -> Queue {
        Queue {
            state: std::sync::Mutex::new(QueueState {
                next: 0,
                done: (0..segments).map(|_| None).collect(),
                held: 0,
                error: None,
                stopped: false,
            }),
            changed: std::sync::Condvar::new(),
            segments,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        // The state stays consistent whatever panicked while holding the lock.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wait<'a>(
        &self,
        state: std::sync::MutexGuard<'a, QueueState>,
    ) -> std::sync::MutexGuard<'a, QueueState> {
        self.changed
            .wait(state)
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The next segment to scan; `None` once all are taken or the delta has failed.
    fn take(&self) -> Option<usize> {
        let mut state = self.lock();
        loop {
            if state.stopped || state.next >= self.segments {
                return None;
            }
            // The segment the writer waits for is always taken already: no deadlock.
            if state.held < MAX_HELD {
                state.next += 1;
                return Some(state.next - 1);
            }
            state = self.wait(state);
        }
    }

    fn put(&self, segment: usize, commands: io::Result<Vec<Command>>) {
        let mut state = self.lock();
        match commands {
            Ok(commands) => {
                state.held += commands.len();
                state.done[segment] = Some(commands);
            }
            Err(e) => {
                state.error.get_or_insert(e);
                state.stopped = true;
            }
        }
        self.changed.notify_all();
    }

    /// The commands of `segment` once it is scanned; the segments before it must have been
    /// asked for.
    fn wait_for(&self, segment: usize) -> io::Result<Vec<Command>> {
        let mut state = self.lock();
        loop {
            if let Some(e) = state.error.take() {
                return Err(e);
            }
            if state.stopped {
                return Err(io::Error::other("a delta thread stopped"));
            }
            if let Some(commands) = state.done[segment].take() {
                state.held -= commands.len();
                self.changed.notify_all();
                return Ok(commands);
            }
            state = self.wait(state);
        }
    }

    fn stop(&self) {
        self.lock().stopped = true;
        self.changed.notify_all();
    }
}

/// Stops the queue if a scanning thread panics, so that the writer does not wait for it
/// forever (the panic itself comes out of the thread scope).
struct StopOnPanic<'a>(&'a Queue);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
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
        // Blocks larger than the old image, or than a segment; absurd ones are refused.
        let (old, new) = (data(300_000, 9), data(300_000, 9));
        for block in [0, 200_000, 400_000] {
            let mut delta = Vec::new();
            let params = Params { block, threads: 2 };
            delta_in_segments(
                &old.as_slice(),
                &new.as_slice(),
                params,
                1 << 16,
                &mut delta,
            )
            .unwrap();
            assert_eq!(patch(&old, &delta), new, "block {block}");
        }
        let params = Params {
            block: usize::MAX,
            threads: 0,
        };
        let err = delta_bytes(&old, &new, params, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    /// Long literals, matches across window moves and gigabyte-like runs, runs of identical
    /// blocks (capped buckets), odd block sizes.
    #[test]
    fn round_trips_across_windows() {
        let old = data(5 * WINDOW + 12_345, 11);
        let mut new = Vec::new();
        new.extend_from_slice(&data(WINDOW + 999, 12)); // a literal longer than a window
        new.extend_from_slice(&old[77..3 * WINDOW + 5]); // a match through several windows
        new.extend_from_slice(&[0; 70_000]); // zeros, not in old
        new.extend_from_slice(&old[4 * WINDOW..]);
        let mut old_zeros = old.clone();
        old_zeros.extend_from_slice(&[0; 100_000]);
        for (old, block) in [
            (&old, 128),
            (&old, 1000),
            (&old_zeros, 64),
            (&old_zeros, 4096),
        ] {
            let mut delta = Vec::new();
            let stats = delta_bytes(old, &new, Params { block, threads: 2 }, &mut delta).unwrap();
            assert_eq!(patch(old, &delta), new, "block {block}");
            assert!(
                stats.literal < WINDOW as u64 + 999 + 70_000 + 2 * block as u64,
                "block {block}: {stats:?}"
            );
        }
    }

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
        let mut scan = Scan {
            index: &index,
            weights: &weights,
            old: &old,
            new: Window::new(&new, block),
            old_buf: vec![0; READ_CHUNK],
            back_buf: vec![0; BACK_READ],
        };
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

    /// Inputs that shrink while read (the old one while indexed, the new one while scanned
    /// or written) make errors that name the file, not panics or hangs.
    #[test]
    fn a_file_that_shrinks_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let content = data(3_000_000, 41);
        for (shrunk, name) in [(0, "old"), (1, "new")] {
            let paths = [dir.path().join("old"), dir.path().join("new")];
            for path in &paths {
                std::fs::write(path, &content).unwrap();
            }
            let old = FileSource::open(&paths[0]).unwrap();
            let new = FileSource::open(&paths[1]).unwrap();
            std::fs::write(&paths[shrunk], &content[..5_000]).unwrap();
            for threads in [1, 2] {
                let err = delta_in_segments(
                    &old,
                    &new,
                    Params {
                        block: 128,
                        threads,
                    },
                    1 << 16,
                    &mut Vec::new(),
                )
                .unwrap_err();
                assert!(err.to_string().contains(name), "{err}");
            }
        }
    }

    /// Many segments, fewer threads: the delta comes out in order; each cut costs at most a
    /// block of literal.
    #[test]
    fn segments_are_written_in_order() {
        let old = data(3_000_000, 51);
        let mut new = old.clone();
        new.splice(1000..1000, data(777, 52));
        new.drain(500_000..501_234);
        new.extend_from_slice(&data(200_000, 53));
        for segment in [1 << 16, 100_003, 1 << 20] {
            for threads in [1, 2, 3] {
                let params = Params {
                    block: 128,
                    threads,
                };
                let mut delta = Vec::new();
                let stats = delta_in_segments(
                    &old.as_slice(),
                    &new.as_slice(),
                    params,
                    segment,
                    &mut delta,
                )
                .unwrap();
                assert_eq!(
                    patch(&old, &delta),
                    new,
                    "segment {segment}, {threads} threads"
                );
                let cuts = new.len() as u64 / segment;
                assert!(
                    stats.literal < 777 + 200_000 + 128 * (cuts + 2),
                    "{stats:?}"
                );
                assert_eq!(stats.delta_bytes, delta.len() as u64);
            }
        }
    }

    /// A writer that fails stops the scanning threads (no hang) and its error comes out.
    #[test]
    fn a_failing_writer_stops_the_scan() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(io::Error::other("disk full"));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let old = data(2_000_000, 61);
        let new = data(2_000_000, 62);
        for room in [0, 100, 300_000] {
            let err = delta_in_segments(
                &old.as_slice(),
                &new.as_slice(),
                Params {
                    block: 128,
                    threads: 2,
                },
                1 << 16,
                &mut Full(room),
            )
            .unwrap_err();
            assert_eq!(err.to_string(), "disk full");
        }
    }

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
            assert!(index.blocks.len() < 5000 + 100, "{}", index.blocks.len());
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
            h = weights.roll(h, data[p], data[p + 128]);
        }
    }
}
