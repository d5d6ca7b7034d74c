//! Reads a binary manifest as a stream: the header first, then one entry per `next()`, so a
//! caller that only walks the entries (GC, a diff, a change check) never holds them all.

use std::io::{BufReader, Read};

use super::super::varint::{byte, exact, get, get_signed};
use super::super::{Entry, Origin, Selection};
use super::{
    Compression, DecodeError, Header, Previous, END, HEADER_IMMUTABILITY, HEADER_SELECTION,
    IMMUTABLE, KNOWN_FLAGS, MAGIC, MAX_PATH, MAX_SELECTION, MAX_SOURCE, NS, ORIGIN, STAMP,
    STAMP_CTIME, STAMP_INODE, VERSION,
};
use crate::store::{ObjectId, Stamp};

/// The entries of one binary manifest, in order. After the last entry the reader checks the
/// end byte and that nothing follows; an error ends the iteration.
pub struct ManifestReader<R: Read> {
    input: BufReader<Source<R>>,
    header: Header,
    previous: Previous,
    remaining: u64,
    done: bool,
}

impl<R: Read> ManifestReader<R> {
    /// Reads the preamble and the header.
    pub fn new(mut input: R) -> Result<Self, DecodeError> {
        let mut preamble = [0u8; 8];
        exact(&mut input, &mut preamble)?;
        if &preamble[..6] != MAGIC {
            return Err(DecodeError::NotAManifest);
        }
        if preamble[6] != VERSION {
            return Err(DecodeError::Version(preamble[6]));
        }
        let source = match preamble[7] {
            c if c == Compression::None as u8 => Source::Plain(input),
            c if c == Compression::Zstd as u8 => {
                Source::Zstd(zstd::stream::read::Decoder::new(input).map_err(DecodeError::Io)?)
            }
            other => return Err(DecodeError::Compression(other)),
        };
        let mut input = BufReader::with_capacity(64 * 1024, source);
        let header = header(&mut input)?;
        Ok(ManifestReader {
            input,
            remaining: header.entries,
            header,
            previous: Previous::default(),
            done: false,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// The underlying reader, for a caller that goes on reading (or hashing) after the end.
    /// Bytes read ahead into buffers are not given back.
    pub fn into_inner(self) -> R {
        match self.input.into_inner() {
            Source::Plain(input) => input,
            Source::Zstd(decoder) => decoder.finish().into_inner(),
        }
    }

    /// After the last entry: the end byte, then nothing.
    fn end(&mut self) -> Result<(), DecodeError> {
        match byte(&mut self.input)? {
            END => {}
            _ => return Err(DecodeError::Invalid("more entries than its header counts")),
        }
        let mut more = [0u8; 1];
        match self.input.read(&mut more) {
            Ok(0) => Ok(()),
            Ok(_) => Err(DecodeError::Invalid("bytes after its end")),
            Err(e) => Err(DecodeError::from_io(e)),
        }
    }
}

impl<R: Read> Iterator for ManifestReader<R> {
    type Item = Result<Entry, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = if self.remaining == 0 {
            self.done = true;
            return self.end().err().map(Err);
        } else {
            decode(&mut self.input, &mut self.previous)
        };
        match &result {
            Ok(_) => self.remaining -= 1,
            Err(_) => self.done = true,
        }
        Some(result)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, usize::try_from(self.remaining).ok())
    }
}

fn header(input: &mut impl Read) -> Result<Header, DecodeError> {
    let source = bytes(input, MAX_SOURCE, "a source name longer than 4 KiB")?;
    let source =
        String::from_utf8(source).map_err(|_| DecodeError::Invalid("a source name not UTF-8"))?;
    let created = get_signed(input)?;
    let flags = get(input)?;
    if flags & !(HEADER_IMMUTABILITY | HEADER_SELECTION) != 0 {
        return Err(DecodeError::Invalid("unknown header flags"));
    }
    let selection = if flags & HEADER_SELECTION != 0 {
        let json = bytes(input, MAX_SELECTION, "a selection longer than 64 MiB")?;
        Some(serde_json::from_slice::<Selection>(&json).map_err(DecodeError::Selection)?)
    } else {
        None
    };
    Ok(Header {
        source,
        created,
        immutability_recorded: flags & HEADER_IMMUTABILITY != 0,
        selection,
        entries: get(input)?,
    })
}

/// A length-prefixed blob, refused before any allocation when longer than `max`.
fn bytes(input: &mut impl Read, max: u64, too_long: &'static str) -> Result<Vec<u8>, DecodeError> {
    let len = get(input)?;
    if len > max {
        return Err(DecodeError::Invalid(too_long));
    }
    let mut buf = vec![0u8; len as usize];
    exact(input, &mut buf)?;
    Ok(buf)
}

/// One entry: the mirror image of `write::encode`.
fn decode(input: &mut impl Read, previous: &mut Previous) -> Result<Entry, DecodeError> {
    let flags = byte(input)?;
    if flags == END {
        return Err(DecodeError::Invalid("fewer entries than its header counts"));
    }
    if flags & !KNOWN_FLAGS != 0 {
        return Err(DecodeError::Invalid("an entry with unknown flags"));
    }

    let shared = get(input)?;
    let rest = get(input)?;
    if shared > previous.path.len() as u64 {
        return Err(DecodeError::Invalid(
            "a path that shares more with the previous one than it holds",
        ));
    }
    if shared.saturating_add(rest) > MAX_PATH as u64 {
        return Err(DecodeError::Invalid("a path longer than 64 KiB"));
    }
    let (shared, rest) = (shared as usize, rest as usize);
    previous.path.truncate(shared);
    previous.path.resize(shared + rest, 0);
    exact(input, &mut previous.path[shared..])?;
    let path = std::str::from_utf8(&previous.path)
        .map_err(|_| DecodeError::Invalid("a path that is not UTF-8"))?
        .to_owned();

    let mut object = [0u8; 32];
    exact(input, &mut object)?;
    let size = get(input)?;
    let mtime = previous.mtime.wrapping_add(get_signed(input)?);
    previous.mtime = mtime;

    let mtime_ns = mtime.wrapping_mul(NS);
    let (mut stamp_mtime_base, mut stamp_inode_base) = (mtime_ns, previous.inode);
    let origin = if flags & ORIGIN != 0 {
        let origin = Origin {
            size: size.wrapping_add(get_signed(input)? as u64),
            mtime_ns: mtime_ns.wrapping_add(get_signed(input)?),
            inode: previous.inode.wrapping_add(get_signed(input)? as u64),
        };
        previous.inode = origin.inode;
        (stamp_mtime_base, stamp_inode_base) = (origin.mtime_ns, origin.inode);
        Some(origin)
    } else {
        None
    };
    let stamp = if flags & STAMP != 0 {
        let mtime_ns = stamp_mtime_base.wrapping_add(get_signed(input)?);
        let ctime_ns = if flags & STAMP_CTIME != 0 {
            previous.ctime_ns = previous.ctime_ns.wrapping_add(get_signed(input)?);
            Some(previous.ctime_ns)
        } else {
            None
        };
        let inode = if flags & STAMP_INODE != 0 {
            previous.inode = stamp_inode_base.wrapping_add(get_signed(input)? as u64);
            Some(previous.inode)
        } else {
            None
        };
        Some(Stamp {
            mtime_ns,
            ctime_ns,
            inode,
        })
    } else {
        None
    };

    Ok(Entry {
        path,
        object: ObjectId(object),
        size,
        mtime,
        stamp,
        origin,
        immutable: flags & IMMUTABLE != 0,
    })
}

/// Where the bytes after the preamble come from: straight in, or through zstd.
enum Source<R: Read> {
    Plain(R),
    Zstd(zstd::stream::read::Decoder<'static, BufReader<R>>),
}

impl<R: Read> Read for Source<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Source::Plain(input) => input.read(buf),
            Source::Zstd(input) => input.read(buf),
        }
    }
}
