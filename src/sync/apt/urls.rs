//! The URLs asked of an apt upstream: every path (Release, indices, pool files, installer
//! images) goes through [`Mirror::url`], so a name with a space, `#` or `%` is asked for the
//! same way wherever it appears. Also the key that tells which upstream a set of validators
//! came from, without storing the URL's credentials.

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use sha2::{Digest, Sha256};

use super::Mirror;

/// Bytes escaped in one segment of a path asked of an upstream: controls, non-ASCII, the
/// space, what would end the path or change its meaning (`#`, `?`, `%`, `/`) and what RFC 3986
/// never allows bare. `+`, `~` and the other sub-delimiters stay: archives name files with
/// them (`foo_1.0+b1~x_amd64.deb`) and some servers read an escaped `+` differently.
const UPSTREAM_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A repository-relative path as it goes into an upstream URL, encoded segment by segment.
#[cfg(test)]
fn encode_path(path: &str) -> String {
    let mut encoded = String::with_capacity(path.len());
    encode_into(&mut encoded, path);
    encoded
}

/// A repository-relative path as it goes into an upstream URL, encoded segment by segment,
/// appended to `out` (a sync encodes every pool file's path: no allocation per segment).
fn encode_into(out: &mut String, path: &str) {
    for (n, segment) in path.split('/').enumerate() {
        if n > 0 {
            out.push('/');
        }
        out.extend(utf8_percent_encode(segment, UPSTREAM_SEGMENT));
    }
}

impl Mirror<'_> {
    /// The upstream URL of a repository-relative path (encoded here: callers pass names as
    /// the Release and the indices spell them).
    pub(super) fn url(&self, path: &str) -> String {
        upstream_url(&self.config.repository.url, path)
    }
}

/// `base` (the repository URL, ending in `/`) joined with the encoded `path`.
fn upstream_url(base: &str, path: &str) -> String {
    let mut url = String::with_capacity(base.len() + path.len() + 8);
    url.push_str(base);
    encode_into(&mut url, path);
    url
}

/// A stable key for `url` without its userinfo, query and fragment (a token there must not
/// land on disk): validators recorded for one upstream are never sent to another.
pub(super) fn url_key(url: &str) -> String {
    let mut bare = url.split(['?', '#']).next().unwrap_or(url).to_string();
    if let Some(scheme_end) = bare.find("://") {
        let rest = &bare[scheme_end + 3..];
        let authority_end = rest.find('/').unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            bare = format!("{}{}", &bare[..scheme_end + 3], &rest[at + 1..]);
        }
    }
    hex::encode(Sha256::digest(bare.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_encoded_segment_by_segment_keeping_what_archives_use() {
        assert_eq!(
            encode_path("pool/main/f/foo/foo_1.0+b1~x_amd64.deb"),
            "pool/main/f/foo/foo_1.0+b1~x_amd64.deb"
        );
        assert_eq!(
            encode_path("dists/x/main/i18n/Translation-en 100%#1?"),
            "dists/x/main/i18n/Translation-en%20100%25%231%3F"
        );
        assert_eq!(
            encode_path("pool/main/a/al pha#1?%ä/a_1:2.deb"),
            "pool/main/a/al%20pha%231%3F%25%C3%A4/a_1:2.deb"
        );
    }

    #[test]
    fn every_upstream_url_is_encoded_the_same_way() {
        let base = "http://deb.example.org/debian/";
        for (path, url) in [
            (
                "dists/x/main/Contents-all 1.gz",
                "http://deb.example.org/debian/dists/x/main/Contents-all%201.gz",
            ),
            (
                "dists/x/main/installer-amd64/current/images/net#boot.tar.gz",
                "http://deb.example.org/debian/dists/x/main/installer-amd64/current/images/net%23boot.tar.gz",
            ),
            (
                "pool/main/a/a+b/a_1.0~x_amd64.deb",
                "http://deb.example.org/debian/pool/main/a/a+b/a_1.0~x_amd64.deb",
            ),
        ] {
            assert_eq!(upstream_url(base, path), url);
        }
    }

    #[test]
    fn the_url_key_ignores_credentials_and_queries_but_not_the_host_or_path() {
        let plain = url_key("https://deb.example.org/debian/dists/x/InRelease");
        assert_eq!(
            plain,
            url_key("https://user:secret@deb.example.org/debian/dists/x/InRelease?token=1")
        );
        assert!(!plain.contains("example"));
        assert_ne!(
            plain,
            url_key("https://other.example.org/debian/dists/x/InRelease")
        );
        assert_ne!(
            plain,
            url_key("https://deb.example.org/ubuntu/dists/x/InRelease")
        );
    }
}
