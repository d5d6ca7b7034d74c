//! `[server.acme]` as the engine uses it: parsed and checked by the configuration reader.

use std::path::PathBuf;

/// Let's Encrypt's production directory, the default.
pub const LETSENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETSENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// A challenge type the server can answer itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Challenge {
    /// A token under `/.well-known/acme-challenge/` on an HTTP listener (the CA connects to
    /// port 80).
    Http01,
    /// A self-signed certificate offered to a TLS client that asks for ALPN `acme-tls/1` on an
    /// HTTPS listener (the CA connects to port 443).
    TlsAlpn01,
}

impl Challenge {
    /// The name RFC 8555 / RFC 8737 and the configuration use.
    pub fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// External account binding (RFC 8555 §7.3.4), which some CAs require to tie the ACME account
/// to an account of theirs.
#[derive(Clone)]
pub struct ExternalAccountBinding {
    pub kid: String,
    /// The MAC key as the CA hands it out: base64url.
    pub hmac_key: String,
}

impl std::fmt::Debug for ExternalAccountBinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExternalAccountBinding")
            .field("kid", &self.kid)
            .field("hmac_key", &"<redacted>")
            .finish()
    }
}

/// The validated `[server.acme]` section.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The names the certificate is for; the first one names it on disk and in messages.
    pub domains: Vec<String>,
    /// Contact URLs for the account (`mailto:…`); may be empty.
    pub contact: Vec<String>,
    /// The directory URL (`letsencrypt` and `letsencrypt-staging` are already resolved).
    pub directory: String,
    /// Extra trust for the directory's own HTTPS (a private ACME server); the system's web
    /// roots otherwise.
    pub ca_file: Option<PathBuf>,
    pub external_account: Option<ExternalAccountBinding>,
    /// The challenge types to answer, in order of preference.
    pub challenges: Vec<Challenge>,
    /// Renew when less than this share of the certificate's lifetime is left (default 1/3),
    /// unless the CA's renewal information (ARI) suggests a time.
    pub renewal_window_ratio: f64,
}
