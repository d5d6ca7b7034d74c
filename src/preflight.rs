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

fn check_source(source: &SourceConfig, at: &dyn Fn(&str) -> String, out: &mut Vec<Finding>) {
    source.kind.check_machine(at, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
