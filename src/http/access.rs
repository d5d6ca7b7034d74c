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
//! flood beyond a bounded queue is answered 503 instead of pinning the CPU.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use http::HeaderValue;
use ipnet::IpNet;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::htpasswd::{Htpasswd, HtpasswdError, Refused};
use crate::config::Config;
use crate::view::SNAPSHOTS_PREFIX;

/// How long a verified user:password pair is trusted without hashing it again.
const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered pairs at most (each is 32 bytes and an instant).
const REMEMBER_MAX: usize = 1024;
/// Verifications waiting for a slot at most; more are answered 503.
const WAITING_MAX: usize = 64;

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

/// One htpasswd file, shared by the rules that name it, reloaded on SIGHUP.
struct Users {
    /// Tells this file's remembered verifications from another's.
    index: u32,
    file: PathBuf,
    current: ArcSwap<Htpasswd>,
}

struct Auth {
    users: Arc<Users>,
    challenge: HeaderValue,
}

struct Rule {
    /// Mount form: `""` (everything) or `/a/b`.
    path: String,
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
    auth: Option<Auth>,
}

impl Rule {
    fn covers(&self, key: &str) -> bool {
        self.path.is_empty()
            || key
                .strip_prefix(self.path.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    fn address_refused(&self, peer: IpAddr) -> bool {
        self.deny.iter().any(|net| net.contains(&peer))
            || (!self.allow.is_empty() && !self.allow.iter().any(|net| net.contains(&peer)))
    }
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

    /// Builds the rules of `config` and reads their htpasswd files. Refused htpasswd lines and
    /// rules that cover no mount are logged as warnings.
    pub fn load(config: &Config) -> Result<Access, AccessError> {
        let mut files: Vec<Arc<Users>> = Vec::new();
        let mut rules = Vec::new();
        for rule in &config.access {
            let auth = match &rule.htpasswd {
                None => None,
                Some(file) => {
                    let users = match files.iter().find(|u| &u.file == file) {
                        Some(users) => users.clone(),
                        None => {
                            let htpasswd = read(file).map_err(|error| AccessError::Htpasswd {
                                config: config.file.clone(),
                                rule: rule.label.clone(),
                                error,
                            })?;
                            let users = Arc::new(Users {
                                index: files.len() as u32,
                                file: file.clone(),
                                current: ArcSwap::from_pointee(htpasswd),
                            });
                            files.push(users.clone());
                            users
                        }
                    };
                    let challenge = format!("Basic realm=\"{}\", charset=\"UTF-8\"", rule.realm);
                    let challenge = HeaderValue::from_str(&challenge)
                        .unwrap_or_else(|_| HeaderValue::from_static("Basic realm=\"mirrorbox\""));
                    Some(Auth { users, challenge })
                }
            };
            if !covers_something(&rule.path, config) {
                tracing::warn!(
                    config = %config.file.display(),
                    "{}: key `path`: matches no mount, /.status or /.metrics; the rule has no effect",
                    rule.label
                );
            }
            rules.push(Rule {
                path: rule.path.clone(),
                allow: rule.allow.clone(),
                deny: rule.deny.clone(),
                auth,
            });
        }
        rules.sort_by_key(|r| std::cmp::Reverse(r.path.len()));
        let mounts = config
            .sources
            .iter()
            .map(|s| (s.id.clone(), s.mount.clone()))
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
            match read(&users.file) {
                Ok(htpasswd) => {
                    tracing::info!(file = %users.file.display(), users = htpasswd.len(), "htpasswd reloaded");
                    users.current.store(Arc::new(htpasswd));
                }
                Err(e) => {
                    tracing::error!(error = %e, "htpasswd reload failed; the old users stay in use")
                }
            }
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
        // `::ffff:10.1.2.3` from a dual-stack listener is the IPv4 client 10.1.2.3.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
            v4 => v4,
        };
        if rule.address_refused(peer) {
            return Decision::Forbidden;
        }
        let Some(auth) = &rule.auth else {
            return Decision::Allowed {
                restricted: !rule.allow.is_empty(),
            };
        };
        match self.verifier.verify(&auth.users, authorization).await {
            Verdict::Good => Decision::Allowed { restricted: true },
            Verdict::Bad => Decision::Unauthorized(auth.challenge.clone()),
            Verdict::Busy => Decision::Busy,
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
fn covers_something(path: &str, config: &Config) -> bool {
    if path.is_empty() || path == "/.status" || path == "/.metrics" {
        return true;
    }
    let within = |outer: &str, inner: &str| {
        outer.is_empty()
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    config
        .sources
        .iter()
        .any(|s| within(&s.mount, path) || within(path, &s.mount))
}

/// Loads one htpasswd file, logging the lines it refused.
fn read(file: &std::path::Path) -> Result<Htpasswd, HtpasswdError> {
    let (htpasswd, refused) = Htpasswd::load(file)?;
    for Refused { line, reason } in refused {
        tracing::warn!("{}:{line}: {reason}; entry ignored", file.display());
    }
    if htpasswd.is_empty() {
        tracing::warn!(file = %file.display(), "htpasswd file has no usable entries: nobody can log in");
    }
    Ok(htpasswd)
}

enum Verdict {
    Good,
    Bad,
    Busy,
}

/// Checks credentials: remembered successes, bounded slow verifications.
struct Verifier {
    /// sha256(file index, user, `:`, password) → when verified. The password itself is never
    /// kept.
    remembered: Mutex<HashMap<[u8; 32], Instant>>,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
}

/// Counts a request waiting for a verification slot, also when the request is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Verifier {
    fn new() -> Verifier {
        // Leave a core for serving files when there are several.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Verifier {
            remembered: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new((cores / 2).max(1))),
            waiting: AtomicUsize::new(0),
        }
    }

    fn forget(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Instant>> {
        // A panic while holding the lock cannot leave the map inconsistent.
        self.remembered
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|when| when.elapsed() < REMEMBER)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut map = self.lock();
        if map.len() >= REMEMBER_MAX {
            map.retain(|_, when| when.elapsed() < REMEMBER);
        }
        if map.len() >= REMEMBER_MAX {
            if let Some(oldest) = map.iter().min_by_key(|(_, when)| **when).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(key, Instant::now());
    }

    async fn verify(&self, users: &Arc<Users>, authorization: Option<&HeaderValue>) -> Verdict {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Verdict::Bad;
        };
        let mut hasher = Sha256::new();
        hasher.update(users.index.to_be_bytes());
        hasher.update(user.as_bytes());
        hasher.update(b":");
        hasher.update(&password);
        let key: [u8; 32] = hasher.finalize().into();
        if self.remembered(&key) {
            return Verdict::Good;
        }
        let permit = {
            if self.waiting.fetch_add(1, Ordering::Relaxed) >= WAITING_MAX {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                return Verdict::Busy;
            }
            let _waiting = Waiting(&self.waiting);
            match self.slots.clone().acquire_owned().await {
                Ok(permit) => permit,
                Err(_) => return Verdict::Busy,
            }
        };
        // apt asks for many files at once with the same credentials: one of them may have
        // verified them while this one waited.
        if self.remembered(&key) {
            return Verdict::Good;
        }
        let htpasswd = users.current.load_full();
        let good = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            htpasswd.verify(&user, &password)
        })
        .await
        .unwrap_or(false);
        if good {
            self.remember(key);
            Verdict::Good
        } else {
            Verdict::Bad
        }
    }
}

/// `Basic base64(user:password)` → (user, password). The user must be UTF-8 (htpasswd names
/// are text); the password is compared as bytes.
fn basic_credentials(value: &HeaderValue) -> Option<(String, Vec<u8>)> {
    let value = value.as_bytes();
    if value.len() > 4096 || value.len() < 6 || !value[..6].eq_ignore_ascii_case(b"basic ") {
        return None;
    }
    let encoded = value[6..].trim_ascii();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(access: &str, dir: &Path) -> Config {
        let text = format!(
            "data_dir = \"d\"\n[[source]]\nid = \"ent\"\nkind = \"dir\"\nmount = \"/debian/pve-enterprise\"\npath = \"/srv\"\n[[source]]\nid = \"ent2\"\nkind = \"dir\"\nmount = \"/debian/pve-enterprise\"\npath = \"/srv\"\n[[source]]\nid = \"free\"\nkind = \"dir\"\nmount = \"/debian/pve\"\npath = \"/srv\"\n[[source]]\nid = \"root\"\nkind = \"dir\"\nmount = \"/\"\npath = \"/srv\"\n{access}"
        );
        let text = text.replace("HTPASSWD", &dir.join("htpasswd").display().to_string());
        Config::parse(&text, Path::new("test.toml")).unwrap()
    }

    fn basic(user: &str, password: &str) -> HeaderValue {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        HeaderValue::from_str(&format!("Basic {encoded}")).unwrap()
    }

    const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    #[tokio::test]
    async fn longest_prefix_on_segment_boundaries_and_snapshots() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/debian/pve-enterprise\"\ndeny = [\"127.0.0.0/8\"]\n[[access]]\npath = \"/debian/pve-enterprise/open\"\n",
            dir.path(),
        ))
        .unwrap();
        let open = Decision::Allowed { restricted: false };
        for key in [
            "/debian/pve-enterprise",
            "/debian/pve-enterprise/dists/bookworm/InRelease",
            "/debian/pve-enterprise/dists/bookworm/main/binary-amd64/by-hash/SHA256/ab",
            "/.snapshots/ent/0123456789abcdef/dists/bookworm/InRelease",
            "/.snapshots/ent2/0123456789abcdef/pool/x.deb",
            "/.snapshots/ent/0123456789abcdef",
            "/.snapshots/ent",
        ] {
            assert_eq!(
                access.check(key, LOCAL, None).await,
                Decision::Forbidden,
                "{key}"
            );
        }
        for key in [
            "/debian/pve",
            "/debian/pve-enterprise-x",
            "/debian/pve-enterprise/open/x",
            "/.snapshots/ent/0123456789abcdef/open/x",
            "/.snapshots/free/0123456789abcdef/dists/x",
            "/.snapshots",
            "/.snapshots/unknown/x",
            "/",
            "/.status",
        ] {
            assert_eq!(access.check(key, LOCAL, None).await, open, "{key}");
        }
    }

    #[tokio::test]
    async fn addresses_then_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/\"\nallow = [\"10.0.0.0/8\", \"2001:db8::/32\"]\ndeny = [\"10.9.0.0/16\"]\n[[access]]\npath = \"/.status\"\nhtpasswd = \"HTPASSWD\"\nrealm = \"Status\"\n",
            dir.path(),
        ))
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let restricted = Decision::Allowed { restricted: true };
        assert_eq!(access.check("/x", ip("10.1.2.3"), None).await, restricted);
        assert_eq!(
            access.check("/x", ip("::ffff:10.1.2.3"), None).await,
            restricted
        );
        assert_eq!(
            access.check("/x", ip("2001:db8::1"), None).await,
            restricted
        );
        assert_eq!(
            access.check("/x", ip("10.9.2.3"), None).await,
            Decision::Forbidden
        );
        assert_eq!(
            access.check("/x", ip("::ffff:10.9.2.3"), None).await,
            Decision::Forbidden
        );
        assert_eq!(access.check("/x", LOCAL, None).await, Decision::Forbidden);
        assert_eq!(
            access.check("/x", ip("::1"), None).await,
            Decision::Forbidden
        );

        let Decision::Unauthorized(challenge) = access.check("/.status.json", LOCAL, None).await
        else {
            panic!("no challenge");
        };
        assert_eq!(challenge, "Basic realm=\"Status\", charset=\"UTF-8\"");
        for header in [
            basic("alice", "wrong"),
            basic("bob", "right"),
            HeaderValue::from_static("Bearer abc"),
            HeaderValue::from_static("Basic !!!"),
        ] {
            assert!(matches!(
                access.check("/.status", LOCAL, Some(&header)).await,
                Decision::Unauthorized(_)
            ));
        }
        let good = basic("alice", "right");
        assert_eq!(
            access.check("/.status.html", LOCAL, Some(&good)).await,
            restricted
        );
        // Remembered: the same answer without another bcrypt run.
        assert_eq!(
            access.check("/.status", LOCAL, Some(&good)).await,
            restricted
        );
        assert_eq!(access.verifier.lock().len(), 1);
        let lower =
            HeaderValue::from_str(&good.to_str().unwrap().replacen("Basic", "basic", 1)).unwrap();
        assert_eq!(
            access.check("/.status", LOCAL, Some(&lower)).await,
            restricted
        );

        // A reload that fails keeps the users; one that works replaces them.
        std::fs::remove_file(dir.path().join("htpasswd")).unwrap();
        access.reload();
        assert_eq!(
            access.check("/.status", LOCAL, Some(&good)).await,
            restricted
        );
        let hash = bcrypt::hash("new", 4).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("carol:{hash}\n")).unwrap();
        access.reload();
        assert!(matches!(
            access.check("/.status", LOCAL, Some(&good)).await,
            Decision::Unauthorized(_)
        ));
        assert_eq!(
            access
                .check("/.status", LOCAL, Some(&basic("carol", "new")))
                .await,
            restricted
        );
    }

    #[tokio::test]
    async fn a_flood_of_bad_passwords_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
            dir.path(),
        ))
        .unwrap();
        let slots = access.verifier.slots.available_permits();
        let flood = 200;
        let bad: Vec<HeaderValue> = (0..flood)
            .map(|i| basic("alice", &format!("guess{i}")))
            .collect();
        let answers =
            futures_util::future::join_all(bad.iter().map(|h| access.check("/x", LOCAL, Some(h))))
                .await;
        let busy = answers.iter().filter(|a| **a == Decision::Busy).count();
        let refused = answers
            .iter()
            .filter(|a| matches!(a, Decision::Unauthorized(_)))
            .count();
        assert_eq!(busy + refused, flood);
        assert_eq!(
            busy,
            flood.saturating_sub(slots + WAITING_MAX),
            "{slots} slots"
        );
        // Nothing is left waiting, and a good password gets through afterwards.
        assert_eq!(access.verifier.waiting.load(Ordering::Relaxed), 0);
        assert_eq!(
            access
                .check("/x", LOCAL, Some(&basic("alice", "right")))
                .await,
            Decision::Allowed { restricted: true }
        );
    }

    #[test]
    fn a_missing_htpasswd_file_names_config_rule_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let Err(e) = Access::load(&config(
            "[[access]]\npath = \"/debian\"\nhtpasswd = \"HTPASSWD\"\n",
            dir.path(),
        )) else {
            panic!("loaded without its file");
        };
        let message = e.to_string();
        for part in [
            "test.toml",
            "[[access]] #1 (path \"/debian\")",
            "`htpasswd`",
            "htpasswd",
        ] {
            assert!(message.contains(part), "{message}");
        }
    }

    #[tokio::test]
    async fn no_rules_allow_everything() {
        let access = Access::open();
        assert!(!access.has_rules());
        assert_eq!(
            access.check("/anything", LOCAL, None).await,
            Decision::Allowed { restricted: false }
        );
    }
}
