//! `mirrorbox serve`: the server, the scheduler, the admin socket and (with `[server.acme]`)
//! the ACME engine in one process, with signals: SIGTERM/SIGINT shut down gracefully, SIGHUP
//! reloads the TLS certificate files (an ACME certificate is the engine's to swap), the
//! htpasswd files of `[[access]]` rules and the view (and logs an error if the config file's
//! `[[access]]` rules changed: those need a restart).

use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

use crate::acme::AcmeState;
use crate::app::App;
use crate::config::Config;
use crate::http::access::Access;
use crate::http::certificates::Certificates;
use crate::http::server::{self, Listeners};
use crate::http::tls::ReloadableCert;
use crate::scheduler::Scheduler;

pub fn run(config: Config, initial_sync: bool) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("mirrorbox")
        .build()?;
    runtime.block_on(serve(config, initial_sync))
}

async fn serve(config: Config, initial_sync: bool) -> anyhow::Result<()> {
    for warning in crate::preflight::acme_warnings(&config) {
        tracing::warn!(target: "mirrorbox::acme", "{warning}");
    }
    let certificates = match (&config.server.tls, &config.server.acme) {
        (_, Some(acme)) => Some(Certificates::Acme(Arc::new(AcmeState::new(
            acme.domains.clone(),
        )))),
        (Some(tls), None) if !config.server.https.is_empty() => {
            Some(Certificates::Files(Arc::new(ReloadableCert::load(tls)?)))
        }
        _ => None,
    };
    let app = tokio::task::spawn_blocking(move || -> anyhow::Result<App> {
        // First: a missing htpasswd file stops the start before the data directory is taken.
        let access = Access::load(&config)?;
        let mut app = App::open(config)?;
        app.access = access;
        app.serve_view()?;
        Ok(app)
    });
    let app = Arc::new(app.await??);
    let listeners = Listeners::bind(&app.config.server, certificates.as_ref()).await?;
    // The engine starts once the listeners that answer its challenges are bound.
    if let (Some(settings), Some(Certificates::Acme(acme))) =
        (&app.config.server.acme, &certificates)
    {
        crate::acme::start(settings, &app.config.data_dir, acme.clone())?;
        if acme.certificate().is_none() && !app.config.server.https.is_empty() {
            tracing::info!(
                domains = %settings.domains.join(" "),
                "HTTPS waits for the first certificate from the ACME server; handshakes fail until then, plain HTTP serves"
            );
        }
    }
    // The status page shows what each source holds alone, kept up to date from here on. The
    // first count is a pass over every retained snapshot's files: requests need not wait
    // for it (at a million paths it takes longer than the view).
    let counting = app.clone();
    tokio::task::spawn_blocking(move || counting.track_unique());
    let (stop, stopped) = watch::channel(false);
    let scheduler = Scheduler::new(app.clone());
    crate::admin::start(scheduler.clone(), &app.config.data_dir)?;
    scheduler.start(stopped.clone(), initial_sync);

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut hangup = signal(SignalKind::hangup())?;
    // Only now: a reload right after READY must find its handler in place.
    crate::notify::ready(&format!("serving {} sources", app.config.sources.len()));
    tokio::spawn(crate::notify::watchdog());
    let signals_app = app.clone();
    let signal_certificates = certificates.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = terminate.recv() => break,
                _ = interrupt.recv() => break,
                _ = hangup.recv() => {
                    tracing::info!("SIGHUP: reloading the certificate, htpasswd files and the view");
                    crate::notify::reloading();
                    match &signal_certificates {
                        Some(Certificates::Files(cert)) => match cert.reload() {
                            Ok(()) => tracing::info!("certificate reloaded"),
                            Err(e) => tracing::error!(error = %e, "certificate reload failed; the old one stays in use"),
                        },
                        Some(Certificates::Acme(_)) => tracing::info!(
                            "certificate: managed by ACME (renewed and swapped by the server), nothing to reload"
                        ),
                        None => {}
                    }
                    let app = signals_app.clone();
                    let _ = tokio::task::spawn_blocking(move || {
                        app.access.reload();
                        warn_if_access_rules_changed(&app.config);
                        if let Err(e) = app.refresh_view() {
                            tracing::error!(error = %e, "view reload failed");
                        }
                    }).await;
                    tracing::info!("SIGHUP: reload done");
                    crate::notify::ready("reloaded");
                }
            }
        }
        crate::notify::stopping();
        let _ = stop.send(true);
    });
    let state = Arc::new(crate::http::State {
        certificates,
        ..app.http_state()
    });
    server::serve(state, app.config.server.clone(), listeners, stopped).await?;
    let _ = std::fs::remove_file(crate::admin::socket_path(&app.config.data_dir));
    Ok(())
}

/// SIGHUP re-reads htpasswd files, not `[[access]]` rules: applying some of a changed
/// configuration and not the rest would leave a state nobody wrote. Say so, loudly, when the
/// file's rules are no longer the running ones.
fn warn_if_access_rules_changed(running: &Config) {
    match Config::load(&running.file) {
        Ok(new) if crate::config::access_rules_differ(&running.access, &new.access) => {
            tracing::error!(
                config = %running.file.display(),
                "access rules changed: restart mirrorbox to apply them"
            )
        }
        Ok(_) => {}
        Err(e) => tracing::error!(
            error = %e,
            "cannot re-read the configuration to compare its [[access]] rules; the running rules stay"
        ),
    }
}
