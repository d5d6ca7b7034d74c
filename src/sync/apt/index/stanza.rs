//! The stanza parser of Packages and Sources: fed text in arbitrary chunks, it collects the
//! files every stanza names, and refuses a stanza that names a file without a trusted hash.
//!
//! A stanza the filter leaves out is not checked: its files are never fetched. Every other
//! stanza must give each of its files a SHA256 (MD5 and SHA1 are broken, so a package that
//! offers only those would be fetched unverified); it is refused, not dropped, so a mirror
//! never silently lacks a package its index lists.
//!
//! Debian's indices are hundreds of MB, so the parser works on the bytes as they come: line
//! ends are found with `memchr`, lines are borrowed from the decoder's buffer (only a line cut
//! by a chunk boundary is copied), and of each stanza only the few fields the mirror keeps are
//! copied, into buffers reused from stanza to stanza. Lines are read as the text the index
//! holds: a trailing CR is dropped (CRLF indices), invalid UTF-8 reads as U+FFFD, and a line
//! of nothing but white space ends a stanza, as an empty one does.

use std::io::{self, Write};

use super::{FileSink, Filter, PoolFile};
use crate::store::ObjectId;

/// The longest line accepted, in bytes. Real stanza lines are short (a long Description
/// line is a few KiB); a hostile index could otherwise send one endless line and make the
/// mirror hold all of it.
pub(super) const MAX_LINE: usize = 1024 * 1024;

/// Consumes index text in arbitrary chunks; hands the files of every stanza to `files`.
pub(super) struct StanzaParser<S = Vec<PoolFile>> {
    sources: bool,
    filter: Filter,
    /// The start of a line whose end has not arrived yet (never more than [`MAX_LINE`]).
    pending: Vec<u8>,
    line_number: usize,
    stanza: Stanza,
    files: S,
    error: Option<String>,
}

/// The fields of one stanza that matter to the mirror; emptied, not dropped, between stanzas
/// so their buffers serve the next one.
#[derive(Default)]
struct Stanza {
    /// Line where the stanza starts (1-based), for messages; 0 while nothing was read.
    line: usize,
    package: String,
    section: String,
    filename: String,
    size: Option<String>,
    sha256: Option<String>,
    /// Fields of weaker hashes seen (`MD5sum`, `SHA1`, `Files`, `Checksums-Sha1`).
    weak: Vec<&'static str>,
    directory: String,
    /// `Checksums-Sha256` lines of a Sources stanza; `None` without the field.
    checksums: Option<Vec<String>>,
    in_checksums: bool,
}

impl Stanza {
    fn clear(&mut self) {
        self.line = 0;
        self.package.clear();
        self.section.clear();
        self.filename.clear();
        self.size = None;
        self.sha256 = None;
        self.weak.clear();
        self.directory.clear();
        self.checksums = None;
        self.in_checksums = false;
    }
}

/// The weak hash fields, named in the message that refuses a stanza having only those.
const WEAK_FIELDS: [&str; 5] = ["MD5sum", "SHA1", "Files", "Checksums-Sha1", "Checksums-Md5"];

/// `bytes` as text, as the index means it: invalid UTF-8 reads as U+FFFD. Checked first as
/// it nearly always is, valid (the plain check is the quicker one on short ASCII values).
fn text(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(valid) => std::borrow::Cow::Borrowed(valid),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

/// Whether `line` (without its line end) is blank: nothing but white space, Unicode's
/// included. Decided on the first byte for every ordinary line.
fn is_blank(line: &[u8]) -> bool {
    match line.iter().find(|b| **b != b' ' && **b != b'\t') {
        None => true,
        Some(b) if b.is_ascii_graphic() => false,
        Some(_) => text(line).trim().is_empty(),
    }
}

/// `value` with the white space around it dropped, Unicode's included, into `out`.
fn trimmed(value: &[u8], out: &mut String) {
    out.clear();
    // ASCII first; what is left starting or ending with a byte that may be white space
    // (vertical tab, or part of a non-ASCII character) is trimmed as Unicode text.
    let ascii = value.trim_ascii();
    match (ascii.first(), ascii.last()) {
        (Some(first), Some(last)) if first.is_ascii_graphic() && last.is_ascii_graphic() => {
            out.push_str(&text(ascii))
        }
        _ => out.push_str(text(value).trim()),
    }
}

impl StanzaParser {
    #[cfg(test)]
    pub(super) fn new(sources: bool, filter: Filter) -> StanzaParser {
        StanzaParser::with_sink(sources, filter, Vec::new())
    }
}

impl<S: FileSink> StanzaParser<S> {
    /// A parser that hands the files it finds to `files`.
    pub(super) fn with_sink(sources: bool, filter: Filter, files: S) -> StanzaParser<S> {
        StanzaParser {
            sources,
            filter,
            pending: Vec::new(),
            line_number: 0,
            stanza: Stanza::default(),
            files,
            error: None,
        }
    }

    /// One line, without its `\n`.
    fn line(&mut self, line: &[u8]) {
        self.line_number += 1;
        let mut line = line;
        while let Some(shorter) = line.strip_suffix(b"\r") {
            line = shorter;
        }
        if is_blank(line) {
            self.end_stanza();
            return;
        }
        if self.stanza.line == 0 {
            self.stanza.line = self.line_number;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if self.stanza.in_checksums {
                if let Some(lines) = &mut self.stanza.checksums {
                    lines.push(text(line).trim().to_string());
                }
            }
            return;
        }
        self.stanza.in_checksums = false;
        let Some(colon) = memchr::memchr(b':', line) else {
            return;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let stanza = &mut self.stanza;
        match name {
            b"Package" => trimmed(value, &mut stanza.package),
            b"Section" => trimmed(value, &mut stanza.section),
            b"Filename" => trimmed(value, &mut stanza.filename),
            b"Size" => trimmed(value, stanza.size.get_or_insert_with(String::new)),
            b"SHA256" => {
                trimmed(value, stanza.sha256.get_or_insert_with(String::new));
            }
            b"Directory" => trimmed(value, &mut stanza.directory),
            b"Checksums-Sha256" => {
                stanza.checksums = Some(Vec::new());
                stanza.in_checksums = true;
            }
            _ => {
                if let Some(weak) = WEAK_FIELDS.iter().find(|f| f.as_bytes() == name) {
                    stanza.weak.push(weak);
                }
            }
        }
    }

    fn end_stanza(&mut self) {
        if self.stanza.line == 0 {
            return;
        }
        let stanza = &self.stanza;
        let result = if stanza.package.is_empty() {
            if stanza.filename.is_empty() && stanza.checksums.is_none() {
                Ok(()) // names no file
            } else {
                Err(format!(
                    "the stanza at line {} has no Package field",
                    stanza.line
                ))
            }
        } else if self.filter.skips(&stanza.package, &stanza.section) {
            Ok(())
        } else if self.sources {
            source_files(stanza, &mut self.files)
        } else {
            binary_file(stanza, &mut self.files)
        };
        if let Err(message) = result {
            self.error.get_or_insert(message);
        }
        self.stanza.clear();
    }

    pub(super) fn finish(mut self) -> io::Result<S> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&rest);
        }
        self.end_stanza();
        if let Some(error) = self.error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        Ok(self.files)
    }

    /// The error for a line longer than [`MAX_LINE`], the next one.
    fn too_long(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "line {} is longer than {} MiB: not an index",
                self.line_number + 1,
                MAX_LINE / (1024 * 1024)
            ),
        )
    }
}

/// The one file of a Packages stanza: `Filename`, `Size` and `SHA256`.
fn binary_file(stanza: &Stanza, files: &mut impl FileSink) -> Result<(), String> {
    let package = &stanza.package;
    let at = stanza.line;
    if stanza.filename.is_empty() {
        return Err(format!("package {package} (line {at}) has no Filename"));
    }
    let Some(sha256) = &stanza.sha256 else {
        return Err(missing_sha256(
            &format!("package {package} (line {at})"),
            "SHA256",
            &stanza.weak,
        ));
    };
    let size = match &stanza.size {
        None => return Err(format!("package {package} (line {at}) has no Size")),
        Some(text) => text
            .parse()
            .map_err(|_| format!("package {package} (line {at}): Size `{text}` is not a number"))?,
    };
    let sha256 = check_sha256(sha256, package, at)?;
    push(files, &stanza.filename, size, sha256, package)
}

/// The files of a Sources stanza: its `Checksums-Sha256` lines, under `Directory`.
fn source_files(stanza: &Stanza, files: &mut impl FileSink) -> Result<(), String> {
    let package = &stanza.package;
    let at = stanza.line;
    let Some(lines) = &stanza.checksums else {
        return Err(missing_sha256(
            &format!("source package {package} (line {at})"),
            "Checksums-Sha256",
            &stanza.weak,
        ));
    };
    if stanza.directory.is_empty() {
        return Err(format!(
            "source package {package} (line {at}) has no Directory"
        ));
    }
    for line in lines {
        let bad =
            || format!("source package {package} (line {at}): bad Checksums-Sha256 line `{line}`");
        let mut words = line.split_whitespace();
        let (Some(hash), Some(size), Some(name), None) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(bad());
        };
        let size = size.parse().map_err(|_| bad())?;
        let hash = check_sha256(hash, package, at)?;
        push(
            files,
            &format!("{}/{name}", stanza.directory),
            size,
            hash,
            package,
        )?;
    }
    Ok(())
}

/// Records one file, refusing a path that could leave the repository.
fn push(
    files: &mut impl FileSink,
    path: &str,
    size: u64,
    sha256: ObjectId,
    package: &str,
) -> Result<(), String> {
    let path = path.trim_start_matches("./");
    if path.starts_with('/') || path.split('/').any(|s| s == ".." || s == ".") {
        return Err(format!("package {package} names an unsafe path `{path}`"));
    }
    files.add(path, size, sha256, package)
}

/// The message for a stanza without its SHA256 field, naming the weaker hashes it has.
fn missing_sha256(what: &str, field: &str, weak: &[&str]) -> String {
    if weak.is_empty() {
        format!("{what} has no {field}: only SHA256 is trusted, so it is refused")
    } else {
        format!(
            "{what} has only {} and no {field}: MD5 and SHA1 are not secure, so it is refused",
            weak.join("/")
        )
    }
}

/// The value of each hex digit (either case); 0xff for any other byte.
const HEX_DIGITS: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// `hash` decoded (either case), or why it is no SHA256. By table, with no branch per digit:
/// every file an index names has one.
fn check_sha256(hash: &str, package: &str, at: usize) -> Result<ObjectId, String> {
    let digits = hash.as_bytes();
    let mut id = ObjectId([0; 32]);
    let mut bad = digits.len() != 64;
    if !bad {
        for (byte, pair) in id.0.iter_mut().zip(digits.chunks_exact(2)) {
            let (high, low) = (
                HEX_DIGITS[usize::from(pair[0])],
                HEX_DIGITS[usize::from(pair[1])],
            );
            bad |= (high | low) > 0xf;
            *byte = (high << 4) | low;
        }
    }
    match bad {
        false => Ok(id),
        true => Err(format!(
            "package {package} (line {at}): `{}` is not a SHA256",
            hash.to_ascii_lowercase()
        )),
    }
}

impl<S: FileSink> Write for StanzaParser<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        if !self.pending.is_empty() {
            // The end of the line the last write cut.
            let Some(end) = memchr::memchr(b'\n', rest) else {
                if self.pending.len() + rest.len() > MAX_LINE {
                    return Err(self.too_long());
                }
                self.pending.extend_from_slice(rest);
                return Ok(buf.len());
            };
            if self.pending.len() + end > MAX_LINE {
                return Err(self.too_long());
            }
            let mut line = std::mem::take(&mut self.pending);
            line.extend_from_slice(&rest[..end]);
            self.line(&line);
            line.clear();
            self.pending = line; // its buffer, for the next cut line
            rest = &rest[end + 1..];
        }
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', rest) {
            if end - start > MAX_LINE {
                return Err(self.too_long());
            }
            self.line(&rest[start..end]);
            start = end + 1;
        }
        let tail = &rest[start..];
        if tail.len() > MAX_LINE {
            return Err(self.too_long());
        }
        self.pending.extend_from_slice(tail);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
#[path = "stanza_tests.rs"]
mod tests;
