//! One sources.list line: `deb [options] URL SUITE [COMPONENT…]`, or a flat repository
//! `deb URL DIR/` (no components; Release and Packages live in `URL/DIR/`).

/// A parsed sources.list line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `deb` (binary packages) and/or `deb-src` (sources).
    pub binary: bool,
    pub source: bool,
    /// Base URL, always ending in `/`.
    pub url: String,
    /// The suite (`bookworm`) or, for a flat repository, the directory (`./`, `dir/`).
    pub suite: String,
    /// Empty for a flat repository.
    pub components: Vec<String>,
}

impl Repository {
    pub fn is_flat(&self) -> bool {
        self.components.is_empty()
    }

    /// The components as a client of the mirror writes them. Debian-Security names its
    /// components `updates/main …` in the Release but lists their indices under `main/`; apt
    /// accepts `main` for `updates/main` and looks up `main/…`, while a line that says
    /// `updates/main` makes apt look up `updates/main/…`, which that Release does not list
    /// (apt then skips the component without a word). So the mirror tells clients `main`.
    pub fn client_components(&self) -> Vec<&str> {
        self.components
            .iter()
            .map(|c| c.strip_prefix("updates/").unwrap_or(c))
            .collect()
    }

    /// The directory holding Release, relative to the repository root, with a trailing `/`
    /// (empty for a flat repository at the root).
    pub fn dist_dir(&self) -> String {
        if self.is_flat() {
            let dir = self.suite.trim_start_matches("./").trim_matches('/');
            if dir.is_empty() || dir == "." {
                String::new()
            } else {
                format!("{dir}/")
            }
        } else {
            format!("dists/{}/", self.suite)
        }
    }

    pub fn parse(line: &str) -> Result<Repository, String> {
        let mut words = line.split_whitespace().peekable();
        let kind = words.next().ok_or("the line is empty")?;
        let (binary, source) = match kind {
            "deb" => (true, false),
            "deb-src" => (false, true),
            "deb+deb-src" | "deb,deb-src" => (true, true),
            other => return Err(format!("`{other}` is not `deb` or `deb-src`")),
        };
        // `[arch=amd64 signed-by=…]` options are accepted and ignored: the source's own keys
        // and architectures say the same thing in mirrorbox's config.
        if words.peek().is_some_and(|w| w.starts_with('[')) {
            for word in words.by_ref() {
                if word.ends_with(']') {
                    break;
                }
            }
        }
        let url = words.next().ok_or("the URL is missing")?;
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("`{url}` is not an http:// or https:// URL"));
        }
        let url = if url.ends_with('/') {
            url.to_string()
        } else {
            format!("{url}/")
        };
        let suite = words.next().ok_or("the suite is missing")?.to_string();
        let components: Vec<String> = words.map(str::to_string).collect();
        if suite.ends_with('/') {
            if !components.is_empty() {
                return Err("a flat repository (suite ending in `/`) takes no components".into());
            }
        } else if components.is_empty() {
            return Err("no components (a flat repository's directory ends in `/`)".into());
        }
        if suite.contains("..") || components.iter().any(|c| c.contains("..")) {
            return Err("`..` is not allowed in a suite or component".into());
        }
        Ok(Repository {
            binary,
            source,
            url,
            suite,
            components,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let r = Repository::parse(
            "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest",
        )
        .unwrap();
        assert_eq!(r.url, "http://download.proxmox.com/debian/pve/");
        assert_eq!(r.suite, "bookworm");
        assert_eq!(r.components, ["pve-no-subscription", "pvetest"]);
        assert_eq!(r.dist_dir(), "dists/bookworm/");
        assert!(r.binary && !r.source);

        let r = Repository::parse(
            "deb-src [signed-by=/x.gpg] https://deb.debian.org/debian/ bookworm main",
        )
        .unwrap();
        assert!(r.source && !r.binary);
        assert_eq!(r.url, "https://deb.debian.org/debian/");

        let flat = Repository::parse("deb http://example.org/repo ./").unwrap();
        assert!(flat.is_flat());
        assert_eq!(flat.dist_dir(), "");
        let flat = Repository::parse("deb http://example.org/repo sub/").unwrap();
        assert_eq!(flat.dist_dir(), "sub/");

        let security = Repository::parse(
            "deb http://x/debian-security bookworm-security updates/main contrib",
        )
        .unwrap();
        assert_eq!(security.client_components(), ["main", "contrib"]);

        for bad in [
            "",
            "rpm http://x a b",
            "deb ftp://x a b",
            "deb http://x bookworm",
            "deb http://x a/ b",
            "deb http://x ../a b",
        ] {
            assert!(Repository::parse(bad).is_err(), "{bad}");
        }
    }
}
