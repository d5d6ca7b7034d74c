//! Commands that change the data directory (sync, verify, gc, pin) either open the store
//! themselves or, when a running server holds its lock, ask that server over the admin
//! socket. This module is that choice and the printing of the server's replies.

use crate::admin;
use crate::app::App;
use crate::config::Config;
use crate::store::LockError;

/// Opens the store for this process, or says that a server holds it (`Err(config)`, handed
/// back for the call to the server).
pub(crate) fn open_or_busy(config: Config) -> anyhow::Result<Result<App, Config>> {
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
pub(crate) fn ask_server(
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

/// Asks the server and prints its replies: the exit status of a command the server ran.
pub(crate) fn ask_and_print(
    config: &Config,
    request: &admin::Request,
    expected: &[String],
) -> anyhow::Result<i32> {
    Ok(match ask_server(config, request, expected)? {
        Ok(replies) => print_replies(&replies),
        Err(code) => code,
    })
}

/// Prints one line (or block) per reply; the exit status is 1 if any reply failed or any
/// sync only partly succeeded.
pub(crate) fn print_replies(replies: &[admin::Reply]) -> i32 {
    let mut code = 0;
    for reply in replies {
        match (&reply.source, &reply.report) {
            (Some(source), Some(report)) => {
                println!("{source}: {report}");
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
