//! Glob patterns from the configuration (`include`, `exclude`, `skip_packages`), compiled once
//! when the configuration is read, so a sync matching thousands of names never re-parses them.
//!
//! Semantics (globset's, with two settings): `*` and `?` stay within one `/`-separated
//! segment, `**` as a whole segment crosses any number of them (`**/` also none), `{a,b}` is
//! either, `[…]` a character class, matching is case-sensitive and a backslash is an ordinary
//! character. A `**` inside a segment (`**.iso`) also crosses segments, as it did before these
//! patterns were handed to globset, which would otherwise read it as `*`.

use std::fmt;
use std::ops::Deref;

use globset::{GlobBuilder, GlobMatcher, GlobSet, GlobSetBuilder};

/// One compiled pattern.
#[derive(Clone)]
pub struct Pattern {
    text: String,
    matcher: GlobMatcher,
}

impl Pattern {
    /// Compiles `text`; the error names the pattern and what is wrong with it.
    pub fn new(text: &str) -> Result<Pattern, String> {
        Ok(Pattern {
            text: text.to_owned(),
            matcher: build(text)?.compile_matcher(),
        })
    }

    /// Whether the whole of `text` matches.
    pub fn is_match(&self, text: &str) -> bool {
        self.matcher.is_match(text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// Several patterns matched at once; reads as the list of their texts (for displays).
#[derive(Clone)]
pub struct PatternSet {
    texts: Vec<String>,
    set: GlobSet,
}

impl PatternSet {
    /// Compiles every pattern; the error names the first that does not compile.
    pub fn new(texts: Vec<String>) -> Result<PatternSet, String> {
        let mut builder = GlobSetBuilder::new();
        for text in &texts {
            builder.add(build(text)?);
        }
        let set = builder
            .build()
            .map_err(|e| format!("patterns do not compile: {e}"))?;
        Ok(PatternSet { texts, set })
    }

    /// Whether any pattern matches the whole of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.set.is_match(text)
    }
}

impl Default for PatternSet {
    fn default() -> PatternSet {
        PatternSet {
            texts: Vec::new(),
            set: GlobSet::empty(),
        }
    }
}

impl Deref for PatternSet {
    type Target = [String];

    fn deref(&self) -> &[String] {
        &self.texts
    }
}

impl fmt::Debug for PatternSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.texts, f)
    }
}

impl PartialEq for PatternSet {
    fn eq(&self, other: &PatternSet) -> bool {
        self.texts == other.texts
    }
}

impl Eq for PatternSet {}

impl<const N: usize> PartialEq<[&str; N]> for PatternSet {
    fn eq(&self, other: &[&str; N]) -> bool {
        self.texts.iter().eq(other.iter())
    }
}

fn build(text: &str) -> Result<globset::Glob, String> {
    GlobBuilder::new(&crossing_stars(text))
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map_err(|e| format!("`{text}` is not a valid glob: {}", e.kind()))
}

/// Rewrites each `**` that is not a whole segment into "any run, `/` included", which globset
/// has no single token for: `{*,*/**/*}`. Character classes are left alone.
fn crossing_stars(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut in_class = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if in_class {
            // `]` right after `[` or `[!` is a member, not the end.
            if c == ']' && !matches!(chars[..i], [.., '['] | [.., '[', '!']) {
                in_class = false;
            }
            out.push(c);
            i += 1;
            continue;
        }
        if c == '[' {
            in_class = true;
            out.push(c);
            i += 1;
            continue;
        }
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            let mut end = i;
            while chars.get(end) == Some(&'*') {
                end += 1;
            }
            let starts_segment = i == 0 || chars[i - 1] == '/';
            let ends_segment = end == chars.len() || chars[end] == '/';
            if starts_segment && ends_segment {
                out.push_str("**");
            } else {
                out.push_str("{*,*/**/*}");
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, text: &str) -> bool {
        Pattern::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn segments_stars_and_case() {
        let cases = [
            ("*.iso", "a.iso", true),
            ("*.iso", "old/a.iso", false),
            ("**/*.iso", "a.iso", true),
            ("**/*.iso", "a/b/a.iso", true),
            ("**.iso", "a/b/a.iso", true),
            ("**.iso", "a.iso", true),
            ("a**", "a/b", true),
            ("**", "a/b", true),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a?c", "a/c", false),
            ("*.ISO", "a.iso", false),
            ("a\\b", "a\\b", true),
            ("", "", true),
        ];
        for (pattern, text, want) in cases {
            assert_eq!(matches(pattern, text), want, "{pattern} vs {text}");
        }
    }

    #[test]
    fn alternatives_and_classes() {
        assert!(matches("*.{iso,img}", "x.iso"));
        assert!(matches("*.{iso,img}", "x.img"));
        assert!(!matches("*.{iso,img}", "x.tar"));
        assert!(matches("linux-image-[0-9]*", "linux-image-6.1-amd64"));
        assert!(!matches("linux-image-[0-9]*", "linux-image-amd64"));
        assert!(matches("[!a]b", "cb"));
        assert!(!matches("[!a]b", "ab"));
        assert!(matches("[**]x", "*x"), "a class is left alone");
        assert!(matches("{a,b/**}/c", "b/x/y/c"));
    }

    #[test]
    fn invalid_patterns_are_errors_naming_them() {
        for bad in ["[abc", "{a,b", "a[z-a]"] {
            let Err(message) = Pattern::new(bad) else {
                panic!("{bad} compiled");
            };
            assert!(message.contains(bad), "{message}");
            assert!(PatternSet::new(vec!["ok".into(), bad.into()]).is_err());
        }
    }

    #[test]
    fn sets_read_as_their_texts() {
        let set = PatternSet::new(vec!["*.iso".into(), "SHA256SUMS".into()]).unwrap();
        assert_eq!(set, ["*.iso", "SHA256SUMS"]);
        assert_eq!(set.join(" "), "*.iso SHA256SUMS");
        assert!(set.is_match("x.iso") && set.is_match("SHA256SUMS") && !set.is_match("a/x.iso"));
        assert!(!PatternSet::default().is_match(""));
    }
}
