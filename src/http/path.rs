//! Request paths: decoded exactly once, normalized, and refused if they could leave the tree.
//!
//! Rules (see the project README, "URL layout"): `%XX` is decoded once (so `%252e` stays the
//! literal text `%2e`), bad escapes and NUL are refused, any `..` segment is refused (also when
//! it arrived encoded), `.` segments and `//` collapse, and the query string plays no part.

use percent_encoding::percent_decode_str;

/// A normalized request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPath {
    /// `/a/b` form; the root is `/`.
    pub key: String,
    /// Whether the request ended in `/` (matters for directory redirects).
    pub trailing_slash: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("path does not start with /")]
    NotAbsolute,
    #[error("bad percent escape in path")]
    BadEscape,
    #[error("NUL byte in path")]
    Nul,
    #[error("path is not valid UTF-8")]
    NotUtf8,
    #[error("`.` or `..` segment in path")]
    DotSegment,
}

/// Decodes and normalizes the path part of a request target (without the query).
pub fn decode(raw: &str) -> Result<RequestPath, PathError> {
    if !raw.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let mut key = String::with_capacity(raw.len());
    let mut last_segment_empty = false;
    for segment in raw.split('/').skip(1) {
        if segment.is_empty() {
            last_segment_empty = true;
            continue;
        }
        last_segment_empty = false;
        let decoded = percent_decode(segment)?;
        if decoded == "." {
            // apt asks `…/flat/./InRelease` for flat repositories (`deb URL ./`): a `.` goes
            // nowhere, so it is dropped, as RFC 3986 dot-segment removal would do.
            last_segment_empty = true;
            continue;
        }
        if decoded == ".." {
            return Err(PathError::DotSegment);
        }
        if decoded.contains('/') {
            // An encoded slash would make a segment that is not one: refuse rather than guess.
            return Err(PathError::BadEscape);
        }
        key.push('/');
        key.push_str(&decoded);
    }
    if key.is_empty() {
        key.push('/');
    }
    Ok(RequestPath {
        trailing_slash: last_segment_empty && key != "/",
        key,
    })
}

/// Decodes one segment. The crate's decoder passes malformed escapes through as text, so they
/// are refused here first: `%zz` must not reach the store as a literal name.
fn percent_decode(segment: &str) -> Result<String, PathError> {
    if !escapes_well_formed(segment) {
        return Err(PathError::BadEscape);
    }
    let decoded: Vec<u8> = percent_decode_str(segment).collect();
    if decoded.contains(&0) {
        return Err(PathError::Nul);
    }
    String::from_utf8(decoded).map_err(|_| PathError::NotUtf8)
}

/// Whether every `%` starts `%XX` with two hex digits.
fn escapes_well_formed(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    })
}

pub use crate::urls::encode_segment;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        use PathError::*;
        let ok = |key: &str, slash: bool| {
            Ok(RequestPath {
                key: key.into(),
                trailing_slash: slash,
            })
        };
        let cases: &[(&str, Result<RequestPath, PathError>)] = &[
            ("/", ok("/", false)),
            ("//", ok("/", false)),
            ("/a", ok("/a", false)),
            ("/a/", ok("/a", true)),
            ("/a//b", ok("/a/b", false)),
            ("//a///b//", ok("/a/b", true)),
            ("/a%20b", ok("/a b", false)),
            ("/pkg%2b1%7e2", ok("/pkg+1~2", false)),
            ("/pkg%2B1", ok("/pkg+1", false)),
            ("/a+b", ok("/a+b", false)),
            ("/%252e%252e/x", ok("/%2e%2e/x", false)),
            ("/%C3%A4", ok("/ä", false)),
            ("/.hidden", ok("/.hidden", false)),
            ("/a..b", ok("/a..b", false)),
            ("/...", ok("/...", false)),
            ("/.", ok("/", false)),
            ("/a/.", ok("/a", true)),
            ("/flat/./InRelease", ok("/flat/InRelease", false)),
            ("/a/%2e/b", ok("/a/b", false)),
            ("/..", Err(DotSegment)),
            ("/a/../b", Err(DotSegment)),
            ("/a/..", Err(DotSegment)),
            ("/%2e%2e/etc/passwd", Err(DotSegment)),
            ("/%2E%2e", Err(DotSegment)),
            ("/.%2e/", Err(DotSegment)),
            ("/a%2fb", Err(BadEscape)),
            ("/a%2F..%2Fb", Err(BadEscape)),
            ("/a%", Err(BadEscape)),
            ("/a%4", Err(BadEscape)),
            ("/a%zz", Err(BadEscape)),
            ("/a%00b", Err(Nul)),
            ("/a\0b", Err(Nul)),
            ("/%ff", Err(NotUtf8)),
            ("a", Err(NotAbsolute)),
            ("", Err(NotAbsolute)),
            ("*", Err(NotAbsolute)),
        ];
        for (raw, expected) in cases {
            assert_eq!(&decode(raw), expected, "decoding {raw:?}");
        }
    }

    /// Escapes the decoder refuses or accepts, checked against the hand-written decoder this
    /// module had before it used the `percent-encoding` crate.
    #[test]
    fn nasty_escapes() {
        use PathError::*;
        let cases: &[(&str, Result<&str, PathError>)] = &[
            ("", Ok("")),
            ("%", Err(BadEscape)),
            ("%%", Err(BadEscape)),
            ("%%41", Err(BadEscape)),
            ("%4", Err(BadEscape)),
            ("%4g", Err(BadEscape)),
            ("%+f", Err(BadEscape)),
            ("%-1", Err(BadEscape)),
            ("% 1", Err(BadEscape)),
            ("%ä1", Err(BadEscape)),
            ("a%41%", Err(BadEscape)),
            ("100%", Err(BadEscape)),
            ("%41", Ok("A")),
            ("%7e%7E", Ok("~~")),
            ("%2f", Ok("/")),
            ("%c3%a4", Ok("ä")),
            ("%F0%9F%98%80", Ok("😀")),
            ("%00", Err(Nul)),
            ("a\0", Err(Nul)),
            ("%00%ff", Err(Nul)),
            ("%C3", Err(NotUtf8)),
            ("%e2%82", Err(NotUtf8)),
            ("%80", Err(NotUtf8)),
            ("\u{7f}", Ok("\u{7f}")),
        ];
        for (raw, expected) in cases {
            let expected = expected.map(str::to_string);
            assert_eq!(percent_decode(raw), expected, "{raw:?}");
        }
        for (raw, encoded) in [
            ("a b", "a%20b"),
            ("~-._", "~-._"),
            ("x?y#z/", "x%3Fy%23z%2F"),
            ("100%", "100%25"),
            ("ä", "%C3%A4"),
            ("\u{7f}+", "%7F%2B"),
        ] {
            assert_eq!(encode_segment(raw), encoded, "{raw:?}");
        }
    }

    #[test]
    fn encoding_round_trips() {
        for name in ["a b", "pkg+1~2", "ä", "100%", "x?y#z", "a/b"] {
            let encoded = encode_segment(name);
            assert!(!encoded.contains(['/', '?', '#', ' ']));
            let decoded = percent_decode(&encoded).unwrap();
            assert_eq!(decoded, name);
        }
    }
}
