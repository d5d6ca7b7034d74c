//! `mirrorbox import-pom` and `mirrorbox rdiff`: stand-alone tools that touch neither the data
//! directory nor a running server.

use std::path::Path;

use anyhow::Context;

use crate::config::Config;

/// Prints a mirrorbox configuration converted from a proxmox-offline-mirror one.
pub(crate) fn import_pom(file: &Path, data_dir: &str) -> anyhow::Result<i32> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let pom =
        crate::import_pom::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let rendered = crate::import_pom::render(&pom, data_dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    // Never print something check-config would refuse: neither a bad key nor two sources
    // publishing one path (the machine-dependent checks, such as keys, are check-config's).
    let config = Config::parse(&rendered, Path::new("imported configuration"))
        .with_context(|| format!("{} does not convert cleanly", file.display()))?;
    for finding in crate::config::collisions::check(&config) {
        if finding.severity == crate::preflight::Severity::Error {
            anyhow::bail!(
                "{} does not convert cleanly: {}",
                file.display(),
                finding.message
            );
        }
        tracing::warn!("{}", finding.message);
    }
    print!("{rendered}");
    Ok(0)
}

/// Writes the librsync delta from `old` to `new` into `delta`.
pub(crate) fn rdiff(
    old: &Path,
    new: &Path,
    delta: &Path,
    block_size: usize,
) -> anyhow::Result<i32> {
    let file = std::fs::File::create(delta)
        .with_context(|| format!("cannot create {}", delta.display()))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
    let params = crate::puavo::rdiff::Params {
        block: block_size,
        threads: 0,
    };
    let stats = crate::puavo::rdiff::delta_files(old, new, params, &mut out)
        .with_context(|| format!("delta of {} and {}", old.display(), new.display()))?;
    std::io::Write::flush(&mut out)?;
    tracing::info!(
        copied = stats.copied,
        literal = stats.literal,
        delta = stats.delta_bytes,
        "delta written"
    );
    Ok(0)
}
