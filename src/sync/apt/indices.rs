//! The indices of an apt snapshot: fetched as the Release lists them (by-hash when offered),
//! each checked against its signed size and sha256, and published under their names and their
//! by-hash names.

use std::collections::BTreeMap;

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::release::{Listed, Release};
use super::selection::family;
use super::{Mirror, Planned};
use crate::store::ObjectId;
use crate::sync::fetch::{Expected, FetchError};
use crate::sync::SyncError;

/// What [`Mirror::fetch_indices`] got: the stored variants, and the families of which the
/// upstream served no variant although its Release lists them.
pub(super) struct Indices {
    pub fetched: Vec<(Listed, ObjectId)>,
    /// Family (`main/Contents-amd64`) and the URLs that were tried.
    pub unserved: Vec<(String, Vec<String>)>,
}

/// Packages and Sources decide what a snapshot holds: without one the sync fails. Any other
/// index (Contents, i18n, dep11, cnf) an upstream lists but does not serve is left out with a
/// warning, as apt clients cope without them.
fn is_package_index(family: &str) -> bool {
    let name = family.rsplit('/').next().unwrap_or(family);
    name == "Packages" || name == "Sources"
}

/// An answer that means "this variant is not there": absent, gone, or refused.
fn not_served(error: &FetchError) -> bool {
    match error {
        FetchError::NotFound { .. } => true,
        FetchError::Status { status, .. } => (400..500).contains(status),
        _ => false,
    }
}

impl Mirror<'_> {
    /// Fetches the selected indices. A listed variant may be absent (apt lists uncompressed
    /// Packages that only exist compressed); each Packages/Sources family needs one present
    /// variant, other families are reported as unserved.
    pub(super) async fn fetch_indices(
        &self,
        release: &Release,
        selected: &[&Listed],
    ) -> Result<Indices, SyncError> {
        let mut tasks = FuturesUnordered::new();
        for listed in selected {
            let listed = (*listed).clone();
            let canonical = self.url(&format!("{}{}", self.dist, listed.path));
            let by_hash = release.by_hash.then(|| {
                let dir = listed
                    .path
                    .rsplit_once('/')
                    .map(|(d, _)| format!("{d}/"))
                    .unwrap_or_default();
                self.url(&format!(
                    "{}{dir}by-hash/SHA256/{}",
                    self.dist, listed.sha256
                ))
            });
            tasks.push(async move {
                let sha256: ObjectId = listed.sha256.parse().expect("Release::parse checks hashes");
                let expected = Expected {
                    size: Some(listed.size),
                    sha256,
                };
                let result = match &by_hash {
                    Some(url) => match self.fetcher.object(self.store, url, expected).await {
                        Err(FetchError::NotFound { .. }) => {
                            self.fetcher.object(self.store, &canonical, expected).await
                        }
                        other => other,
                    },
                    None => self.fetcher.object(self.store, &canonical, expected).await,
                };
                (listed, result)
            });
        }
        let mut fetched = Vec::new();
        let mut missing: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut families: BTreeMap<String, bool> = BTreeMap::new();
        let mut changed = None;
        while let Some((listed, result)) = tasks.next().await {
            let family = family(&listed.path);
            match result {
                Ok(stored) => {
                    *families.entry(family).or_default() = true;
                    fetched.push((listed, stored.id));
                }
                Err(e) if not_served(&e) => {
                    families.entry(family.clone()).or_default();
                    missing.entry(family).or_default().push(e.to_string());
                }
                Err(e @ (FetchError::Hash { .. } | FetchError::Size { .. })) => {
                    changed.get_or_insert(e.to_string());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(reason) = changed {
            return Err(SyncError::Restart(reason));
        }
        let mut unserved = Vec::new();
        for (family, present) in families {
            if present {
                continue;
            }
            let mut tried = missing.remove(&family).unwrap_or_default();
            tried.sort();
            if is_package_index(&family) {
                return Err(super::apt_error(format!(
                    "index {}{family} is listed in the Release but no variant of it could be fetched: {}",
                    self.dist,
                    tried.join(", ")
                )));
            }
            unserved.push((family, tried));
        }
        fetched.sort_by(|a, b| a.0.path.cmp(&b.0.path));
        Ok(Indices { fetched, unserved })
    }

    /// The snapshot's entries for its indices: each under its name and its by-hash names,
    /// served for as long as the snapshot is retained.
    pub(super) fn plan_indices(&self, indices: &[(Listed, ObjectId)], planned: &mut Vec<Planned>) {
        for (listed, object) in indices {
            let dir = match listed.path.rsplit_once('/') {
                Some((dir, _)) => format!("{}{dir}/", self.dist),
                None => self.dist.clone(),
            };
            planned.push(Planned {
                path: format!("{}{}", self.dist, listed.path),
                object: *object,
                size: listed.size,
            });
            planned.push(Planned {
                path: format!("{dir}by-hash/SHA256/{}", listed.sha256),
                object: *object,
                size: listed.size,
            });
            if let Some(sha512) = &listed.sha512 {
                planned.push(Planned {
                    path: format!("{dir}by-hash/SHA512/{sha512}"),
                    object: *object,
                    size: listed.size,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_packages_and_sources_are_required() {
        assert!(is_package_index("main/binary-amd64/Packages"));
        assert!(is_package_index("main/source/Sources"));
        assert!(is_package_index(
            "main/debian-installer/binary-amd64/Packages"
        ));
        assert!(!is_package_index("main/Contents-amd64"));
        assert!(!is_package_index("main/i18n/Translation-en"));
        assert!(!is_package_index("main/dep11/Components-amd64.yml"));
    }

    #[test]
    fn absent_and_refused_variants_are_not_served_but_failures_are_errors() {
        let url = || "http://x/y".to_string();
        assert!(not_served(&FetchError::NotFound { url: url() }));
        assert!(not_served(&FetchError::Status {
            url: url(),
            status: 403
        }));
        assert!(!not_served(&FetchError::Status {
            url: url(),
            status: 503
        }));
        assert!(!not_served(&FetchError::Network {
            url: url(),
            message: "reset".into()
        }));
    }
}
