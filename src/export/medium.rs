//! What an export leaves on the medium besides the tree: its manifest, written last, and the
//! marker of an export in progress, written first. Both have the same shape (the files the
//! medium holds, or is about to hold), so an interrupted export says exactly which paths it
//! may have touched, and the next one can finish or clean them up.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

use crate::store::ObjectId;

use super::guard;

/// The manifest of a finished export, in the medium's top folder.
pub const MANIFEST_NAME: &str = ".mirrorbox-export.json";

/// Present while an export runs (and after one was interrupted): the plan it was carrying out.
pub const MARKER_NAME: &str = ".mirrorbox-export.incomplete";

/// Bumped when the medium's manifest changes incompatibly.
pub const FORMAT: u32 = 1;

/// What a medium holds: every file with its sha256, and where each source's files came from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediumManifest {
    pub format: u32,
    /// Unix seconds when the export started.
    pub created: i64,
    pub sources: Vec<MediumSource>,
    /// Sorted by path, unique.
    pub files: Vec<MediumFile>,
    /// In a marker only: paths of `files` where an interrupted export may have left other
    /// bytes than the ones listed (it planned others), so the medium's manifest no longer
    /// vouches for them. Sorted, unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tainted: Vec<String>,
}

/// One exported source: its snapshot and where it sits in the tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediumSource {
    pub id: String,
    /// As configured: `""` for the root, else `/a/b`.
    pub mount: String,
    pub snapshot: ObjectId,
}

/// One file of the medium.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MediumFile {
    /// Relative to the medium's top folder: the mount (without its leading `/`) and the path
    /// in the snapshot, so `file:///medium/<mount>/…` names what `http://host/<mount>/…` does.
    pub path: String,
    /// The source whose snapshot names it.
    pub source: String,
    pub sha256: ObjectId,
    pub size: u64,
    /// The file's modification time (unix seconds): the snapshot's Last-Modified.
    pub mtime: i64,
}

/// A path safe to join onto the medium's folder: relative, `/`-separated, no empty, `.` or
/// `..` segment, no NUL. A manifest read from a medium is outside data, and its paths decide
/// which files an export removes, so none may point outside the medium.
fn is_safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\0')
        && path
            .split('/')
            .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// A path a source's file may have on the medium: safe, and none of the medium's own names
/// (its manifest, its marker, a temp name), which the export writes and removes itself.
pub fn is_medium_path(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    is_safe_path(path)
        && path != MANIFEST_NAME
        && path != MARKER_NAME
        && !(name.starts_with('.') && name.ends_with(TEMP_SUFFIX))
}

const TEMP_SUFFIX: &str = ".mirrorbox-part";

/// Where a file is written before it is renamed to `target`: beside it, hidden, so a medium
/// pulled out mid-copy never holds a half file under a real name.
pub fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}{TEMP_SUFFIX}"))
}

/// The medium's manifest, or its marker: `None` if the file is not there. Its paths decide
/// what an export keeps, writes and removes, so each must be a path of a source's file.
pub fn read(dir: &Path, name: &str) -> anyhow::Result<Option<MediumManifest>> {
    let path = dir.join(name);
    if guard::look(dir, name)?.is_none() {
        return Ok(None);
    }
    let bytes = fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let manifest: MediumManifest =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is damaged", path.display()))?;
    if manifest.format != FORMAT {
        bail!(
            "{} has format {}, this mirrorbox reads format {FORMAT}",
            path.display(),
            manifest.format
        );
    }
    let paths = manifest.files.iter().map(|f| &f.path);
    if let Some(bad) = paths.chain(&manifest.tainted).find(|p| !is_medium_path(p)) {
        bail!(
            "{} names `{bad}`, which cannot be a file of the medium (not a plain relative path, or one of the medium's own names)",
            path.display(),
        );
    }
    Ok(Some(manifest))
}

/// Writes the manifest or marker atomically: temp file, fsync, rename, fsync of the folder.
pub fn write(dir: &Path, name: &str, manifest: &MediumManifest) -> anyhow::Result<()> {
    let target = dir.join(name);
    let temp = temp_path(&target);
    let bytes = serde_json::to_vec_pretty(manifest).expect("medium manifests serialize");
    let mut file = guard::create_new(&temp)?;
    let written = file
        .write_all(&bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| fs::rename(&temp, &target));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(e).with_context(|| format!("cannot write {}", target.display()));
    }
    sync_dir(dir)
}

/// Removes the marker once the manifest is in place.
pub fn remove(dir: &Path, name: &str) -> anyhow::Result<()> {
    let path = dir.join(name);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

/// Makes the renames and removals in `dir` durable.
pub fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    crate::atomic_file::sync_dir(dir)
        .with_context(|| format!("cannot fsync folder {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_safe() {
        assert!(is_safe_path("debian/dists/bookworm/InRelease"));
        for bad in ["", "/etc/passwd", "a/../../b", "a//b", "./a", "a/", "a\0b"] {
            assert!(!is_safe_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_manifest_naming_a_path_outside_the_medium_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let manifest = MediumManifest {
            format: FORMAT,
            created: 0,
            sources: vec![],
            files: vec![MediumFile {
                path: "../outside".into(),
                source: "s".into(),
                sha256: ObjectId([0; 32]),
                size: 0,
                mtime: 0,
            }],
            tainted: vec![],
        };
        write(dir.path(), MANIFEST_NAME, &manifest).unwrap();
        let error = read(dir.path(), MANIFEST_NAME).unwrap_err().to_string();
        assert!(error.contains("`../outside`"), "{error}");
        assert!(read(dir.path(), MARKER_NAME).unwrap().is_none());
    }

    #[test]
    fn a_manifest_that_is_a_link_is_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"{}").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            dir.path().join(MANIFEST_NAME),
        )
        .unwrap();
        let error = read(dir.path(), MANIFEST_NAME).unwrap_err().to_string();
        assert!(error.contains("is a symlink on the medium"), "{error}");
    }

    #[test]
    fn the_medium_own_names_are_not_files_of_a_source() {
        assert!(is_medium_path("m/.hidden") && is_medium_path("m/a.mirrorbox-part"));
        for own in [MANIFEST_NAME, MARKER_NAME, "m/.a.deb.mirrorbox-part"] {
            assert!(!is_medium_path(own), "{own}");
        }
    }

    #[test]
    fn temp_files_are_hidden_beside_their_target() {
        assert_eq!(
            temp_path(Path::new("m/pool/a.deb")),
            Path::new("m/pool/.a.deb.mirrorbox-part")
        );
    }
}
