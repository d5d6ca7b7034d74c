//! URL path segments, encoded the one way everything here writes them: listings' hrefs,
//! redirects, the status page's client instructions, upstream paths a sync asks for.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// Bytes [`encode_segment`] escapes: all but RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Encodes a path segment for an `href` or `Location`: everything but unreserved characters.
pub fn encode_segment(segment: &str) -> String {
    utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unreserved_characters_stay() {
        assert_eq!(encode_segment("a-b_c.d~e"), "a-b_c.d~e");
        assert_eq!(encode_segment("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(encode_segment("ä"), "%C3%A4");
    }
}
