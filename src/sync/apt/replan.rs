//! When an apt sync plans again although the upstream did not change: the InRelease alone
//! says nothing about a configuration edited since (a component added, an architecture
//! dropped, a filter changed) or about files the last sync could not get. Each snapshot
//! records the selection that chose its files; the next sync compares it with the current one.

use super::options::AptOptions;
use crate::manifest::{Manifest, Selection};

/// A canonical description of every option that decides which files an apt snapshot holds.
/// Order in the configuration does not matter; anything else that changes the chosen files
/// changes this text, and so does `trust` (the keys and signature policy, see
/// `Keyring::trust`): files chosen under other keys are judged again. The URL is left out: it
/// says where the files come from, not which (the validators record their upstream, so a new
/// one is asked unconditionally), and it may carry a token.
pub(super) fn describe(config: &AptOptions, trust: &str) -> String {
    let repo = &config.repository;
    let sorted = |list: &[String]| {
        let mut list = list.to_vec();
        list.sort();
        list.dedup();
        list.join(" ")
    };
    let kinds = match (repo.binary, repo.source) {
        (true, true) => "deb deb-src",
        (true, false) => "deb",
        (false, _) => "deb-src",
    };
    let languages = config
        .languages
        .as_deref()
        .map_or_else(|| "*".to_string(), sorted);
    [
        format!("{kinds} {}", repo.suite),
        format!("components [{}]", sorted(&repo.components)),
        format!("architectures [{}]", sorted(&config.architectures)),
        format!("indices [{}]", sorted(&config.indices)),
        format!("languages [{languages}]"),
        format!("skip_packages [{}]", sorted(&config.filter.skip_packages)),
        format!("skip_sections [{}]", sorted(&config.filter.skip_sections)),
        format!("installer {}", config.installer),
        format!("trust {trust}"),
    ]
    .join("; ")
}

/// Why the current snapshot cannot simply be kept when the upstream is unchanged, if it
/// cannot: it does not record its selection (made before this was recorded), it was chosen
/// by another configuration, or it lacks files the upstream listed.
pub(super) fn reason(previous: Option<&Manifest>, description: &str) -> Option<String> {
    let previous = previous?;
    match &previous.selection {
        None => Some("the current snapshot does not record what it selected".into()),
        Some(Selection {
            description: recorded,
            ..
        }) if recorded != description => Some(format!(
            "the configuration changed (was: {recorded}; now: {description})"
        )),
        Some(Selection { left_out, .. }) if !left_out.is_empty() => Some(format!(
            "{} file(s) were left out last time, first {}",
            left_out.len(),
            left_out[0]
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::apt::{index, repository};

    fn config(line: &str, architectures: &[&str]) -> AptOptions {
        AptOptions {
            repository: repository::Repository::parse(line).unwrap(),
            architectures: architectures.iter().map(|s| s.to_string()).collect(),
            keys: vec![],
            filter: index::Filter::default(),
            indices: vec!["i18n".into()],
            ignore_errors: false,
            allow_expired: false,
            allow_missing_date: false,
            languages: None,
            installer: false,
            verify_pool: false,
            weak_crypto: Default::default(),
            fetch: Default::default(),
        }
    }

    fn snapshot(selection: Option<Selection>) -> Manifest {
        let mut manifest = Manifest::new("s", 0, vec![]);
        manifest.selection = selection;
        manifest
    }

    #[test]
    fn order_in_the_configuration_does_not_matter_but_content_does() {
        let a = describe(
            &config("deb http://x/ bookworm main contrib", &["amd64", "all"]),
            "k",
        );
        let b = describe(
            &config("deb http://x/ bookworm contrib main", &["all", "amd64"]),
            "k",
        );
        assert_eq!(a, b);
        let c = describe(
            &config("deb http://x/ bookworm main", &["all", "amd64"]),
            "k",
        );
        assert_ne!(a, c);
        let d = describe(
            &config("deb-src http://x/ bookworm main contrib", &["amd64", "all"]),
            "k",
        );
        assert_ne!(a, d);
        let mut filtered = config("deb http://x/ bookworm main contrib", &["amd64", "all"]);
        filtered.filter = index::Filter::new(vec!["*-dbgsym".into()], vec![]).unwrap();
        assert_ne!(a, describe(&filtered, "k"));
        let other_keys = describe(
            &config("deb http://x/ bookworm main contrib", &["amd64", "all"]),
            "other keys",
        );
        assert_ne!(
            a, other_keys,
            "a change of trusted keys or policy is a change"
        );
    }

    #[test]
    fn a_snapshot_is_kept_only_when_its_selection_is_the_current_one_and_complete() {
        let now = describe(&config("deb http://x/ bookworm main", &["amd64"]), "k");
        let recorded = |description: &str, left_out: &[&str]| {
            snapshot(Some(Selection {
                description: description.into(),
                left_out: left_out.iter().map(|s| s.to_string()).collect(),
                unserved: vec![],
            }))
        };
        assert_eq!(reason(None, &now), None, "nothing to keep");
        assert_eq!(reason(Some(&recorded(&now, &[])), &now), None);
        let unknown = reason(Some(&snapshot(None)), &now).unwrap();
        assert!(unknown.contains("does not record"), "{unknown}");
        let changed = reason(Some(&recorded("other", &[])), &now).unwrap();
        assert!(changed.contains("configuration changed"), "{changed}");
        let mut unserved = recorded(&now, &[]);
        if let Some(selection) = unserved.selection.as_mut() {
            selection.unserved = vec!["index main/Contents-amd64 is not served".into()];
        }
        assert_eq!(
            reason(Some(&unserved), &now),
            None,
            "an index the upstream never served is retried when the upstream changes"
        );
        let missing = reason(Some(&recorded(&now, &["pool/a.deb"])), &now).unwrap();
        assert!(missing.contains("pool/a.deb"), "{missing}");
    }
}
