//! The `apt` kind as the rest of the program sees it: its options (what to fetch, which keys
//! to trust, how to talk to the upstream), its check-config lines, its client instructions,
//! and its [`Kind`] impl; the sync itself is in the module's other files.

use std::path::PathBuf;

use serde::Deserialize;

use super::index::Filter;
pub use super::policy::WeakCrypto;
use super::repository::Repository;
use super::{keyring, sync};
use crate::manifest::Entry;
use crate::sync::fetch::FetchKeys;
use crate::sync::fetch::FetchOptions;
use crate::sync::kind::{
    ClientContext, ClientUse, Finding, Kind, KindOptions, Run, Severity, StreamRun,
};
use crate::sync::SyncError;

/// Index kinds an apt source can carry besides Packages and Sources.
pub const APT_INDEX_KINDS: [&str; 5] = ["i18n", "contents", "dep11", "cnf", "installer"];

/// An apt source's validated options.
#[derive(Debug, Clone)]
pub struct AptOptions {
    pub repository: Repository,
    /// `amd64`, `arm64`, `all`, …
    pub architectures: Vec<String>,
    pub keys: Vec<PathBuf>,
    pub filter: Filter,
    /// Extra index kinds carried besides Packages/Sources: `i18n`, `contents`, `dep11`, `cnf`,
    /// `installer`. Default: all of them that the Release lists.
    pub indices: Vec<String>,
    /// Publish even if some package files could not be fetched (they are left out).
    pub ignore_errors: bool,
    /// Accept a Release whose Valid-Until has passed.
    pub allow_expired: bool,
    /// Accept a Release without a `Date` field (some third-party repositories omit it; such a
    /// repository has no replay protection).
    pub allow_missing_date: bool,
    /// Languages of the i18n `Translation-<lang>` files carried; `None`: every one listed.
    pub languages: Option<Vec<String>>,
    /// Mirror the debian-installer images (`<component>/installer-<arch>/current/images/`),
    /// verified through their `SHA256SUMS`, itself listed in the signed Release.
    pub installer: bool,
    /// Re-hash pool files the store already holds before re-using them (POM's `verify`).
    pub verify_pool: bool,
    /// Named relaxations of the signature policy.
    pub weak_crypto: WeakCrypto,
    pub fetch: FetchOptions,
}

/// The keys as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AptKeys {
    repository: Option<String>,
    architectures: Option<Vec<String>>,
    keys: Option<Vec<PathBuf>>,
    skip_packages: Option<Vec<String>>,
    skip_sections: Option<Vec<String>>,
    indices: Option<Vec<String>>,
    ignore_errors: Option<bool>,
    allow_expired: Option<bool>,
    allow_missing_date: Option<bool>,
    languages: Option<Vec<String>>,
    installer: Option<bool>,
    verify_pool: Option<bool>,
    weak_crypto: Option<WeakCrypto>,
}

impl AptOptions {
    /// Every key an apt source takes.
    pub(super) fn keys() -> Vec<&'static str> {
        FetchKeys::keys_with::<AptKeys>()
    }

    pub(super) fn parse(table: toml::Table) -> Result<AptOptions, String> {
        let (fetch, raw) = FetchKeys::read_with::<AptKeys>(table)?;
        let line = raw
            .repository
            .as_deref()
            .ok_or("key `repository`: missing (a sources.list line: `deb URL SUITE COMPONENT…`)")?;
        let repository = Repository::parse(line).map_err(|m| format!("key `repository`: {m}"))?;
        crate::keys::no_userinfo("repository", &repository.url, true)?;
        let architectures = raw
            .architectures
            .unwrap_or_else(|| vec!["amd64".into(), "all".into()]);
        if architectures.is_empty() && repository.binary {
            return Err(
                "key `architectures`: list at least one (e.g. [\"amd64\", \"all\"])".into(),
            );
        }
        let keys = raw.keys.unwrap_or_default();
        if keys.is_empty() {
            return Err("key `keys`: list the keyring or key files that sign this repository (unsigned repositories are refused)".into());
        }
        let indices = raw
            .indices
            .unwrap_or_else(|| APT_INDEX_KINDS.iter().map(|k| k.to_string()).collect());
        for kind in &indices {
            if !APT_INDEX_KINDS.contains(&kind.as_str()) {
                return Err(format!(
                    "key `indices`: `{kind}` is not one of {}",
                    APT_INDEX_KINDS.join(", ")
                ));
            }
        }
        let fetch = fetch.into_options()?;
        Ok(AptOptions {
            repository,
            architectures,
            keys,
            filter: Filter::new(
                raw.skip_packages.unwrap_or_default(),
                raw.skip_sections.unwrap_or_default(),
            )
            .map_err(|m| format!("key `skip_packages`: {m}"))?,
            indices,
            ignore_errors: raw.ignore_errors.unwrap_or(false),
            allow_expired: raw.allow_expired.unwrap_or(false),
            allow_missing_date: raw.allow_missing_date.unwrap_or(false),
            languages: raw.languages,
            installer: raw.installer.unwrap_or(false),
            verify_pool: raw.verify_pool.unwrap_or(false),
            weak_crypto: raw.weak_crypto.unwrap_or_default(),
            fetch,
        })
    }

    /// The sources.list lines that use this mirror: the upstream's own line, pointed here,
    /// with the architectures and the key (see [`super::client`]).
    pub(super) fn client_use(&self, base_url: &str, usage: &mut ClientUse) {
        let lines = self.client_lines(base_url);
        usage.sources_list = lines.one_line;
        usage.architectures = self.architectures.clone();
        usage.notes.extend(lines.notes);
    }

    /// What `check-config` prints.
    pub(super) fn describe(&self) -> Vec<String> {
        let repo = &self.repository;
        let mut lines = vec![format!(
            "from {} suite {} components [{}], architectures [{}]",
            repo.url,
            repo.suite,
            repo.components.join(" "),
            self.architectures.join(" ")
        )];
        if let Ok(keyring) = super::keyring::Keyring::load(&self.keys) {
            lines.push(format!("keys: {}", keyring.describe()));
        }
        let relaxed = self.weak_crypto.relaxations();
        if !relaxed.is_empty() {
            lines.push(format!("signature policy relaxed: {}", relaxed.join(", ")));
        }
        lines
    }
}

impl KindOptions for AptOptions {
    fn keys() -> Vec<&'static str> {
        AptOptions::keys()
    }

    fn parse(table: toml::Table) -> Result<Self, String> {
        AptOptions::parse(table)
    }
}

impl Kind for AptOptions {
    fn sync(&self, run: Run<'_>) -> Result<Vec<Entry>, SyncError> {
        sync(run.store, run.source, self, run.previous, run.report)
    }

    /// Streams the previous snapshot instead of loading it: a no-op sync hands no entry over.
    fn sync_into(&self, run: StreamRun<'_, '_>) -> Result<(), SyncError> {
        super::sync_into(self, run)
    }

    /// Package files and the pool are named by version, by-hash indices by their hash.
    fn is_immutable(&self, path: &str) -> bool {
        let name = path.rsplit('/').next().unwrap_or(path);
        path.starts_with("pool/")
            || path.contains("/pool/")
            || path.contains("by-hash/")
            || [".deb", ".udeb", ".ddeb"].iter().any(|e| name.ends_with(e))
    }

    fn fills_in(&self) -> bool {
        true
    }

    fn check_machine(&self, at: &dyn Fn(&str) -> String, out: &mut Vec<Finding>) {
        if let Err(e) = keyring::Keyring::load(&self.keys) {
            out.push(Finding {
                severity: Severity::Warning,
                message: format!("{}: {e}", at("keys")),
            });
        }
    }

    fn local_paths(&self) -> Vec<&std::path::Path> {
        self.keys.iter().map(|p| p.as_path()).collect()
    }

    fn describe(&self) -> Vec<String> {
        AptOptions::describe(self)
    }

    fn upstream_key(&self) -> Option<&'static str> {
        Some("repository")
    }

    fn client_use(&self, at: &ClientContext<'_>, usage: &mut ClientUse) {
        AptOptions::client_use(self, at.base_url, usage)
    }
}
