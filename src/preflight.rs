//! Checks of a parsed configuration against this machine: source folders, signing keys,
//! Puavo series files, the TLS certificate. `check-config` and `serve` both run exactly this,
//! so they can never disagree about a configuration: an [`Severity::Error`] stops both (exit
//! status 2, before anything is served), a [`Severity::Warning`] is printed by both and the
//! server starts anyway (the thing may appear later, e.g. a folder on a mount).

use std::path::Path;

use crate::config::{Config, PuavoMode, SourceConfig, SourceKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot work as written.
    Error,
    /// Something the configuration names is missing now; syncs of that source fail until
    /// it is there, and the last snapshot stays served.
    Warning,
}

/// One problem, with a message that names the file, the source and the key.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

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
    match &source.kind {
        SourceKind::Dir { path } => folder(path, &at("path"), out),
        SourceKind::Apt(apt) => {
            if let Err(e) = crate::sync::apt::keyring::Keyring::load(&apt.keys) {
                out.push(Finding {
                    severity: Severity::Warning,
                    message: format!("{}: {e}", at("keys")),
                });
            }
        }
        SourceKind::Puavo(puavo) => {
            if let PuavoMode::Build {
                image_dir,
                series_config,
                write_config,
                ..
            } = &puavo.mode
            {
                let before = out.len();
                folder(image_dir, &at("image_dir"), out);
                if out.len() == before && !write_config {
                    if let Some(path) = series_config {
                        series(path, image_dir, &at("series_config"), out);
                    }
                }
            }
        }
        SourceKind::Files(_) => {}
    }
}

/// A folder a source reads: a file there is a mistake in the configuration; nothing there
/// may be a mount that is not up yet.
fn folder(path: &Path, at: &str, out: &mut Vec<Finding>) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => out.push(Finding {
            severity: Severity::Error,
            message: format!("{at}: {} is a file, not a directory", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(Finding {
            severity: Severity::Warning,
            message: format!(
                "{at}: directory {} does not exist (syncs of this source fail until it does; the last snapshot stays served)",
                path.display()
            ),
        }),
        Err(e) => out.push(Finding {
            severity: Severity::Warning,
            message: format!("{at}: cannot read {}: {e}", path.display()),
        }),
    }
}

/// Series files must parse and name only images that are in `image_dir`.
fn series(path: &Path, image_dir: &Path, at: &str, out: &mut Vec<Finding>) {
    match crate::sync::puavo::build::read_series_config(path) {
        Ok(all) => {
            for s in &all {
                let missing: Vec<String> = s
                    .all_images()
                    .into_iter()
                    .filter(|f| !image_dir.join(f).is_file())
                    .collect();
                if !missing.is_empty() {
                    out.push(Finding {
                        severity: Severity::Warning,
                        message: format!(
                            "{at}: series {}: not in {}: {}",
                            s.name,
                            image_dir.display(),
                            missing.join(", ")
                        ),
                    });
                }
            }
        }
        Err(e) => out.push(Finding {
            severity: Severity::Warning,
            message: format!("{at}: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
