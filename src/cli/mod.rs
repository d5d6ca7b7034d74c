//! The command line (see the README): [`Cli`] says what can be typed, [`run`] hands each
//! command to its module, one module per command or pair of close commands, each of which
//! prints its own output and returns the exit status.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::bail;
use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::config::Config;

mod add;
mod args;
mod check_config;
mod export;
mod init;
mod maintenance;
mod pin;
mod remote;
mod report;
mod serve;
mod snapshots;
mod sources_list;
mod sync;
mod tools;

pub use args::{AddCommon, AddWhat, Cli, Command, ConfigArg, SnapshotsAction};

/// The whole program: parse the arguments, set up logging, run the command. Returns the exit
/// status: the command's own, or 2 when it failed with an error (printed here).
pub fn main() -> i32 {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve { .. }) {
        // A listing piped into `head` ends quietly, as other tools do, instead of a panic on
        // the closed pipe. The server keeps SIGPIPE ignored: a client closing its socket must
        // not end the process.
        // SAFETY: resetting a signal to its default action before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("mirrorbox: {e:#}");
            2
        }
    }
}

/// Libraries whose own info lines (a squashfs reader's "Reading Inodes" for every image,
/// HTTP/2 and TLS internals) would bury ours: they log at warnings unless named in
/// `$MIRRORBOX_LOG`.
const QUIET_LIBRARIES: &str = "h2=warn,hyper=warn,rustls=warn,backhand=warn";

/// Logs go to stderr, at a level from `-v`/`-q` unless `$MIRRORBOX_LOG` says otherwise; the
/// libraries' own chatter stays at warnings.
fn init_logging(verbose: u8, quiet: u8) {
    let level = match i16::from(verbose) - i16::from(quiet) {
        i16::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let explicit = std::env::var("MIRRORBOX_LOG").ok();
    let filter = log_filter(level, explicit.as_deref());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// The filter for `level`, or for an explicit `$MIRRORBOX_LOG` (falling back to `level` if
/// it does not parse). [`QUIET_LIBRARIES`] come first, so a directive of `explicit` for the
/// same target replaces theirs: `MIRRORBOX_LOG=debug` keeps the libraries quiet,
/// `MIRRORBOX_LOG=info,backhand=info` shows that library's lines.
fn log_filter(level: &str, explicit: Option<&str>) -> EnvFilter {
    let fallback = || EnvFilter::new(format!("{level},{QUIET_LIBRARIES}"));
    match explicit {
        Some(directives) if !directives.trim().is_empty() => {
            EnvFilter::try_new(format!("{QUIET_LIBRARIES},{directives}"))
                .unwrap_or_else(|_| fallback())
        }
        _ => fallback(),
    }
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

/// Runs one parsed command; the exit status, or an error for exit status 2.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Serve {
            config,
            no_initial_sync,
        } => serve::run(config.load()?, !no_initial_sync),
        Command::Sync {
            config,
            dry_run: false,
            sources,
        } => sync::run(config.load()?, sources),
        Command::Sync {
            config,
            dry_run: true,
            sources,
        } => sync::dry_run(config.load()?, sources),
        Command::Snapshots {
            config,
            source,
            action: None,
        } => snapshots::list(config.load()?, source),
        Command::Snapshots {
            config: outer,
            action:
                Some(SnapshotsAction::Rm {
                    config,
                    source,
                    snapshot,
                }),
            ..
        } => {
            // `--config` may stand before or after `rm`.
            let config = ConfigArg {
                config: config.config.or(outer.config),
            };
            snapshots::remove(config.load()?, &source, &snapshot)
        }
        Command::Verify { config, sources } => maintenance::verify(config.load()?, sources),
        Command::Gc(config) => maintenance::gc(config.load()?),
        Command::CheckConfig { config, strict } => check_config::run(config.load()?, strict),
        Command::SourcesList {
            config,
            source,
            url,
            deb822,
        } => sources_list::run(
            &config,
            source.as_deref(),
            &sources_list::Format {
                url: url.as_deref(),
                deb822,
            },
        )
        .map(i32::from),
        Command::Diff {
            config,
            source,
            a,
            b,
        } => snapshots::diff(config.load()?, &source, &a, &b),
        Command::Pin {
            config,
            source,
            snapshot,
        } => pin::run(config.load()?, &source, Some(snapshot)),
        Command::Unpin { config, source } => pin::run(config.load()?, &source, None),
        Command::Export {
            check: true, dir, ..
        } => export::check(&dir),
        Command::Export {
            config,
            dir,
            sources,
            check: false,
        } => export::run(config.load()?, &dir, sources),
        Command::Init { data_dir, file } => init::run(file, data_dir),
        Command::Add { config, what } => add::run(&config, what),
        Command::ImportPom { file, data_dir } => tools::import_pom(&file, &data_dir),
        Command::Rdiff {
            old,
            new,
            delta,
            block_size,
        } => tools::rdiff(&old, &new, &delta, block_size),
    }
}

/// Refuses source ids the configuration does not know, naming the ones it does.
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

#[cfg(test)]
mod log_tests {
    use super::log_filter;
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;

    /// Whether `target` logs at `level` under the filter.
    fn enabled(filter: tracing_subscriber::EnvFilter, target: &str, level: Level) -> bool {
        let subscriber = tracing_subscriber::registry().with(filter);
        tracing::subscriber::with_default(subscriber, || match (target, level) {
            ("backhand", Level::INFO) => tracing::enabled!(target: "backhand", Level::INFO),
            ("backhand", Level::WARN) => tracing::enabled!(target: "backhand", Level::WARN),
            ("mirrorbox", Level::INFO) => tracing::enabled!(target: "mirrorbox", Level::INFO),
            ("mirrorbox", Level::DEBUG) => tracing::enabled!(target: "mirrorbox", Level::DEBUG),
            _ => unreachable!("add the case"),
        })
    }

    #[test]
    fn libraries_stay_quiet_unless_named() {
        assert!(enabled(log_filter("info", None), "mirrorbox", Level::INFO));
        assert!(!enabled(log_filter("info", None), "backhand", Level::INFO));
        assert!(enabled(log_filter("info", None), "backhand", Level::WARN));
        assert!(!enabled(log_filter("trace", None), "backhand", Level::INFO));
        let debug = Some("debug");
        assert!(enabled(
            log_filter("info", debug),
            "mirrorbox",
            Level::DEBUG
        ));
        assert!(!enabled(log_filter("info", debug), "backhand", Level::INFO));
        let named = Some("info,backhand=info");
        assert!(enabled(log_filter("warn", named), "backhand", Level::INFO));
        // Not a filter: the level from the flags.
        let broken = Some("info,=[=");
        assert!(!enabled(
            log_filter("warn", broken),
            "mirrorbox",
            Level::INFO
        ));
    }
}
