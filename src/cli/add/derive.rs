//! A new source's id and mount, derived the way the README's examples name them: the mount
//! is the upstream URL's path (clients of the mirror only swap the host), the id names the
//! repository and its suite (`deb http://download.proxmox.com/debian/pve bookworm …` →
//! `pve_bookworm` at `/debian/pve`; `http://download.proxmox.com/iso/` → `proxmox_iso` at
//! `/iso`).

/// An http(s) URL taken apart as far as naming needs: host (without port or credentials)
/// and the path's non-empty segments.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlParts {
    pub host: String,
    pub segments: Vec<String>,
}

impl UrlParts {
    pub fn parse(url: &str) -> Result<UrlParts, String> {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| format!("`{url}` is not an http:// or https:// URL"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or(rest);
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let host_port = authority.rsplit('@').next().unwrap_or(authority);
        let host = if let Some(bracketed) = host_port.strip_prefix('[') {
            bracketed.split(']').next().unwrap_or(bracketed)
        } else {
            host_port.split(':').next().unwrap_or(host_port)
        };
        if host.is_empty() {
            return Err(format!("`{url}` has no host"));
        }
        Ok(UrlParts {
            host: host.to_ascii_lowercase(),
            segments: path
                .split('/')
                .filter(|s| !s.is_empty() && *s != ".")
                .map(str::to_string)
                .collect(),
        })
    }

    /// The mount that keeps the URL's path: `/debian/pve`, or `/` for the host's root.
    pub fn mount(&self) -> String {
        if self.segments.is_empty() {
            "/".into()
        } else {
            self.segments.iter().map(|s| format!("/{s}")).collect()
        }
    }

    /// The name a person calls the host by: `proxmox` for download.proxmox.com, `debian`
    /// for deb.debian.org; an address or a one-label name as it is.
    pub fn site_name(&self) -> String {
        let labels: Vec<&str> = self.host.split('.').collect();
        let numeric = self.host.contains(':') || labels.iter().all(|l| l.parse::<u8>().is_ok());
        if numeric || labels.len() < 2 {
            return self.host.clone();
        }
        labels[labels.len() - 2].to_string()
    }

    /// The path's last segment (`pve`, `iso`), else the site's name.
    pub fn last_name(&self) -> String {
        self.segments
            .last()
            .cloned()
            .unwrap_or_else(|| self.site_name())
    }
}

/// `parts` joined with `_`, every character outside the id alphabet (letters, digits, `_`,
/// `-`) made `_`, runs of `_` and `_` at the ends dropped.
pub fn id_of(parts: &[&str]) -> String {
    let joined: String = parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("_")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut id = String::with_capacity(joined.len());
    for c in joined.chars() {
        if !(c == '_' && (id.is_empty() || id.ends_with('_'))) {
            id.push(c);
        }
    }
    id.trim_end_matches('_').to_string()
}

/// A folder's name as an id and mount part.
pub fn folder_name(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_the_readme_names_them() {
        let pve = UrlParts::parse("http://download.proxmox.com/debian/pve").unwrap();
        assert_eq!(pve.mount(), "/debian/pve");
        assert_eq!(id_of(&[&pve.last_name(), "bookworm"]), "pve_bookworm");

        let iso = UrlParts::parse("http://download.proxmox.com/iso/").unwrap();
        assert_eq!(iso.mount(), "/iso");
        assert_eq!(id_of(&[&iso.site_name(), &iso.last_name()]), "proxmox_iso");

        let debian = UrlParts::parse("https://user:pw@deb.debian.org:443/debian/").unwrap();
        assert_eq!(debian.host, "deb.debian.org");
        assert_eq!(debian.mount(), "/debian");
        assert_eq!(
            id_of(&[&debian.last_name(), "bookworm-updates"]),
            "debian_bookworm-updates"
        );

        let root = UrlParts::parse("http://127.0.0.1:8000/").unwrap();
        assert_eq!(root.mount(), "/");
        assert_eq!(id_of(&[&root.last_name(), "stable"]), "127_0_0_1_stable");
        let v6 = UrlParts::parse("http://[::1]:80/x/./y").unwrap();
        assert_eq!((v6.host.as_str(), v6.mount()), ("::1", "/x/y".into()));
        assert!(UrlParts::parse("ftp://x/").is_err());
        assert!(UrlParts::parse("http:///x").is_err());
    }

    #[test]
    fn ids_keep_to_the_alphabet() {
        assert_eq!(id_of(&["ceph-squid", "bookworm"]), "ceph-squid_bookworm");
        assert_eq!(id_of(&["x", "sub/"]), "x_sub");
        assert_eq!(id_of(&["a.b", "", "c d"]), "a_b_c_d");
        assert_eq!(id_of(&["..", "./"]), "");
    }
}
