//! The certificate's part of `/.metrics`: how long the served certificate has left (files and
//! ACME alike) and, with ACME, the engine's orders and its next attempt. Read at each scrape
//! from the certificate source; nothing is counted on the request path.

use std::sync::atomic::AtomicU64;
use std::time::{SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::super::certificates::Certificates;
use super::render::help;
use super::Labels;

/// Seconds since the Unix epoch, with fractions (negative before it).
fn seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Registers the TLS metrics of `certificates` at `now` (Unix seconds).
pub(super) fn register(registry: &mut Registry, certificates: &Certificates, now: f64) {
    if let Some(served) = certificates.served() {
        let expiry = Gauge::<f64, AtomicU64>::default();
        expiry.set(seconds(served.not_after) - now);
        registry.register(
            "mirrorbox_tls_certificate_expiry_seconds",
            help("Seconds until the notAfter time of the HTTPS certificate served now (negative once expired; no sample while ACME has not issued a first certificate)."),
            expiry,
        );
    }
    let Some(state) = certificates.acme() else {
        return;
    };
    let outcome = state.outcome();
    let orders = Family::<Labels, Counter>::default();
    for (result, total) in [
        ("issued", outcome.issued_total),
        ("failed", outcome.failed_total),
    ] {
        orders
            .get_or_create(&vec![("result", result.to_string())])
            .inc_by(total);
    }
    registry.register(
        "mirrorbox_acme_orders",
        help("ACME certificate orders since the process started, by result: \"issued\" (installed and served) or \"failed\" (the old certificate, if any, stays in use; see /.status for the CA's message)."),
        orders,
    );
    if let Some(next) = outcome.next_attempt {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(seconds(next));
        registry.register(
            "mirrorbox_acme_next_attempt_timestamp_seconds",
            help("Unix time of the ACME engine's next order or retry (no sample: none planned)."),
            gauge,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::AcmeState;
    use crate::http::certificates::tests::certified;
    use prometheus_client::encoding::text::encode;
    use std::sync::Arc;
    use std::time::Duration;

    fn text(certificates: &Certificates, now: f64) -> String {
        let mut registry = Registry::default();
        register(&mut registry, certificates, now);
        let mut out = String::new();
        encode(&mut out, &registry).unwrap();
        out
    }

    /// The value of the one sample of `name`.
    fn sample(text: &str, name: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .map(|v| v.parse().unwrap())
    }

    #[test]
    fn expiry_orders_and_next_attempt() {
        let state = Arc::new(AcmeState::new(vec!["mirror.example".into()]));
        let certificates = Certificates::Acme(state.clone());
        let before = text(&certificates, 0.0);
        assert!(
            !before.contains("mirrorbox_tls_certificate_expiry_seconds"),
            "{before}"
        );
        assert!(
            before.contains("mirrorbox_acme_orders_total{result=\"issued\"} 0\n"),
            "{before}"
        );
        assert!(
            before.contains("mirrorbox_acme_orders_total{result=\"failed\"} 0\n"),
            "{before}"
        );
        assert!(!before.contains("next_attempt"), "{before}");

        state.install(certified(&["mirror.example"]));
        state.update_outcome(|o| {
            o.issued_total = 1;
            o.failed_total = 3;
            o.next_attempt = Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        });
        let served = certificates.served().unwrap();
        let now = seconds(served.not_after) - 1234.5;
        let after = text(&certificates, now);
        assert_eq!(
            sample(&after, "mirrorbox_tls_certificate_expiry_seconds"),
            Some(1234.5),
            "{after}"
        );
        assert!(after.contains("# TYPE mirrorbox_tls_certificate_expiry_seconds gauge\n"));
        assert!(
            after.contains("# TYPE mirrorbox_acme_orders counter\n"),
            "{after}"
        );
        assert!(
            after.contains("mirrorbox_acme_orders_total{result=\"issued\"} 1\n"),
            "{after}"
        );
        assert!(
            after.contains("mirrorbox_acme_orders_total{result=\"failed\"} 3\n"),
            "{after}"
        );
        assert_eq!(
            sample(&after, "mirrorbox_acme_next_attempt_timestamp_seconds"),
            Some(1_700_000_000.0)
        );
    }
}
