//! `[[access]]` rules: which client may read which URL prefix, decided before any lookup so a
//! refused request never learns whether a path exists.
//!
//! The longest rule path that contains the request path decides alone (on segment boundaries:
//! `/debian/pve` covers `/debian/pve/dists/…`, not `/debian/pve-enterprise`). A rule checks
//! addresses first (403, no password prompt: a password would not help), then HTTP basic auth
//! against its htpasswd file (401 with a `WWW-Authenticate` challenge).
//!
//! Snapshots: `/.snapshots/<source>/<snapshot>/<rest>` is the same content as
//! `<mount of source>/<rest>`, so it is decided as that path. Without this, protected content
//! would leak through its snapshot URLs. `/.status.json` and `/.status.html` are decided as
//! `/.status`.
//!
//! Cost: with no rules, [`Access::check`] is one length test. Verifying a password is slow by
//! design (bcrypt), so successes are remembered briefly (apt fetching a thousand files pays for
//! one verification), verifications run on the blocking pool, at most a few at once, and a
//! flood beyond a bounded queue is answered 503 instead of pinning the CPU. One address (one
//! /64 for IPv6) may have only a few verifications waiting or running, so it cannot fill the
//! shared queue alone, and over-long credentials are refused before any hashing (SHA-crypt
//! costs grow with the square of the password's length).
//!
//! Layout: `rules` holds the configured and applied rules and address matching, `users` the
//! htpasswd files and their reloading, `verify` the bounded credential checks, `reader` the
//! status page's view; this module decides.

mod reader;
mod rules;
#[cfg(test)]
mod tests;
mod users;
mod verify;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderValue;

use super::htpasswd::HtpasswdError;
use crate::view::SNAPSHOTS_PREFIX;
pub use reader::Reader;
pub use rules::{access_rules_differ, AccessRule};
use rules::{unmapped_peer, within, Auth, Rule};
use users::Users;
pub use verify::CREDENTIAL_MAX;
use verify::{Verdict, Verifier};

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    // `error`, not `source`: the message already carries it, once.
    #[error("{config}: {rule}: key `htpasswd`: {error}")]
    Htpasswd {
        config: PathBuf,
        rule: String,
        error: HtpasswdError,
    },
}

/// What [`Access`] needs from a configuration: its rules, the file they came from (for
/// messages) and where each source is mounted (snapshot URLs are decided as their mount's
/// paths). A trait rather than the configuration type, so this module does not depend on how
/// the configuration is read.
pub trait AccessSource {
    /// The configuration file, named in errors.
    fn config_file(&self) -> &Path;
    /// The `[[access]]` rules, in file order.
    fn access_rules(&self) -> &[AccessRule];
    /// Every source as (id, mount).
    fn source_mounts(&self) -> Vec<(&str, &str)>;
}

/// What a request may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Go on. `restricted`: a rule with an allow list or a password let it through (the client
    /// is trusted with full status messages, and responses must not sit in shared caches).
    Allowed { restricted: bool },
    /// 403: the address is refused.
    Forbidden,
    /// 401: credentials are missing or wrong; the value is the `WWW-Authenticate` challenge.
    Unauthorized(HeaderValue),
    /// 503: too many password checks are waiting.
    Busy,
}

/// All rules of a configuration, ready to decide requests.
pub struct Access {
    /// Longest path first, so the first that covers a path is the one that decides.
    rules: Vec<Rule>,
    files: Vec<Arc<Users>>,
    /// Source id → mount, to decide `/.snapshots/<source>/…` as the mount's path.
    mounts: HashMap<String, String>,
    verifier: Verifier,
}

impl Access {
    /// No rules: everything is open.
    pub fn open() -> Access {
        Access {
            rules: Vec::new(),
            files: Vec::new(),
            mounts: HashMap::new(),
            verifier: Verifier::new(),
        }
    }

    /// Builds the rules of `config` and reads their htpasswd files. Refused htpasswd lines are
    /// logged as warnings (rules that cover no mount are `preflight`'s).
    pub fn load(config: &impl AccessSource) -> Result<Access, AccessError> {
        let mut files: Vec<Arc<Users>> = Vec::new();
        let mut rules = Vec::new();
        for rule in config.access_rules() {
            let auth = match &rule.htpasswd {
                None => None,
                Some(file) => {
                    let users = match files.iter().find(|u| &u.file == file) {
                        Some(users) => users.clone(),
                        None => {
                            let users = Users::load(files.len() as u32, file).map_err(|error| {
                                AccessError::Htpasswd {
                                    config: config.config_file().to_path_buf(),
                                    rule: rule.label.clone(),
                                    error,
                                }
                            })?;
                            let users = Arc::new(users);
                            files.push(users.clone());
                            users
                        }
                    };
                    Some(Auth::new(users, &rule.realm))
                }
            };
            rules.push(Rule {
                path: rule.path.clone(),
                allow: rule.allow.clone(),
                deny: rule.deny.clone(),
                auth,
            });
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        let mounts = config
            .source_mounts()
            .into_iter()
            .map(|(id, mount)| (id.to_owned(), mount.to_owned()))
            .collect();
        Ok(Access {
            rules,
            files,
            mounts,
            verifier: Verifier::new(),
        })
    }

    /// Re-reads every htpasswd file (SIGHUP). A file that cannot be read keeps its old users.
    pub fn reload(&self) {
        for users in &self.files {
            users.reload();
        }
        // Users may have been removed or their passwords changed.
        self.verifier.forget();
    }

    pub fn has_rules(&self) -> bool {
        !self.rules.is_empty()
    }

    /// Decides a request for `key` (a normalized path, `/a/b`) from `peer` with the request's
    /// `Authorization` header.
    pub async fn check(
        &self,
        key: &str,
        peer: IpAddr,
        authorization: Option<&HeaderValue>,
    ) -> Decision {
        if self.rules.is_empty() {
            return Decision::Allowed { restricted: false };
        }
        let Some(rule) = self.rule_for(key) else {
            return Decision::Allowed { restricted: false };
        };
        let peer = unmapped_peer(peer);
        if rule.address_refused(peer) {
            return Decision::Forbidden;
        }
        let Some(auth) = &rule.auth else {
            return Decision::Allowed {
                restricted: !rule.allow.is_empty(),
            };
        };
        match self.verifier.verify(&auth.users, peer, authorization).await {
            Verdict::Good => Decision::Allowed { restricted: true },
            Verdict::Bad => Decision::Unauthorized(auth.challenge.clone()),
            Verdict::Busy => Decision::Busy,
        }
    }

    /// Answers "may this client read …" for the status page, which asks it for every mount.
    pub fn reader<'a>(
        &'a self,
        peer: IpAddr,
        authorization: Option<&'a HeaderValue>,
    ) -> Reader<'a> {
        Reader {
            access: self,
            peer: unmapped_peer(peer),
            authorization,
            verified: HashMap::new(),
            #[cfg(test)]
            verifications: 0,
        }
    }

    fn rule_for(&self, key: &str) -> Option<&Rule> {
        let key = self.decided_as(key);
        self.rules.iter().find(|rule| rule.covers(&key))
    }

    /// The path whose rule decides `key`.
    fn decided_as<'k>(&self, key: &'k str) -> Cow<'k, str> {
        if matches!(key, "/.status.json" | "/.status.html") {
            return Cow::Borrowed("/.status");
        }
        let Some(rest) = key
            .strip_prefix(SNAPSHOTS_PREFIX)
            .and_then(|r| r.strip_prefix('/'))
        else {
            return Cow::Borrowed(key);
        };
        let (source, below) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(mount) = self.mounts.get(source) else {
            return Cow::Borrowed(key);
        };
        // Skip the snapshot id segment.
        let inner = below.split_once('/').map(|(_, inner)| inner).unwrap_or("");
        let path = if inner.is_empty() {
            mount.clone()
        } else {
            format!("{mount}/{inner}")
        };
        if path.is_empty() {
            Cow::Borrowed("/")
        } else {
            Cow::Owned(path)
        }
    }
}

/// Whether a rule path names something served: inside a mount, above one, or a status page.
pub fn covers_something(path: &str, config: &impl AccessSource) -> bool {
    if path.is_empty() || path == "/.status" || path == "/.metrics" {
        return true;
    }
    config
        .source_mounts()
        .into_iter()
        .any(|(_, mount)| within(mount, path) || within(path, mount))
}
