//! The first stanza parser (a line at a time, as owned text), kept for the tests only: the
//! parser in `stanza` must find exactly what this one found, for any input and any split.
//!
//! A stanza the filter leaves out is not checked: its files are never fetched. Every other
//! stanza must give each of its files a SHA256 (MD5 and SHA1 are broken, so a package that
//! offers only those would be fetched unverified); it is refused, not dropped, so a mirror
//! never silently lacks a package its index lists.

use std::io::{self, Write};

use super::{Filter, PoolFile};
use crate::store::ObjectId;

/// The longest line accepted, in bytes. Real stanza lines are short (a long Description
/// line is a few KiB); a hostile index could otherwise send one endless line and make the
/// mirror hold all of it.
const MAX_LINE: usize = 1024 * 1024;

/// Consumes index text in arbitrary chunks; collects the files of every stanza.
pub(super) struct StanzaParser {
    sources: bool,
    filter: Filter,
    /// The start of a line whose end has not arrived yet.
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no line end: each write scans only what it adds.
    scanned: usize,
    line_number: usize,
    stanza: Stanza,
    files: Vec<PoolFile>,
    error: Option<String>,
}

/// The fields of one stanza that matter to the mirror.
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
    weak: Vec<String>,
    directory: String,
    /// `Checksums-Sha256` lines of a Sources stanza; `None` without the field.
    checksums: Option<Vec<String>>,
    in_checksums: bool,
}

impl StanzaParser {
    pub(super) fn new(sources: bool, filter: Filter) -> StanzaParser {
        StanzaParser {
            sources,
            filter,
            pending: Vec::new(),
            scanned: 0,
            line_number: 0,
            stanza: Stanza::default(),
            files: Vec::new(),
            error: None,
        }
    }

    fn line(&mut self, line: &str) {
        self.line_number += 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            self.end_stanza();
            return;
        }
        if self.stanza.line == 0 {
            self.stanza.line = self.line_number;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if self.stanza.in_checksums {
                if let Some(lines) = &mut self.stanza.checksums {
                    lines.push(line.trim().to_string());
                }
            }
            return;
        }
        self.stanza.in_checksums = false;
        let Some((name, value)) = line.split_once(':') else {
            return;
        };
        let value = value.trim();
        let stanza = &mut self.stanza;
        match name {
            "Package" => stanza.package = value.to_string(),
            "Section" => stanza.section = value.to_string(),
            "Filename" => stanza.filename = value.to_string(),
            "Size" => stanza.size = Some(value.to_string()),
            "SHA256" => stanza.sha256 = Some(value.to_ascii_lowercase()),
            "Directory" => stanza.directory = value.to_string(),
            "Checksums-Sha256" => {
                stanza.checksums = Some(Vec::new());
                stanza.in_checksums = true;
            }
            "MD5sum" | "SHA1" | "Files" | "Checksums-Sha1" | "Checksums-Md5" => {
                stanza.weak.push(name.to_string())
            }
            _ => {}
        }
    }

    fn end_stanza(&mut self) {
        let stanza = std::mem::take(&mut self.stanza);
        if stanza.line == 0 {
            return;
        }
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
            self.source_files(&stanza)
        } else {
            self.binary_file(&stanza)
        };
        if let Err(message) = result {
            self.error.get_or_insert(message);
        }
    }

    /// The one file of a Packages stanza: `Filename`, `Size` and `SHA256`.
    fn binary_file(&mut self, stanza: &Stanza) -> Result<(), String> {
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
            Some(text) => text.parse().map_err(|_| {
                format!("package {package} (line {at}): Size `{text}` is not a number")
            })?,
        };
        let sha256 = check_sha256(sha256, package, at)?;
        self.push(stanza.filename.clone(), size, sha256, package)
    }

    /// The files of a Sources stanza: its `Checksums-Sha256` lines, under `Directory`.
    fn source_files(&mut self, stanza: &Stanza) -> Result<(), String> {
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
            let bad = || {
                format!("source package {package} (line {at}): bad Checksums-Sha256 line `{line}`")
            };
            let [hash, size, name] = line.split_whitespace().collect::<Vec<_>>()[..] else {
                return Err(bad());
            };
            let size = size.parse().map_err(|_| bad())?;
            let hash = check_sha256(&hash.to_ascii_lowercase(), package, at)?;
            self.push(format!("{}/{name}", stanza.directory), size, hash, package)?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        path: String,
        size: u64,
        sha256: ObjectId,
        package: &str,
    ) -> Result<(), String> {
        let path = path.trim_start_matches("./").to_string();
        if path.starts_with('/') || path.split('/').any(|s| s == ".." || s == ".") {
            return Err(format!("package {package} names an unsafe path `{path}`"));
        }
        self.files.push(PoolFile {
            path,
            size,
            sha256,
            package: package.to_string(),
        });
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<Vec<PoolFile>> {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.line(&String::from_utf8_lossy(&rest));
        }
        self.end_stanza();
        if let Some(error) = self.error {
            return Err(io::Error::new(io::ErrorKind::InvalidData, error));
        }
        Ok(self.files)
    }
}

/// The message for a stanza without its SHA256 field, naming the weaker hashes it has.
fn missing_sha256(what: &str, field: &str, weak: &[String]) -> String {
    if weak.is_empty() {
        format!("{what} has no {field}: only SHA256 is trusted, so it is refused")
    } else {
        format!(
            "{what} has only {} and no {field}: MD5 and SHA1 are not secure, so it is refused",
            weak.join("/")
        )
    }
}

fn check_sha256(hash: &str, package: &str, at: usize) -> Result<ObjectId, String> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hash.parse().expect("64 hex digits"))
    } else {
        Err(format!(
            "package {package} (line {at}): `{hash}` is not a SHA256"
        ))
    }
}

impl Write for StanzaParser {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.pending.extend_from_slice(buf);
        let mut start = 0;
        let mut from = self.scanned;
        while let Some(end) = self.pending[from..].iter().position(|b| *b == b'\n') {
            let end = from + end;
            let line = String::from_utf8_lossy(&self.pending[start..end]).into_owned();
            self.line(&line);
            start = end + 1;
            from = start;
        }
        self.pending.drain(..start);
        self.scanned = self.pending.len();
        if self.pending.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "line {} is longer than {} MiB: not an index",
                    self.line_number + 1,
                    MAX_LINE / (1024 * 1024)
                ),
            ));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
