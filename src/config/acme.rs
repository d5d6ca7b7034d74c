//! `[server.acme]`: certificates from an ACME server. The keys are checked here so that a
//! mistake shows at start (or `mirrorbox check`), not as an order the CA refuses hours later.

use std::path::PathBuf;

use serde::Deserialize;

use crate::acme::settings::{LETSENCRYPT, LETSENCRYPT_STAGING};
use crate::acme::{AcmeSettings, Challenge, ExternalAccountBinding};

#[cfg(test)]
#[path = "acme_tests.rs"]
mod tests;

/// The default renewal window: renew when a third of the lifetime is left (what Let's Encrypt
/// recommends for its 90-day certificates: 30 days ahead).
const DEFAULT_RENEWAL_WINDOW_RATIO: f64 = 1.0 / 3.0;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAcme {
    domains: Option<Vec<String>>,
    /// A string or a list of strings: read as a value and checked below, so that a wrong type
    /// gets a message in words rather than serde's "did not match any variant".
    contact: Option<toml::Value>,
    directory: Option<String>,
    ca_file: Option<PathBuf>,
    challenges: Option<Vec<String>>,
    renewal_window_ratio: Option<f64>,
    external_account: Option<RawExternalAccount>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExternalAccount {
    kid: String,
    hmac_key: String,
}

/// The listeners the challenges will be answered on, for the checks that need them.
pub(super) struct Listeners {
    pub has_http: bool,
    pub has_https: bool,
}

fn error(key: &str, message: impl std::fmt::Display) -> String {
    format!("[server.acme] key `{key}`: {message}")
}

pub(super) fn parse_acme(raw: RawAcme, listeners: &Listeners) -> Result<AcmeSettings, String> {
    let domains = parse_domains(raw.domains)?;
    let contact = parse_contact(raw.contact)?;
    let directory = parse_directory(raw.directory)?;
    let challenges = parse_challenges(raw.challenges, listeners)?;
    let renewal_window_ratio = raw
        .renewal_window_ratio
        .unwrap_or(DEFAULT_RENEWAL_WINDOW_RATIO);
    if !(renewal_window_ratio > 0.0 && renewal_window_ratio < 1.0) {
        return Err(error(
            "renewal_window_ratio",
            format!("{renewal_window_ratio} is not between 0 and 1 (e.g. 0.3333: renew when a third of the lifetime is left)"),
        ));
    }
    let external_account = match raw.external_account {
        None => None,
        Some(eab) => Some(parse_external_account(eab)?),
    };
    Ok(AcmeSettings {
        domains,
        contact,
        directory,
        ca_file: raw.ca_file,
        external_account,
        challenges,
        renewal_window_ratio,
    })
}

fn parse_domains(domains: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let domains = domains.ok_or_else(|| {
        error(
            "domains",
            "missing (the names the certificate is for, e.g. [\"mirror.example.org\"])",
        )
    })?;
    if domains.is_empty() {
        return Err(error("domains", "must name at least one domain"));
    }
    let mut seen = Vec::new();
    for domain in &domains {
        let lower = domain.to_ascii_lowercase();
        check_domain(&lower).map_err(|m| error("domains", format!("`{domain}`: {m}")))?;
        if seen.contains(&lower) {
            return Err(error("domains", format!("`{domain}` is listed twice")));
        }
        seen.push(lower);
    }
    Ok(seen)
}

/// A DNS name both challenges can prove: no wildcard (only DNS-01 can), no IP address (the
/// CAs this is for issue none), letters, digits and hyphens in dot-separated labels.
fn check_domain(domain: &str) -> Result<(), &'static str> {
    if domain.contains('*') {
        return Err("wildcard names need the DNS-01 challenge, which the server cannot answer; list each name");
    }
    if domain.parse::<std::net::IpAddr>().is_ok() {
        return Err("is an IP address; the certificate needs a DNS name");
    }
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(label_ok) {
        return Err("is not a fully qualified DNS name like mirror.example.org");
    }
    Ok(())
}

fn parse_contact(contact: Option<toml::Value>) -> Result<Vec<String>, String> {
    let list = match contact {
        None => return Ok(Vec::new()),
        Some(toml::Value::String(one)) => vec![one],
        Some(toml::Value::Array(items)) => items
            .into_iter()
            .map(|item| match item {
                toml::Value::String(s) => Ok(s),
                other => Err(error(
                    "contact",
                    format!("`{other}` is not a string like \"mailto:admin@example.org\""),
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => {
            return Err(error(
                "contact",
                format!(
                "`{other}` is not a string or a list of strings like \"mailto:admin@example.org\""
            ),
            ))
        }
    };
    for url in &list {
        let address = url.strip_prefix("mailto:").unwrap_or("");
        if address.is_empty() || !address.contains('@') {
            return Err(error(
                "contact",
                format!("`{url}` is not a mailto: address like \"mailto:admin@example.org\""),
            ));
        }
    }
    Ok(list)
}

fn parse_directory(directory: Option<String>) -> Result<String, String> {
    let url = match directory.as_deref() {
        None | Some("letsencrypt") => return Ok(LETSENCRYPT.to_string()),
        Some("letsencrypt-staging") => return Ok(LETSENCRYPT_STAGING.to_string()),
        Some(url) => url,
    };
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        error(
            "directory",
            format!("`{url}` is not `letsencrypt`, `letsencrypt-staging` or a URL: {e}"),
        )
    })?;
    if parsed.scheme() != "https" || parsed.host_str().is_none() {
        return Err(error(
            "directory",
            format!(
                "`{url}`: the ACME directory must be an https:// URL (RFC 8555 requires HTTPS)"
            ),
        ));
    }
    Ok(url.to_string())
}

fn parse_challenges(
    challenges: Option<Vec<String>>,
    listeners: &Listeners,
) -> Result<Vec<Challenge>, String> {
    let explicit = challenges.is_some();
    let names = challenges.unwrap_or_else(|| vec!["tls-alpn-01".into(), "http-01".into()]);
    if names.is_empty() {
        return Err(error(
            "challenges",
            "must name at least one of `tls-alpn-01`, `http-01`",
        ));
    }
    let mut list = Vec::new();
    for name in &names {
        let challenge = match name.as_str() {
            "http-01" => Challenge::Http01,
            "tls-alpn-01" => Challenge::TlsAlpn01,
            other => {
                return Err(error(
                    "challenges",
                    format!("`{other}` is not one of `tls-alpn-01`, `http-01` (the challenges the server answers itself)"),
                ))
            }
        };
        if !list.contains(&challenge) {
            list.push(challenge);
        }
    }
    let needs = |c: &Challenge| match c {
        Challenge::Http01 => (
            listeners.has_http,
            "`http-01` needs an `http` listener (the CA connects to port 80)",
        ),
        Challenge::TlsAlpn01 => (
            listeners.has_https,
            "`tls-alpn-01` needs an `https` listener (the CA connects to port 443)",
        ),
    };
    // Listed by hand, every challenge must be answerable; the default keeps those that are.
    if explicit {
        if let Some((_, why)) = list.iter().map(needs).find(|(ok, _)| !ok) {
            return Err(error("challenges", why));
        }
    }
    let usable: Vec<Challenge> = list.iter().copied().filter(|c| needs(c).0).collect();
    if usable.is_empty() {
        let why: Vec<&str> = list.iter().map(|c| needs(c).1).collect();
        return Err(error(
            "challenges",
            format!("no listener can answer them: {}", why.join("; ")),
        ));
    }
    Ok(usable)
}

fn parse_external_account(raw: RawExternalAccount) -> Result<ExternalAccountBinding, String> {
    use base64::Engine;
    let key = |m: &str| format!("[server.acme.external_account] {m}");
    if raw.kid.is_empty() {
        return Err(key("key `kid`: must not be empty"));
    }
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.hmac_key.trim_end_matches('='))
        .map_err(|e| {
            key(&format!(
                "key `hmac_key`: not base64url as the CA hands it out: {e}"
            ))
        })?;
    if decoded.is_empty() {
        return Err(key("key `hmac_key`: must not be empty"));
    }
    Ok(ExternalAccountBinding {
        kid: raw.kid,
        hmac_key: raw.hmac_key,
    })
}
