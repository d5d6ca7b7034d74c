//! Checks of a parsed configuration against this machine: source folders, signing keys,
//! Puavo series files, the TLS certificate. `check-config` and `serve` both run exactly this,
//! so they can never disagree about a configuration: an [`Severity::Error`] stops both (exit
//! status 2, before anything is served), a [`Severity::Warning`] is printed by both and the
//! server starts anyway (the thing may appear later, e.g. a folder on a mount).

use crate::config::{Config, SourceConfig};
pub use crate::sync::kind::{Finding, Severity};

/// Every error of a configuration, one per line.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct PreflightError(pub Vec<String>);

/// Runs [`check`]: the errors as one error, else the warnings.
pub fn run(config: &Config) -> Result<Vec<String>, PreflightError> {
    let (errors, warnings): (Vec<Finding>, Vec<Finding>) = check(config)
        .into_iter()
        .partition(|f| f.severity == Severity::Error);
    if errors.is_empty() {
        Ok(warnings.into_iter().map(|f| f.message).collect())
    } else {
        Err(PreflightError(
            errors.into_iter().map(|f| f.message).collect(),
        ))
    }
}

/// All findings, in configuration order.
pub fn check(config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    let file = config.file.display().to_string();
    if let Some(tls) = &config.server.tls {
        if let Err(e) = crate::http::tls::ReloadableCert::load(tls) {
            findings.push(Finding {
                severity: Severity::Error,
                message: format!("{file}: [server.tls]: {e}"),
            });
        }
    }
    // Read as the sources' `ca_file` is: a wrong path is a configuration error, found by
    // `check-config` too, not a start that fails once the listeners are up.
    if let Some(path) = config.server.acme.as_ref().and_then(|a| a.ca_file.as_ref()) {
        if let Err(e) = crate::sync::fetch::read_ca_file(path) {
            findings.push(Finding {
                severity: Severity::Error,
                message: format!("{file}: [server.acme] {e}"),
            });
        }
    }
    for source in &config.sources {
        let at = |key: &str| format!("{file}: source `{}` key `{key}`", source.id);
        check_source(source, &at, &mut findings);
    }
    findings.extend(crate::config::collisions::check(config));
    // A rule that protects nothing is most likely a typo in the path of one meant to protect
    // something: listed as a problem, never silently left open.
    for rule in &config.access {
        if !crate::http::access::covers_something(&rule.path, config) {
            findings.push(Finding {
                severity: Severity::Warning,
                message: format!(
                    "{file}: {}: key `path`: matches no mount, /.status or /.metrics; the rule has no effect",
                    rule.label
                ),
            });
        }
    }
    findings
}

/// What an admin of `[server.acme]` should know before the first order: the CA validates a
/// challenge by connecting to port 80 (HTTP-01) or 443 (TLS-ALPN-01) of the domain, so a
/// listener on another port (or on loopback only) works only behind a port forward or a
/// proxy; and a certificate nobody serves is a configuration mistake. Warnings, never errors: a forward or a proxy may be in
/// place, which this machine cannot see. `check-config` prints them, `serve` logs them.
pub fn acme_warnings(config: &Config) -> Vec<String> {
    use crate::acme::Challenge;
    let Some(acme) = &config.server.acme else {
        return Vec::new();
    };
    let file = config.file.display();
    let mut out = Vec::new();
    let ports = |listeners: &[&std::net::SocketAddr]| {
        listeners
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    for challenge in &acme.challenges {
        let (listeners, key, port) = match challenge {
            Challenge::Http01 => (&config.server.http, "http", 80),
            Challenge::TlsAlpn01 => (&config.server.https, "https", 443),
        };
        if listeners.is_empty() {
            continue;
        }
        let on_port: Vec<_> = listeners.iter().filter(|a| a.port() == port).collect();
        if on_port.is_empty() {
            out.push(format!(
                "{file}: [server.acme] challenge {}: no `{key}` listener on port {port} (only {}); the CA connects to port {port}: fine only if a port forward maps it here",
                challenge.name(),
                ports(&listeners.iter().collect::<Vec<_>>()),
            ));
        } else if on_port.iter().all(|a| a.ip().is_loopback()) {
            out.push(format!(
                "{file}: [server.acme] challenge {}: the `{key}` listener on port {port} is on loopback only ({}); the CA connects from outside: fine only if a proxy or port forward maps it here",
                challenge.name(),
                ports(&on_port),
            ));
        }
    }
    if config.server.https.is_empty() {
        out.push(format!(
            "{file}: [server.acme]: no `https` listener in [server]: the certificate is obtained but served to nobody"
        ));
    }
    out
}

fn check_source(source: &SourceConfig, at: &dyn Fn(&str) -> String, out: &mut Vec<Finding>) {
    source.kind.check_machine(at, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::{AcmeSettings, Challenge};
    use std::path::Path;

    /// A configuration with `[server.acme]` and these listeners (set after parsing: the
    /// parser knows ACME only once its part lands, and needs it for `https`).
    fn with_acme(http: &[&str], https: &[&str], challenges: Vec<Challenge>) -> Config {
        let text = "data_dir = \"d\"\n";
        let mut config = Config::parse(text, Path::new("test.toml")).unwrap();
        let addrs = |list: &[&str]| list.iter().map(|a| a.parse().unwrap()).collect();
        config.server.http = addrs(http);
        config.server.https = addrs(https);
        config.server.acme = Some(AcmeSettings {
            domains: vec!["mirror.example".into()],
            contact: Vec::new(),
            directory: "https://ca.example/dir".into(),
            ca_file: None,
            external_account: None,
            challenges,
            renewal_window_ratio: 1.0 / 3.0,
        });
        config
    }

    #[test]
    fn an_acme_ca_file_that_does_not_load_is_an_error() {
        let mut config = with_acme(&["0.0.0.0:80"], &["0.0.0.0:443"], vec![Challenge::Http01]);
        let errors = |config: &Config| -> Vec<String> {
            check(config)
                .into_iter()
                .filter(|f| matches!(f.severity, Severity::Error))
                .map(|f| f.message)
                .collect()
        };
        assert!(errors(&config).is_empty());
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        if let Some(acme) = config.server.acme.as_mut() {
            acme.ca_file = Some(missing);
        }
        let found = errors(&config);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("[server.acme] key `ca_file`"),
            "{found:?}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        if let Some(acme) = config.server.acme.as_mut() {
            acme.ca_file = Some(empty);
        }
        assert!(
            errors(&config)[0].contains("no PEM certificate"),
            "{:?}",
            errors(&config)
        );
    }

    #[test]
    fn acme_warns_of_challenge_ports_the_ca_does_not_connect_to() {
        let both = || vec![Challenge::TlsAlpn01, Challenge::Http01];
        let standard = with_acme(&["0.0.0.0:80"], &["[::]:443", "127.0.0.1:8443"], both());
        assert_eq!(acme_warnings(&standard), Vec::<String>::new());
        let moved = with_acme(&["0.0.0.0:8080"], &["0.0.0.0:8443"], both());
        assert_eq!(
            acme_warnings(&moved),
            [
                "test.toml: [server.acme] challenge tls-alpn-01: no `https` listener on port 443 (only 0.0.0.0:8443); the CA connects to port 443: fine only if a port forward maps it here",
                "test.toml: [server.acme] challenge http-01: no `http` listener on port 80 (only 0.0.0.0:8080); the CA connects to port 80: fine only if a port forward maps it here",
            ]
        );
        let loopback = with_acme(&["127.0.0.1:80", "0.0.0.0:8080"], &["[::]:443"], both());
        assert_eq!(
            acme_warnings(&loopback),
            ["test.toml: [server.acme] challenge http-01: the `http` listener on port 80 is on loopback only (127.0.0.1:80); the CA connects from outside: fine only if a proxy or port forward maps it here"]
        );
        // Only the chosen challenge's port matters.
        let http_only = with_acme(&["0.0.0.0:80"], &["0.0.0.0:8443"], vec![Challenge::Http01]);
        assert_eq!(acme_warnings(&http_only), Vec::<String>::new());
        let unserved = with_acme(&["0.0.0.0:80"], &[], vec![Challenge::Http01]);
        assert_eq!(
            acme_warnings(&unserved),
            ["test.toml: [server.acme]: no `https` listener in [server]: the certificate is obtained but served to nobody"]
        );
        let mut off = unserved;
        off.server.acme = None;
        assert!(acme_warnings(&off).is_empty());
    }

    #[test]
    fn an_access_rule_under_no_mount_is_reported() {
        let text = "data_dir = \"d\"\n[[source]]\nid = \"pve\"\nkind = \"dir\"\nmount = \"/debian/pve\"\npath = \"/\"\n[[access]]\npath = \"/debain/pve\"\ndeny = [\"0.0.0.0/0\"]\n[[access]]\npath = \"/debian/pve/dists\"\ndeny = [\"0.0.0.0/0\"]\n[[access]]\npath = \"/debian\"\ndeny = [\"0.0.0.0/0\"]\n";
        let config = Config::parse(text, Path::new("test.toml")).unwrap();
        let warnings = run(&config).unwrap();
        assert_eq!(
            warnings,
            ["test.toml: [[access]] #1 (path \"/debain/pve\"): key `path`: matches no mount, /.status or /.metrics; the rule has no effect"]
        );
    }
}
