//! Which files of a Release an apt source carries: the Packages and Sources of its components
//! and architectures, and the extra index kinds it wants, narrowed to its architectures and
//! languages the way apt narrows what it asks for.

use super::options::AptOptions;
use super::release::{Listed, Release};

/// The listed files an apt source carries: Packages/Sources of its components and
/// architectures, and the extra index kinds it wants; never pdiffs.
///
/// Per-architecture indices (Contents, dep11 Components and CID-Index, cnf Commands) follow
/// `architectures`, plus the `all` variant apt asks for on its own ([`apt_wants_all`]); dep11 icons are architecture-independent and come along when the
/// component carries a dep11 Components file of a configured architecture; i18n
/// `Translation-<lang>` follows `languages` (every listed language when unset).
pub(super) fn select<'r>(release: &'r Release, config: &AptOptions) -> Vec<&'r Listed> {
    let repo = &config.repository;
    let wants = |kind: &str| config.indices.iter().any(|k| k == kind);
    let arch_ok = |arch: &str| config.architectures.iter().any(|a| a == arch);
    // The `all` variant of an index kind: configured, or asked for by apt on its own.
    let arch_or_all =
        |arch: &str, kind: &str| arch_ok(arch) || (arch == "all" && apt_wants_all(release, kind));
    let language_ok = |language: &str| {
        config
            .languages
            .as_ref()
            .is_none_or(|wanted| wanted.iter().any(|l| l == language))
    };
    let dirs: Vec<String> = repo
        .components
        .iter()
        .map(|c| component_dir(release, c))
        .collect();
    // Components whose dep11 metadata is carried for at least one configured architecture.
    let dep11_dirs: Vec<&str> = dirs
        .iter()
        .filter(|dir| {
            release.files.keys().any(|path| {
                path.strip_prefix(dir.as_str())
                    .and_then(|r| r.strip_prefix("/dep11/"))
                    .and_then(dep11_arch)
                    .is_some_and(|a| a != "all" && arch_ok(a))
            })
        })
        .map(String::as_str)
        .collect();
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
                    && contents_arch(path).is_some_and(|a| {
                        arch_or_all(a, "Contents-deb") || (a == "source" && repo.source)
                    });
            }
            // Components may hold a slash themselves (`updates/main` in Debian security).
            let Some((dir, rest)) = dirs.iter().find_map(|dir| {
                path.strip_prefix(dir.as_str())
                    .and_then(|r| r.strip_prefix('/'))
                    .map(|rest| (dir.as_str(), rest))
            }) else {
                return false;
            };
            if let Some(tail) = rest.strip_prefix("binary-") {
                let arch = tail.split('/').next().unwrap_or("");
                return repo.binary && arch_or_all(arch, "Packages");
            }
            if rest.starts_with("source/") {
                return repo.source;
            }
            if let Some(name) = rest.strip_prefix("i18n/") {
                return wants("i18n") && translation_language(name).is_none_or(language_ok);
            }
            if let Some(name) = rest.strip_prefix("dep11/") {
                if name.starts_with("icons-") {
                    return wants("dep11") && dep11_dirs.contains(&dir);
                }
                return wants("dep11") && dep11_arch(name).is_none_or(|a| arch_or_all(a, "DEP-11"));
            }
            if let Some(name) = rest.strip_prefix("cnf/") {
                let arch = name
                    .strip_prefix("Commands-")
                    .map(|t| t.split('.').next().unwrap_or(t));
                return wants("cnf") && arch.is_none_or(|a| arch_or_all(a, "CNF"));
            }
            if let Some(tail) = rest.strip_prefix("debian-installer/binary-") {
                let arch = tail.split('/').next().unwrap_or("");
                return wants("installer") && arch_ok(arch);
            }
            if let Some(arch) = contents_arch(rest) {
                return wants("contents")
                    && (arch_or_all(arch, "Contents-deb") || (arch == "source" && repo.source));
            }
            false
        })
        .collect()
}

/// The directory, relative to the Release, under which a configured component's indices are
/// listed. Usually the component itself. Debian-Security's Release says
/// `Components: updates/main …` but lists its indices under `main/` (the archive has an
/// `updates -> .` link), and apt accepts `main` for it: so `updates/main` resolves to `main`
/// when nothing is listed under `updates/main/` and the Release names it as a component.
pub(super) fn component_dir(release: &Release, component: &str) -> String {
    let listed_under = |dir: &str| {
        release
            .files
            .keys()
            .any(|p| p.strip_prefix(dir).is_some_and(|r| r.starts_with('/')))
    };
    if listed_under(component) {
        return component.to_string();
    }
    let named = release
        .field("Components")
        .is_some_and(|list| list.split_whitespace().any(|c| c == component));
    match component.rsplit_once('/') {
        Some((_, last)) if named && listed_under(last) => last.to_string(),
        _ => component.to_string(),
    }
}

/// Whether apt asks for the `all` variant of an index kind (`binary-all/Packages`,
/// `Contents-all`, `Components-all.yml`) without `all` in `APT::Architectures`: it adds
/// `all` to every client's architectures, and fetches such an index when the Release lists
/// `all` in `Architectures` (or lists no architectures) unless `No-Support-for-Architecture-all`
/// names the kind (Debian: `Packages`, as its arch:all packages are in every binary-<arch>).
/// `kind` is apt's target name: `Packages`, `Contents-deb`, `DEP-11`, `CNF`.
fn apt_wants_all(release: &Release, kind: &str) -> bool {
    let listed = |field: &str| {
        release.field(field).map(|list| {
            list.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
    };
    let supported =
        listed("Architectures").is_none_or(|a| a.is_empty() || a.iter().any(|a| a == "all"));
    let excluded = listed("No-Support-for-Architecture-all")
        .is_some_and(|kinds| kinds.iter().any(|k| k == kind));
    supported && !excluded
}

/// `Components-amd64.yml.gz` / `CID-Index-amd64.json.gz` → `amd64`; other dep11 files: `None`.
fn dep11_arch(name: &str) -> Option<&str> {
    if let Some(rest) = name.strip_prefix("Components-") {
        return rest.split_once(".yml").map(|(arch, _)| arch);
    }
    if let Some(rest) = name.strip_prefix("CID-Index-") {
        return rest.split_once(".json").map(|(arch, _)| arch);
    }
    None
}

/// `Translation-pt_BR.bz2` → `pt_BR`; `Index` and other i18n files: `None`.
fn translation_language(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("Translation-")?;
    Some(rest.split('.').next().unwrap_or(rest))
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

    fn release_listing(header: &str, paths: &[&str]) -> Release {
        let hash = "1".repeat(64);
        let mut text = format!("Date: Sat, 10 Feb 2024 10:12:33 UTC\n{header}SHA256:\n");
        for path in paths {
            text.push_str(&format!(" {hash} 1 {path}\n"));
        }
        Release::parse(&text).unwrap()
    }

    fn options(line: &str, architectures: &[&str], languages: Option<&[&str]>) -> AptOptions {
        let table: toml::Table = toml::from_str(&format!(
            "repository = \"{line}\"\nkeys = [\"k.gpg\"]\narchitectures = {architectures:?}\n"
        ))
        .unwrap();
        let mut options = AptOptions::parse(table).unwrap();
        options.languages = languages.map(|l| l.iter().map(|s| s.to_string()).collect());
        options
    }

    fn selected(release: &Release, config: &AptOptions) -> Vec<String> {
        select(release, config)
            .iter()
            .map(|l| l.path.clone())
            .collect()
    }

    #[test]
    fn dep11_cnf_and_translations_follow_architectures_and_languages() {
        let release = release_listing(
            "",
            &[
                "main/binary-amd64/Packages.xz",
                "main/dep11/Components-amd64.yml.gz",
                "main/dep11/Components-arm64.yml.gz",
                "main/dep11/Components-s390x.yml.xz",
                "main/dep11/Components-all.yml.gz",
                "main/Contents-all.gz",
                "main/Contents-arm64.gz",
                "main/dep11/CID-Index-amd64.json.gz",
                "main/dep11/CID-Index-arm64.json.gz",
                "main/dep11/icons-48x48.tar.gz",
                "main/dep11/icons-64x64@2.tar.gz",
                "main/cnf/Commands-amd64.xz",
                "main/cnf/Commands-arm64.xz",
                "main/i18n/Index",
                "main/i18n/Translation-en.bz2",
                "main/i18n/Translation-fi.bz2",
                "main/i18n/Translation-pt_BR.bz2",
                "main/i18n/Translation-de.diff/Index",
                "contrib/binary-amd64/Packages.xz",
                "contrib/dep11/Components-arm64.yml.gz",
                "contrib/dep11/icons-48x48.tar.gz",
            ],
        );
        let line = "deb http://x/ bookworm main contrib";
        assert_eq!(
            selected(&release, &options(line, &["amd64"], Some(&["en", "pt_BR"]))),
            [
                "contrib/binary-amd64/Packages.xz",
                "main/Contents-all.gz",
                "main/binary-amd64/Packages.xz",
                "main/cnf/Commands-amd64.xz",
                "main/dep11/CID-Index-amd64.json.gz",
                "main/dep11/Components-all.yml.gz",
                "main/dep11/Components-amd64.yml.gz",
                "main/dep11/icons-48x48.tar.gz",
                "main/dep11/icons-64x64@2.tar.gz",
                "main/i18n/Index",
                "main/i18n/Translation-en.bz2",
                "main/i18n/Translation-pt_BR.bz2",
            ],
            "contrib has dep11 only for arm64: its icons stay upstream; `all` comes along"
        );
        let every_language = selected(&release, &options(line, &["arm64"], None));
        assert!(every_language.contains(&"main/i18n/Translation-fi.bz2".to_string()));
        assert!(every_language.contains(&"contrib/dep11/icons-48x48.tar.gz".to_string()));
        assert!(!every_language
            .iter()
            .any(|p| p.contains("amd64") || p.contains(".diff/")));
        let no_language = selected(&release, &options(line, &["amd64"], Some(&[])));
        assert!(!no_language.iter().any(|p| p.contains("Translation-")));
    }

    #[test]
    fn all_variants_follow_what_apt_asks_for() {
        let paths = [
            "main/binary-amd64/Packages.xz",
            "main/binary-all/Packages.xz",
            "main/Contents-all.gz",
            "main/dep11/Components-all.yml.gz",
        ];
        let amd64 = options("deb http://x/ bookworm main", &["amd64"], None);
        // Debian: `all` listed, but its Packages are folded into every binary-<arch>.
        let debian = release_listing(
            "Architectures: all amd64 arm64\nNo-Support-for-Architecture-all: Packages\n",
            &paths,
        );
        assert_eq!(
            selected(&debian, &amd64),
            [
                "main/Contents-all.gz",
                "main/binary-amd64/Packages.xz",
                "main/dep11/Components-all.yml.gz"
            ]
        );
        let with_all = release_listing("Architectures: amd64 all\n", &paths);
        assert_eq!(selected(&with_all, &amd64).len(), 4);
        let without_all = release_listing("Architectures: amd64 arm64\n", &paths);
        assert_eq!(
            selected(&without_all, &amd64),
            ["main/binary-amd64/Packages.xz"]
        );
        let configured = options("deb http://x/ bookworm main", &["amd64", "all"], None);
        assert_eq!(selected(&without_all, &configured).len(), 4);
    }

    #[test]
    fn debian_security_components_resolve_to_their_listed_directory() {
        let release = release_listing(
            "Label: Debian-Security\nComponents: updates/main updates/contrib\n",
            &[
                "main/binary-amd64/Packages.xz",
                "main/source/Sources.xz",
                "contrib/binary-amd64/Packages.xz",
            ],
        );
        for line in [
            "deb http://x/ bookworm-security main",
            "deb http://x/ bookworm-security updates/main",
        ] {
            assert_eq!(
                selected(&release, &options(line, &["amd64"], None)),
                ["main/binary-amd64/Packages.xz"],
                "{line}"
            );
        }
        assert_eq!(component_dir(&release, "updates/contrib"), "contrib");
        assert_eq!(
            component_dir(&release, "updates/non-free"),
            "updates/non-free"
        );
        assert_eq!(component_dir(&release, "other/main"), "other/main");
    }
}
