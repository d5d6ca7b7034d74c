//! Where the HTTPS listeners take their certificate from: PEM files (`[server.tls]`, reloaded
//! on SIGHUP) or the ACME engine's shared state (`[server.acme]`, swapped by the engine when it
//! renews). Either way the listeners hold one rustls resolver that reads the current
//! certificate at each handshake, so a swap needs no new listener and drops no connection: a
//! connection keeps the certificate its handshake got.
//!
//! With ACME the resolver also answers TLS-ALPN-01 (RFC 8737): a ClientHello whose only ALPN
//! protocol is `acme-tls/1` gets the challenge certificate for its server name, or none (the
//! handshake fails) when no order waits for that name.

use std::sync::Arc;
use std::time::SystemTime;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::tls::ReloadableCert;
use crate::acme::AcmeState;

/// The ALPN protocol of TLS-ALPN-01 (RFC 8737 §6.2).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The certificate source of the HTTPS listeners, shared with `/.status` and `/.metrics`.
#[derive(Debug, Clone)]
pub enum Certificates {
    /// `[server.tls]`: PEM files, read again on SIGHUP.
    Files(Arc<ReloadableCert>),
    /// `[server.acme]`: whatever the engine installed (nothing before the first issuance).
    Acme(Arc<AcmeState>),
}

/// What the certificate served now says about itself, for the status page and the metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedCertificate {
    /// DNS names of the subjectAltName extension (the subject's CN when there is none).
    pub names: Vec<String>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
}

impl Certificates {
    /// The resolver the rustls server configuration asks at each handshake.
    pub fn resolver(&self) -> Arc<dyn ResolvesServerCert> {
        match self {
            Certificates::Files(files) => files.clone(),
            Certificates::Acme(state) => Arc::new(AcmeResolver(state.clone())),
        }
    }

    /// The ACME state, when the certificate comes from ACME.
    pub fn acme(&self) -> Option<&Arc<AcmeState>> {
        match self {
            Certificates::Acme(state) => Some(state),
            Certificates::Files(_) => None,
        }
    }

    /// The certificate a normal handshake gets now (`None`: ACME has none yet).
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        match self {
            Certificates::Files(files) => Some(files.current()),
            Certificates::Acme(state) => state.certificate(),
        }
    }

    /// Names and validity of [`Self::current`]'s leaf (`None`: no certificate, or one that
    /// does not parse).
    pub fn served(&self) -> Option<ServedCertificate> {
        let key = self.current()?;
        describe(key.end_entity_cert().ok()?.as_ref())
    }
}

/// Names and validity of a DER certificate, or `None` if it cannot be parsed.
pub fn describe(der: &[u8]) -> Option<ServedCertificate> {
    let (not_before, not_after) = crate::acme::certificate_validity(der)?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        names.extend(
            cert.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok())
                .map(str::to_string),
        );
    }
    Some(ServedCertificate {
        names,
        not_before,
        not_after,
    })
}

/// The rustls resolver of an ACME-managed listener.
#[derive(Debug)]
struct AcmeResolver(Arc<AcmeState>);

impl ResolvesServerCert for AcmeResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let alpn: Option<Vec<&[u8]>> = hello.alpn().map(Iterator::collect);
        let chosen = choose(&self.0, hello.server_name(), alpn.as_deref());
        if chosen.is_none() {
            // rustls answers with an alert; the listener logs the failed handshake.
            tracing::debug!(
                server_name = hello.server_name().unwrap_or("-"),
                challenge = is_challenge(alpn.as_deref()),
                "no certificate for this TLS handshake"
            );
        }
        chosen
    }
}

/// Whether a ClientHello's ALPN list is a TLS-ALPN-01 validation: exactly `acme-tls/1`
/// (RFC 8737 §3: the CA offers no other protocol).
pub fn is_challenge(alpn: Option<&[&[u8]]>) -> bool {
    matches!(alpn, Some([only]) if *only == ACME_TLS_ALPN)
}

/// The certificate for a handshake: the challenge certificate for a TLS-ALPN-01 validation
/// (none when no order waits for that name, or without a server name), else the certificate
/// in use (none before the first issuance).
fn choose(
    state: &AcmeState,
    server_name: Option<&str>,
    alpn: Option<&[&[u8]]>,
) -> Option<Arc<CertifiedKey>> {
    if is_challenge(alpn) {
        state.alpn_answer(server_name?)
    } else {
        state.certificate()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A self-signed certificate and key for `names`, as rustls serves them.
    pub(crate) fn certified(names: &[&str]) -> Arc<CertifiedKey> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let der = rustls::pki_types::PrivateKeyDer::Pkcs8(made.key_pair.serialize_der().into());
        let signing = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
        Arc::new(CertifiedKey::new(vec![made.cert.der().clone()], signing))
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().unwrap().to_vec()
    }

    #[test]
    fn a_challenge_hello_gets_the_challenge_certificate_for_its_name() {
        let state = AcmeState::new(vec!["mirror.example".into()]);
        let challenge = certified(&["mirror.example"]);
        state.set_alpn_answer("Mirror.Example", challenge.clone());
        let acme: &[&[u8]] = &[b"acme-tls/1"];
        let got = choose(&state, Some("mirror.example"), Some(acme)).unwrap();
        assert_eq!(leaf(&got), leaf(&challenge));
        // Another name, or no name at all: no order waits for it.
        assert!(choose(&state, Some("other.example"), Some(acme)).is_none());
        assert!(choose(&state, None, Some(acme)).is_none());
        state.remove_alpn_answer("mirror.example");
        assert!(choose(&state, Some("mirror.example"), Some(acme)).is_none());
    }

    #[test]
    fn a_normal_hello_gets_the_certificate_in_use_or_none_before_the_first() {
        let state = AcmeState::new(vec!["mirror.example".into()]);
        state.set_alpn_answer("mirror.example", certified(&["mirror.example"]));
        let normal: &[&[u8]] = &[b"h2", b"http/1.1"];
        // acme-tls/1 among others is not a validation (RFC 8737 §3).
        let mixed: &[&[u8]] = &[b"h2", b"acme-tls/1"];
        for alpn in [None, Some(normal), Some(mixed)] {
            assert!(choose(&state, Some("mirror.example"), alpn).is_none());
        }
        let first = certified(&["mirror.example"]);
        state.install(first.clone());
        for alpn in [None, Some(normal), Some(mixed)] {
            let got = choose(&state, Some("mirror.example"), alpn).unwrap();
            assert_eq!(leaf(&got), leaf(&first));
        }
        let renewed = certified(&["mirror.example"]);
        state.install(renewed.clone());
        let got = choose(&state, None, Some(normal)).unwrap();
        assert_eq!(leaf(&got), leaf(&renewed));
    }

    #[test]
    fn served_names_and_validity() {
        let state = Arc::new(AcmeState::new(vec!["a.example".into()]));
        let certificates = Certificates::Acme(state.clone());
        assert_eq!(certificates.served(), None);
        state.install(certified(&["a.example", "b.example"]));
        let served = certificates.served().unwrap();
        assert_eq!(served.names, ["a.example", "b.example"]);
        assert!(served.not_before < served.not_after);
        assert!(describe(b"not a certificate").is_none());
    }
}
