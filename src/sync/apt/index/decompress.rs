//! The decoders of compressed indices, chosen by file name, all streaming.
//!
//! Archive tools write more than the simplest form of each format, and every form their own
//! `-d` accepts must decode here too: xz files of several blocks (`xz -T0`,
//! `--block-size`), with stream padding or several streams one after another; gzip files of
//! several members; bzip2 files of several streams (`pbzip2`, `lbzip2`, `cat`); zstd files
//! of several frames, with skippable frames, or asking for a long window (`zstd --long`
//! from a pipe asks for 128 MiB, the most `zstd -d` allows without `--memory`).
//!
//! A signed index can still come from a hostile third-party repository: no header may make
//! the mirror allocate what it likes. An xz block names its dictionary size (up to 4 GiB);
//! blocks asking for more than [`XZ_MEMORY_LIMIT_MIB`] are refused before decoding.

use std::io::{self, BufReader, Read};

/// The most memory an xz stream may ask for, in MiB: four times the 64 MiB dictionary of
/// `xz -9`, the largest preset, and of what Debian and Ubuntu use.
pub const XZ_MEMORY_LIMIT_MIB: u32 = 256;

/// A reader of the decompressed text of an index called `name` (`.gz`, `.xz`, `.bz2`, `.zst`
/// or plain). Its errors name the format, for the sync's message.
pub fn decompressed<'a>(
    name: &str,
    input: impl Read + Send + 'a,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let input = BufReader::new(input);
    let (format, reader): (&'static str, Box<dyn Read + Send + 'a>) = if name.ends_with(".xz") {
        // Several streams, with padding between and after them, as `xz -dc` reads them.
        (
            "xz",
            Box::new(lzma_rust2::XzReader::new_mem_limit(
                input,
                true,
                XZ_MEMORY_LIMIT_MIB * 1024,
            )),
        )
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
    match error.kind() {
        // The decoder's own memory limit, not this host's memory.
        io::ErrorKind::OutOfMemory => io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{format} data: the stream asks for more memory than the {XZ_MEMORY_LIMIT_MIB} MiB allowed (its dictionary is larger than any xz preset uses): refused"
            ),
        ),
        io::ErrorKind::UnexpectedEof => {
            io::Error::new(io::ErrorKind::InvalidData, format!("{format} data: {error}"))
        }
        kind => io::Error::new(kind, format!("{format} data: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::process::{Command, Stdio};

    /// `text` compressed by the real `xz` with `args`.
    fn xz(args: &[&str], text: &[u8]) -> Vec<u8> {
        let mut child = Command::new("xz")
            .args(args)
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("xz is installed");
        child.stdin.take().unwrap().write_all(text).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        out.stdout
    }

    fn decode(name: &str, bytes: &[u8]) -> io::Result<Vec<u8>> {
        let mut text = Vec::new();
        decompressed(name, bytes)?.read_to_end(&mut text)?;
        Ok(text)
    }

    #[test]
    fn an_xz_stream_asking_for_a_huge_dictionary_is_refused_before_allocating_it() {
        let bytes = xz(&["--lzma2=dict=1536MiB"], b"Package: a\n");
        let error = decode("Packages.xz", &bytes).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        let message = error.to_string();
        assert!(message.contains("xz data"), "{message}");
        assert!(message.contains("256 MiB"), "{message}");
    }

    #[test]
    fn the_largest_dictionary_of_the_xz_presets_is_accepted() {
        let bytes = xz(&["-9e"], b"Package: a\n");
        assert_eq!(decode("Packages.xz", &bytes).unwrap(), b"Package: a\n");
        let bytes = xz(&["--lzma2=dict=192MiB"], b"Package: b\n");
        assert_eq!(decode("Packages.xz", &bytes).unwrap(), b"Package: b\n");
    }
}
