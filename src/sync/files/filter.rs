//! `include` / `exclude` of a `files` source: globs over the path relative to the tree's root.
//!
//! `*` and `?` stay within one path segment and `**` crosses segments, so `*.iso` means the
//! ISO files at the top and `**/*.iso` those at any depth. A pattern that matches a directory
//! covers everything under it (as in `.gitignore`): `exclude = ["old"]` leaves out the whole
//! `old/` folder, which also lets the listing walk skip it without asking the upstream.

use crate::glob::{Pattern, PatternSet};

/// Which relative paths a `files` source publishes. Exclude wins over include; no include
/// patterns means everything.
#[derive(Debug, Clone, Default)]
pub struct PathFilter {
    pub include: PatternSet,
    pub exclude: PatternSet,
    /// The include patterns, segment by segment, for [`PathFilter::may_descend`].
    below: Vec<Segments>,
}

impl PathFilter {
    /// Compiles the patterns (each checked with [`PathFilter::check_pattern`] first, which
    /// names the key in its message).
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Result<PathFilter, String> {
        let below = include.iter().map(|p| Segments::new(p)).collect();
        Ok(PathFilter {
            include: PatternSet::new(include)?,
            exclude: PatternSet::new(exclude)?,
            below,
        })
    }

    /// Checks a pattern given in the configuration; the message says what is wrong with it.
    pub fn check_pattern(pattern: &str) -> Result<(), String> {
        if pattern.is_empty() {
            return Err("an empty pattern matches nothing".into());
        }
        if pattern.starts_with('/') {
            return Err(format!(
                "`{pattern}` must be relative to `url` (no leading `/`)"
            ));
        }
        if pattern.split('/').any(|s| s == "." || s == "..") {
            return Err(format!("`{pattern}` has a `.` or `..` segment"));
        }
        Pattern::new(pattern).map(|_| ())
    }

    /// Whether the file at `path` is published.
    pub fn wants(&self, path: &str) -> bool {
        if covered(&self.exclude, path) {
            return false;
        }
        self.include.is_empty() || covered(&self.include, path)
    }

    /// Whether a walk of the upstream should look inside directory `dir` (relative, without
    /// a trailing slash): not if it is excluded, nor if no include pattern can match anything
    /// under it.
    pub fn may_descend(&self, dir: &str) -> bool {
        if covered(&self.exclude, dir) {
            return false;
        }
        if self.include.is_empty() || covered(&self.include, dir) {
            return true;
        }
        self.below.iter().any(|p| p.could_match_below(dir))
    }
}

/// Two filters are equal when their patterns are (`below` follows from `include`).
impl PartialEq for PathFilter {
    fn eq(&self, other: &PathFilter) -> bool {
        self.include == other.include && self.exclude == other.exclude
    }
}

impl Eq for PathFilter {}

/// True when a pattern matches `path` or one of its parent directories.
fn covered(patterns: &PatternSet, path: &str) -> bool {
    let mut end = Some(path.len());
    while let Some(at) = end {
        let candidate = &path[..at];
        if patterns.is_match(candidate) {
            return true;
        }
        end = candidate.rfind('/');
    }
    false
}

/// One include pattern cut at its `/`s, to tell whether anything below a directory could
/// match it. Errs on the side of descending: a walk that looks once too often only costs a
/// listing request, one that skips a folder loses files.
#[derive(Debug, Clone)]
enum Segments {
    /// Alternatives (which may hold a `/`) or a segment that does not compile on its own:
    /// always descend.
    Unknown,
    Known {
        /// The segments before the first one holding `**` (and that one's start, if it has one
        /// before the `**`).
        fixed: Vec<Pattern>,
        /// Whether a `**` follows them (it can match any depth).
        recursive: bool,
    },
}

impl Segments {
    fn new(pattern: &str) -> Segments {
        if pattern.contains('{') {
            return Segments::Unknown;
        }
        let mut fixed = Vec::new();
        for segment in pattern.split('/') {
            if let Some(at) = segment.find("**") {
                // `x**y` crosses segments, but this one must still start with `x`.
                if at > 0 {
                    match Pattern::new(&format!("{}*", &segment[..at])) {
                        Ok(p) => fixed.push(p),
                        Err(_) => return Segments::Unknown,
                    }
                }
                return Segments::Known {
                    fixed,
                    recursive: true,
                };
            }
            match Pattern::new(segment) {
                Ok(p) => fixed.push(p),
                Err(_) => return Segments::Unknown,
            }
        }
        Segments::Known {
            fixed,
            recursive: false,
        }
    }

    /// True when some path below `dir` could match.
    fn could_match_below(&self, dir: &str) -> bool {
        let Segments::Known { fixed, recursive } = self else {
            return true;
        };
        let mut depth = 0;
        for part in dir.split('/') {
            let Some(segment) = fixed.get(depth) else {
                return *recursive;
            };
            if !segment.is_match(part) {
                return false;
            }
            depth += 1;
        }
        *recursive || depth < fixed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let cases = [
            ("*.iso", "proxmox.iso", true),
            ("*.iso", "old/proxmox.iso", false),
            ("**/*.iso", "proxmox.iso", true),
            ("**/*.iso", "a/b/proxmox.iso", true),
            ("**.iso", "a/b/proxmox.iso", true),
            ("**/x", "ax", false),
            ("**/x", "a/b/x", true),
            ("iso/*", "iso/a.iso", true),
            ("iso/*", "iso/sub/a.iso", false),
            ("iso/**", "iso/sub/a.iso", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("proxmox-ve_*.iso", "proxmox-ve_8.2-1.iso", true),
            ("SHA256SUMS", "SHA256SUMS", true),
            ("SHA256SUMS", "SHA256SUMS.asc", false),
            ("", "", true),
        ];
        for (pattern, path, want) in cases {
            let compiled = Pattern::new(pattern).unwrap();
            assert_eq!(compiled.is_match(path), want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn exclude_wins_and_directories_cover_their_contents() {
        let filter = PathFilter::new(
            vec!["iso/**".into(), "images/system/*.tar.zst".into()],
            vec!["iso/old".into(), "**/*beta*".into()],
        )
        .unwrap();
        assert!(filter.wants("iso/proxmox-ve_8.2-1.iso"));
        assert!(!filter.wants("iso/old/proxmox-ve_6.0.iso"));
        assert!(!filter.wants("iso/proxmox-ve_9.0-beta.iso"));
        assert!(filter.wants("images/system/debian-12.tar.zst"));
        assert!(!filter.wants("images/system/debian-12.tar.gz"));
        assert!(!filter.wants("images/aplinfo.dat"));
        assert!(filter.may_descend("iso"));
        assert!(!filter.may_descend("iso/old"));
        assert!(filter.may_descend("images"));
        assert!(filter.may_descend("images/system"));
        assert!(!filter.may_descend("images/other"));
        assert!(!filter.may_descend("debian"));

        let everything = PathFilter::default();
        assert!(everything.wants("a/b/c"));
        assert!(everything.may_descend("a/b"));

        let named_dir = PathFilter::new(vec!["images".into()], vec![]).unwrap();
        assert!(named_dir.wants("images/system/x.tar.zst"));
        assert!(named_dir.may_descend("images/system"));
        assert!(!named_dir.wants("iso/x.iso"));
    }

    #[test]
    fn patterns_are_checked() {
        assert!(PathFilter::check_pattern("**/*.iso").is_ok());
        assert!(PathFilter::check_pattern("").is_err());
        assert!(PathFilter::check_pattern("/iso/*").is_err());
        assert!(PathFilter::check_pattern("../x").is_err());
        assert!(PathFilter::check_pattern("iso/[abc").is_err());
        assert!(PathFilter::check_pattern("*.{iso,img}").is_ok());
    }

    #[test]
    fn alternatives_and_classes_filter_and_prune() {
        let filter = PathFilter::new(
            vec!["{iso,img}/*.[ix]*".into(), "images/[0-9]*/x".into()],
            vec![],
        )
        .unwrap();
        assert!(filter.wants("iso/a.iso"));
        assert!(filter.wants("img/b.xz"));
        assert!(!filter.wants("iso/b.tar"));
        assert!(!filter.wants("other/a.iso"));
        assert!(filter.wants("images/12/x"));
        assert!(!filter.wants("images/a/x"));
        // Alternatives may hold a `/`: such patterns always descend.
        assert!(filter.may_descend("anything"));
        let classes = PathFilter::new(vec!["images/[0-9]*/x".into()], vec![]).unwrap();
        assert!(classes.may_descend("images"));
        assert!(classes.may_descend("images/12"));
        assert!(!classes.may_descend("images/a"));
        assert!(!classes.may_descend("images/12/z"));
        assert!(
            classes.may_descend("images/12/x/y"),
            "covered by a match of its parent"
        );
        assert!(!classes.may_descend("other"));
        let crossing = PathFilter::new(vec!["iso**.iso".into()], vec![]).unwrap();
        assert!(crossing.wants("iso/a/b.iso"));
        assert!(crossing.may_descend("iso/a"));
        assert!(crossing.may_descend("isos"));
        assert!(!crossing.may_descend("img"));
    }
}
