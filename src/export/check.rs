//! `export --check`: re-hash every file of a medium against its manifest.

use std::io;
use std::path::Path;

use anyhow::bail;

use crate::store::hash_file;

use super::guard::{self, Standing};
use super::medium::{self, MANIFEST_NAME, MARKER_NAME};
use super::report::CheckReport;

/// Checks the medium in `dir`. An error only when there is nothing to check against.
pub fn check(dir: &Path) -> anyhow::Result<CheckReport> {
    let manifest = medium::read(dir, MANIFEST_NAME)?;
    let marker = medium::read(dir, MARKER_NAME)?;
    let mut report = CheckReport {
        interrupted: marker.as_ref().map(|m| m.created),
        ..CheckReport::default()
    };
    let Some(manifest) = manifest else {
        if marker.is_some() {
            // The first export into this folder never finished: nothing to check, but say so.
            return Ok(report);
        }
        bail!(
            "{} has no {MANIFEST_NAME}: no mirrorbox export finished there",
            dir.display()
        );
    };
    for file in &manifest.files {
        report.files += 1;
        report.bytes += file.size;
        // Never through a link, and never opening a FIFO or a device (a FIFO would hang).
        match guard::standing(dir, &file.path)? {
            Standing::Absent => {
                report.missing.push(file.path.clone());
                continue;
            }
            Standing::Foreign { at, kind } if at == file.path => {
                report
                    .damaged
                    .push(format!("{}: {kind}, not a regular file", file.path));
                continue;
            }
            Standing::Foreign { at, kind } => {
                report
                    .damaged
                    .push(format!("{}: {at} is {kind}", file.path));
                continue;
            }
            Standing::Plain(meta) if !meta.is_file() => {
                let kind = guard::kind_of(&meta);
                report
                    .damaged
                    .push(format!("{}: {kind}, not a regular file", file.path));
                continue;
            }
            Standing::Plain(_) => {}
        }
        match hash_file(&dir.join(&file.path)) {
            Ok((_, size)) if size != file.size => report.damaged.push(format!(
                "{}: {size} bytes, the manifest says {}",
                file.path, file.size
            )),
            Ok((sha256, _)) if sha256 != file.sha256 => report.damaged.push(format!(
                "{}: sha256 {sha256}, the manifest says {}",
                file.path, file.sha256
            )),
            Ok(_) => {}
            Err(e) if e.source.kind() == io::ErrorKind::NotFound => {
                report.missing.push(file.path.clone())
            }
            Err(e) => report.damaged.push(format!("{}: {e}", file.path)),
        }
    }
    Ok(report)
}
