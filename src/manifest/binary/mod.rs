//! The binary manifest format: what a snapshot of a million files costs on disk and how it is
//! read without holding it twice.
//!
//! ```text
//! preamble (never compressed)
//!   magic      6 bytes  "mbxman"   (a JSON manifest starts with `{`: the first byte tells them apart)
//!   version    1 byte   1          (a reader refuses versions it does not know)
//!   compression 1 byte  0 = none, 1 = zstd (one frame over everything that follows)
//! header
//!   source     varint length + UTF-8
//!   created    zigzag varint, unix seconds
//!   flags      varint: 1 = immutability recorded, 2 = a selection follows
//!   selection  varint length + the selection as JSON (rare, small, and free to grow fields)
//!   count      varint, the number of entries
//! count × entry, sorted by path
//!   flags      1 byte: 1 immutable, 2 origin, 4 stamp, 8 stamp has ctime, 16 stamp has inode
//!   path       varint bytes shared with the previous path + varint length + the rest
//!   object     32 raw bytes (the sha256)
//!   size       varint
//!   mtime      zigzag varint, minus the previous entry's mtime
//!   origin     size minus the entry's size; mtime_ns minus the entry's mtime in ns;
//!              inode minus the previous inode (all zigzag varints)
//!   stamp      mtime_ns minus the origin's (or the entry's mtime in ns); ctime_ns minus the
//!              previous stamp's ctime; inode minus the origin's (or the previous) inode
//! end          1 byte 0x80, then the end of the stream
//! ```
//!
//! Compression pays: on 200,000 Debian-like paths (`tests/manifests.rs` prints the figures)
//! an apt snapshot takes 58.3 B per entry uncompressed and 45.4 with zstd, a `dir` snapshot
//! (origin and stamp recorded) 72.5 and 58.0, against 189 and 333 as JSON. So the writer
//! always compresses; the byte in the preamble keeps the other form readable.
//!
//! Every number is relative to what the reader has just seen, so the usual case (a file
//! ingested like its neighbour) is one byte. The count up front and the end byte make a cut
//! stream an error rather than a short manifest; damage anywhere else is caught by the store,
//! which names objects by their sha256: a load hashes the bytes as it reads them and compares
//! with the id (see `stored`). Arithmetic wraps, in the writer and the reader alike, so that
//! damaged numbers give wrong values that the hash rejects, never an overflow panic.

mod read;
mod write;

pub use read::ManifestReader;
pub use write::ManifestWriter;

use std::io;

use super::Selection;
use crate::store::ObjectId;

pub const MAGIC: &[u8; 6] = b"mbxman";
/// The version of the binary layout above (not of the manifest's fields: see `FORMAT`).
pub const VERSION: u8 = 1;

pub(crate) const IMMUTABLE: u8 = 1;
pub(crate) const ORIGIN: u8 = 2;
pub(crate) const STAMP: u8 = 4;
pub(crate) const STAMP_CTIME: u8 = 8;
pub(crate) const STAMP_INODE: u8 = 16;

/// The flag byte of an entry: which optional fields follow. Shared with the sync's spill file
/// (`sync::spill`), which stores entries the same way for a while.
pub(crate) fn entry_flags(entry: &super::Entry) -> u8 {
    let mut flags = 0;
    if entry.immutable {
        flags |= IMMUTABLE;
    }
    if entry.origin.is_some() {
        flags |= ORIGIN;
    }
    if let Some(stamp) = &entry.stamp {
        flags |= STAMP;
        if stamp.ctime_ns.is_some() {
            flags |= STAMP_CTIME;
        }
        if stamp.inode.is_some() {
            flags |= STAMP_INODE;
        }
    }
    flags
}
const KNOWN_FLAGS: u8 = IMMUTABLE | ORIGIN | STAMP | STAMP_CTIME | STAMP_INODE;
const END: u8 = 0x80;

const HEADER_IMMUTABILITY: u64 = 1;
const HEADER_SELECTION: u64 = 2;

/// Limits that keep a damaged length from asking for gigabytes.
const MAX_SOURCE: u64 = 4096;
const MAX_SELECTION: u64 = 64 << 20;
const MAX_PATH: usize = 64 << 10;

const NS: i64 = 1_000_000_000;

/// How the part after the preamble is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None = 0,
    Zstd = 1,
}

/// Everything of a manifest but its entries.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub source: String,
    pub created: i64,
    pub immutability_recorded: bool,
    pub selection: Option<Selection>,
    /// How many entries follow.
    pub entries: u64,
}

/// Why bytes are not a sound manifest. Wrapped with the manifest's id by the caller.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("it ends too early (truncated)")]
    Truncated,
    #[error("it starts neither like a JSON manifest nor with the binary magic")]
    NotAManifest,
    #[error("binary version {0}, this mirrorbox reads version {VERSION}")]
    Version(u8),
    #[error("unknown compression {0}")]
    Compression(u8),
    #[error("{0}")]
    Invalid(&'static str),
    #[error("its selection is not valid JSON: {0}")]
    Selection(serde_json::Error),
    #[error("it is not a valid JSON manifest: {0}")]
    Json(serde_json::Error),
    #[error("its bytes hash to {actual}, not to its id")]
    Hash { actual: ObjectId },
    #[error("it cannot be decoded: {0}")]
    Io(io::Error),
}

impl DecodeError {
    /// The end of the input where more was due is a truncation; anything else is passed on.
    pub fn from_io(error: io::Error) -> DecodeError {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            DecodeError::Truncated
        } else {
            DecodeError::Io(error)
        }
    }
}

/// What the previous entry left behind: every delta of the next entry is taken against it.
#[derive(Debug, Default)]
struct Previous {
    path: Vec<u8>,
    mtime: i64,
    inode: u64,
    ctime_ns: i64,
}
