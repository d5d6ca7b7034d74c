//! ACME Renewal Information (RFC 9773): the CA's suggested renewal window for a certificate,
//! asked with the certificate's identifier (its Authority Key Identifier and serial).

use std::time::{Duration, SystemTime};

use instant_acme::{Account, CertificateIdentifier};
use rustls::pki_types::Der;

use super::schedule::Window;

/// The identifier RFC 9773 §4.1 names a certificate by, or `None` if the certificate has no
/// Authority Key Identifier (then the CA cannot answer for it).
pub fn certificate_identifier(leaf_der: &[u8]) -> Option<CertificateIdentifier<'static>> {
    use x509_parser::extensions::ParsedExtension;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf_der).ok()?;
    let key_identifier = cert
        .iter_extensions()
        .find_map(|e| match e.parsed_extension() {
            ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })?;
    Some(
        CertificateIdentifier::new(
            Der::from_slice(key_identifier),
            Der::from_slice(cert.tbs_certificate.raw_serial()),
        )
        .into_owned(),
    )
}

/// What the CA answered: its window, and when to ask again.
pub struct Suggestion {
    pub window: Window,
    pub ask_again: Duration,
}

/// Asks the CA for the window of `leaf_der`. `Ok(None)` when the CA offers no renewal
/// information or the certificate cannot be identified; errors are the CA's or the network's.
pub async fn suggested_window(
    account: &Account,
    leaf_der: &[u8],
) -> Result<Option<Suggestion>, instant_acme::Error> {
    let Some(identifier) = certificate_identifier(leaf_der) else {
        return Ok(None);
    };
    let (info, ask_again) = match account.renewal_info(&identifier).await {
        Ok(answer) => answer,
        Err(instant_acme::Error::Unsupported(_)) => return Ok(None),
        Err(other) => return Err(other),
    };
    let at = |seconds: i64| -> SystemTime {
        if seconds >= 0 {
            SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64)
        } else {
            SystemTime::UNIX_EPOCH
        }
    };
    Ok(Some(Suggestion {
        window: Window {
            start: at(info.suggested_window.start.unix_timestamp()),
            end: at(info.suggested_window.end.unix_timestamp()),
        },
        ask_again,
    }))
}
