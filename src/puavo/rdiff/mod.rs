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
//!
//! How the pieces fit, in the order a delta runs through them:
//!
//! * `source`: the two inputs, read with `pread` (or from memory in tests);
//! * `hash`: the rolling block hash and the mixing that spreads it over 32 bits;
//! * `table`: zeroed huge-page arrays the index lives in;
//! * `index`: the old image's blocks by hash, built on all cores;
//! * `scan`: rolls the hash over a stretch of the new image, looks positions up in batches
//!   and grows the matches found into copy and literal commands;
//! * `delta`: those commands in the librsync wire format;
//! * `pipeline`: hands segments of the new image to scanning threads and writes their
//!   commands in order.

mod delta;
mod hash;
mod index;
mod pipeline;
mod scan;
mod source;
mod table;
#[cfg(test)]
mod tests;

use std::io::{self, Write};
use std::path::Path;

use self::source::{FileSource, Source};

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
    /// Bytes of the new image copied from the old one.
    pub copied: u64,
    /// Bytes of the new image sent in the delta itself.
    pub literal: u64,
    /// Commands written (a long literal counts once per piece).
    pub commands: u64,
    /// Size of the delta file.
    pub delta_bytes: u64,
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
    pipeline::delta_in_segments(old, new, params, pipeline::SEGMENT, out)
}
