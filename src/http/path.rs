//! Request paths: decoded exactly once, normalized, and refused if they could leave the tree.
//!
//! Rules (see the project README, "URL layout"): `%XX` is decoded once (so `%252e` stays the
//! literal text `%2e`), bad escapes and NUL are refused, any `..` segment is refused (also when
//! it arrived encoded), `.` segments and `//` collapse, and the query string plays no part.

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

fn percent_decode(segment: &str) -> Result<String, PathError> {
    if !segment.contains('%') {
        if segment.contains('\0') {
            return Err(PathError::Nul);
        }
        return Ok(segment.to_string());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hi = bytes.get(i + 1).and_then(|b| (*b as char).to_digit(16));
            let lo = bytes.get(i + 2).and_then(|b| (*b as char).to_digit(16));
            match (hi, lo) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => return Err(PathError::BadEscape),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return Err(PathError::Nul);
    }
    String::from_utf8(out).map_err(|_| PathError::NotUtf8)
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
