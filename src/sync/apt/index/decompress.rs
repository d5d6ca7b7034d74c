//! The decoders of compressed indices, chosen by file name, all streaming.
//!
//! Archive tools write more than the simplest form of each format, and every form their own
//! `-d` accepts must decode here too: xz files of several blocks (`xz -T0`,
//! `--block-size`), with stream padding or several streams one after another; gzip files of
//! several members; bzip2 files of several streams (`pbzip2`, `lbzip2`, `cat`); zstd files
//! of several frames, with skippable frames, or asking for a long window (`zstd --long`
//! from a pipe asks for 128 MiB, the most `zstd -d` allows without `--memory`).

use std::io::{self, BufReader, Read};

/// A reader of the decompressed text of an index called `name` (`.gz`, `.xz`, `.bz2`, `.zst`
/// or plain). Its errors name the format, for the sync's message.
pub fn decompressed<'a>(
    name: &str,
    input: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let input = BufReader::new(input);
    let (format, reader): (&'static str, Box<dyn Read + Send + 'a>) = if name.ends_with(".xz") {
        // Several streams, with padding between and after them, as `xz -dc` reads them.
        ("xz", Box::new(lzma_rust2::XzReader::new(input, true)))
    } else if name.ends_with(".gz") {
        (
            "gzip",
            Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        )
    } else if name.ends_with(".bz2") {
        (
            "bzip2",
            Box::new(bzip2::bufread::MultiBzDecoder::new(input)),
        )
    } else if name.ends_with(".zst") {
        // libzstd's streaming decoder reads frame after frame and skips skippable frames; its
        // window limit is the one of `zstd -d`.
        let decoder =
            zstd::stream::read::Decoder::with_buffer(input).map_err(|e| labelled("zstd", e))?;
        ("zstd", Box::new(decoder))
    } else {
        return Ok(Box::new(input));
    };
    Ok(Box::new(Labelled { format, reader }))
}

/// Prefixes the errors of a decoder with its format: "xz data: invalid block padding".
struct Labelled<'a> {
    format: &'static str,
    reader: Box<dyn Read + Send + 'a>,
}

impl Read for Labelled<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf).map_err(|e| labelled(self.format, e))
    }
}

fn labelled(format: &str, error: io::Error) -> io::Error {
    let kind = match error.kind() {
        io::ErrorKind::UnexpectedEof => io::ErrorKind::InvalidData,
        other => other,
    };
    io::Error::new(kind, format!("{format} data: {error}"))
}
