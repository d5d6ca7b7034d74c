//! Sources that would publish the same path: found when the configuration is read, where the
//! configuration alone predicts it, instead of at a client that gets the wrong file.
//!
//! The view gives a path claimed by two sources to the first in the file. For two apt sources
//! whose Release directory lands at one URL (same mount and suite, or the same flat
//! directory) that is always wrong: each InRelease lists only its own components and indices,
//! so the second source's clients get 404s or hash mismatches. That is an error, naming both
//! sources. Two apt sources of different upstreams under one mount (other suites) share
//! `pool/`, where a file both upstreams have at one path is served from the first source
//! only: a warning.

use super::{Config, SourceConfig, SourceKind};
use crate::sync::apt::repository::Repository;
use crate::sync::kind::{Finding, Severity};

/// The URL directory an apt source's Release files are published in (`/debian/dists/bookworm/`).
fn release_dir(mount: &str, repository: &Repository) -> String {
    format!("{mount}/{}", repository.dist_dir())
}

fn apt_sources(config: &Config) -> Vec<(&SourceConfig, &Repository)> {
    config
        .sources
        .iter()
        .filter_map(|source| match &source.kind {
            SourceKind::Apt(apt) => Some((source, &apt.repository)),
            _ => None,
        })
        .collect()
}

/// Every pair of sources that collides, in configuration order.
pub fn check(config: &Config) -> Vec<Finding> {
    let file = config.file.display();
    let apt = apt_sources(config);
    let mut findings = Vec::new();
    for (i, (a, repo_a)) in apt.iter().enumerate() {
        for (b, repo_b) in &apt[i + 1..] {
            let dir = release_dir(&a.mount, repo_a);
            if dir == release_dir(&b.mount, repo_b) {
                let what = if repo_a.is_flat() {
                    "flat repository"
                } else {
                    "suite"
                };
                findings.push(Finding {
                    severity: Severity::Error,
                    message: format!(
                        "{file}: sources `{}` and `{}` both publish {dir}InRelease (same mount and {what}): each Release lists only its own components, so clients of one would get the other's indices. Make them one source listing every component (`repository = \"deb URL {} COMPONENT…\"`), or give them different mounts",
                        a.id, b.id, repo_a.suite
                    ),
                });
            } else if a.mount == b.mount && repo_a.url != repo_b.url {
                findings.push(Finding {
                    severity: Severity::Warning,
                    message: format!(
                        "{file}: sources `{}` ({}) and `{}` ({}) mirror different upstreams under one mount `{}`: a file both have at one path (pool/…) is served from `{}` only; give each upstream its own mount",
                        a.id, repo_a.url, b.id, repo_b.url, mount_text(&a.mount), a.id
                    ),
                });
            }
        }
    }
    findings
}

fn mount_text(mount: &str) -> &str {
    if mount.is_empty() {
        "/"
    } else {
        mount
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(sources: &[(&str, &str, &str)]) -> Config {
        let mut text = String::from("data_dir = \"d\"\n");
        for (id, mount, line) in sources {
            text.push_str(&format!(
                "[[source]]\nid = \"{id}\"\nkind = \"apt\"\nmount = \"{mount}\"\nrepository = \"{line}\"\nkeys = [\"k.gpg\"]\n"
            ));
        }
        Config::parse(&text, Path::new("c.toml")).unwrap()
    }

    fn severities(findings: &[Finding]) -> Vec<Severity> {
        findings.iter().map(|f| f.severity).collect()
    }

    #[test]
    fn one_suite_at_one_mount_is_an_error_naming_both() {
        let findings = check(&config(&[
            (
                "no_sub",
                "/debian/pve",
                "deb http://h/debian/pve bookworm pve-no-subscription",
            ),
            (
                "test",
                "/debian/pve/",
                "deb http://h/debian/pve bookworm pvetest",
            ),
            (
                "trixie",
                "/debian/pve",
                "deb http://h/debian/pve trixie pvetest",
            ),
        ]));
        assert_eq!(severities(&findings), [Severity::Error]);
        let message = &findings[0].message;
        assert!(
            message.starts_with("c.toml: sources `no_sub` and `test` both publish /debian/pve/dists/bookworm/InRelease"),
            "{message}"
        );
    }

    #[test]
    fn flat_repositories_collide_by_directory() {
        let findings = check(&config(&[
            ("a", "/", "deb http://h/x/ repo/"),
            ("b", "/repo", "deb http://other/y/ ./"),
            ("c", "/", "deb http://h/x/ other/"),
            ("d", "/", "deb http://z/ other/"),
        ]));
        assert_eq!(
            severities(&findings),
            [Severity::Error, Severity::Warning, Severity::Error]
        );
        assert!(findings[0]
            .message
            .contains("`a` and `b` both publish /repo/InRelease"));
        assert!(findings[0]
            .message
            .contains("same mount and flat repository"));
        assert!(findings[1]
            .message
            .contains("`a` (http://h/x/) and `d` (http://z/)"));
        assert!(findings[2]
            .message
            .contains("`c` and `d` both publish /other/InRelease"));
    }

    #[test]
    fn different_upstreams_under_one_mount_are_a_warning() {
        let findings = check(&config(&[
            (
                "debian",
                "/debian",
                "deb http://deb.debian.org/debian bookworm main",
            ),
            (
                "other",
                "/debian",
                "deb http://mirror.example.org/debian bookworm-backports main",
            ),
            (
                "pve",
                "/debian/pve",
                "deb http://download.proxmox.com/debian/pve bookworm pvetest",
            ),
        ]));
        assert_eq!(severities(&findings), [Severity::Warning]);
        assert!(findings[0].message.contains("under one mount `/debian`"));
    }
}
