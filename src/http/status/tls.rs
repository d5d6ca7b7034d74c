//! The TLS part of the status pages: the certificate served now and, with ACME, what the
//! engine last did. JSON key `tls` (absent unless `[server.acme]` is set, or `[server.tls]` with an
//! `https` listener):
//!
//! - `source`: `"files"` (`[server.tls]`) or `"acme"` (`[server.acme]`);
//! - `names`: DNS names of the certificate served now (subjectAltName), `[]` without one;
//! - `not_before`, `not_after`: its validity, Unix seconds (`null` without one);
//! - `expires_in_seconds`: `not_after` minus now (negative once expired);
//! - `waiting`: ACME has no certificate yet, so HTTPS handshakes fail (plain HTTP serves);
//! - `acme` (ACME only): `domains` (as configured), `next_attempt` (Unix seconds of the next
//!   order or retry, `null` if none is planned), `last_error` (`{"at": Unix seconds,
//!   "message": the CA's problem as it gave it}`, `null` after a success), `failures_in_a_row`,
//!   `issued_since_start`, `failed_since_start`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::super::certificates::Certificates;
use super::super::redact;

#[derive(Debug, Serialize)]
pub(super) struct TlsStatus {
    pub source: &'static str,
    pub names: Vec<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub expires_in_seconds: Option<i64>,
    pub waiting: bool,
    pub acme: Option<AcmeStatus>,
}

#[derive(Debug, Serialize)]
pub(super) struct AcmeStatus {
    pub domains: Vec<String>,
    pub next_attempt: Option<i64>,
    pub last_error: Option<AcmeError>,
    pub failures_in_a_row: u32,
    pub issued_since_start: u64,
    pub failed_since_start: u64,
}

#[derive(Debug, Serialize)]
pub(super) struct AcmeError {
    pub at: i64,
    pub message: String,
}

/// Unix seconds (negative before 1970, which no certificate date of use is).
pub(super) fn unix(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// The TLS part at `now`. Credentials in URLs of the error message are hidden for everyone;
/// unless `trusted`, filesystem paths too (`folders`, see `redact`).
pub(super) fn collect(
    certificates: &Certificates,
    now: i64,
    trusted: bool,
    folders: &[String],
) -> TlsStatus {
    let served = certificates.served();
    let not_after = served.as_ref().map(|s| unix(s.not_after));
    let acme = certificates.acme().map(|state| {
        let outcome = state.outcome();
        AcmeStatus {
            domains: state.domains().to_vec(),
            next_attempt: outcome.next_attempt.map(unix),
            last_error: outcome.last_error.as_ref().map(|(at, message)| {
                let clean = redact::credentials(message);
                AcmeError {
                    at: unix(*at),
                    message: if trusted {
                        clean
                    } else {
                        redact::paths(&clean, folders)
                    },
                }
            }),
            failures_in_a_row: outcome.failures_in_a_row,
            issued_since_start: outcome.issued_total,
            failed_since_start: outcome.failed_total,
        }
    });
    TlsStatus {
        source: if acme.is_some() { "acme" } else { "files" },
        waiting: acme.is_some() && certificates.current().is_none(),
        names: served.as_ref().map_or_else(Vec::new, |s| s.names.clone()),
        not_before: served.as_ref().map(|s| unix(s.not_before)),
        not_after,
        expires_in_seconds: not_after.map(|t| t - now),
        acme,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::AcmeState;
    use crate::http::certificates::tests::certified;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn acme_waiting_then_failing_then_served() {
        let state = Arc::new(AcmeState::new(vec!["mirror.example".into()]));
        let certificates = Certificates::Acme(state.clone());
        let now = unix(SystemTime::now());
        let waiting = collect(&certificates, now, true, &[]);
        assert_eq!(waiting.source, "acme");
        assert!(waiting.waiting);
        assert_eq!(waiting.not_after, None);
        let acme = waiting.acme.unwrap();
        assert_eq!(acme.domains, ["mirror.example"]);
        assert!(acme.last_error.is_none());

        let failed_at = UNIX_EPOCH + Duration::from_secs(1_000);
        state.update_outcome(|o| {
            o.last_error = Some((
                failed_at,
                "https://user:pw@ca.example/dir: cannot write /srv/data/acme/x: denied".into(),
            ));
            o.failures_in_a_row = 2;
            o.failed_total = 2;
            o.next_attempt = Some(UNIX_EPOCH + Duration::from_secs(2_000));
        });
        let folders = ["/srv/data".to_string()];
        let public = collect(&certificates, now, false, &folders).acme.unwrap();
        let error = public.last_error.unwrap();
        assert_eq!(error.at, 1_000);
        assert_eq!(
            error.message,
            "https://…@ca.example/dir: cannot write …: denied"
        );
        assert_eq!(public.next_attempt, Some(2_000));
        assert_eq!(
            (public.failures_in_a_row, public.failed_since_start),
            (2, 2)
        );
        let trusted = collect(&certificates, now, true, &folders).acme.unwrap();
        assert!(trusted
            .last_error
            .unwrap()
            .message
            .contains("/srv/data/acme/x"));

        state.install(certified(&["mirror.example"]));
        let served = collect(&certificates, now, true, &[]);
        assert!(!served.waiting);
        assert_eq!(served.names, ["mirror.example"]);
        let left = served.expires_in_seconds.unwrap();
        assert_eq!(left, served.not_after.unwrap() - now);
        assert!(left > 0, "{served:?}");
    }
}
