//! `include` / `exclude` of a `files` source: globs over the path relative to the tree's root.
//!
//! `*` and `?` stay within one path segment and `**` crosses segments, so `*.iso` means the
//! ISO files at the top and `**/*.iso` those at any depth. A pattern that matches a directory
//! covers everything under it (as in `.gitignore`): `exclude = ["old"]` leaves out the whole
//! `old/` folder, which also lets the listing walk skip it without asking the upstream.

/// Which relative paths a `files` source publishes. Exclude wins over include; no include
/// patterns means everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathFilter {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
}

impl PathFilter {
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
        Ok(())
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
        let prefix = format!("{dir}/");
        self.include
            .iter()
            .any(|p| could_match_below(p.as_bytes(), prefix.as_bytes()))
    }
}

/// True when a pattern matches `path` or one of its parent directories.
fn covered(patterns: &[String], path: &str) -> bool {
    let mut end = Some(path.len());
    while let Some(at) = end {
        let candidate = &path[..at];
        if patterns.iter().any(|p| glob(p, candidate)) {
            return true;
        }
        end = candidate.rfind('/');
    }
    false
}

/// Matches a whole relative path: `*` any run without `/`, `?` one character other than
/// `/`, `**` any run (also across `/`); `**/` also matches no directory at all.
pub fn glob(pattern: &str, path: &str) -> bool {
    matches(pattern.as_bytes(), path.as_bytes(), false)
}

/// True when some continuation of `text` would match `pattern` (the text ran out while the
/// pattern could still go on).
fn could_match_below(pattern: &[u8], text: &[u8]) -> bool {
    matches(pattern, text, true)
}

/// The matcher behind [`glob`]; `prefix`: succeed as soon as the text is used up.
fn matches(p: &[u8], t: &[u8], prefix: bool) -> bool {
    if prefix && t.is_empty() {
        return true;
    }
    match p {
        [] => t.is_empty(),
        [b'*', b'*', b'/', rest @ ..] => {
            // Zero or more whole directories: try after every `/`.
            matches(rest, t, prefix)
                || t.iter()
                    .enumerate()
                    .any(|(i, &c)| c == b'/' && matches(rest, &t[i + 1..], prefix))
                || (prefix && !t.is_empty())
        }
        [b'*', b'*', rest @ ..] => {
            matches(rest, t, prefix) || (!t.is_empty() && matches(p, &t[1..], prefix))
        }
        [b'*', rest @ ..] => {
            matches(rest, t, prefix)
                || (t.first().is_some_and(|&c| c != b'/') && matches(p, &t[1..], prefix))
        }
        [b'?', rest @ ..] => {
            t.first().is_some_and(|&c| c != b'/') && matches(rest, &t[1..], prefix)
        }
        [c, rest @ ..] => t.first() == Some(c) && matches(rest, &t[1..], prefix),
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
            assert_eq!(glob(pattern, path), want, "{pattern} vs {path}");
        }
    }

    #[test]
    fn exclude_wins_and_directories_cover_their_contents() {
        let filter = PathFilter {
            include: vec!["iso/**".into(), "images/system/*.tar.zst".into()],
            exclude: vec!["iso/old".into(), "**/*beta*".into()],
        };
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

        let named_dir = PathFilter {
            include: vec!["images".into()],
            exclude: vec![],
        };
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
    }
}
