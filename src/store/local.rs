//! Reading a local file for ingest: opened once, never through a symlink, and refused if it
//! changed while it was read (its size or mtime moved between the stat before and the one
//! after, both of the open file, so a file swapped under its path is caught too).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use rustix::fs::{FileType, Mode, OFlags};
use rustix::io::Errno;

use super::ingest::changed_while_reading;
use super::{err, StoreError};

/// What a stat of the open file says about its content: size and mtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seen {
    pub size: u64,
    pub mtime_ns: i64,
}

/// `O_NOATIME` was refused once (a file of another owner, without `CAP_FOWNER`): not tried again.
static NOATIME_REFUSED: AtomicBool = AtomicBool::new(false);

/// Opens `source` for reading: a regular file, not a symlink. `O_NONBLOCK`, so a file swapped
/// for a FIFO since the walk saw it is refused instead of waiting for a writer. `O_NOATIME`
/// where allowed: a mirror reading a tree is no use of its files, and the access time's update
/// costs a write of the inode per file.
pub(super) fn open(source: &Path) -> Result<(File, Seen), StoreError> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    let flags = flags | OFlags::CLOEXEC;
    let opened = match NOATIME_REFUSED.load(Ordering::Relaxed) {
        false => match rustix::fs::open(source, flags | OFlags::NOATIME, Mode::empty()) {
            Err(Errno::PERM) => {
                NOATIME_REFUSED.store(true, Ordering::Relaxed);
                rustix::fs::open(source, flags, Mode::empty())
            }
            other => other,
        },
        true => rustix::fs::open(source, flags, Mode::empty()),
    };
    let file = match opened {
        Ok(fd) => File::from(fd),
        // A symlink now, where the walk saw a file.
        Err(Errno::LOOP) => return Err(changed_while_reading(source)),
        Err(e) => return Err(err("open", source)(e.into())),
    };
    let stat = rustix::fs::fstat(&file).map_err(|e| err("stat", source)(e.into()))?;
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile {
        return Err(changed_while_reading(source));
    }
    Ok((file, seen_of(&stat)))
}

/// The open file's size and mtime now.
pub(super) fn seen(file: &File, source: &Path) -> Result<Seen, StoreError> {
    let stat = rustix::fs::fstat(file).map_err(|e| err("stat", source)(e.into()))?;
    Ok(seen_of(&stat))
}

// The stat fields' integer types differ between architectures.
#[allow(clippy::unnecessary_cast)]
fn seen_of(stat: &rustix::fs::Stat) -> Seen {
    Seen {
        size: stat.st_size as u64,
        mtime_ns: (stat.st_mtime as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(stat.st_mtime_nsec as i64),
    }
}

/// Reads the whole of a file of `before.size` bytes (at most `buffer.len()`) into `buffer`,
/// then checks that it did not change meanwhile. One `read` for a small file: no second one
/// to meet the end, since a file that grew shows in the stat after.
pub(super) fn read_small<'b>(
    file: &File,
    before: &Seen,
    source: &Path,
    buffer: &'b mut [u8],
) -> Result<&'b [u8], StoreError> {
    let size = usize::try_from(before.size).expect("a small file's size fits");
    let buffer = &mut buffer[..size];
    let mut filled = 0;
    while filled < size {
        match rustix::io::read(file, &mut buffer[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(Errno::INTR) => {}
            Err(e) => return Err(err("read", source)(e.into())),
        }
    }
    if filled != size || seen(file, source)? != *before {
        return Err(changed_while_reading(source));
    }
    Ok(&buffer[..size])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_or_a_fifo_is_refused_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"bytes").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &fifo,
            FileType::Fifo,
            Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let (opened, seen) = open(&file).unwrap();
        assert_eq!(seen.size, 5);
        let mut buffer = [0u8; 16];
        assert_eq!(
            read_small(&opened, &seen, &file, &mut buffer).unwrap(),
            b"bytes"
        );
        for path in [&link, &fifo] {
            let message = open(path).unwrap_err().to_string();
            assert!(
                message.contains("changed while it was being read"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_file_that_changes_while_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("file");
        std::fs::write(&path, b"version one").unwrap();
        let (file, seen) = open(&path).unwrap();
        std::fs::write(&path, b"version two, longer").unwrap();
        let mut buffer = [0u8; 64];
        let message = read_small(&file, &seen, &path, &mut buffer)
            .unwrap_err()
            .to_string();
        assert!(
            message.contains("changed while it was being read"),
            "{message}"
        );
    }
}
