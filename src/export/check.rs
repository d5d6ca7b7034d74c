//! `export --check`: re-hash every file of a medium against its manifest, opening only
//! regular files (a medium comes back from elsewhere: see `guard`).

use std::io;
use std::path::Path;

use anyhow::bail;

use crate::store::hash_file;

use super::guard::{self, Standing};
use super::medium::{self, MediumFile, MANIFEST_NAME, MARKER_NAME};
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
        match look_at(dir, file)? {
            Finding::Sound => {}
            Finding::Missing => report.missing.push(file.path.clone()),
            Finding::Damaged(why) => report.damaged.push(format!("{}: {why}", file.path)),
        }
    }
    Ok(report)
}

/// What `--check` finds at one file of the manifest.
enum Finding {
    Sound,
    Missing,
    /// Why the file is not the one the manifest lists.
    Damaged(String),
}

/// Hashes `file` on the medium, only if it is a regular file reached through real folders:
/// never through a link, and never opening a FIFO or a device (a FIFO would hang the check).
fn look_at(dir: &Path, file: &MediumFile) -> anyhow::Result<Finding> {
    match guard::standing(dir, &file.path)? {
        Standing::Absent => return Ok(Finding::Missing),
        Standing::Foreign { at, kind } if at == file.path => {
            return Ok(Finding::Damaged(format!("{kind}, not a regular file")))
        }
        Standing::Foreign { at, kind } => return Ok(Finding::Damaged(format!("{at} is {kind}"))),
        Standing::Plain(meta) if !meta.is_file() => {
            let kind = guard::kind_of(&meta);
            return Ok(Finding::Damaged(format!("{kind}, not a regular file")));
        }
        Standing::Plain(_) => {}
    }
    Ok(match hash_file(&dir.join(&file.path)) {
        Ok((_, size)) if size != file.size => {
            Finding::Damaged(format!("{size} bytes, the manifest says {}", file.size))
        }
        Ok((sha256, _)) if sha256 != file.sha256 => Finding::Damaged(format!(
            "sha256 {sha256}, the manifest says {}",
            file.sha256
        )),
        Ok(_) => Finding::Sound,
        Err(e) if e.source.kind() == io::ErrorKind::NotFound => Finding::Missing,
        Err(e) => Finding::Damaged(e.to_string()),
    })
}
