//! `mirrorbox sync [SOURCE…]`: sync now, here or in the running server; exit status 0 only
//! if every source succeeded in full.

use crate::admin;
use crate::config::Config;
use crate::sync::SyncReport;

use super::check_sources;
use super::remote::{ask_and_print, open_or_busy};

pub(crate) fn run(config: Config, sources: Vec<String>) -> anyhow::Result<i32> {
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
            return ask_and_print(&config, &admin::Request::Sync { sources }, &expected);
        }
    };
    let ids: Vec<String> = if sources.is_empty() {
        app.config.sources.iter().map(|s| s.id.clone()).collect()
    } else {
        sources
    };
    // Sources sync at once, as in the server: each waits on its own upstream.
    let results: Vec<(String, Result<SyncReport, String>)> = std::thread::scope(|scope| {
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
                println!("{id}: {report}");
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
