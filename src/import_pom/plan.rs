//! From proxmox-offline-mirror's mirrors to mirrorbox sources: which mirrors become one
//! source, under which id and at which mount.
//!
//! The original's wizard makes one mirror per component (`pve_bookworm_no-subscription`,
//! `pve_bookworm_test`) of one repository and suite. Imported one to one, they would be two
//! sources at one mount that both publish `dists/<suite>/InRelease`, each listing only its
//! own component, and one of them would win every client. So mirrors with the same repository
//! URL and suite become one source with every component, keeping the stricter of differing
//! settings, and a comment says so.
//!
//! The mount is the repository URL's path (`/debian/pve`), so suites of one upstream share a
//! tree as they do upstream. When two upstream hosts would land in one tree (the same path, or
//! one under the other), those hosts' mounts keep the host: `/deb.example.org/debian`.

use std::collections::HashSet;

use super::pom::PomMirror;
use crate::sync::apt::policy::WeakCrypto;
use crate::sync::apt::repository::Repository;

/// The key sizes the signature policy requires unless relaxed (see `WeakCrypto`).
const DEFAULT_MIN_KEY_BITS: u32 = 2048;

/// One mirrorbox `apt` source to write, made from one or more mirrors.
#[derive(Debug, Clone)]
pub struct PlannedSource {
    pub id: String,
    /// The mirrors it comes from, in file order.
    pub from: Vec<String>,
    pub mount: String,
    pub repository: String,
    pub architectures: Vec<String>,
    pub keys: Vec<String>,
    pub skip_packages: Vec<String>,
    pub skip_sections: Vec<String>,
    pub ignore_errors: bool,
    pub verify_pool: bool,
    pub weak_crypto: Option<WeakCrypto>,
    pub use_subscription: Option<String>,
    /// Comment lines (without `# `) to write above the source's keys.
    pub comments: Vec<String>,
    /// The upstream's scheme + authority (`http://host:port`) and path segments.
    authority: String,
    path: Vec<String>,
}

/// Groups `mirrors` into sources (file order) and gives them ids and mounts.
pub fn plan(mirrors: &[PomMirror]) -> Result<Vec<PlannedSource>, String> {
    let mut groups: Vec<(Repository, Vec<&PomMirror>)> = Vec::new();
    for mirror in mirrors {
        let line = mirror
            .repository
            .as_deref()
            .ok_or_else(|| format!("mirror `{}`: no `repository`", mirror.id))?;
        let repository = Repository::parse(line)
            .map_err(|m| format!("mirror `{}`: repository `{line}`: {m}", mirror.id))?;
        match groups
            .iter_mut()
            .find(|(r, _)| r.url == repository.url && r.suite == repository.suite)
        {
            Some((_, members)) => members.push(mirror),
            None => groups.push((repository, vec![mirror])),
        }
    }
    let mut used = HashSet::new();
    let mut sources: Vec<PlannedSource> = groups
        .iter()
        .map(|(_, members)| merge(members, &mut used))
        .collect();
    assign_mounts(&mut sources);
    Ok(sources)
}

/// A mirrorbox id from a mirror id: letters, digits, `_` and `-` (dots become `_`).
fn clean_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The merged source's id: what the mirror ids have in common (`pve_bookworm` from
/// `pve_bookworm_no-subscription` and `pve_bookworm_test`), else the first; unique.
fn source_id(members: &[&PomMirror], used: &mut HashSet<String>) -> String {
    let ids: Vec<String> = members.iter().map(|m| clean_id(&m.id)).collect();
    let mut base = ids[0].clone();
    if ids.len() > 1 {
        let common = ids[1..].iter().fold(ids[0].as_str(), |prefix, id| {
            let same = prefix
                .chars()
                .zip(id.chars())
                .take_while(|(a, b)| a == b)
                .count();
            &prefix[..same]
        });
        let common = common.trim_end_matches(['_', '-']);
        if common.len() >= 3 {
            base = common.to_string();
        }
    }
    let mut id = base.clone();
    let mut n = 2;
    while !used.insert(id.clone()) {
        id = format!("{base}_{n}");
        n += 1;
    }
    id
}

/// Items of every list, each once, in order of first appearance.
fn union(lists: impl IntoIterator<Item = Vec<String>>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in lists.into_iter().flatten() {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// What every list has, with a comment naming what was dropped.
fn intersection(
    key: &str,
    members: &[&PomMirror],
    list: impl Fn(&PomMirror) -> &Vec<String>,
    comments: &mut Vec<String>,
) -> Vec<String> {
    let all = union(members.iter().map(|m| list(m).clone()));
    let (kept, dropped): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|item| members.iter().all(|m| list(m).contains(item)));
    if !dropped.is_empty() {
        comments.push(format!(
            "`{key}` differed: kept only what every merged mirror skipped; not skipped now: {} (one source applies one filter to every component)",
            dropped.join(", ")
        ));
    }
    kept
}

/// The strictest of the mirrors' relaxations: SHA-1 only if all allow it, the largest minimum
/// key sizes; `None` when that is no relaxation at all.
fn strictest(policies: &[Option<WeakCrypto>]) -> Option<WeakCrypto> {
    let bits = |get: fn(&WeakCrypto) -> Option<u32>| -> Option<u32> {
        let effective = policies
            .iter()
            .map(|p| p.as_ref().and_then(get).unwrap_or(DEFAULT_MIN_KEY_BITS))
            .max()
            .unwrap_or(DEFAULT_MIN_KEY_BITS);
        let all_set = policies.iter().all(|p| p.as_ref().and_then(get).is_some());
        (all_set || effective > DEFAULT_MIN_KEY_BITS).then_some(effective)
    };
    let merged = WeakCrypto {
        allow_sha1: policies
            .iter()
            .all(|p| p.as_ref().is_some_and(|p| p.allow_sha1)),
        min_rsa_bits: bits(|p| p.min_rsa_bits),
        min_dsa_bits: bits(|p| p.min_dsa_bits),
    };
    (merged != WeakCrypto::default()).then_some(merged)
}

fn merge(members: &[&PomMirror], used: &mut HashSet<String>) -> PlannedSource {
    let first = members[0];
    let mut comments = Vec::new();
    let repositories: Vec<Repository> = members
        .iter()
        .filter_map(|m| {
            m.repository
                .as_deref()
                .and_then(|l| Repository::parse(l).ok())
        })
        .collect();
    let base = &repositories[0];
    let repository = if members.len() == 1 {
        first.repository.clone().unwrap_or_default()
    } else {
        let kind = match (
            repositories.iter().any(|r| r.binary),
            repositories.iter().any(|r| r.source),
        ) {
            (true, true) => "deb+deb-src",
            (false, true) => "deb-src",
            _ => "deb",
        };
        let components = union(repositories.iter().map(|r| r.components.clone()));
        let ids: Vec<String> = members.iter().map(|m| format!("`{}`", m.id)).collect();
        comments.push(format!(
            "merged from {}: the same repository and suite, so one source publishes dists/{} with every component (apart, one would hide the other's); where their settings differed the stricter is kept",
            ids.join(", "),
            base.suite
        ));
        let url = base.url.trim_end_matches('/');
        let mut line = format!("{kind} {url} {}", base.suite);
        for component in &components {
            line.push(' ');
            line.push_str(component);
        }
        line
    };
    let architectures = union(members.iter().map(|m| m.architectures.clone()));
    if members
        .iter()
        .any(|m| m.architectures.len() != architectures.len())
    {
        comments.push("`architectures` differed: every one listed is mirrored".into());
    }
    let keys = union(members.iter().map(|m| m.key_path.iter().cloned().collect()));
    let skip_packages = intersection(
        "skip-packages",
        members,
        |m| &m.skip_packages,
        &mut comments,
    );
    let skip_sections = intersection(
        "skip-sections",
        members,
        |m| &m.skip_sections,
        &mut comments,
    );
    let verify_pool = members.iter().any(|m| m.verify == Some(true));
    if verify_pool && members.iter().any(|m| m.verify != Some(true)) {
        comments.push("`verify` differed: on (the stricter)".into());
    }
    let ignore_errors = members.iter().all(|m| m.ignore_errors == Some(true));
    if !ignore_errors && members.iter().any(|m| m.ignore_errors == Some(true)) {
        comments.push("`ignore-errors` differed: off (the stricter)".into());
    }
    let policies: Vec<Option<WeakCrypto>> = members.iter().map(|m| m.weak_crypto.clone()).collect();
    let weak_crypto = strictest(&policies);
    if members.len() > 1 && policies.iter().any(|p| *p != weak_crypto) {
        comments.push("`weak-crypto` differed: the strictest of them is kept".into());
    }
    let use_subscription = members.iter().find_map(|m| m.use_subscription.clone());
    for mirror in members {
        if mirror.sync == Some(false) {
            comments.push(format!(
                "`{}` had `sync false`: no per-source equivalent (see `sync` at the top)",
                mirror.id
            ));
        }
        for note in &mirror.notes {
            comments.push(format!("`{}`: {note}", mirror.id));
        }
        for (key, value) in &mirror.other {
            comments.push(format!("`{}`: not imported: `{key} {value}`", mirror.id));
        }
    }
    let (authority, path) = split_url(&base.url);
    PlannedSource {
        id: source_id(members, used),
        from: members.iter().map(|m| m.id.clone()).collect(),
        mount: String::new(),
        repository,
        architectures,
        keys,
        skip_packages,
        skip_sections,
        ignore_errors,
        verify_pool,
        weak_crypto,
        use_subscription,
        comments,
        authority,
        path,
    }
}

/// `http://host:port/a/b/` → (`http://host:port`, [`a`, `b`]); segments that cannot be part
/// of a mount (`.`, `..`, hidden ones) are left out.
fn split_url(url: &str) -> (String, Vec<String>) {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let segments = path
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('.'))
        .map(str::to_string)
        .collect();
    (
        format!("{scheme}://{}", authority.to_ascii_lowercase()),
        segments,
    )
}

/// A mount segment naming a host: `deb.example.org`, `127.0.0.1_8080` (a `:` would read as a
/// URL scheme in some clients' configuration).
fn host_segment(authority: &str) -> String {
    let host = authority.split_once("://").map_or(authority, |(_, h)| h);
    host.chars()
        .map(|c| {
            if c == ':' || c == '[' || c == ']' {
                '_'
            } else {
                c
            }
        })
        .collect::<String>()
        .trim_matches('_')
        .to_string()
}

fn mount_of(source: &PlannedSource, with_host: bool) -> String {
    let mut segments: Vec<String> = Vec::new();
    if with_host || source.path.is_empty() {
        segments.push(host_segment(&source.authority));
    }
    segments.extend(source.path.iter().cloned());
    segments.iter().map(|s| format!("/{s}")).collect()
}

/// Whether two mounts are one tree: equal, or one inside the other.
fn one_tree(a: &str, b: &str) -> bool {
    a == b || a.starts_with(&format!("{b}/")) || b.starts_with(&format!("{a}/"))
}

fn assign_mounts(sources: &mut [PlannedSource]) {
    let mut with_host: HashSet<String> = HashSet::new();
    let mut clashes: Vec<(String, String)> = Vec::new();
    loop {
        let mounts: Vec<String> = sources
            .iter()
            .map(|s| mount_of(s, with_host.contains(&s.authority)))
            .collect();
        let mut changed = false;
        for i in 0..sources.len() {
            for j in i + 1..sources.len() {
                let (a, b) = (&sources[i].authority, &sources[j].authority);
                if a != b && one_tree(&mounts[i], &mounts[j]) {
                    changed |= with_host.insert(a.clone());
                    changed |= with_host.insert(b.clone());
                    clashes.push((a.clone(), b.clone()));
                }
            }
        }
        if !changed {
            for (source, mount) in sources.iter_mut().zip(mounts) {
                source.mount = mount;
            }
            break;
        }
    }
    for source in sources.iter_mut() {
        if !source.path.is_empty() && with_host.contains(&source.authority) {
            let others: Vec<String> = union(clashes.iter().filter_map(|(a, b)| {
                (a == &source.authority)
                    .then(|| vec![b.clone()])
                    .or_else(|| (b == &source.authority).then(|| vec![a.clone()]))
            }));
            source.comments.push(format!(
                "the mount keeps the host: {} and {} would otherwise share one tree",
                source.authority,
                others.join(", ")
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mirror(id: &str, line: &str) -> PomMirror {
        PomMirror {
            id: id.into(),
            repository: Some(line.into()),
            architectures: vec!["amd64".into(), "all".into()],
            key_path: Some("/k.gpg".into()),
            verify: Some(true),
            sync: Some(true),
            ..PomMirror::default()
        }
    }

    #[test]
    fn one_repository_and_suite_is_one_source() {
        let mut test = mirror(
            "pve_bookworm_test",
            "deb http://download.proxmox.com/debian/pve bookworm pvetest",
        );
        test.verify = Some(false);
        test.skip_packages = vec!["*-dbgsym".into(), "{a,b}-doc".into()];
        test.weak_crypto = Some(WeakCrypto {
            allow_sha1: true,
            min_rsa_bits: Some(1024),
            min_dsa_bits: None,
        });
        let mut no_sub = mirror(
            "pve_bookworm_no-subscription",
            "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription",
        );
        no_sub.skip_packages = vec!["*-dbgsym".into()];
        let other_suite = mirror(
            "pve_trixie",
            "deb http://download.proxmox.com/debian/pve trixie pve-no-subscription",
        );
        let sources = plan(&[no_sub, test, other_suite]).unwrap();
        assert_eq!(sources.len(), 2);
        let pve = &sources[0];
        assert_eq!(pve.id, "pve_bookworm");
        assert_eq!(
            pve.repository,
            "deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest"
        );
        assert_eq!(
            pve.from,
            ["pve_bookworm_no-subscription", "pve_bookworm_test"]
        );
        assert!(pve.verify_pool, "the stricter verify");
        assert_eq!(pve.skip_packages, ["*-dbgsym"]);
        assert_eq!(pve.weak_crypto, None, "one mirror had no relaxation");
        assert!(pve
            .comments
            .iter()
            .any(|c| c.contains("not skipped now: {a,b}-doc")));
        assert_eq!(pve.mount, "/debian/pve");
        assert_eq!(
            sources[1].mount, "/debian/pve",
            "suites of one upstream share a tree"
        );
    }

    #[test]
    fn two_hosts_in_one_tree_keep_their_hosts() {
        let sources = plan(&[
            mirror("debian", "deb http://deb.debian.org/debian bookworm main"),
            mirror(
                "mirror",
                "deb http://mirror.example.org/debian bookworm-backports main",
            ),
            mirror(
                "pve",
                "deb http://download.proxmox.com/debian/pve bookworm pvetest",
            ),
            mirror("local", "deb http://127.0.0.1:8080/ ./"),
            mirror("dots.id", "deb http://other.example.org/ceph bookworm main"),
        ])
        .unwrap();
        let mounts: Vec<&str> = sources.iter().map(|s| s.mount.as_str()).collect();
        assert_eq!(
            mounts,
            [
                "/deb.debian.org/debian",
                "/mirror.example.org/debian",
                "/download.proxmox.com/debian/pve",
                "/127.0.0.1_8080",
                "/ceph"
            ]
        );
        assert_eq!(sources[4].id, "dots_id");
        assert!(sources[0]
            .comments
            .iter()
            .any(|c| c.contains("keeps the host")));
    }

    #[test]
    fn ids_with_dots_stay_unique() {
        let sources = plan(&[
            mirror(
                "debian.security",
                "deb http://deb.debian.org/debian-security bookworm-security main",
            ),
            mirror(
                "debian_security",
                "deb http://deb.debian.org/debian-security trixie-security main",
            ),
        ])
        .unwrap();
        let ids: Vec<&str> = sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["debian_security", "debian_security_2"]);
    }

    #[test]
    fn strictest_weak_crypto() {
        let relaxed = |sha1, rsa| {
            Some(WeakCrypto {
                allow_sha1: sha1,
                min_rsa_bits: rsa,
                min_dsa_bits: None,
            })
        };
        assert_eq!(
            strictest(&[relaxed(true, Some(1024)), relaxed(false, Some(1536))]),
            relaxed(false, Some(1536))
        );
        assert_eq!(
            strictest(&[relaxed(true, None), relaxed(true, Some(1024))]),
            relaxed(true, None)
        );
        assert_eq!(
            strictest(&[None, relaxed(false, Some(4096))]),
            relaxed(false, Some(4096))
        );
    }
}
