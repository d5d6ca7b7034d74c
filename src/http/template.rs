//! The escaping of the HTML pages' askama templates (`static/*.html`, set up in
//! `static/askama.toml`): every value a template shows is escaped with named entities
//! (`&lt;`, `&gt;`, `&amp;`, `&quot;`) and `&#39;`, the same text the pages had before they
//! moved to askama, which writes numeric ones (`&#60;`) by default.

use std::fmt::{self, Write};

/// Escapes `&`, `<`, `>`, `"` and `'`: safe in text and in quoted attribute values.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct NamedEntities;

impl askama::filters::Escaper for NamedEntities {
    fn write_escaped_str<W: Write>(&self, mut dest: W, text: &str) -> fmt::Result {
        let mut last = 0;
        for (index, byte) in text.bytes().enumerate() {
            let entity = match byte {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                b'\'' => "&#39;",
                _ => continue,
            };
            dest.write_str(&text[last..index])?;
            dest.write_str(entity)?;
            last = index + 1;
        }
        dest.write_str(&text[last..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use askama::filters::Escaper;

    #[test]
    fn named_entities() {
        let mut out = String::new();
        NamedEntities
            .write_escaped_str(&mut out, "<a href=\"x\">&'é")
            .unwrap();
        assert_eq!(out, "&lt;a href=&quot;x&quot;&gt;&amp;&#39;é");
    }
}
