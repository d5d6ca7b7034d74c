//! What to tell an administrator whose key file is missing: many configurations name a keyring
//! that a distribution package installs (the shipped configuration names Debian's), so on a
//! host without that package the fix is to install it, or to point `keys` at another file.

use std::path::Path;

/// Keyring file names (a prefix, and the end) and the package that installs them.
const PACKAGED: [(&str, &str, &str); 4] = [
    ("debian-archive-", ".gpg", "debian-archive-keyring"),
    ("ubuntu-archive-", ".gpg", "ubuntu-keyring"),
    ("proxmox-release-", ".gpg", "proxmox-archive-keyring"),
    ("proxmox-archive-keyring", ".gpg", "proxmox-archive-keyring"),
];

/// The package that installs the key file `path`, if it is one of the well-known ones.
pub fn package_of(path: &Path) -> Option<&'static str> {
    let name = path.file_name()?.to_str()?;
    PACKAGED
        .iter()
        .find(|(start, end, _)| name.starts_with(start) && name.ends_with(end))
        .map(|(_, _, package)| *package)
}

/// The advice after "cannot read key file …" (empty for errors other than a missing file).
pub fn advice(path: &Path, error: &std::io::Error) -> String {
    if error.kind() != std::io::ErrorKind::NotFound {
        return String::new();
    }
    match package_of(path) {
        Some(package) => format!(" (install the {package} package or set `keys`)"),
        None => " (set `keys` to the file of the key that signs this repository)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_package_of_a_well_known_keyring() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            advice(
                Path::new("/usr/share/keyrings/debian-archive-keyring.gpg"),
                &missing
            ),
            " (install the debian-archive-keyring package or set `keys`)"
        );
        assert_eq!(
            package_of(Path::new(
                "/etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg"
            )),
            Some("proxmox-archive-keyring")
        );
        assert!(advice(Path::new("/etc/keys/ours.asc"), &missing).contains("set `keys`"));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            advice(Path::new("/k/debian-archive-keyring.gpg"), &denied),
            ""
        );
    }
}
