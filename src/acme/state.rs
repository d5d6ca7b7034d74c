//! What the ACME engine and the listeners share. The engine writes, requests read: the
//! certificate in use is swapped atomically (a handshake sees the old or the new one, never
//! none), and challenge answers are held only while an order waits for validation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use arc_swap::{ArcSwap, ArcSwapOption};
use rustls::sign::CertifiedKey;

/// What the engine last did, for `/.status`, `/.metrics` and the log.
#[derive(Debug, Clone, Default)]
pub struct AcmeOutcome {
    /// Validity of the certificate in use (`None` until one is installed).
    pub not_before: Option<SystemTime>,
    pub not_after: Option<SystemTime>,
    /// When the engine will next try to renew (or retry after a failure).
    pub next_attempt: Option<SystemTime>,
    /// The last failed attempt's time and message; cleared by a success.
    pub last_error: Option<(SystemTime, String)>,
    /// Failed attempts since the last success (drives the back-off).
    pub failures_in_a_row: u32,
    /// Totals since start, for counters.
    pub issued_total: u64,
    pub failed_total: u64,
}

/// The shared state of one `[server.acme]` section.
pub struct AcmeState {
    domains: Vec<String>,
    certificate: ArcSwapOption<CertifiedKey>,
    /// HTTP-01: token → key authorization.
    http_answers: Mutex<HashMap<String, String>>,
    /// TLS-ALPN-01: domain (lower case) → the challenge certificate for it.
    alpn_answers: Mutex<HashMap<String, Arc<CertifiedKey>>>,
    outcome: ArcSwap<AcmeOutcome>,
}

impl std::fmt::Debug for AcmeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeState")
            .field("domains", &self.domains)
            .field("has_certificate", &self.certificate.load().is_some())
            .finish()
    }
}

impl AcmeState {
    pub fn new(domains: Vec<String>) -> AcmeState {
        AcmeState {
            domains,
            certificate: ArcSwapOption::empty(),
            http_answers: Mutex::default(),
            alpn_answers: Mutex::default(),
            outcome: ArcSwap::from_pointee(AcmeOutcome::default()),
        }
    }

    pub fn domains(&self) -> &[String] {
        &self.domains
    }

    /// The certificate handshakes get; `None` before the first issuance.
    pub fn certificate(&self) -> Option<Arc<CertifiedKey>> {
        self.certificate.load_full()
    }

    /// Puts a new certificate in use; handshakes already under way keep the old one.
    pub fn install(&self, certificate: Arc<CertifiedKey>) {
        self.certificate.store(Some(certificate));
    }

    /// The key authorization for an HTTP-01 token, while its order waits.
    pub fn http_answer(&self, token: &str) -> Option<String> {
        let answers = self
            .http_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers.get(token).cloned()
    }

    pub fn set_http_answer(&self, token: &str, key_authorization: &str) {
        let mut answers = self
            .http_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers.insert(token.to_string(), key_authorization.to_string());
    }

    pub fn remove_http_answer(&self, token: &str) {
        let mut answers = self
            .http_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers.remove(token);
    }

    /// The TLS-ALPN-01 certificate for a server name (SNI), while its order waits.
    pub fn alpn_answer(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let answers = self
            .alpn_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers.get(&server_name.to_ascii_lowercase()).cloned()
    }

    pub fn set_alpn_answer(&self, domain: &str, certificate: Arc<CertifiedKey>) {
        let mut answers = self
            .alpn_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers.insert(domain.to_ascii_lowercase(), certificate);
    }

    pub fn remove_alpn_answer(&self, domain: &str) {
        let mut answers = self
            .alpn_answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        answers.remove(&domain.to_ascii_lowercase());
    }

    pub fn outcome(&self) -> Arc<AcmeOutcome> {
        self.outcome.load_full()
    }

    /// Replaces the outcome with `change` applied to a copy of it.
    pub fn update_outcome(&self, change: impl Fn(&mut AcmeOutcome)) {
        self.outcome.rcu(|old| {
            let mut new = AcmeOutcome::clone(old);
            change(&mut new);
            new
        });
    }
}

/// `notBefore` and `notAfter` of a DER certificate, or `None` if it cannot be parsed.
pub fn certificate_validity(der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let at = |t: x509_parser::time::ASN1Time| -> Option<SystemTime> {
        let seconds = t.timestamp();
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds as u64))
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(Duration::from_secs(seconds.unsigned_abs()))
        }
    };
    let validity = cert.validity();
    Some((at(validity.not_before)?, at(validity.not_after)?))
}
