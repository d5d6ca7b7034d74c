//! `mirrorbox add`: appends one source to the configuration file. The new source's id and
//! mount are derived from the upstream (see `derive`), apt keys of well-known repositories
//! are found on this host (see `keyrings`), and the edited file must pass the real loader
//! and the collision check before it replaces the old one; otherwise nothing is written.

mod apt;
mod derive;
mod keyrings;
mod others;

use std::net::SocketAddr;

use anyhow::{anyhow, bail, Context};

use super::{AddCommon, AddWhat, ConfigArg};
use crate::config::edit::{ConfigDocument, NewTable};
use crate::config::{Config, SourceKind};
use crate::preflight::{self, Severity};

/// A source ready to be appended.
pub struct Planned {
    pub id: String,
    pub mount: String,
    pub table: NewTable,
}

impl Planned {
    fn new(id: String, mount: String, table: NewTable) -> Planned {
        Planned { id, mount, table }
    }
}

/// Exit status 1 when the source is refused (printed, nothing written), 2 when the file
/// cannot be read or written.
pub fn run(outer: &ConfigArg, what: AddWhat) -> anyhow::Result<i32> {
    let common = match &what {
        AddWhat::Apt { common, .. }
        | AddWhat::Files { common, .. }
        | AddWhat::Dir { common, .. }
        | AddWhat::Puavo { common, .. } => common.clone(),
    };
    // `--config` may stand before or after the kind.
    let config = ConfigArg {
        config: common.config.clone().or_else(|| outer.config.clone()),
    };
    let file = config.resolve();
    if !file.exists() {
        bail!(
            "{} does not exist: write a starter configuration there first with `mirrorbox init {}`",
            file.display(),
            super::init::shell_word(&file.to_string_lossy())
        );
    }
    let mut doc = ConfigDocument::read(&file)?;
    let (added, config) = match add(&mut doc, what, &common) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("mirrorbox: {e:#}");
            eprintln!("nothing was written to {}", doc.file().display());
            return Ok(1);
        }
    };
    doc.write()?;
    report(&added, &config);
    Ok(0)
}

/// What was added, for the report.
struct Added {
    id: String,
    warnings: Vec<String>,
}

/// Plans the source, appends it and validates the result; writes nothing.
fn add(
    doc: &mut ConfigDocument,
    what: AddWhat,
    common: &AddCommon,
) -> anyhow::Result<(Added, Config)> {
    let current = doc
        .current()
        .context("the configuration must load before a source is added; fix it first")?;
    let planned = match what {
        AddWhat::Apt {
            line, key, arch, ..
        } => apt::plan(&line, key, arch, common, &current)?,
        AddWhat::Files { url, .. } => others::files(&url, common)?,
        AddWhat::Dir { path, .. } => others::dir(&path, common)?,
        AddWhat::Puavo {
            image_dir,
            series_config,
            upstream,
            series,
            urlbase,
            no_torrents,
            ..
        } => others::puavo(
            others::PuavoFlags {
                image_dir,
                series_config,
                upstream,
                series,
                urlbase,
                no_torrents,
            },
            common,
        )?,
    };
    if planned.id.is_empty() {
        bail!("no id can be made from that: give one with --id");
    }
    if current.source(&planned.id).is_some() {
        bail!(
            "the id `{}` is taken by a source in {}: give this one another with --id",
            planned.id,
            doc.file().display()
        );
    }
    let id = planned.id.clone();
    doc.append_source(planned.table)?;
    let edited = doc.validate().map_err(|e| {
        anyhow!(
            "the new source `{id}` (mount `{}`) is not valid: {e}",
            planned.mount
        )
    })?;
    // What `check-config` and `serve` would say that they do not say now: an error (two
    // sources publishing one path, a key that does not load…) refuses the source, a warning
    // (a folder not there yet) is printed.
    let before: Vec<String> = preflight::check(&current)
        .into_iter()
        .map(|f| f.message)
        .collect();
    let mut warnings = Vec::new();
    for finding in preflight::check(&edited) {
        if before.contains(&finding.message) {
            continue;
        }
        match finding.severity {
            Severity::Error => bail!("{}", finding.message),
            _ => warnings.push(finding.message),
        }
    }
    Ok((Added { id, warnings }, edited))
}

/// Prints what was added, the lines its clients use, and the next commands.
fn report(added: &Added, config: &Config) {
    let Some(source) = config.source(&added.id) else {
        return;
    };
    let mount = if source.mount.is_empty() {
        "/"
    } else {
        source.mount.as_str()
    };
    println!(
        "added source `{}` ({}) at mount {mount} to {}",
        source.id,
        source.kind.name(),
        config.file.display()
    );
    for warning in &added.warnings {
        println!("warning: {warning}");
    }
    let base = format!("{}{}/", base_url(config), source.mount);
    if let SourceKind::Apt(apt) = &source.kind {
        // The lines `mirrorbox sources-list` and the status page show.
        let lines = apt.client_lines(&base);
        println!("clients use (sources.list):");
        for line in &lines.one_line {
            println!("  {line}");
        }
        for note in &lines.notes {
            println!("  ({note})");
        }
    } else {
        println!("clients use: {base}");
    }
    let config_flag = config_flag(config);
    println!("next: mirrorbox sync{config_flag} {}", source.id);
    println!(
        "A running `mirrorbox serve` reads the configuration at start: restart it to serve the new source."
    );
}

/// The server's first listener (HTTPS first, as `sources-list` takes it) as clients would write it (`<this host>` for a wildcard
/// address).
fn base_url(config: &Config) -> String {
    let (scheme, addr) = match (config.server.https.first(), config.server.http.first()) {
        (Some(addr), _) => ("https", addr),
        (None, Some(addr)) => ("http", addr),
        (None, None) => return "http://<this host>".into(),
    };
    let host = match addr {
        SocketAddr::V4(a) if a.ip().is_unspecified() => "<this host>".to_string(),
        SocketAddr::V6(a) if a.ip().is_unspecified() => "<this host>".to_string(),
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let default_port = if scheme == "http" { 80 } else { 443 };
    if addr.port() == default_port {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}:{}", addr.port())
    }
}

/// ` --config FILE` unless the commands find the file on their own.
fn config_flag(config: &Config) -> String {
    let found = ConfigArg { config: None }.resolve();
    if found == config.file {
        String::new()
    } else {
        format!(
            " --config {}",
            super::init::shell_word(&config.file.to_string_lossy())
        )
    }
}
