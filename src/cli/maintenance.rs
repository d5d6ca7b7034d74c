//! `mirrorbox verify` and `mirrorbox gc`: the store's upkeep, here or in the running server.

use crate::admin;
use crate::config::Config;

use super::check_sources;
use super::remote::{ask_and_print, open_or_busy};

/// Deep verify; exit status 1 if anything was damaged or missing.
pub(crate) fn verify(config: Config, sources: Vec<String>) -> anyhow::Result<i32> {
    check_sources(&config, &sources)?;
    let app = match open_or_busy(config)? {
        Ok(app) => app,
        Err(config) => return ask_and_print(&config, &admin::Request::Verify { sources }, &[]),
    };
    let report = app.verify(&sources)?;
    println!("{report}");
    Ok(if report.is_clean() { 0 } else { 1 })
}

pub(crate) fn gc(config: Config) -> anyhow::Result<i32> {
    let app = match open_or_busy(config)? {
        Ok(app) => app,
        Err(config) => return ask_and_print(&config, &admin::Request::Gc, &[]),
    };
    let report = app.gc()?;
    println!("{report}");
    Ok(0)
}
