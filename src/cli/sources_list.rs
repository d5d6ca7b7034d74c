//! `mirrorbox sources-list`: a placeholder until the command's own module lands.

use std::process::ExitCode;

use super::ConfigArg;

/// The sources.list lines clients use for this server's apt sources.
pub fn run(config: &ConfigArg, source: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = config.load()?;
    anyhow::bail!(
        "{}: sources-list{} is not available in this build",
        config.file.display(),
        source.map(|s| format!(" {s}")).unwrap_or_default()
    )
}
