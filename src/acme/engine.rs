//! The ACME engine: loads the stored certificate, orders one when there is none or it is due,
//! renews in the background and retries with back-off. (Placeholder: only the entry point.)

use std::path::Path;
use std::sync::Arc;

use super::{AcmeSettings, AcmeState};

/// Installs the stored certificate (if it is still good for the configured domains) into
/// `state`, then spawns, on the current tokio runtime, the task that orders and renews.
/// Called by `serve` once the listeners are bound, because challenges are answered by them.
pub fn start(
    settings: &AcmeSettings,
    data_dir: &Path,
    state: Arc<AcmeState>,
) -> anyhow::Result<()> {
    let _ = (settings, data_dir, state);
    Ok(())
}
