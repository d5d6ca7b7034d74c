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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifier_is_authority_key_id_and_serial() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_identifier_method = rcgen::KeyIdMethod::PreSpecified(vec![0xab; 20]);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let mut leaf_params = rcgen::CertificateParams::new(vec!["a.example.org".into()]).unwrap();
        leaf_params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x01, 0x02, 0x03]));
        leaf_params.use_authority_key_identifier_extension = true;
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

        let identifier = certificate_identifier(leaf.der()).expect("an identifier");
        // base64url of 20 bytes 0xab, and of the serial 01 02 03.
        assert_eq!(
            identifier.authority_key_identifier,
            "q6urq6urq6urq6urq6urq6urq6s"
        );
        assert_eq!(identifier.serial, "AQID");
        assert_eq!(identifier.to_string(), "q6urq6urq6urq6urq6urq6urq6s.AQID");
    }

    #[test]
    fn a_certificate_without_authority_key_id_has_none() {
        let cert = rcgen::generate_simple_self_signed(vec!["a.example.org".into()]).unwrap();
        assert!(certificate_identifier(cert.cert.der()).is_none());
    }
}
