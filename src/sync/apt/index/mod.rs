//! Packages and Sources indices: decompressed as a stream (gz, xz, bz2, zst or plain, in
//! every form the archive tools write: see `decompress`) and parsed stanza by stanza, so even
//! Debian's largest indices never sit in memory whole. The decoder runs on a thread of its
//! own, ahead of the parser (`pipe`).

mod decompress;
mod list;
mod pipe;
#[cfg(test)]
mod reference;
mod stanza;

use std::io::{self, Read};

pub use decompress::decompressed;
pub use list::{PoolFileRef, PoolList};

use crate::glob::PatternSet;
use crate::store::ObjectId;
use stanza::StanzaParser;

/// A file an index names, relative to the repository root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFile {
    pub path: String,
    pub size: u64,
    /// Decoded once, by the parser: a dry run and a sync look it up as it is.
    pub sha256: ObjectId,
    pub package: String,
}

/// Where the stanza parser puts the files it finds.
pub trait FileSink {
    fn add(&mut self, path: &str, size: u64, sha256: ObjectId, package: &str)
        -> Result<(), String>;
}

/// Each file as a [`PoolFile`] of its own (the tests compare whole lists).
impl FileSink for Vec<PoolFile> {
    fn add(
        &mut self,
        path: &str,
        size: u64,
        sha256: ObjectId,
        package: &str,
    ) -> Result<(), String> {
        self.push(PoolFile {
            path: path.to_string(),
            size,
            sha256,
            package: package.to_string(),
        });
        Ok(())
    }
}

/// The files of every index of a sync, in one compact list.
impl FileSink for &mut PoolList {
    fn add(
        &mut self,
        path: &str,
        size: u64,
        sha256: ObjectId,
        package: &str,
    ) -> Result<(), String> {
        PoolList::add(self, path, size, sha256, package)
    }
}

/// Which packages to leave out.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Package name globs (`*-dbgsym`, `linux-image-*`).
    pub skip_packages: PatternSet,
    /// Sections (`debug`, `non-free/games`); a bare name also matches `<area>/<name>`.
    pub skip_sections: Vec<String>,
}

impl Filter {
    /// Compiles the package globs; the error names the pattern that does not compile.
    pub fn new(skip_packages: Vec<String>, skip_sections: Vec<String>) -> Result<Filter, String> {
        Ok(Filter {
            skip_packages: PatternSet::new(skip_packages)?,
            skip_sections,
        })
    }

    fn skips(&self, package: &str, section: &str) -> bool {
        (!self.skip_packages.is_empty() && self.skip_packages.is_match(package))
            || self.skip_sections.iter().any(|s| {
                section == s || section.rsplit_once('/').is_some_and(|(_, tail)| tail == s)
            })
    }
}

/// Rank of a compression for parsing: lower is preferred (cheap to decode, streams well).
pub fn parse_preference(path: &str) -> Option<u8> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stem = name.split('.').next().unwrap_or(name);
    if stem != "Packages" && stem != "Sources" {
        return None;
    }
    match name.strip_prefix(stem).unwrap_or("") {
        ".gz" => Some(0),
        "" => Some(1),
        ".xz" => Some(2),
        ".zst" => Some(3),
        ".bz2" => Some(4),
        _ => None,
    }
}

/// Parses one index (its name gives the compression) and adds the files it names to
/// `files`. A stanza that names a file without a SHA256 (or without Size, Filename,
/// Directory) is an error naming the package and its line, never dropped: see `stanza`.
pub fn parse_into(
    name: &str,
    input: impl Read + Send,
    filter: &Filter,
    files: &mut PoolList,
) -> io::Result<()> {
    parse_with(name, input, filter, files).map(drop)
}

/// [`parse_into`], each file returned on its own (for a look at one index).
pub fn parse(name: &str, input: impl Read + Send, filter: &Filter) -> io::Result<Vec<PoolFile>> {
    parse_with(name, input, filter, Vec::new())
}

fn parse_with<S: FileSink>(
    name: &str,
    input: impl Read + Send,
    filter: &Filter,
    files: S,
) -> io::Result<S> {
    let sources = name
        .rsplit('/')
        .next()
        .unwrap_or(name)
        .starts_with("Sources");
    let mut parser = StanzaParser::with_sink(sources, filter.clone(), files);
    pipe::copy(decompressed(name, input)?, &mut parser)?;
    parser.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACKAGES: &str = "Package: a\nSection: utils\nFilename: pool/main/a/a_1_amd64.deb\nSize: 10\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\nDescription: x\n continued\n\nPackage: a-dbgsym\nSection: debug\nFilename: pool/main/a/a-dbgsym_1_amd64.deb\nSize: 20\nSHA256: 2222222222222222222222222222222222222222222222222222222222222222\n\nPackage: b\nSection: non-free/games\nFilename: ./b_1_all.deb\nSize: 30\nSHA256: 3333333333333333333333333333333333333333333333333333333333333333";

    use std::io::Write;

    #[test]
    fn packages_in_every_compression() {
        let filter = Filter::default();
        let plain = parse("Packages", PACKAGES.as_bytes(), &filter).unwrap();
        assert_eq!(plain.len(), 3);
        assert_eq!(plain[2].path, "b_1_all.deb");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(PACKAGES.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(
            parse("x/Packages.gz", gz.as_slice(), &filter).unwrap(),
            plain
        );
        let mut xz = Vec::new();
        lzma_rs::xz_compress(&mut PACKAGES.as_bytes(), &mut xz).unwrap();
        assert_eq!(parse("Packages.xz", xz.as_slice(), &filter).unwrap(), plain);
        let mut bz = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
        bz.write_all(PACKAGES.as_bytes()).unwrap();
        let bz = bz.finish().unwrap();
        assert_eq!(
            parse("Packages.bz2", bz.as_slice(), &filter).unwrap(),
            plain
        );
        assert!(parse("Packages.gz", &b"not gzip"[..], &filter).is_err());
    }

    #[test]
    fn filters() {
        let filter = Filter::new(vec!["*-dbgsym".into()], vec!["games".into()]).unwrap();
        let files = parse("Packages", PACKAGES.as_bytes(), &filter).unwrap();
        let names: Vec<&str> = files.iter().map(|f| f.package.as_str()).collect();
        assert_eq!(names, ["a"]);
        let glob =
            |pattern: &str, name: &str| crate::glob::Pattern::new(pattern).unwrap().is_match(name);
        assert!(glob("linux-*-amd64", "linux-image-6.1-amd64"));
        assert!(!glob("linux-*-amd64", "linux-image-6.1-arm64"));
        assert!(glob("?b*", "ab"));
        assert!(glob("linux-{image,headers}-*", "linux-headers-6.1"));
        assert!(!glob("linux-{image,headers}-*", "linux-kbuild-6.1"));
        assert!(glob("lib[xy]*", "libx11"));
        assert!(!glob("lib[xy]*", "libz"));
        assert!(Filter::new(vec!["lib[xy".into()], vec![]).is_err());
    }

    #[test]
    fn sources_and_unsafe_paths() {
        let sources = "Package: s\nDirectory: pool/main/s/s\nChecksums-Sha256:\n 4444444444444444444444444444444444444444444444444444444444444444 5 s_1.dsc\n 5555555555555555555555555555555555555555555555555555555555555555 6 s_1.tar.xz\n";
        let files = parse("Sources", sources.as_bytes(), &Filter::default()).unwrap();
        assert_eq!(files.len(), 2);
        assert_eq!(files[1].path, "pool/main/s/s/s_1.tar.xz");
        let evil = "Package: e\nFilename: ../../etc/passwd\nSize: 1\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n";
        assert!(parse("Packages", evil.as_bytes(), &Filter::default()).is_err());
        let weak = "Package: w\nFilename: pool/w.deb\nSize: 1\nMD5sum: 0123\n";
        assert!(parse("Packages", weak.as_bytes(), &Filter::default()).is_err());
        assert_eq!(parse_preference("main/binary-amd64/Packages.xz"), Some(2));
        assert_eq!(parse_preference("main/i18n/Translation-en.xz"), None);
    }

    /// The error of parsing `text` as index `name`, which must fail.
    fn refused(name: &str, text: &str) -> String {
        match parse(name, text.as_bytes(), &Filter::default()) {
            Ok(files) => panic!("accepted: {files:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn stanzas_that_name_files_without_a_trusted_hash_are_refused() {
        let sha = "1".repeat(64);
        let weak = "Package: ok\nFilename: pool/ok.deb\nSize: 1\nSHA256: 1111111111111111111111111111111111111111111111111111111111111111\n\nPackage: w\nFilename: pool/w.deb\nSize: 1\nMD5sum: 0123\nSHA1: 4567\n";
        let message = refused("Packages", weak);
        assert!(
            message.contains("package w (line 6) has only MD5sum/SHA1 and no SHA256"),
            "{message}"
        );
        let cases = [
            (
                format!("Package: n\nSize: 1\nSHA256: {sha}\n"),
                "package n (line 1) has no Filename",
            ),
            (
                format!("Package: n\nFilename: n.deb\nSHA256: {sha}\n"),
                "has no Size",
            ),
            (
                format!("Package: n\nFilename: n.deb\nSize: x\nSHA256: {sha}\n"),
                "Size `x` is not a number",
            ),
            (
                "Package: n\nFilename: n.deb\nSize: 1\nSHA256: 12\n".into(),
                "`12` is not a SHA256",
            ),
            (
                format!("Filename: n.deb\nSize: 1\nSHA256: {sha}\n"),
                "the stanza at line 1 has no Package field",
            ),
        ];
        for (text, expected) in cases {
            let message = refused("Packages", &text);
            assert!(message.contains(expected), "{text}: {message}");
        }
        // A package the filter leaves out is never fetched, so never checked.
        let filter = Filter::new(vec!["w".into()], vec![]).unwrap();
        assert_eq!(
            parse("Packages", weak.as_bytes(), &filter).unwrap().len(),
            1
        );
        // A stanza naming no file (a comment-only or empty stanza) is not an error.
        assert!(parse(
            "Packages",
            "\n\n\nX-Note: x\n\n".as_bytes(),
            &Filter::default()
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn sources_stanzas_need_checksums_sha256_and_a_directory() {
        let cases = [
            ("Package: s\nDirectory: d\nFiles:\n 0123456789abcdef0123456789abcdef 5 s.dsc\n", "source package s (line 1) has only Files and no Checksums-Sha256"),
            ("Package: s\nDirectory: d\n", "source package s (line 1) has no Checksums-Sha256"),
            ("Package: s\nChecksums-Sha256:\n 4444444444444444444444444444444444444444444444444444444444444444 5 s.dsc\n", "has no Directory"),
            ("Package: s\nDirectory: d\nChecksums-Sha256:\n 4444 5\n", "bad Checksums-Sha256 line `4444 5`"),
            ("Package: s\nDirectory: d\nChecksums-Sha256:\n 4444 5 s.dsc\n", "`4444` is not a SHA256"),
        ];
        for (text, expected) in cases {
            let message = refused("Sources", text);
            assert!(message.contains(expected), "{text}: {message}");
        }
    }
}
