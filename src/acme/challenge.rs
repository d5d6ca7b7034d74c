//! Keys and certificates the engine makes: the TLS-ALPN-01 answer (RFC 8737), the key and CSR
//! of an order, and rustls' `CertifiedKey` from a chain and key.

use rcgen::{CertificateParams, CustomExtension, DistinguishedName, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot make a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("unusable key: {0}")]
    Key(rustls::Error),
    #[error("the key does not match the certificate: {0}")]
    Mismatch(rustls::Error),
}

/// A chain and its key as rustls serves them, checked to belong together.
pub fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer<'_>,
) -> Result<CertifiedKey, KeyError> {
    let signing = rustls::crypto::ring::sign::any_supported_type(key).map_err(KeyError::Key)?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(KeyError::Mismatch)?;
    Ok(certified)
}

/// The self-signed certificate a TLS-ALPN-01 validation must see for `domain`: the domain as
/// its only subjectAltName and the critical acmeIdentifier extension holding the SHA-256 of
/// the key authorization (RFC 8737 §3).
pub fn alpn_certificate(
    domain: &str,
    key_authorization_sha256: &[u8],
) -> Result<CertifiedKey, KeyError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![domain.to_string()])?;
    params.distinguished_name = DistinguishedName::new();
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(
        key_authorization_sha256,
    )];
    let certificate = params.self_signed(&key)?;
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    // Not `certified_key`: its check parses the certificate with webpki, which refuses the
    // critical extension it does not know; the pair was made together just above.
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&private).map_err(KeyError::Key)?;
    Ok(CertifiedKey::new(vec![certificate.der().clone()], signing))
}

/// A fresh key (ECDSA P-256) and a CSR for `domains`; the key as PEM, to be stored.
pub fn key_and_csr(domains: &[String]) -> Result<(Vec<u8>, String), KeyError> {
    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(domains.to_vec())?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((csr.der().to_vec(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use x509_parser::extensions::GeneralName;

    /// id-pe-acmeIdentifier, RFC 8737 §6.1.
    const ACME_IDENTIFIER: &str = "1.3.6.1.5.5.7.1.31";

    #[test]
    fn alpn_certificate_carries_the_key_authorization_digest() {
        let key_authorization = "token-abc.thumbprint-xyz";
        let digest = Sha256::digest(key_authorization.as_bytes());
        let certified = alpn_certificate("mirror.example.org", &digest).unwrap();
        assert_eq!(certified.cert.len(), 1);
        let (_, cert) = x509_parser::parse_x509_certificate(&certified.cert[0]).unwrap();

        let extension = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == ACME_IDENTIFIER)
            .expect("acmeIdentifier extension");
        assert!(extension.critical, "RFC 8737: the extension is critical");
        // The value is a DER OCTET STRING of the 32-byte digest.
        let mut expected = vec![0x04, 0x20];
        expected.extend_from_slice(&digest);
        assert_eq!(extension.value, expected.as_slice());

        let san = cert.subject_alternative_name().unwrap().unwrap();
        let names: Vec<&GeneralName> = san.value.general_names.iter().collect();
        assert_eq!(names.len(), 1);
        assert!(matches!(
            names[0],
            GeneralName::DNSName("mirror.example.org")
        ));
    }

    #[test]
    fn csr_names_every_domain_and_the_key_is_p256() {
        let domains = vec!["a.example.org".to_string(), "b.example.org".to_string()];
        let (csr, key_pem) = key_and_csr(&domains).unwrap();
        let (_, request) =
            <x509_parser::certification_request::X509CertificationRequest as x509_parser::prelude::FromDer<_>>::from_der(&csr)
                .unwrap();
        let mut names = Vec::new();
        for extension in request.requested_extensions().into_iter().flatten() {
            if let x509_parser::extensions::ParsedExtension::SubjectAlternativeName(san) = extension
            {
                for name in &san.general_names {
                    if let GeneralName::DNSName(dns) = name {
                        names.push(dns.to_string());
                    }
                }
            }
        }
        assert_eq!(names, domains);
        let key = KeyPair::from_pem(&key_pem).unwrap();
        assert!(key.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256));
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let one = rcgen::generate_simple_self_signed(vec!["a.example.org".into()]).unwrap();
        let other = KeyPair::generate().unwrap();
        let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(other.serialize_der()));
        let result = certified_key(vec![one.cert.der().clone()], &private);
        assert!(
            matches!(result, Err(KeyError::Mismatch(_))),
            "mismatch detected"
        );
    }
}
