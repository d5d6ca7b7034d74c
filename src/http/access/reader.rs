//! What one client may read, for the status page, which asks for every mount.

use std::collections::HashMap;
use std::net::IpAddr;

use http::HeaderValue;

use super::verify::Verdict;
use super::Access;

/// One client's view of the rules, for the status page: what it may read. Its credentials
/// are verified at most once per htpasswd file, however many mounts are asked about (a failed
/// verification is not remembered, so without this one status request would cost one
/// verification per protected source).
pub struct Reader<'a> {
    pub(super) access: &'a Access,
    pub(super) peer: IpAddr,
    pub(super) authorization: Option<&'a HeaderValue>,
    /// htpasswd file index → whether the credentials are good there.
    pub(super) verified: HashMap<u32, bool>,
    #[cfg(test)]
    pub(super) verifications: usize,
}

impl Reader<'_> {
    /// Whether the client may read `key` and everything under it, the folders with rules of
    /// their own included: what `/.status` may tell it about the content of a mount (series
    /// names, counts, conflict paths). Busy verifications count as refused.
    pub async fn may_read_all_of(&mut self, key: &str) -> bool {
        if self.access.rules.is_empty() {
            return true;
        }
        let key = if key.is_empty() { "/" } else { key };
        let inside = |path: &str| {
            !matches!(path, "" | "/.status" | "/.metrics")
                && (key == "/"
                    || path
                        .strip_prefix(key)
                        .is_some_and(|rest| rest.starts_with('/')))
        };
        let access = self.access;
        let below = access
            .rules
            .iter()
            .map(|rule| rule.path.as_str())
            .filter(|path| inside(path));
        for path in std::iter::once(key).chain(below) {
            if !self.may_read(path).await {
                return false;
            }
        }
        true
    }

    async fn may_read(&mut self, key: &str) -> bool {
        let Some(rule) = self.access.rule_for(key) else {
            return true;
        };
        if rule.address_refused(self.peer) {
            return false;
        }
        let Some(auth) = &rule.auth else {
            return true;
        };
        if let Some(good) = self.verified.get(&auth.users.index) {
            return *good;
        }
        #[cfg(test)]
        {
            self.verifications += 1;
        }
        let verdict = self
            .access
            .verifier
            .verify(&auth.users, self.peer, self.authorization)
            .await;
        let good = matches!(verdict, Verdict::Good);
        self.verified.insert(auth.users.index, good);
        good
    }
}
