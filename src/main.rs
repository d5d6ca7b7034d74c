//! The `mirrorbox` binary: parse arguments, set up logging, run the command.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() {
    let cli = mirrorbox::cli::Cli::parse();
    if !matches!(cli.command, mirrorbox::cli::Command::Serve { .. }) {
        // A listing piped into `head` ends quietly, as other tools do, instead of a panic on
        // the closed pipe. The server keeps SIGPIPE ignored: a client closing its socket must
        // not end the process.
        // SAFETY: resetting a signal to its default action before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let level = match i16::from(cli.verbose) - i16::from(cli.quiet) {
        i16::MIN..=-2 => "error",
        -1 => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_env("MIRRORBOX_LOG")
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},h2=warn,hyper=warn,rustls=warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match mirrorbox::cli::run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("mirrorbox: {e:#}");
            std::process::exit(2);
        }
    }
}
