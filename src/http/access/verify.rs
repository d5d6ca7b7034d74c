//! Checking basic-auth credentials against an htpasswd file without letting a flood of
//! guesses pin the CPU: successes are remembered briefly under a keyed hash, verifications run
//! on the blocking pool a few at a time behind a bounded queue, and one address (one /64 for
//! IPv6) may only have a few of them waiting or running.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use http::HeaderValue;
use rand::RngCore;
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::users::Users;

/// How long a verified user:password pair is trusted without hashing it again.
const REMEMBER: Duration = Duration::from_secs(60);
/// Remembered pairs at most (each is 32 bytes and an instant).
const REMEMBER_MAX: usize = 1024;
/// Verifications waiting for a slot at most; more are answered 503.
pub(super) const WAITING_MAX: usize = 64;
/// Verifications one client address (one /64 for IPv6) may have waiting or running at once;
/// more are answered 503, so one address cannot fill the shared queue.
pub(super) const PER_ADDRESS_MAX: usize = 4;
/// Longest user name and password verified, in bytes; longer ones are refused (401) without
/// hashing. SHA-crypt's work grows with the square of the password's length, apr1's linearly:
/// without a bound, each wrong guess could cost dozens of ordinary ones.
pub const CREDENTIAL_MAX: usize = 256;

pub(super) enum Verdict {
    Good,
    Bad,
    Busy,
}

/// A remembered verification's key: HMAC-SHA256 under a secret made at start-up, so the map
/// (in a memory dump, say) is no cheap oracle for guessing passwords offline.
pub(super) type Key = [u8; 32];

/// Checks credentials: remembered successes, bounded slow verifications.
pub(super) struct Verifier {
    /// HMAC(secret; file index, user, `:`, password) → when verified. The password itself is
    /// never kept.
    remembered: Mutex<HashMap<Key, Instant>>,
    /// Random per process, never written anywhere.
    secret: [u8; 32],
    /// Bumped by every reload: a verification that read the users before a reload must not
    /// remember its success after it (a revoked password would keep working for a while).
    pub(super) generation: AtomicU64,
    pub(super) slots: Arc<Semaphore>,
    pub(super) waiting: AtomicUsize,
    /// Verifications waiting or running per client address (IPv6: per /64).
    pub(super) per_address: Mutex<HashMap<IpAddr, usize>>,
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
    pub(super) fn new() -> Verifier {
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
    pub(super) fn forget(&self) {
        let mut map = self.lock();
        self.generation.fetch_add(1, Ordering::SeqCst);
        map.clear();
    }

    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Instant>> {
        lock(&self.remembered)
    }

    pub(super) fn key(&self, index: u32, user: &str, password: &[u8]) -> Key {
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

    pub(super) async fn verify(
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
