//! `mirrorbox check-config`: validate the configuration and print what would be served where,
//! with the same checks `serve` makes before it starts (see [`crate::preflight`]).

use crate::config::Config;
use crate::store::{DataLock, LockError};

/// Prints the configuration's plan; exit status 1 if anything is a PROBLEM (or, `strict`, a
/// WARNING). Errors that would stop `serve` end the command with an `Err` (exit status 2), as
/// they would end `serve`.
pub(crate) fn run(config: Config, strict: bool) -> anyhow::Result<i32> {
    println!("config: {}", config.file.display());
    println!("data_dir: {}", config.data_dir.display());
    for addr in &config.server.http {
        println!("listen: http://{addr}/");
    }
    for addr in &config.server.https {
        println!("listen: https://{addr}/");
    }
    // The checks `serve` makes too (see preflight): errors end check-config as they would
    // end serve, with exit status 2; warnings are listed below as PROBLEMs.
    let warnings = crate::preflight::run(&config)?;
    if let Some(tls) = &config.server.tls {
        println!("tls: {} (loads fine)", tls.cert.display());
    }
    for line in describe_acme(&config) {
        println!("{line}");
    }
    let mut problems = 0;
    for s in &config.sources {
        let schedule = match s.every {
            Some(every) => format!(
                "every {}s (+ up to {}s jitter)",
                every.as_secs(),
                s.jitter.as_secs()
            ),
            None => "on demand".into(),
        };
        // `""` for the root, so the URL prefix is `/` there too.
        println!(
            "source {} ({}): served at {}/, keep {}, {schedule}",
            s.id,
            s.kind.name(),
            s.mount,
            s.keep
        );
        for line in s.kind.describe() {
            println!("  {line}");
        }
    }
    for line in describe_access(&config) {
        println!("{line}");
    }
    if !config.access.is_empty() {
        // Reads the htpasswd files; refused lines are logged as warnings.
        match crate::http::access::Access::load(&config) {
            Ok(_) => println!("access rules: htpasswd files load fine"),
            Err(e) => {
                println!("PROBLEM: {e}");
                problems += 1;
            }
        }
    }
    for warning in &warnings {
        println!("PROBLEM: {warning}");
        problems += 1;
    }
    let mut client_warnings = 0;
    for finding in client_findings(&config) {
        if finding.warning {
            println!("WARNING: {}", finding.message);
            client_warnings += 1;
        } else {
            println!("note: {}", finding.message);
        }
    }
    let acme_warnings = crate::preflight::acme_warnings(&config);
    for warning in &acme_warnings {
        println!("WARNING: {warning}");
    }
    if !acme_warnings.is_empty() {
        if strict {
            problems += acme_warnings.len();
        } else {
            println!(
                "{} ACME WARNING(s): the CA may not reach this server as configured (not counted in the exit status; --strict counts them)",
                acme_warnings.len()
            );
        }
    }
    if client_warnings > 0 {
        if strict {
            problems += client_warnings;
        } else {
            println!(
                "{client_warnings} WARNING(s): clients cannot use a source as configured (not counted in the exit status; --strict counts them)"
            );
        }
    }
    match DataLock::acquire(&config.data_dir) {
        Ok(_) => println!("data directory: usable"),
        Err(LockError::Busy { .. }) => println!("data directory: in use by a running server"),
        Err(e) => {
            println!("PROBLEM: {e}");
            problems += 1;
        }
    }
    Ok(if problems == 0 { 0 } else { 1 })
}

/// A failing client check of a source (see [`crate::sync::kind::Kind::client_checks`]).
pub(crate) struct ClientFinding {
    /// Not acknowledged, and worth a warning; else a note.
    pub warning: bool,
    /// Names the file, the source, the key, the client that fails and the fix.
    pub message: String,
}

/// Every failing client check of every source, in configuration order: what `check-config`
/// prints as WARNING and note lines and `serve` logs at start.
pub(crate) fn client_findings(config: &Config) -> Vec<ClientFinding> {
    let file = config.file.display();
    let https_listener = !config.server.https.is_empty();
    let mut out = Vec::new();
    for source in &config.sources {
        let serving = crate::sync::kind::Serving {
            mount: &source.mount,
            https_listener,
        };
        for check in source.kind.client_checks(&serving) {
            if !check.pass {
                out.push(ClientFinding {
                    warning: check.is_warning(),
                    message: format!("{file}: source `{}`: {}", source.id, check.text),
                });
            }
        }
    }
    out
}

/// The `[server.acme]` setup, one `acme …:` line per fact (none without ACME).
pub(crate) fn describe_acme(config: &Config) -> Vec<String> {
    let Some(acme) = &config.server.acme else {
        return Vec::new();
    };
    let mut lines = vec![
        format!("acme domains: {}", acme.domains.join(" ")),
        format!("acme directory: {}", acme.directory),
        format!(
            "acme challenges: {}",
            acme.challenges
                .iter()
                .map(|c| c.name())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ];
    if !acme.contact.is_empty() {
        lines.push(format!("acme contact: {}", acme.contact.join(" ")));
    }
    if let Some(ca) = &acme.ca_file {
        lines.push(format!("acme ca_file: {}", ca.display()));
    }
    if let Some(eab) = &acme.external_account {
        lines.push(format!("acme external account: kid {}", eab.kid));
    }
    lines.push(format!(
        "acme renews when less than {:.0}% of a certificate's lifetime is left; account and certificates in {}",
        acme.renewal_window_ratio * 100.0,
        config.data_dir.join("acme").display()
    ));
    lines
}

/// One `access PATH: …` line per `[[access]]` rule.
fn describe_access(config: &Config) -> Vec<String> {
    let list = |nets: &[ipnet::IpNet]| {
        nets.iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" ")
    };
    config
        .access
        .iter()
        .map(|rule| {
            let path = if rule.path.is_empty() {
                "/"
            } else {
                &rule.path
            };
            let mut parts = Vec::new();
            if !rule.allow.is_empty() {
                parts.push(format!("allow {}", list(&rule.allow)));
            }
            if !rule.deny.is_empty() {
                parts.push(format!("deny {}", list(&rule.deny)));
            }
            if let Some(file) = &rule.htpasswd {
                parts.push(format!(
                    "password from {} (realm \"{}\")",
                    file.display(),
                    rule.realm
                ));
            }
            if parts.is_empty() {
                parts.push("open to everyone".into());
            }
            format!("access {path}: {}", parts.join("; "))
        })
        .collect()
}
