//! The medium is outside data: whoever had it may have put links, FIFOs or devices where the
//! export expects its own files and folders, so that following them would read, date, write
//! or remove files elsewhere, or hang on a FIFO. Every path below the medium's folder is
//! looked at component by component, without following links, before the export or `--check`
//! touches it, and new files are created only where nothing stands (never through a link).
//! The medium is prepared before an export starts, not changed while it runs: what is looked
//! at is what the export then uses.

use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context};

/// What stands at a path of the medium.
pub enum Standing {
    /// Nothing; or a file where a folder on the way should be, so nothing can be below it.
    Absent,
    /// A regular file or a real folder.
    Plain(Metadata),
    /// `at` (the path or a folder on its way, relative to the medium) is `kind` (`a symlink`,
    /// `a FIFO`, …), which the export neither follows nor opens.
    Foreign { at: String, kind: &'static str },
}

/// Looks at `root/path` one component at a time with `symlink_metadata`.
pub fn standing(root: &Path, path: &str) -> anyhow::Result<Standing> {
    let mut end = 0;
    loop {
        let next = path[end..].find('/').map(|slash| end + slash);
        let prefix = &path[..next.unwrap_or(path.len())];
        let at = root.join(prefix);
        let meta = match fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Standing::Absent),
            Err(e) => return Err(e).with_context(|| format!("cannot look at {}", at.display())),
        };
        let kind = meta.file_type();
        let Some(slash) = next else {
            return Ok(if kind.is_file() || kind.is_dir() {
                Standing::Plain(meta)
            } else {
                Standing::Foreign {
                    at: prefix.to_string(),
                    kind: kind_of(&meta),
                }
            });
        };
        if kind.is_symlink() {
            return Ok(Standing::Foreign {
                at: prefix.to_string(),
                kind: kind_of(&meta),
            });
        }
        if !kind.is_dir() {
            return Ok(Standing::Absent);
        }
        end = slash + 1;
    }
}

/// As [`standing`], refusing with the name of what is neither a plain file nor a folder.
pub fn look(root: &Path, path: &str) -> anyhow::Result<Option<Metadata>> {
    match standing(root, path)? {
        Standing::Absent => Ok(None),
        Standing::Plain(meta) => Ok(Some(meta)),
        Standing::Foreign { at, kind } => refuse(&root.join(at), kind),
    }
}

fn refuse<T>(at: &Path, kind: &str) -> anyhow::Result<T> {
    if kind == LINK {
        bail!(
            "{} is a symlink on the medium: refusing to follow it",
            at.display()
        )
    }
    bail!(
        "{} is {kind} on the medium, not a regular file: refusing to open it",
        at.display()
    )
}

const LINK: &str = "a symlink";

/// How a person calls what `meta` describes.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let kind = meta.file_type();
    if kind.is_symlink() {
        LINK
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_file() {
        "a regular file"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_block_device() || kind.is_char_device() {
        "a device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "an unknown kind of file"
    }
}

/// Creates `path` for writing where nothing may stand: whatever is there (a temp file an
/// interrupted export left, or a link someone put at the temp name) is removed first, and the
/// file is created new without following a link, so no byte goes anywhere else.
pub fn create_new(path: &Path) -> anyhow::Result<File> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))
}

/// Opens an existing regular file of the medium for writing (to date it), never through a link.
pub fn open_existing(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_on_the_way_and_at_the_end_are_named() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("x"), b"x").unwrap();
        fs::create_dir(root.path().join("m")).unwrap();
        symlink(outside.path(), root.path().join("m/evil")).unwrap();
        symlink(outside.path().join("x"), root.path().join("m/x")).unwrap();
        fs::write(root.path().join("m/f"), b"f").unwrap();

        let error = look(root.path(), "m/evil/x").unwrap_err().to_string();
        assert!(
            error.ends_with("m/evil is a symlink on the medium: refusing to follow it"),
            "{error}"
        );
        assert!(look(root.path(), "m/x").is_err());
        assert!(look(root.path(), "m/f").unwrap().unwrap().is_file());
        assert!(look(root.path(), "m/f/below").unwrap().is_none());
        assert!(look(root.path(), "m/none/below").unwrap().is_none());
        assert!(look(root.path(), "m").unwrap().unwrap().is_dir());
    }

    #[test]
    fn a_new_file_replaces_a_link_at_its_name() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let temp = root.path().join(".t.mirrorbox-part");
        symlink(&victim, &temp).unwrap();
        std::io::Write::write_all(&mut create_new(&temp).unwrap(), b"new").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert!(fs::symlink_metadata(&temp).unwrap().is_file());
    }
}
