//! The ACME engine: loads the stored certificate, orders one when there is none or it is due,
//! renews in the background and retries with back-off.
//!
//! The loop is one task: wait until the next attempt (the renewal time, or the back-off after
//! a failure), run one order, record the outcome. The certificate in use is replaced only by
//! a new one that is stored and checked, so a failed renewal leaves the old one served.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use instant_acme::{Account, AccountCredentials, ExternalAccountKey, NewAccount};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::ari::suggested_window;
use super::challenge::certified_key;
use super::client::AcmeHttpClient;
use super::order::{error_chain, order_certificate, Issued, OrderError};
use super::schedule::{after_failure, after_success, renewal_time, Window};
use super::store::AcmeStore;
use super::{certificate_validity, AcmeSettings, AcmeState, Challenge};

const LOG: &str = "mirrorbox::acme";
/// The longest single sleep: the wall clock may jump (suspend, NTP), so the loop looks again.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// How often to ask the CA for renewal information when it gives no Retry-After we accept.
const ARI_DEFAULT_RECHECK: Duration = Duration::from_secs(6 * 3600);
const ARI_MIN_RECHECK: Duration = Duration::from_secs(600);
const ARI_MAX_RECHECK: Duration = Duration::from_secs(24 * 3600);

/// Installs the stored certificate (if it is still good for the configured domains) into
/// `state`, then spawns, on the current tokio runtime, the task that orders and renews.
/// Called by `serve` once the listeners are bound, because challenges are answered by them.
pub fn start(
    settings: &AcmeSettings,
    data_dir: &Path,
    state: Arc<AcmeState>,
) -> anyhow::Result<()> {
    let first = settings
        .domains
        .first()
        .context("[server.acme] key `domains`: no domain")?;
    let store = AcmeStore::open(data_dir, &settings.directory, first)
        .context("cannot create the ACME folder in the data directory")?;
    let account_json = store
        .read_account()
        .context("cannot read the ACME account")?;
    if let Some(json) = &account_json {
        let _: AccountCredentials = serde_json::from_str(json).with_context(|| {
            format!(
                "{}: not ACME account credentials (move it away to create a new account)",
                store.account_file().display()
            )
        })?;
    }
    let http = AcmeHttpClient::new(settings.ca_file.as_deref())?;
    let mut engine = Engine {
        settings: settings.clone(),
        store,
        state,
        http,
        account: None,
        account_json,
        current: None,
        next_attempt: SystemTime::now(),
        failures: 0,
        ari: None,
        ari_next_check: SystemTime::now(),
        last_issued: None,
    };
    engine.install_stored();
    tokio::spawn(engine.run());
    Ok(())
}

/// The certificate in use, as far as scheduling goes.
struct Current {
    not_before: SystemTime,
    not_after: SystemTime,
    leaf: CertificateDer<'static>,
    /// Where in the CA's window to renew, drawn once per certificate (RFC 9773 §4.2).
    random: f64,
}

struct Engine {
    settings: AcmeSettings,
    store: AcmeStore,
    state: Arc<AcmeState>,
    http: AcmeHttpClient,
    account: Option<Account>,
    /// The stored credentials, kept to log in again after a failed attempt.
    account_json: Option<String>,
    current: Option<Current>,
    next_attempt: SystemTime,
    failures: u32,
    ari: Option<Window>,
    ari_next_check: SystemTime,
    /// When this process last got a certificate issued.
    last_issued: Option<SystemTime>,
}

impl Engine {
    /// Serves the stored certificate at once if it fits; otherwise the first attempt is now.
    fn install_stored(&mut self) {
        match self.store.read_certificate(&self.settings.domains) {
            Ok(Some(stored)) => {
                tracing::info!(
                    target: LOG,
                    domains = %self.settings.domains.join(","),
                    dir = %self.store.certificate_dir().display(),
                    "using the stored certificate"
                );
                self.put_in_use(stored.certified, SystemTime::now(), false);
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(
                target: LOG,
                domains = %self.settings.domains.join(","),
                "the stored certificate is not used, ordering a new one: {e}"
            ),
        }
        let next = self.next_attempt;
        self.state
            .update_outcome(|outcome| outcome.next_attempt = Some(next));
    }

    async fn run(mut self) {
        loop {
            self.wait_until_due().await;
            self.attempt().await;
        }
    }

    async fn wait_until_due(&mut self) {
        loop {
            let now = SystemTime::now();
            if self.next_attempt <= now {
                return;
            }
            if self.current.is_some() && self.failures == 0 && self.ari_next_check <= now {
                self.check_renewal_info().await;
                continue;
            }
            let mut wait = self.next_attempt.duration_since(now).unwrap_or_default();
            if self.current.is_some() && self.failures == 0 {
                wait = wait.min(self.ari_next_check.duration_since(now).unwrap_or_default());
            }
            tokio::time::sleep(wait.clamp(Duration::from_millis(50), MAX_SLEEP)).await;
        }
    }

    /// Asks the CA whether it wants the certificate renewed earlier (ARI); a CA without it,
    /// or a failure to ask, leaves the configured renewal time.
    async fn check_renewal_info(&mut self) {
        let now = SystemTime::now();
        self.ari_next_check = now + ARI_DEFAULT_RECHECK;
        let Some(leaf) = self.current.as_ref().map(|c| c.leaf.clone()) else {
            return;
        };
        let account = match self.account().await {
            Ok(account) => account,
            Err(e) => {
                tracing::debug!(target: LOG, "renewal information not asked: {e}");
                return;
            }
        };
        match suggested_window(&account, &leaf).await {
            Ok(Some(suggestion)) => {
                self.ari = Some(suggestion.window);
                self.ari_next_check =
                    now + suggestion.ask_again.clamp(ARI_MIN_RECHECK, ARI_MAX_RECHECK);
                self.schedule_renewal(now, false);
            }
            Ok(None) => self.ari_next_check = now + ARI_MAX_RECHECK,
            Err(e) => tracing::debug!(
                target: LOG,
                "renewal information not available: {}",
                error_chain(&e)
            ),
        }
    }

    async fn attempt(&mut self) {
        let now = SystemTime::now();
        match self.order().await {
            Ok(certified) => {
                self.failures = 0;
                self.ari = None;
                self.ari_next_check = now;
                self.put_in_use(certified, now, true);
                let next = self.next_attempt;
                let (not_before, not_after) = self
                    .current
                    .as_ref()
                    .map(|c| (Some(c.not_before), Some(c.not_after)))
                    .unwrap_or((None, None));
                self.state.update_outcome(|outcome| {
                    outcome.not_before = not_before;
                    outcome.not_after = not_after;
                    outcome.next_attempt = Some(next);
                    outcome.last_error = None;
                    outcome.failures_in_a_row = 0;
                    outcome.issued_total += 1;
                });
                tracing::info!(
                    target: LOG,
                    domains = %self.settings.domains.join(","),
                    not_after = %not_after.map(httpdate::fmt_http_date).unwrap_or_default(),
                    next_renewal = %httpdate::fmt_http_date(next),
                    "certificate issued"
                );
            }
            Err(message) => {
                self.failures = self.failures.saturating_add(1);
                let not_after = self.current.as_ref().map(|c| c.not_after);
                self.next_attempt = after_failure(now, self.failures, not_after, rand::random());
                let next = self.next_attempt;
                let failures = self.failures;
                let shown = message.clone();
                self.state.update_outcome(|outcome| {
                    outcome.last_error = Some((now, shown.clone()));
                    outcome.failures_in_a_row = failures;
                    outcome.failed_total += 1;
                    outcome.next_attempt = Some(next);
                });
                let level_error = failures >= 3 || self.current.is_none();
                let retry = httpdate::fmt_http_date(next);
                let domains = self.settings.domains.join(",");
                if level_error {
                    tracing::error!(target: LOG, domains = %domains, failures, retry = %retry, "certificate order failed: {message}");
                } else {
                    tracing::warn!(target: LOG, domains = %domains, failures, retry = %retry, "certificate order failed: {message}");
                }
            }
        }
    }

    /// One order: the account, the order itself, then the files, then the swap.
    async fn order(&mut self) -> Result<CertifiedKey, String> {
        let account = self.account().await?;
        let issued = self.order_with_fallback(&account).await?;
        let chain = CertificateDer::pem_slice_iter(issued.chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("the CA sent a chain that is not PEM: {e}"))?;
        if chain.is_empty() {
            return Err("the CA sent an empty certificate chain".into());
        }
        let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes())
            .map_err(|e| format!("the new key: {e}"))?;
        let certified =
            certified_key(chain, &key).map_err(|e| format!("the issued certificate: {e}"))?;
        if let Err(e) = self
            .store
            .write_certificate(&issued.chain_pem, &issued.key_pem)
        {
            // Served anyway: it is valid; only a restart would have to order again.
            tracing::error!(target: LOG, "cannot store the new certificate: {e}");
        }
        Ok(certified)
    }

    /// Orders with the configured challenge preference; when the CA refuses a challenge and
    /// another type is configured, orders again at once preferring the next one (port 443
    /// blocked but 80 open is common, and the other way round), so one attempt tries every
    /// way in. A rejected nonce is retried as it is. The message keeps each refusal.
    async fn order_with_fallback(&self, account: &Account) -> Result<Issued, String> {
        let configured = &self.settings.challenges;
        let mut refusals: Vec<String> = Vec::new();
        let mut first = 0;
        let mut nonce_retries = 2;
        loop {
            let preference: Vec<Challenge> = configured[first..]
                .iter()
                .chain(&configured[..first])
                .copied()
                .collect();
            match order_certificate(account, &self.settings, &preference, &self.state).await {
                Ok(issued) => return Ok(issued),
                Err(e) if e.is_bad_nonce() && nonce_retries > 0 => nonce_retries -= 1,
                Err(e @ OrderError::Refused { .. }) if first + 1 < configured.len() => {
                    tracing::warn!(
                        target: LOG,
                        domains = %self.settings.domains.join(","),
                        "{e}; trying the {} challenge",
                        preference[1].name()
                    );
                    refusals.push(e.to_string());
                    first += 1;
                }
                Err(e) => {
                    refusals.push(e.to_string());
                    return Err(refusals.join("; then "));
                }
            }
        }
    }

    /// The account, logged in (stored credentials) or created (and stored) on first use.
    async fn account(&mut self) -> Result<Account, String> {
        if let Some(account) = &self.account {
            return Ok(account.clone());
        }
        let directory = self.settings.directory.clone();
        let failed =
            |e: instant_acme::Error| format!("ACME account at {directory}: {}", error_chain(&e));
        let builder = Account::builder_with_http(Box::new(self.http.clone()));
        let account = match &self.account_json {
            Some(json) => {
                let credentials: AccountCredentials = serde_json::from_str(json)
                    .map_err(|e| format!("{}: {e}", self.store.account_file().display()))?;
                builder
                    .from_credentials(credentials)
                    .await
                    .map_err(failed)?
            }
            None => {
                let contact: Vec<&str> = self.settings.contact.iter().map(String::as_str).collect();
                let binding = match &self.settings.external_account {
                    None => None,
                    Some(eab) => Some(ExternalAccountKey::new(
                        eab.kid.clone(),
                        &decode_hmac_key(&eab.hmac_key)?,
                    )),
                };
                let new_account = NewAccount {
                    contact: &contact,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                };
                let (account, credentials) = builder
                    .create(&new_account, directory.clone(), binding.as_ref())
                    .await
                    .map_err(failed)?;
                let json = serde_json::to_string(&credentials)
                    .map_err(|e| format!("ACME account credentials: {e}"))?;
                if let Err(e) = self.store.write_account(&json) {
                    tracing::error!(target: LOG, "cannot store the new ACME account: {e}");
                }
                tracing::info!(target: LOG, directory = %directory, "ACME account created");
                self.account_json = Some(json);
                account
            }
        };
        self.account = Some(account.clone());
        Ok(account)
    }

    /// Makes `certified` the certificate handshakes get and schedules its renewal.
    fn put_in_use(&mut self, certified: CertifiedKey, now: SystemTime, just_issued: bool) {
        let leaf = certified.cert[0].clone();
        let validity = certificate_validity(&leaf);
        self.state.install(Arc::new(certified));
        let Some((not_before, not_after)) = validity else {
            tracing::warn!(target: LOG, "cannot read the certificate's validity; renewing now");
            self.current = None;
            self.next_attempt = now;
            return;
        };
        self.current = Some(Current {
            not_before,
            not_after,
            leaf,
            random: rand::random(),
        });
        self.state.update_outcome(|outcome| {
            outcome.not_before = Some(not_before);
            outcome.not_after = Some(not_after);
        });
        self.schedule_renewal(now, just_issued);
    }

    /// The next attempt for the certificate in use (after a success: not before the least
    /// gap between orders).
    fn schedule_renewal(&mut self, now: SystemTime, just_issued: bool) {
        let Some(current) = &self.current else {
            return;
        };
        let due = renewal_time(
            current.not_before,
            current.not_after,
            self.settings.renewal_window_ratio,
            self.ari,
            current.random,
        );
        if just_issued {
            self.last_issued = Some(now);
        }
        // Whatever the certificate or the CA says, orders keep their least distance.
        self.next_attempt = match self.last_issued {
            Some(issued) => after_success(issued, due),
            None => due,
        };
        let next = self.next_attempt;
        self.state
            .update_outcome(|outcome| outcome.next_attempt = Some(next));
    }
}

fn decode_hmac_key(key: &str) -> Result<Vec<u8>, String> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key.trim_end_matches('='))
        .map_err(|e| format!("[server.acme.external_account] key `hmac_key`: {e}"))
}
