//! HTTPS: rustls with ALPN h2 and http/1.1 (and `acme-tls/1` when ACME manages the
//! certificate), and a certificate that can be replaced while running (files: SIGHUP; ACME: the
//! engine), so a renewed certificate needs no restart (see `certificates`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::certificates::{Certificates, ACME_TLS_ALPN};
use super::settings::TlsSettings;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot read private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate in use, swappable at any time.
pub struct ReloadableCert {
    config: TlsSettings,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert", &self.config.cert)
            .finish()
    }
}

impl ReloadableCert {
    pub fn load(config: &TlsSettings) -> Result<ReloadableCert, TlsError> {
        Ok(ReloadableCert {
            current: ArcSwap::from_pointee(load_key(&config.cert, &config.key)?),
            config: config.clone(),
        })
    }

    /// Reads the files again; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_key(&self.config.cert, &self.config.key)?;
        self.current.store(Arc::new(key));
        Ok(())
    }

    /// The certificate handshakes get now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_path_buf(),
            message: "no PEM certificate found".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&private).map_err(|e| TlsError::Key {
            path: key.to_path_buf(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: format!("does not match the certificate: {e}"),
    })?;
    Ok(certified)
}

/// The TLS profile: Mozilla's "intermediate" server configuration (ssl-config.mozilla.org),
/// which every client of the last years speaks and which `sslyze --mozilla_config=intermediate`
/// checks (see tests/tls_profile.rs):
/// - TLS 1.3 and 1.2 only;
/// - ECDHE key exchange with AEAD ciphers only (AES-GCM, ChaCha20-Poly1305): forward secrecy,
///   no CBC, no RSA key transport, no SHA-1 MACs;
/// - groups X25519, P-256 and P-384;
/// - the client's cipher order (all offered suites are strong; clients without AES hardware
///   prefer ChaCha20);
/// - resumption from a server-side session cache (TLS 1.2 session ids, TLS 1.3 tickets that
///   only name a cache entry); no stateless tickets, whose long-lived key would weaken
///   forward secrecy.
///
/// The lists are written out rather than taken from rustls' defaults, so a new rustls version
/// cannot widen the profile unnoticed.
fn provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::{cipher_suite, default_provider, kx_group};
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cipher_suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cipher_suite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        kx_groups: vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1],
        ..default_provider()
    }
}

/// A rustls server configuration with the profile above that offers h2 and http/1.1, and,
/// when ACME manages the certificate, `acme-tls/1` last (the server's order decides, so a
/// client offering h2 as well gets h2; only the CA's validation offers `acme-tls/1` alone).
pub fn server_config(certificates: &Certificates) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(certificates.resolver());
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    if certificates.acme().is_some() {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    config.ignore_client_order = false;
    // Stateful resumption only: the cache holds sessions (TLS 1.3 tickets are then just
    // references into it); rustls' default ticketer never issues stateless tickets.
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::AcmeState;
    use crate::http::certificates::tests::certified;
    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::pki_types::{ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    /// Accepts any server certificate: the tests look at which one they got.
    #[derive(Debug)]
    struct AnyCertificate;

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &CertificateDer<'_>,
            _: &[CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &CertificateDer<'_>,
            _: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            Ok(HandshakeSignatureValid::assertion())
        }
        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            provider()
                .signature_verification_algorithms
                .supported_schemes()
        }
    }

    /// A handshake over an in-memory pipe: the certificate and ALPN protocol the client got,
    /// or the client's error.
    async fn handshake(
        certificates: &Certificates,
        name: &str,
        alpn: &[&[u8]],
    ) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
        let server =
            tokio_rustls::TlsAcceptor::from(Arc::new(server_config(certificates).unwrap()));
        let mut client = rustls::ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate))
            .with_no_client_auth();
        client.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        let client = tokio_rustls::TlsConnector::from(Arc::new(client));
        let (a, b) = tokio::io::duplex(64 * 1024);
        let name = ServerName::try_from(name.to_string()).unwrap();
        let served = tokio::spawn(async move { server.accept(b).await.map(|_| ()) });
        let connected = client.connect(name, a).await;
        let _ = served.await;
        let stream = connected.map_err(|e| e.to_string())?;
        let connection = stream.get_ref().1;
        let leaf = connection.peer_certificates().unwrap()[0].to_vec();
        Ok((leaf, connection.alpn_protocol().map(<[u8]>::to_vec)))
    }

    fn leaf(key: &CertifiedKey) -> Vec<u8> {
        key.end_entity_cert().unwrap().to_vec()
    }

    #[tokio::test]
    async fn acme_listeners_answer_tls_alpn_01_and_serve_what_is_installed() {
        let state = Arc::new(AcmeState::new(vec!["mirror.example".into()]));
        let certificates = Certificates::Acme(state.clone());
        let web: &[&[u8]] = &[b"h2", b"http/1.1"];
        let acme: &[&[u8]] = &[b"acme-tls/1"];
        // Before the first issuance: no certificate, the handshake fails with an alert.
        assert!(handshake(&certificates, "mirror.example", web)
            .await
            .is_err());
        assert!(handshake(&certificates, "mirror.example", acme)
            .await
            .is_err());
        let challenge = certified(&["mirror.example"]);
        state.set_alpn_answer("mirror.example", challenge.clone());
        let (got, protocol) = handshake(&certificates, "mirror.example", acme)
            .await
            .unwrap();
        assert_eq!(got, leaf(&challenge));
        assert_eq!(protocol.as_deref(), Some(ACME_TLS_ALPN));
        assert!(handshake(&certificates, "mirror.example", web)
            .await
            .is_err());
        let issued = certified(&["mirror.example"]);
        state.install(issued.clone());
        let (got, protocol) = handshake(&certificates, "mirror.example", web)
            .await
            .unwrap();
        assert_eq!(got, leaf(&issued));
        assert_eq!(protocol.as_deref(), Some(&b"h2"[..]));
        // A client offering acme-tls/1 among others is no validation: it gets h2.
        let (got, protocol) = handshake(&certificates, "mirror.example", &[b"acme-tls/1", b"h2"])
            .await
            .unwrap();
        assert_eq!(got, leaf(&issued));
        assert_eq!(protocol.as_deref(), Some(&b"h2"[..]));
    }
}
