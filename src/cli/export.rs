//! `mirrorbox export`: write the current snapshots to an offline medium, or check one.

use std::path::Path;

use crate::config::Config;
use crate::export;

use super::check_sources;

/// Exports, printing what changed on the medium; exit status 0.
pub(crate) fn run(config: Config, dir: &Path, sources: Vec<String>) -> anyhow::Result<i32> {
    check_sources(&config, &sources)?;
    let report = export::export(&config, dir, &sources)?;
    println!("{report}");
    Ok(0)
}

/// Re-hashes the medium in `dir`; exit status 1 if a file is damaged or missing, or an export
/// was interrupted.
pub(crate) fn check(dir: &Path) -> anyhow::Result<i32> {
    let report = export::check(dir)?;
    println!("{report}");
    Ok(if report.is_clean() { 0 } else { 1 })
}
