//! Which files of a Release an apt source carries: the Packages and Sources of its components
//! and architectures, and the extra index kinds it wants.

use super::options::AptOptions;
use super::release::{Listed, Release};

/// The listed files an apt source carries: Packages/Sources of its components and
/// architectures, and the extra index kinds it wants; never pdiffs.
pub(super) fn select<'r>(release: &'r Release, config: &AptOptions) -> Vec<&'r Listed> {
    let repo = &config.repository;
    let wants = |kind: &str| config.indices.iter().any(|k| k == kind);
    let arch_ok = |arch: &str| config.architectures.iter().any(|a| a == arch);
    release
        .files
        .values()
        .filter(|listed| {
            let path = listed.path.as_str();
            if path.contains(".diff/") {
                return false; // pdiffs: apt falls back to full indices
            }
            if repo.is_flat() {
                return true;
            }
            if !path.contains('/') {
                // Top-level Contents-<arch> of the old layout.
                return wants("contents")
                    && contents_arch(path)
                        .is_some_and(|a| arch_ok(a) || (a == "source" && repo.source));
            }
            // Components may hold a slash themselves (`updates/main` in Debian security).
            let Some(rest) = repo.components.iter().find_map(|c| {
                path.strip_prefix(c.as_str())
                    .and_then(|r| r.strip_prefix('/'))
            }) else {
                return false;
            };
            if let Some(tail) = rest.strip_prefix("binary-") {
                let arch = tail.split('/').next().unwrap_or("");
                return repo.binary && arch_ok(arch);
            }
            if rest.starts_with("source/") {
                return repo.source;
            }
            if rest.starts_with("i18n/") {
                return wants("i18n");
            }
            if rest.starts_with("dep11/") {
                return wants("dep11");
            }
            if rest.starts_with("cnf/") {
                return wants("cnf");
            }
            if let Some(tail) = rest.strip_prefix("debian-installer/binary-") {
                let arch = tail.split('/').next().unwrap_or("");
                return wants("installer") && arch_ok(arch);
            }
            if let Some(arch) = contents_arch(rest) {
                return wants("contents") && (arch_ok(arch) || (arch == "source" && repo.source));
            }
            false
        })
        .collect()
}

/// `main/binary-amd64/Packages.xz` → `main/binary-amd64/Packages`.
pub(super) fn family(path: &str) -> String {
    for extension in [".gz", ".xz", ".bz2", ".zst", ".lz4", ".lzma"] {
        if let Some(stem) = path.strip_suffix(extension) {
            return stem.to_string();
        }
    }
    path.to_string()
}

/// `Contents-amd64.gz` / `Contents-udeb-amd64` → `amd64`; `Contents-source` → `source`.
fn contents_arch(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("Contents-")?;
    let rest = rest.strip_prefix("udeb-").unwrap_or(rest);
    Some(rest.split('.').next().unwrap_or(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apt::{index, repository};

    #[test]
    fn selection_follows_components_architectures_and_kinds() {
        let hash = "1".repeat(64);
        let paths = [
            "updates/main/binary-amd64/Packages.xz",
            "updates/main/binary-amd64/Packages.diff/Index",
            "updates/main/binary-arm64/Packages.xz",
            "updates/main/binary-all/Packages.xz",
            "updates/main/i18n/Translation-en.xz",
            "updates/main/Contents-amd64.gz",
            "updates/main/Contents-udeb-amd64.gz",
            "updates/main/source/Sources.xz",
            "updates/main/dep11/Components-amd64.yml.gz",
            "updates/main/debian-installer/binary-amd64/Packages.xz",
            "updates/contrib/binary-amd64/Packages.xz",
            "Contents-amd64.gz",
        ];
        let mut text = String::from("Date: Sat, 10 Feb 2024 10:12:33 UTC\nSHA256:\n");
        for path in paths {
            text.push_str(&format!(" {hash} 1 {path}\n"));
        }
        let release = Release::parse(&text).unwrap();
        let config = |line: &str, indices: &[&str]| AptOptions {
            repository: repository::Repository::parse(line).unwrap(),
            architectures: vec!["amd64".into(), "all".into()],
            keys: vec![],
            filter: index::Filter::default(),
            indices: indices.iter().map(|s| s.to_string()).collect(),
            ignore_errors: false,
            allow_expired: false,
            allow_missing_date: false,
            languages: None,
            installer: false,
            verify_pool: false,
            weak_crypto: Default::default(),
            fetch: Default::default(),
        };
        let names = |config: &AptOptions| -> Vec<String> {
            select(&release, config)
                .iter()
                .map(|l| l.path.clone())
                .collect()
        };
        let all = super::super::options::APT_INDEX_KINDS;
        assert_eq!(
            names(&config(
                "deb http://x/ bookworm-security updates/main",
                &all
            )),
            [
                "Contents-amd64.gz",
                "updates/main/Contents-amd64.gz",
                "updates/main/Contents-udeb-amd64.gz",
                "updates/main/binary-all/Packages.xz",
                "updates/main/binary-amd64/Packages.xz",
                "updates/main/debian-installer/binary-amd64/Packages.xz",
                "updates/main/dep11/Components-amd64.yml.gz",
                "updates/main/i18n/Translation-en.xz",
            ]
        );
        assert_eq!(
            names(&config("deb http://x/ bookworm-security updates/main", &[])),
            [
                "updates/main/binary-all/Packages.xz",
                "updates/main/binary-amd64/Packages.xz"
            ]
        );
        assert_eq!(
            names(&config(
                "deb-src http://x/ bookworm-security updates/main",
                &[]
            )),
            ["updates/main/source/Sources.xz"]
        );
    }
}
