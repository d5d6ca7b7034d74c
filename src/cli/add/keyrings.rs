//! The keyrings of well-known apt repositories, so `mirrorbox add apt` needs no `--key` for
//! them: Debian (the `debian-archive-keyring` package, which also signs debian-security and
//! the -updates and -backports suites), Ubuntu (`ubuntu-keyring`) and Proxmox
//! (`proxmox-release-<codename>.gpg`, one per Debian release, which Proxmox hosts carry in
//! /etc/apt/trusted.gpg.d/ or /usr/share/keyrings/).

use std::path::{Path, PathBuf};

/// The folders searched for a known keyring, unless `$MIRRORBOX_KEYRING_PATH` lists others
/// (separated by `:`).
const SEARCH_FOLDERS: [&str; 3] = [
    "/usr/share/keyrings",
    "/etc/apt/keyrings",
    "/etc/apt/trusted.gpg.d",
];

/// The environment variable that replaces [`SEARCH_FOLDERS`].
pub const SEARCH_PATH_VARIABLE: &str = "MIRRORBOX_KEYRING_PATH";

/// The keyring a well-known repository is signed with.
#[derive(Debug, PartialEq, Eq)]
pub struct KnownKeyring {
    /// Who publishes the repository (for messages).
    pub publisher: &'static str,
    /// The file's names, the usual one first.
    pub names: Vec<String>,
    /// Where to get it when no folder has it.
    pub get_it: String,
}

/// The keyring for a repository at `host` with `suite` (a codename with or without a
/// `-updates`-like tail), if the host is a well-known one.
pub fn known(host: &str, suite: &str) -> Option<KnownKeyring> {
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if under("debian.org") {
        return Some(KnownKeyring {
            publisher: "Debian",
            names: vec![
                "debian-archive-keyring.gpg".into(),
                "debian-archive-keyring.pgp".into(),
            ],
            get_it: "the debian-archive-keyring package (`apt install debian-archive-keyring`)"
                .into(),
        });
    }
    if under("ubuntu.com") {
        return Some(KnownKeyring {
            publisher: "Ubuntu",
            names: vec!["ubuntu-archive-keyring.gpg".into()],
            get_it: "the ubuntu-keyring package (`apt install ubuntu-keyring`)".into(),
        });
    }
    if under("proxmox.com") {
        let codename = suite.split(['-', '/']).next().unwrap_or(suite);
        if codename.is_empty() || !codename.chars().all(|c| c.is_ascii_lowercase()) {
            return None;
        }
        let name = format!("proxmox-release-{codename}.gpg");
        return Some(KnownKeyring {
            publisher: "Proxmox",
            get_it: format!(
                "https://enterprise.proxmox.com/debian/{name} (Proxmox hosts have it in /etc/apt/trusted.gpg.d/ or /usr/share/keyrings/); check its sha512sum against the Proxmox documentation"
            ),
            names: vec![name],
        });
    }
    None
}

/// The folders to search: `$MIRRORBOX_KEYRING_PATH` if set, else [`SEARCH_FOLDERS`].
pub fn search_folders() -> Vec<PathBuf> {
    match std::env::var_os(SEARCH_PATH_VARIABLE) {
        Some(list) => std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect(),
        None => SEARCH_FOLDERS.iter().map(PathBuf::from).collect(),
    }
}

/// The first of the keyring's names found in `folders` (folders first, then names).
pub fn find(keyring: &KnownKeyring, folders: &[PathBuf]) -> Result<PathBuf, String> {
    for folder in folders {
        for name in &keyring.names {
            let path = folder.join(name);
            if path.is_file() {
                return Ok(path);
            }
        }
    }
    Err(format!(
        "the {} repository is signed with {}, which is not in {}: get it from {}, then add again (or give the file with --key)",
        keyring.publisher,
        keyring.names[0],
        folders_text(folders),
        keyring.get_it
    ))
}

fn folders_text(folders: &[PathBuf]) -> String {
    if folders.is_empty() {
        return "any folder (none to search)".into();
    }
    folders
        .iter()
        .map(|f| display(f))
        .collect::<Vec<_>>()
        .join(", ")
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_hosts() {
        let debian = known("deb.debian.org", "bookworm-updates").unwrap();
        assert_eq!(debian.names[0], "debian-archive-keyring.gpg");
        assert_eq!(
            known("security.debian.org", "bookworm-security"),
            Some(debian)
        );
        assert_eq!(
            known("fi.archive.ubuntu.com", "noble").unwrap().names,
            ["ubuntu-archive-keyring.gpg"]
        );
        let pve = known("download.proxmox.com", "bookworm").unwrap();
        assert_eq!(pve.names, ["proxmox-release-bookworm.gpg"]);
        assert!(pve
            .get_it
            .starts_with("https://enterprise.proxmox.com/debian/proxmox-release-bookworm.gpg"));
        assert_eq!(
            known("enterprise.proxmox.com", "trixie").unwrap().names,
            ["proxmox-release-trixie.gpg"]
        );
        assert_eq!(known("download.proxmox.com", "./"), None);
        assert_eq!(known("notdebian.org", "bookworm"), None);
        assert_eq!(known("example.org", "bookworm"), None);
    }

    #[test]
    fn found_in_the_first_folder_that_has_it() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        let keyring = known("deb.debian.org", "bookworm").unwrap();
        let folders = vec![a.clone(), b.clone()];
        let missing = find(&keyring, &folders).unwrap_err();
        assert!(missing.contains("debian-archive-keyring.gpg"), "{missing}");
        assert!(
            missing.contains("apt install debian-archive-keyring"),
            "{missing}"
        );
        assert!(missing.contains(&a.display().to_string()), "{missing}");
        std::fs::write(b.join("debian-archive-keyring.pgp"), "k").unwrap();
        assert_eq!(
            find(&keyring, &folders).unwrap(),
            b.join("debian-archive-keyring.pgp")
        );
        std::fs::write(a.join("debian-archive-keyring.gpg"), "k").unwrap();
        assert_eq!(
            find(&keyring, &folders).unwrap(),
            a.join("debian-archive-keyring.gpg")
        );
    }
}
