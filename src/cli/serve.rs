//! `mirrorbox serve`: check the configuration against the machine, then run the server in
//! the foreground (see [`crate::serve`]).

use crate::config::Config;

pub(crate) fn run(config: Config, initial_sync: bool) -> anyhow::Result<i32> {
    // The same checks as check-config: errors stop here, before anything is served.
    for warning in crate::preflight::run(&config)? {
        tracing::warn!("{warning}");
    }
    // Clients that cannot use a source as configured (as check-config lists them).
    for finding in super::check_config::client_findings(&config) {
        if finding.warning {
            tracing::warn!("{}", finding.message);
        } else {
            tracing::info!("{}", finding.message);
        }
    }
    crate::serve::run(config, initial_sync)?;
    Ok(0)
}
