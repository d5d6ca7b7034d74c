//! The command line (see the README): argument parsing and one function per subcommand.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};

use crate::admin;
use crate::app::App;
use crate::config::Config;
use crate::manifest::Manifest;
use crate::store::verify::VerifyReport;
use crate::store::{DataLock, LockError};
use crate::view::SNAPSHOT_ID_CHARS;

#[derive(Parser, Debug)]
#[command(
    name = "mirrorbox",
    version,
    about = "Keeps mirrors of upstream repositories and serves them over HTTP and HTTPS"
)]
pub struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (repeat for less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file [default: $MIRRORBOX_CONFIG, config/mirrorbox.toml, /etc/mirrorbox/mirrorbox.toml]
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server and the sync scheduler (foreground).
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Do not scan `dir` sources at start-up; every source keeps to its schedule.
        #[arg(long)]
        no_initial_sync: bool,
    },
    /// Sync the named sources (all if none) now; exit status 0 only if every one succeeded.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        sources: Vec<String>,
    },
    /// List snapshots: id, time, files, bytes, current.
    Snapshots {
        #[command(flatten)]
        config: ConfigArg,
        source: Option<String>,
    },
    /// Re-hash stored objects; report and quarantine damaged ones.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        sources: Vec<String>,
    },
    /// Remove objects no retained snapshot names.
    Gc(ConfigArg),
    /// Validate the configuration and print what would be served where.
    CheckConfig(ConfigArg),
    /// What changed between two snapshots of a source: added, removed and changed paths with
    /// sizes. A and B are snapshot ids (a prefix of at least 4 digits) or `current`.
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
        a: String,
        b: String,
    },
    /// Publish an older retained snapshot as the source's current one (a rollback); syncs go
    /// on and are retained, but current stays pinned until `unpin`. apt clients ignore an
    /// InRelease older than one they have seen: roll those back with the snapshot's stable URL
    /// (printed), not with a pin.
    Pin {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
        snapshot: String,
    },
    /// Publish the newest snapshot again after `pin`.
    Unpin {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
    },
    /// Print a mirrorbox configuration made from a proxmox-offline-mirror configuration file
    /// (`mirror:` sections become `apt` sources).
    ImportPom {
        /// The proxmox-offline-mirror configuration (e.g. /etc/proxmox-offline-mirror.cfg).
        file: PathBuf,
        /// data_dir of the printed configuration.
        #[arg(long, default_value = "/var/lib/mirrorbox")]
        data_dir: String,
    },
    /// Write the librsync delta that turns OLD into NEW (what `rdiff signature` + `rdiff delta`
    /// make; apply it with `rdiff patch OLD DELTA NEW`).
    Rdiff {
        old: PathBuf,
        new: PathBuf,
        delta: PathBuf,
        /// Bytes per indexed block of OLD.
        #[arg(long, default_value_t = 128)]
        block_size: usize,
    },
}

impl ConfigArg {
    /// `--config`, else `$MIRRORBOX_CONFIG`, else `config/mirrorbox.toml`, else `/etc/…`.
    pub fn resolve(&self) -> PathBuf {
        if let Some(path) = &self.config {
            return path.clone();
        }
        if let Some(path) = std::env::var_os("MIRRORBOX_CONFIG") {
            return PathBuf::from(path);
        }
        let local = PathBuf::from("config/mirrorbox.toml");
        if local.exists() {
            return local;
        }
        PathBuf::from("/etc/mirrorbox/mirrorbox.toml")
    }

    pub fn load(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&self.resolve())?)
    }
}

pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve {
            config,
            no_initial_sync,
        } => {
            let config = config.load()?;
            // The same checks as check-config: errors stop here, before anything is served.
            for warning in crate::preflight::run(&config)? {
                tracing::warn!("{warning}");
            }
            crate::serve::run(config, !no_initial_sync)?;
            Ok(0)
        }
        Command::Sync { config, sources } => sync(config.load()?, sources),
        Command::Snapshots { config, source } => snapshots(config.load()?, source),
        Command::Verify { config, sources } => verify(config.load()?, sources),
        Command::Gc(config) => gc(config.load()?),
        Command::CheckConfig(config) => check_config(config.load()?),
        Command::Diff {
            config,
            source,
            a,
            b,
        } => diff(config.load()?, &source, &a, &b),
        Command::Pin {
            config,
            source,
            snapshot,
        } => pin(config.load()?, &source, Some(snapshot)),
        Command::Unpin { config, source } => pin(config.load()?, &source, None),
        Command::ImportPom { file, data_dir } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let pom = crate::import_pom::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            let rendered = crate::import_pom::render(&pom, &data_dir);
            // Never print something check-config would refuse.
            Config::parse(&rendered, std::path::Path::new("imported configuration"))
                .with_context(|| format!("{} does not convert cleanly", file.display()))?;
            print!("{rendered}");
            Ok(0)
        }
        Command::Rdiff {
            old,
            new,
            delta,
            block_size,
        } => {
            let file = std::fs::File::create(&delta)
                .with_context(|| format!("cannot create {}", delta.display()))?;
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            let params = crate::puavo::rdiff::Params {
                block: block_size,
                threads: 0,
            };
            let stats = crate::puavo::rdiff::delta_files(&old, &new, params, &mut out)
                .with_context(|| format!("delta of {} and {}", old.display(), new.display()))?;
            std::io::Write::flush(&mut out)?;
            tracing::info!(
                copied = stats.copied,
                literal = stats.literal,
                delta = stats.delta_bytes,
                "delta written"
            );
            Ok(0)
        }
    }
}

fn check_sources(config: &Config, sources: &[String]) -> anyhow::Result<()> {
    for id in sources {
        if config.source(id).is_none() {
            let known: Vec<&str> = config.sources.iter().map(|s| s.id.as_str()).collect();
            bail!(
                "no source `{id}` in {} (known: {})",
                config.file.display(),
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// Opens the store for this process, or says that a server holds it.
fn open_or_busy(config: Config) -> anyhow::Result<Result<App, Config>> {
    match App::open(config.clone()) {
        Ok(app) => Ok(Ok(app)),
        Err(e) if matches!(e.downcast_ref::<LockError>(), Some(LockError::Busy { .. })) => {
            Ok(Err(config))
        }
        Err(e) => Err(e),
    }
}

/// Asks the server that holds the data directory. A complete answer comes back as `Ok`; an
/// answer cut short (the server died mid-call) is reported here, with what is known of the
/// outcome, and becomes exit status 1 (`Err(1)`): it must never read as success.
/// `expected`: the sources a sync was asked for, to name those that did not answer.
fn ask_server(
    config: &Config,
    request: &admin::Request,
    expected: &[String],
) -> anyhow::Result<Result<Vec<admin::Reply>, i32>> {
    let error = match admin::call(&config.data_dir, request) {
        Ok(replies) => return Ok(Ok(replies)),
        Err(error) => error,
    };
    match &error {
        admin::CallError::Truncated { replies, .. } => {
            print_replies(replies);
            eprintln!("mirrorbox: {error}");
            let unanswered: Vec<&str> = expected
                .iter()
                .filter(|id| !replies.iter().any(|r| r.source.as_ref() == Some(*id)))
                .map(String::as_str)
                .collect();
            if !unanswered.is_empty() {
                eprintln!(
                    "mirrorbox: no outcome for: {} (each either published a complete snapshot before the server went away, or left the previous one published)",
                    unanswered.join(", ")
                );
            }
            Ok(Err(1))
        }
        _ => Err(error.into()),
    }
}

fn print_replies(replies: &[admin::Reply]) -> i32 {
    let mut code = 0;
    for reply in replies {
        match (&reply.source, &reply.report) {
            (Some(source), Some(report)) => {
                println!("{source}: {}", describe_sync(report));
                if report.partial {
                    code = 1;
                }
            }
            (Some(source), None) => println!("{source}: FAILED: {}", reply.message),
            (None, _) => println!("{}", reply.message),
        }
        if !reply.ok {
            code = 1;
        }
    }
    code
}

fn describe_sync(report: &crate::sync::SyncReport) -> String {
    let mut text = format!(
        "{}{} snapshot {} ({} files, {} bytes; stored {} new files, {} bytes)",
        if report.partial {
            "PARTLY FAILED: "
        } else {
            ""
        },
        match (report.changed, report.pinned) {
            (true, false) => "published",
            (true, true) => "retained (pinned, not published)",
            (false, _) => "unchanged,",
        },
        report.snapshot.as_deref().unwrap_or("-"),
        report.counts.files,
        report.counts.bytes,
        report.counts.files_stored,
        report.counts.bytes_stored
    );
    for problem in &report.problems {
        text.push_str(&format!("\n  warning: {problem}"));
    }
    text
}

pub fn describe_verify(report: &VerifyReport) -> String {
    let mut text = format!(
        "verified {} objects, {} bytes: {} damaged (quarantined), {} problems",
        report.objects,
        report.bytes,
        report.damaged.len(),
        report.missing.len()
    );
    for id in &report.damaged {
        text.push_str(&format!("\n  damaged: {id}"));
    }
    for problem in &report.missing {
        text.push_str(&format!("\n  {problem}"));
    }
    text
}

fn sync(config: Config, sources: Vec<String>) -> anyhow::Result<i32> {
    check_sources(&config, &sources)?;
    crate::sync::fetch::enable_progress(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let app = match open_or_busy(config)? {
        Ok(app) => app,
        Err(config) => {
            tracing::info!("a server holds the data directory; asking it to sync");
            let expected: Vec<String> = if sources.is_empty() {
                config.sources.iter().map(|s| s.id.clone()).collect()
            } else {
                sources.clone()
            };
            return Ok(
                match ask_server(&config, &admin::Request::Sync { sources }, &expected)? {
                    Ok(replies) => print_replies(&replies),
                    Err(code) => code,
                },
            );
        }
    };
    let ids: Vec<String> = if sources.is_empty() {
        app.config.sources.iter().map(|s| s.id.clone()).collect()
    } else {
        sources
    };
    // Sources sync at once, as in the server: each waits on its own upstream.
    let results: Vec<(String, Result<crate::sync::SyncReport, String>)> =
        std::thread::scope(|scope| {
            let app = &app;
            let runs: Vec<_> = ids
                .into_iter()
                .map(|id| scope.spawn(move || (id.clone(), app.sync_source(&id))))
                .collect();
            runs.into_iter()
                .map(|run| {
                    run.join()
                        .unwrap_or_else(|_| ("?".into(), Err("sync thread panicked".into())))
                })
                .collect()
        });
    let mut code = 0;
    for (id, result) in results {
        match result {
            Ok(report) => {
                println!("{id}: {}", describe_sync(&report));
                if report.partial {
                    code = 1;
                }
            }
            Err(message) => {
                println!("{id}: FAILED: {message}");
                code = 1;
            }
        }
    }
    Ok(code)
}

fn verify(config: Config, sources: Vec<String>) -> anyhow::Result<i32> {
    check_sources(&config, &sources)?;
    let app = match open_or_busy(config)? {
        Ok(app) => app,
        Err(config) => {
            return Ok(
                match ask_server(&config, &admin::Request::Verify { sources }, &[])? {
                    Ok(replies) => print_replies(&replies),
                    Err(code) => code,
                },
            );
        }
    };
    let report = app.verify(&sources)?;
    println!("{}", describe_verify(&report));
    Ok(if report.is_clean() { 0 } else { 1 })
}

fn gc(config: Config) -> anyhow::Result<i32> {
    let app = match open_or_busy(config)? {
        Ok(app) => app,
        Err(config) => {
            return Ok(match ask_server(&config, &admin::Request::Gc, &[])? {
                Ok(replies) => print_replies(&replies),
                Err(code) => code,
            });
        }
    };
    let report = app.gc()?;
    println!(
        "removed {} objects ({} bytes), kept {}",
        report.removed, report.bytes_freed, report.kept
    );
    Ok(0)
}

/// Reads refs without the lock: refs are replaced atomically, so a reader never sees half.
fn snapshots(config: Config, source: Option<String>) -> anyhow::Result<i32> {
    if let Some(id) = &source {
        check_sources(&config, std::slice::from_ref(id))?;
    }
    let store = crate::store::Store::open(&config.data_dir, &config.store)
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    println!(
        "{:<20} {:<16} {:<29} {:>8} {:>14}  current",
        "source", "snapshot", "created", "files", "bytes"
    );
    for s in &config.sources {
        if source.as_ref().is_some_and(|wanted| *wanted != s.id) {
            continue;
        }
        let refs = store.read_refs(&s.id)?;
        let mut ids = refs.snapshots.clone();
        if let Some(current) = refs.current {
            if !ids.contains(&current) {
                ids.push(current);
            }
        }
        for id in ids {
            let manifest = Manifest::load(&store, &id)?;
            println!(
                "{:<20} {:<16} {:<29} {:>8} {:>14}  {}",
                s.id,
                id.short(SNAPSHOT_ID_CHARS),
                crate::time::http_date(manifest.created),
                manifest.entries.len(),
                manifest.total_bytes(),
                if Some(id) == refs.current { "*" } else { "" }
            );
        }
    }
    Ok(0)
}

fn diff(config: Config, source: &str, a: &str, b: &str) -> anyhow::Result<i32> {
    check_sources(&config, &[source.to_string()])?;
    let store = crate::store::Store::open(&config.data_dir, &config.store)
        .with_context(|| format!("cannot open data directory {}", config.data_dir.display()))?;
    let refs = store.read_refs(source)?;
    let load = |wanted: &str| -> anyhow::Result<(crate::store::ObjectId, Manifest)> {
        let id = if wanted == "current" {
            refs.current
                .ok_or_else(|| anyhow::anyhow!("source `{source}` has no snapshot yet"))?
        } else {
            crate::pin::resolve(&refs, source, wanted)?
        };
        Ok((id, Manifest::load(&store, &id)?))
    };
    let (a_id, old) = load(a)?;
    let (b_id, new) = load(b)?;
    let before: std::collections::HashMap<&str, &crate::manifest::Entry> =
        old.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let after: std::collections::HashMap<&str, &crate::manifest::Entry> =
        new.entries.iter().map(|e| (e.path.as_str(), e)).collect();
    let mut lines = Vec::new();
    let (mut added, mut removed, mut changed) = (0, 0, 0);
    for entry in &new.entries {
        match before.get(entry.path.as_str()) {
            None => {
                added += 1;
                lines.push((
                    entry.path.clone(),
                    format!("+ {} ({} bytes)", entry.path, entry.size),
                ));
            }
            Some(prev) if prev.object != entry.object => {
                changed += 1;
                lines.push((
                    entry.path.clone(),
                    format!("~ {} ({} → {} bytes)", entry.path, prev.size, entry.size),
                ));
            }
            Some(_) => {}
        }
    }
    for entry in &old.entries {
        if !after.contains_key(entry.path.as_str()) {
            removed += 1;
            lines.push((
                entry.path.clone(),
                format!("- {} ({} bytes)", entry.path, entry.size),
            ));
        }
    }
    lines.sort();
    println!(
        "{source}: {} → {}",
        a_id.short(SNAPSHOT_ID_CHARS),
        b_id.short(SNAPSHOT_ID_CHARS)
    );
    for (_, line) in &lines {
        println!("{line}");
    }
    println!(
        "{added} added, {removed} removed, {changed} changed ({} → {} bytes)",
        old.total_bytes(),
        new.total_bytes()
    );
    Ok(0)
}

fn pin(config: Config, source: &str, snapshot: Option<String>) -> anyhow::Result<i32> {
    check_sources(&config, &[source.to_string()])?;
    let current = match open_or_busy(config)? {
        Ok(app) => app.set_pin(source, snapshot.as_deref())?,
        Err(config) => {
            let request = admin::Request::Pin {
                source: source.to_string(),
                snapshot: snapshot.clone(),
            };
            let replies = match ask_server(&config, &request, &[])? {
                Ok(replies) => replies,
                Err(code) => return Ok(code),
            };
            match replies.first() {
                Some(reply) if reply.ok => reply.message.clone(),
                Some(reply) => bail!("{}", reply.message),
                None => bail!("the server gave no answer"),
            }
        }
    };
    match snapshot {
        Some(_) => println!(
            "{source}: pinned to snapshot {current}; new syncs are retained but not published until `mirrorbox unpin {source}`.
             apt clients that already saw a newer InRelease keep it: point them at /.snapshots/{source}/{current}/ to roll them back."
        ),
        None => println!("{source}: unpinned; current snapshot {current}"),
    }
    Ok(0)
}

fn check_config(config: Config) -> anyhow::Result<i32> {
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
        let mount = if s.mount.is_empty() { "/" } else { &s.mount };
        println!(
            "source {} ({}): served at {mount}/, keep {}, {schedule}",
            s.id,
            s.kind.name(),
            s.keep
        );
        for line in s.kind.describe() {
            println!("  {line}");
        }
    }
    for rule in &config.access {
        let path = if rule.path.is_empty() {
            "/"
        } else {
            &rule.path
        };
        let list = |nets: &[ipnet::IpNet]| {
            nets.iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(" ")
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
        println!("access {path}: {}", parts.join("; "));
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
