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

/// The kinds a dry run can plan: remote kinds whose payload downloads go through
/// `Fetcher::payload`, and `dir`, whose ingest into a scratch store only hashes. A Puavo
/// source builds deltas from the images it stores, which a plan cannot do without them.
const PLANNED_KINDS: &[&str] = &["apt", "files", "dir"];

/// `mirrorbox sync --dry-run [SOURCE…]`: one line per source saying what a sync would fetch.
/// Nothing is stored and the data-dir lock is not taken, so it runs beside a server. Sources
/// of kinds that cannot be planned are refused when named, and noted when all are asked.
pub(crate) fn dry_run(config: Config, sources: Vec<String>) -> anyhow::Result<i32> {
    check_sources(&config, &sources)?;
    for id in &sources {
        let kind = config.source(id).map_or("?", |s| s.kind.name());
        if !PLANNED_KINDS.contains(&kind) {
            anyhow::bail!(
                "`{id}` is a `{kind}` source: `sync --dry-run` plans {} sources only",
                PLANNED_KINDS.join(", ")
            );
        }
    }
    let named = !sources.is_empty();
    let chosen: Vec<_> = (config.sources.iter())
        .filter(|source| !named || sources.contains(&source.id))
        .collect();
    // Sources are planned side by side (each is mostly one core's work: decoding and
    // parsing its indices), a few at a time; their lines come out in the configuration's order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let plans: Vec<std::sync::Mutex<Option<_>>> =
        chosen.iter().map(|_| std::sync::Mutex::new(None)).collect();
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers.min(chosen.len()) {
            scope.spawn(|| loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(source) = chosen.get(n) else { break };
                if !PLANNED_KINDS.contains(&source.kind.name()) {
                    continue;
                }
                let plan = crate::sync::fetch::dry_run::plan(
                    &config.data_dir,
                    &config.store,
                    &source.id,
                    source.kind.get(),
                );
                *plans[n].lock().expect("not poisoned") = Some(plan);
            });
        }
    });
    let mut code = 0;
    for (source, plan) in chosen.iter().zip(plans) {
        match plan.into_inner().expect("not poisoned") {
            None => println!(
                "{}: not planned (a `{}` source; `sync --dry-run` plans {} sources only)",
                source.id,
                source.kind.name(),
                PLANNED_KINDS.join(", ")
            ),
            Some(Ok(plan)) => println!("{}: {plan}", source.id),
            Some(Err(e)) => {
                let message = crate::http::redact::credentials(&e.to_string());
                println!("{}: FAILED: {message}", source.id);
                code = 1;
            }
        }
    }
    Ok(code)
}
