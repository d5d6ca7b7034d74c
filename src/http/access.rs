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

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use ipnet::IpNet;
use rand::RngCore;
use sha2::Sha256;
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
/// Verifications one client address (one /64 for IPv6) may have waiting or running at once;
/// more are answered 503, so one address cannot fill the shared queue.
const PER_ADDRESS_MAX: usize = 4;
/// Longest user name and password verified, in bytes; longer ones are refused (401) without
/// hashing. SHA-crypt's work grows with the square of the password's length, apr1's linearly:
/// without a bound, each wrong guess could cost dozens of ordinary ones.
pub const CREDENTIAL_MAX: usize = 256;

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

    /// Builds the rules of `config` and reads their htpasswd files. Refused htpasswd lines are
    /// logged as warnings (rules that cover no mount are `preflight`'s).
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

/// `::ffff:10.1.2.3` from a dual-stack listener is the IPv4 client 10.1.2.3.
fn unmapped_peer(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(peer),
        v4 => v4,
    }
}

/// One client's view of the rules, for the status page: what it may read. Its credentials
/// are verified at most once per htpasswd file, however many mounts are asked about (a failed
/// verification is not remembered, so without this one status request would cost one
/// verification per protected source).
pub struct Reader<'a> {
    access: &'a Access,
    peer: IpAddr,
    authorization: Option<&'a HeaderValue>,
    /// htpasswd file index → whether the credentials are good there.
    verified: HashMap<u32, bool>,
    #[cfg(test)]
    verifications: usize,
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

/// Whether a rule path names something served: inside a mount, above one, or a status page.
pub fn covers_something(path: &str, config: &Config) -> bool {
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

/// A remembered verification's key: HMAC-SHA256 under a secret made at start-up, so the map
/// (in a memory dump, say) is no cheap oracle for guessing passwords offline.
type Key = [u8; 32];

/// Checks credentials: remembered successes, bounded slow verifications.
struct Verifier {
    /// HMAC(secret; file index, user, `:`, password) → when verified. The password itself is
    /// never kept.
    remembered: Mutex<HashMap<Key, Instant>>,
    /// Random per process, never written anywhere.
    secret: [u8; 32],
    /// Bumped by every reload: a verification that read the users before a reload must not
    /// remember its success after it (a revoked password would keep working for a while).
    generation: AtomicU64,
    slots: Arc<Semaphore>,
    waiting: AtomicUsize,
    /// Verifications waiting or running per client address (IPv6: per /64).
    per_address: Mutex<HashMap<IpAddr, usize>>,
}

/// Counts a request waiting for a verification slot, also when the request is dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a verification of one address until it ends, also when the request is dropped.
struct AddressTicket<'a> {
    map: &'a Mutex<HashMap<IpAddr, usize>>,
    address: IpAddr,
}

impl Drop for AddressTicket<'_> {
    fn drop(&mut self) {
        let mut map = lock(self.map);
        if let Some(count) = map.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                map.remove(&self.address);
            }
        }
    }
}

/// A mutex's contents even after a panic elsewhere: the maps here stay consistent.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The address a client's verifications are counted under: IPv4 as it is, IPv6 by /64 (one
/// host usually has a whole /64 to pick addresses from).
fn address_bucket(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

impl Verifier {
    fn new() -> Verifier {
        // Leave a core for serving files when there are several.
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        Verifier {
            remembered: Mutex::new(HashMap::new()),
            secret,
            generation: AtomicU64::new(0),
            slots: Arc::new(Semaphore::new((cores / 2).max(1))),
            waiting: AtomicUsize::new(0),
            per_address: Mutex::new(HashMap::new()),
        }
    }

    /// Drops every remembered success; successes of verifications still running are not
    /// remembered either (see `generation`).
    fn forget(&self) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        map.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Instant>> {
        lock(&self.remembered)
    }

    fn key(&self, index: u32, user: &str, password: &[u8]) -> Key {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC takes keys of any length")
        };
        mac.update(&index.to_be_bytes());
        mac.update(user.as_bytes());
        mac.update(b":");
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    fn remembered(&self, key: &Key) -> bool {
        self.lock()
            .get(key)
            .is_some_and(|when| when.elapsed() < REMEMBER)
    }

    /// Remembers a success unless a reload happened since the users were read (`generation`
    /// is compared under the lock that `forget` clears the map under).
    fn remember(&self, key: Key, generation: u64) {
        let mut map = self.lock();
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
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

    /// Counts a verification for `peer`, or `None` if it has too many already.
    fn ticket(&self, peer: IpAddr) -> Option<AddressTicket<'_>> {
        let address = address_bucket(peer);
        let mut map = lock(&self.per_address);
        let count = map.entry(address).or_insert(0);
        if *count >= PER_ADDRESS_MAX {
            return None;
        }
        *count += 1;
        Some(AddressTicket {
            map: &self.per_address,
            address,
        })
    }

    async fn verify(
        &self,
        users: &Arc<Users>,
        peer: IpAddr,
        authorization: Option<&HeaderValue>,
    ) -> Verdict {
        let Some((user, password)) = authorization.and_then(basic_credentials) else {
            return Verdict::Bad;
        };
        if user.len() > CREDENTIAL_MAX || password.len() > CREDENTIAL_MAX {
            return Verdict::Bad;
        }
        let key = self.key(users.index, &user, &password);
        if self.remembered(&key) {
            return Verdict::Good;
        }
        let Some(_ticket) = self.ticket(peer) else {
            return Verdict::Busy;
        };
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
        // Read before the users: a reload after this point makes the result unrememberable.
        let generation = self.generation.load(Ordering::SeqCst);
        let htpasswd = users.current.load_full();
        let good = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            htpasswd.verify(&user, &password)
        })
        .await
        .unwrap_or(false);
        if good {
            self.remember(key, generation);
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
        // Each from its own address: the per-address bound is another test's.
        let peers: Vec<IpAddr> = (0..flood)
            .map(|i| IpAddr::V4(std::net::Ipv4Addr::new(10, 0, (i / 256) as u8, i as u8)))
            .collect();
        let answers = futures_util::future::join_all(
            bad.iter()
                .zip(&peers)
                .map(|(h, peer)| access.check("/x", *peer, Some(h))),
        )
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

    #[tokio::test]
    async fn ipv4_mapped_rules_match_ipv4_clients() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/\"\ndeny = [\"::ffff:203.0.113.5\", \"::ffff:198.51.100.0/120\"]\n",
            dir.path(),
        ))
        .unwrap();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for peer in [
            "203.0.113.5",
            "::ffff:203.0.113.5",
            "198.51.100.9",
            "::ffff:198.51.100.9",
        ] {
            assert_eq!(
                access.check("/x", ip(peer), None).await,
                Decision::Forbidden,
                "{peer}"
            );
        }
        assert_eq!(
            access.check("/x", ip("203.0.113.6"), None).await,
            Decision::Allowed { restricted: false }
        );
    }

    #[tokio::test]
    async fn over_long_credentials_are_refused_without_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let long = "x".repeat(CREDENTIAL_MAX + 1);
        let hash = bcrypt::hash(&long[..70], 4).unwrap();
        std::fs::write(
            dir.path().join("htpasswd"),
            format!("alice:{hash}\n{long}:{hash}\n"),
        )
        .unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
            dir.path(),
        ))
        .unwrap();
        // bcrypt only reads the first 72 bytes: without the bound this long password would
        // pass. With it, neither it nor a long user name reaches a hash.
        for header in [basic("alice", &long), basic(&long, &long[..70])] {
            assert!(matches!(
                access.check("/x", LOCAL, Some(&header)).await,
                Decision::Unauthorized(_)
            ));
        }
        assert_eq!(
            access
                .check("/x", LOCAL, Some(&basic("alice", &long[..70])))
                .await,
            Decision::Allowed { restricted: true }
        );
    }

    #[tokio::test]
    async fn one_address_cannot_fill_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
            dir.path(),
        ))
        .unwrap();
        let bad: Vec<HeaderValue> = (0..20)
            .map(|i| basic("alice", &format!("guess{i}")))
            .collect();
        // One IPv4 address, and many addresses of one IPv6 /64.
        let v6 = |i: usize| format!("2001:db8:1:2::{i:x}").parse::<IpAddr>().unwrap();
        for peers in [vec![LOCAL; 20], (1..=20).map(v6).collect::<Vec<_>>()] {
            let answers = futures_util::future::join_all(
                bad.iter()
                    .zip(&peers)
                    .map(|(h, peer)| access.check("/x", *peer, Some(h))),
            )
            .await;
            let busy = answers.iter().filter(|a| **a == Decision::Busy).count();
            assert_eq!(busy, 20 - PER_ADDRESS_MAX);
            assert!(access.verifier.per_address.lock().unwrap().is_empty());
        }
        // Another address is not held up by them.
        let other = "2001:db8:1:3::1".parse::<IpAddr>().unwrap();
        assert_eq!(
            access
                .check("/x", other, Some(&basic("alice", "right")))
                .await,
            Decision::Allowed { restricted: true }
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reload_during_a_verification_is_not_undone() {
        let dir = tempfile::tempdir().unwrap();
        // Slow enough that the reload surely lands while it runs.
        let hash = bcrypt::hash("old", 12).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        let access = Arc::new(
            Access::load(&config(
                "[[access]]\npath = \"/\"\nhtpasswd = \"HTPASSWD\"\n",
                dir.path(),
            ))
            .unwrap(),
        );
        let slots = access.verifier.slots.available_permits();
        let old = basic("alice", "old");
        let running = {
            let access = access.clone();
            let old = old.clone();
            tokio::spawn(async move { access.check("/x", LOCAL, Some(&old)).await })
        };
        while access.verifier.slots.available_permits() == slots {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        // The password is revoked while the verification that read the old file runs.
        let hash = bcrypt::hash("new", 4).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        access.reload();
        assert_eq!(
            running.await.unwrap(),
            Decision::Allowed { restricted: true }
        );
        assert!(matches!(
            access.check("/x", LOCAL, Some(&old)).await,
            Decision::Unauthorized(_)
        ));
    }

    #[test]
    fn remembered_keys_depend_on_a_process_secret() {
        let a = Verifier::new();
        let b = Verifier::new();
        assert_eq!(a.key(0, "alice", b"pw"), a.key(0, "alice", b"pw"));
        assert_ne!(a.key(0, "alice", b"pw"), b.key(0, "alice", b"pw"));
        // Not the plain hash an offline guesser could recompute.
        use sha2::Digest;
        let mut plain = Sha256::new();
        plain.update(0u32.to_be_bytes());
        plain.update(b"alice:pw");
        let plain: [u8; 32] = plain.finalize().into();
        assert_ne!(a.key(0, "alice", b"pw"), plain);
    }

    #[tokio::test]
    async fn may_read_all_of_looks_below_the_mount() {
        let dir = tempfile::tempdir().unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/debian/pve/secret\"\ndeny = [\"127.0.0.0/8\"]\n[[access]]\npath = \"/.metrics\"\ndeny = [\"127.0.0.0/8\"]\n",
            dir.path(),
        ))
        .unwrap();
        let other = "192.0.2.1".parse::<IpAddr>().unwrap();
        let mut local = access.reader(LOCAL, None);
        assert!(!local.may_read_all_of("/debian/pve").await);
        assert!(!local.may_read_all_of("/").await);
        assert!(!local.may_read_all_of("/debian/pve/secret/x").await);
        assert!(local.may_read_all_of("/debian/pve-enterprise").await);
        assert!(
            access
                .reader(other, None)
                .may_read_all_of("/debian/pve")
                .await
        );
        assert!(
            Access::open()
                .reader(LOCAL, None)
                .may_read_all_of("/")
                .await
        );
    }

    #[tokio::test]
    async fn a_status_reader_verifies_once_per_file() {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash("right", 4).unwrap();
        std::fs::write(dir.path().join("htpasswd"), format!("alice:{hash}\n")).unwrap();
        let access = Access::load(&config(
            "[[access]]\npath = \"/debian/pve\"\nhtpasswd = \"HTPASSWD\"\n[[access]]\npath = \"/debian/pve-enterprise\"\nhtpasswd = \"HTPASSWD\"\n",
            dir.path(),
        ))
        .unwrap();
        let wrong = basic("alice", "wrong");
        let mut reader = access.reader(LOCAL, Some(&wrong));
        assert!(!reader.may_read_all_of("/debian/pve").await);
        assert!(!reader.may_read_all_of("/debian/pve-enterprise").await);
        assert_eq!(reader.verified.len(), 1);
        assert_eq!(reader.verifications, 1);
        let right = basic("alice", "right");
        let mut reader = access.reader(LOCAL, Some(&right));
        assert!(reader.may_read_all_of("/debian/pve").await);
        assert!(reader.may_read_all_of("/debian/pve-enterprise").await);
        assert_eq!(reader.verifications, 1);
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
