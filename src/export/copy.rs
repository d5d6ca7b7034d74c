//! Putting one planned file on the medium: left alone when it is known to be there already,
//! otherwise copied from the store to a hidden temp name beside it, hashed on the way and
//! compared with the snapshot's sha256, fsynced, dated and only then renamed into place.

use std::collections::BTreeSet;
use std::fs::{self, File, FileTimes};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use sha2::{Digest, Sha256};

use crate::store::{hash_file, ObjectId, Store, CHUNK};

use super::guard;
use super::medium::{temp_path, MediumFile};

/// FAT keeps modification times to 2 seconds: a date this close is the same date.
const MTIME_SLACK: i64 = 2;

/// What became of one planned file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placed {
    /// Already there with the right bytes: not written.
    Kept,
    /// Written from the store.
    Copied,
}

/// Puts `file` under `root`. `trusted`: the medium's manifest says it holds these bytes at
/// this path and no interrupted export may have replaced them since, so size and date suffice;
/// otherwise a file of the right size is re-hashed before it is kept. `stale`: paths the
/// export removes, which may be moved out of the way first.
pub fn place(
    root: &Path,
    store: &Store,
    file: &MediumFile,
    trusted: bool,
    stale: &BTreeSet<String>,
) -> anyhow::Result<Placed> {
    let target = root.join(&file.path);
    if let Some(meta) = guard::look(root, &file.path)? {
        if meta.is_file() && meta.len() == file.size {
            let dated = (meta.mtime() - file.mtime).abs() <= MTIME_SLACK;
            if trusted && dated {
                return Ok(Placed::Kept);
            }
            let (sha256, _) = hash_file(&target)?;
            if sha256 == file.sha256 {
                if !dated {
                    guard::open_existing(&target)
                        .and_then(|f| f.set_times(times(file.mtime)))
                        .with_context(|| format!("cannot date {}", target.display()))?;
                }
                return Ok(Placed::Kept);
            }
        }
    }
    clear_way(root, &file.path, stale)?;
    let temp = temp_path(&target);
    if let Err(e) = copy_verified(store, file, &temp) {
        let _ = fs::remove_file(&temp);
        return Err(e);
    }
    fs::rename(&temp, &target).with_context(|| {
        let _ = fs::remove_file(&temp);
        format!("cannot rename into place {}", target.display())
    })?;
    Ok(Placed::Copied)
}

/// Copies the object of `file` to `temp`, hashing as it goes; fsyncs and dates it.
fn copy_verified(store: &Store, file: &MediumFile, temp: &Path) -> anyhow::Result<()> {
    let object = store.object_path(&file.sha256);
    let mut input = match File::open(&object) {
        Ok(input) => input,
        Err(e) if e.kind() == io::ErrorKind::NotFound => bail!(
            "object {} of `{}` (source `{}`) is no longer in the store (a sync and GC replaced the snapshot during the export?): export again",
            file.sha256,
            file.path,
            file.source
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot open {}", object.display())),
    };
    let mut output = guard::create_new(temp)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = input
            .read(&mut buffer)
            .with_context(|| format!("cannot read {}", object.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        output
            .write_all(&buffer[..n])
            .with_context(|| format!("cannot write {}", temp.display()))?;
        size += n as u64;
    }
    let sha256 = ObjectId(hasher.finalize().into());
    if sha256 != file.sha256 || size != file.size {
        bail!(
            "the store's copy of `{}` (source `{}`) is damaged: sha256 {sha256} and {size} bytes, the snapshot says {} and {} bytes; run `mirrorbox verify`",
            file.path,
            file.source,
            file.sha256,
            file.size
        );
    }
    output
        .set_times(times(file.mtime))
        .and_then(|()| output.sync_all())
        .with_context(|| format!("cannot finish {}", temp.display()))
}

fn times(mtime: i64) -> FileTimes {
    let when = if mtime >= 0 {
        UNIX_EPOCH + Duration::from_secs(mtime.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_secs(mtime.unsigned_abs())
    };
    FileTimes::new()
        .set_modified(when)
        .set_accessed(SystemTime::now())
}

/// Makes the folders `path` needs, and frees `path` itself. Files and folders in the way go
/// only if they are the export's own stale files; anything else on the medium stops the
/// export with its name, since it is not the export's to remove.
fn clear_way(root: &Path, path: &str, stale: &BTreeSet<String>) -> anyhow::Result<()> {
    // The target first: emptying a folder there may remove its emptied parents too.
    let target = root.join(path);
    if guard::look(root, path)?.is_some_and(|m| m.is_dir()) {
        let below = format!("{path}/");
        for old in stale
            .range(below.clone()..)
            .take_while(|p| p.starts_with(&below))
        {
            remove_stale(root, old)?;
        }
        match fs::remove_dir(&target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!(
                        "{} is a folder holding files the export did not write, where `{path}` is a file",
                        target.display()
                    )
                })
            }
        }
    }
    let mut cut = 0;
    while let Some(slash) = path[cut..].find('/') {
        cut += slash;
        let folder = &path[..cut];
        let at = root.join(folder);
        match fs::symlink_metadata(&at) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) if stale.contains(folder) => remove_file(&at)?,
            Ok(_) => bail!(
                "{} is a file the export did not write, where `{path}` needs a folder",
                at.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot look at {}", at.display())),
        }
        if !at.is_dir() {
            fs::create_dir(&at)
                .with_context(|| format!("cannot create folder {}", at.display()))?;
        }
        cut += 1;
    }
    Ok(())
}

/// Removes a stale file, its temp file if an interrupted copy left one, and the folders that
/// were left empty (up to, not including, `root`). A link on the way stops the export.
pub fn remove_stale(root: &Path, path: &str) -> anyhow::Result<()> {
    let at = root.join(path);
    let found = guard::look(root, path)?;
    remove_file(&temp_path(&at))?;
    if found.is_some_and(|m| !m.is_dir()) {
        remove_file(&at)?;
    }
    let mut folder = path;
    while let Some(slash) = folder.rfind('/') {
        folder = &folder[..slash];
        if fs::remove_dir(root.join(folder)).is_err() {
            break;
        }
    }
    Ok(())
}

fn remove_file(path: &Path) -> anyhow::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|p| p.to_string()).collect()
    }

    #[test]
    fn a_stale_file_where_a_folder_is_needed_goes() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("m")).unwrap();
        fs::write(root.path().join("m/a"), b"old file").unwrap();
        clear_way(root.path(), "m/a/b", &stale(&["m/a"])).unwrap();
        assert!(root.path().join("m/a").is_dir());
    }

    #[test]
    fn a_stale_folder_where_a_file_is_needed_goes() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("m/a/deep")).unwrap();
        fs::write(root.path().join("m/a/deep/b"), b"old").unwrap();
        clear_way(root.path(), "m/a", &stale(&["m/a/deep/b"])).unwrap();
        assert!(!root.path().join("m/a").exists());
        assert!(root.path().join("m").is_dir());
    }

    #[test]
    fn what_the_export_did_not_write_stays_and_is_named() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir_all(root.path().join("m/a")).unwrap();
        fs::write(root.path().join("m/a/mine"), b"someone's").unwrap();
        fs::write(root.path().join("m/f"), b"someone's").unwrap();
        let error = clear_way(root.path(), "m/a", &stale(&[]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("m/a is a folder holding files"), "{error}");
        let error = clear_way(root.path(), "m/f/x", &stale(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("m/f is a file the export did not write"),
            "{error}"
        );
        assert!(root.path().join("m/a/mine").is_file() && root.path().join("m/f").is_file());
    }
}
