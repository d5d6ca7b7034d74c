//! How clients use a source: the sources.list lines of an apt source, the meta, CKSUMS and
//! rdiffs URLs of a Puavo repository, the base URL of a plain tree.
//!
//! This is the one place of the status pages that knows every source kind (it reads their
//! configuration); it returns data, which the status page renders and `/.status.json` serves,
//! so each kind's part can move into that kind's module without touching the pages.

use serde::Serialize;

use super::super::path::encode_segment;
use crate::config::{PuavoMode, SourceKind};

/// How clients use a source.
#[derive(Serialize, Default, Debug, Clone, PartialEq)]
pub struct ClientUse {
    pub base_url: String,
    /// apt: the lines for `/etc/apt/sources.list`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Puavo: `meta/<series>.json` of the current snapshot, `CKSUMS`, and the rdiffs folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub meta: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cksums: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdiffs: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// `base_url`: where the source's current snapshot is served (with a trailing slash);
/// `at_root`: the source is mounted at `/`; `series`: the Puavo meta files (`<series>.json`)
/// of its current snapshot.
pub fn client_use(
    kind: &SourceKind,
    base_url: &str,
    at_root: bool,
    series: Vec<String>,
) -> ClientUse {
    let mut usage = ClientUse {
        base_url: base_url.to_string(),
        ..ClientUse::default()
    };
    match kind {
        SourceKind::Apt(apt) => {
            let repo = &apt.repository;
            let tail = if repo.is_flat() {
                repo.suite.clone()
            } else {
                format!("{} {}", repo.suite, repo.components.join(" "))
            };
            if repo.binary {
                usage.sources_list.push(format!("deb {base_url} {tail}"));
            }
            if repo.source {
                usage
                    .sources_list
                    .push(format!("deb-src {base_url} {tail}"));
            }
            usage.architectures = apt.architectures.clone();
            usage.notes.push(
                "The Release files are the upstream's, signed by its key: clients trust the same key as for the upstream (signed-by)."
                    .into(),
            );
        }
        SourceKind::Puavo(puavo) => {
            usage.meta = series
                .iter()
                .map(|name| format!("{base_url}meta/{}", encode_segment(name)))
                .collect();
            usage.cksums = Some(format!("{base_url}CKSUMS"));
            usage.rdiffs = Some(format!("{base_url}rdiffs/"));
            if at_root {
                usage.notes.push(format!(
                    "Mounted at /: Puavo laptops find /rdiffs/ here; point them at {base_url}."
                ));
            } else {
                usage.notes.push(
                    "Puavo laptops fetch /rdiffs/<name> from the server root: they can use this repository only if it is mounted at / (mount = \"/\"). Bootservers follow the meta files' urls and work at any mount."
                        .into(),
                );
            }
            let rewrites = match &puavo.mode {
                PuavoMode::Build { .. } => true,
                PuavoMode::Mirror { rewrite_urls, .. } => *rewrite_urls,
            };
            match (&puavo.urlbase, rewrites) {
                (Some(urlbase), true) => usage.notes.push(format!(
                    "The meta files' urls point at {urlbase}/ (the source's urlbase)."
                )),
                (_, false) => usage
                    .notes
                    .push("The meta files' urls point at the upstream, as fetched.".into()),
                (None, true) => {}
            }
        }
        // dir, files and whatever comes next: a plain tree under its mount.
        _ => {}
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn kind(source: &str) -> SourceKind {
        let text = format!(
            "data_dir = \"/nonexistent\"\n[[source]]\nid = \"s\"\nmount = \"/m\"\n{source}\n"
        );
        let config = Config::parse(&text, Path::new("test.toml")).unwrap();
        config.sources[0].kind.clone()
    }

    #[test]
    fn apt_sources_list_lines() {
        let apt = |line: &str| {
            client_use(
                &kind(&format!(
                    "kind = \"apt\"\nrepository = \"{line}\"\nkeys = [\"/k.gpg\"]"
                )),
                "https://mirror.example:8443/debian/pve/",
                false,
                Vec::new(),
            )
            .sources_list
        };
        assert_eq!(
            apt("deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest"),
            ["deb https://mirror.example:8443/debian/pve/ bookworm pve-no-subscription pvetest"]
        );
        assert_eq!(
            apt("deb-src http://deb.debian.org/debian bookworm main"),
            ["deb-src https://mirror.example:8443/debian/pve/ bookworm main"]
        );
        assert_eq!(
            apt("deb+deb-src http://deb.debian.org/debian bookworm main contrib"),
            [
                "deb https://mirror.example:8443/debian/pve/ bookworm main contrib",
                "deb-src https://mirror.example:8443/debian/pve/ bookworm main contrib"
            ]
        );
        assert_eq!(
            apt("deb http://example.org/repo ./"),
            ["deb https://mirror.example:8443/debian/pve/ ./"]
        );
        assert_eq!(
            apt("deb http://example.org/repo amd64/"),
            ["deb https://mirror.example:8443/debian/pve/ amd64/"]
        );
    }

    #[test]
    fn puavo_urls_and_the_root_note() {
        let puavo = kind(
            "kind = \"puavo\"\nimage_dir = \"/images\"\nurlbase = \"https://images.example.org/puavo\"",
        );
        let at_mount = client_use(
            &puavo,
            "http://host/m/",
            false,
            vec!["puavo-os-bookworm-amd64.json".into()],
        );
        assert_eq!(
            at_mount.meta,
            ["http://host/m/meta/puavo-os-bookworm-amd64.json"]
        );
        assert_eq!(at_mount.cksums.as_deref(), Some("http://host/m/CKSUMS"));
        assert_eq!(at_mount.rdiffs.as_deref(), Some("http://host/m/rdiffs/"));
        assert!(
            at_mount.notes[0].contains("mounted at /"),
            "{:?}",
            at_mount.notes
        );
        assert!(at_mount.notes[1].contains("https://images.example.org/puavo/"));
        let at_root = client_use(&puavo, "http://host/", true, Vec::new());
        assert!(
            at_root.notes[0].starts_with("Mounted at /"),
            "{:?}",
            at_root.notes
        );
        let dir = client_use(
            &kind("kind = \"dir\"\npath = \"/srv\""),
            "http://host/m/",
            false,
            Vec::new(),
        );
        assert_eq!(
            dir,
            ClientUse {
                base_url: "http://host/m/".into(),
                ..ClientUse::default()
            }
        );
        let files = client_use(
            &kind("kind = \"files\"\nurl = \"http://download.example.org/iso/\""),
            "http://host/m/",
            false,
            Vec::new(),
        );
        assert_eq!(files, dir);
    }
}
