//! The `[[access]]` rules as configured ([`AccessRule`]) and as applied ([`Rule`]): which
//! paths a rule covers and which addresses it refuses.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::HeaderValue;
use ipnet::IpNet;

use super::users::Users;

/// One `[[access]]` rule: who may read what is under `path`.
///
/// Addresses are checked first (`deny` wins over `allow`; an absent `allow` allows every
/// address), then, if `htpasswd` is set, HTTP basic auth. The longest `path` that contains a
/// request's path decides alone; [`super::Access`] applies the rules.
#[derive(Debug, Clone)]
pub struct AccessRule {
    /// A URL prefix in mount form: `""` for the whole server, otherwise `/a/b`.
    pub path: String,
    pub allow: Vec<IpNet>,
    pub deny: Vec<IpNet>,
    pub htpasswd: Option<PathBuf>,
    /// Shown by browsers in the password prompt.
    pub realm: String,
    /// `[[access]] #N (path "…")`, for messages.
    pub label: String,
}

impl AccessRule {
    /// What the rule decides, without its label (which only says where it stands in the file).
    #[allow(clippy::type_complexity)]
    fn meaning(&self) -> (&str, &[IpNet], &[IpNet], Option<&Path>, &str) {
        (
            &self.path,
            &self.allow,
            &self.deny,
            self.htpasswd.as_deref(),
            &self.realm,
        )
    }
}

/// Whether two lists of `[[access]]` rules decide anything differently. Their order does not
/// matter (the longest path decides, and paths are unique).
pub fn access_rules_differ(running: &[AccessRule], new: &[AccessRule]) -> bool {
    fn sorted(rules: &[AccessRule]) -> Vec<&AccessRule> {
        let mut rules: Vec<&AccessRule> = rules.iter().collect();
        rules.sort_by(|a, b| a.path.cmp(&b.path));
        rules
    }
    let (running, new) = (sorted(running), sorted(new));
    running.len() != new.len()
        || running
            .iter()
            .zip(&new)
            .any(|(a, b)| a.meaning() != b.meaning())
}

/// A rule's password check: its users and the challenge a 401 carries.
pub(super) struct Auth {
    pub(super) users: Arc<Users>,
    pub(super) challenge: HeaderValue,
}

impl Auth {
    pub(super) fn new(users: Arc<Users>, realm: &str) -> Auth {
        let challenge = format!("Basic realm=\"{realm}\", charset=\"UTF-8\"");
        let challenge = HeaderValue::from_str(&challenge)
            .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"mirrorbox\""));
        Auth { users, challenge }
    }
}

/// An [`AccessRule`] ready to decide requests.
pub(super) struct Rule {
    /// Mount form: `""` (everything) or `/a/b`.
    pub(super) path: String,
    pub(super) allow: Vec<IpNet>,
    pub(super) deny: Vec<IpNet>,
    pub(super) auth: Option<Auth>,
}

impl Rule {
    pub(super) fn covers(&self, key: &str) -> bool {
        within(&self.path, key)
    }

    pub(super) fn address_refused(&self, peer: IpAddr) -> bool {
        self.deny.iter().any(|net| net.contains(&peer))
            || (!self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&peer)))
    }
}

/// Whether `inner` is `outer` or below it, on segment boundaries (`""` contains everything).
pub(super) fn within(outer: &str, inner: &str) -> bool {
    outer.is_empty()
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// `::ffff:10.1.2.3` from a dual-stack listener is the IPv4 client 10.1.2.3.
pub(super) fn unmapped_peer(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    }
}
