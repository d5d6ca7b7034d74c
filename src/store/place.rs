//! Placing bytes under an object's final name, `objects/sha256/ab/abcdef…`, with as few system
//! calls as a small file allows: the hot path of a cold sync of many small files.
//!
//! The bytes go to an unnamed file (`O_TMPFILE`) in `tmp/`, which is given its name in the
//! object's fan-out folder by `linkat` once every byte is written (a link needs no rename, and
//! works across folders of one filesystem). A reader, a concurrent writer or a
//! crash sees no object or the whole of it, never a part (a power loss is another matter: see
//! `durable`), and a crash leaves nothing to clean, since an unnamed file goes with the last
//! descriptor of it. Two writers of the same bytes race for the name: `linkat` refuses the
//! second (`EEXIST`), who then takes the first one's object.
//!
//! `linkat` of an open file by its descriptor (`AT_EMPTY_PATH`) needs `CAP_DAC_READ_SEARCH`;
//! without it the file is linked through `/proc/self/fd/N`. Where neither works, or the
//! filesystem has no `O_TMPFILE`, [`Objects::place`] says so once and for all, and the store
//! writes a temp file in `tmp/` and renames it into place instead (see `write`).
//!
//! The unnamed files are made in `tmp/`, one folder, rather than in the 256 fan-out folders: a
//! filesystem allocates a new file's inode near its folder's, and ext4 (without a journal)
//! searches past every inode freed in the last minutes, so one folder keeps that search where
//! the store's earlier writes already paid for it instead of spreading it.
//!
//! The fan-out folders are created on first use and remembered (a bit each), so placing an
//! object costs no `mkdir`, and names are resolved from the open folders, so no path is built
//! or walked from the root.

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;

use super::layout::{ObjectName, FAN_OUT};

/// How `linkat` gives an unnamed file a name on this system, learnt by the first object.
const LINK_UNKNOWN: u8 = 0;
const LINK_BY_DESCRIPTOR: u8 = 1;
const LINK_BY_PROC: u8 = 2;
/// No `O_TMPFILE`, or no way to link one: objects go through `tmp/` and a rename.
const LINK_UNSUPPORTED: u8 = 3;

/// The store's objects folder and `tmp/`, open, and what is known about the fan-out folders.
#[derive(Debug)]
pub(super) struct Objects {
    dir: OwnedFd,
    tmp: OwnedFd,
    /// One bit per fan-out folder known to exist.
    folders: [AtomicU64; FAN_OUT / 64],
    link: AtomicU8,
}

/// What [`Objects::place`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    /// The object is there now, written by this call.
    Created,
    /// Another writer named the object first; nothing written.
    Taken,
    /// This system cannot place objects this way; nothing written (see the module's doc).
    Unsupported,
}

impl Objects {
    /// Opens the objects folder (`objects/sha256`) and `tmp`, which exist.
    pub(super) fn open(objects: &Path, tmp: &Path) -> io::Result<Objects> {
        let open = |path| {
            rustix::fs::open(
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
        };
        Ok(Objects {
            dir: open(objects)?,
            tmp: open(tmp)?,
            folders: Default::default(),
            link: AtomicU8::new(LINK_UNKNOWN),
        })
    }

    /// The object's metadata, or `None` if there is no such object.
    pub(super) fn stat(&self, name: &ObjectName) -> io::Result<Option<Stat>> {
        match rustix::fs::statat(&self.dir, name.relative(), AtFlags::empty()) {
            Ok(stat) => Ok(Some(stat)),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the object's fan-out folder unless it is known to exist.
    pub(super) fn ensure_folder(&self, name: &ObjectName, fan: u8) -> io::Result<()> {
        let (word, bit) = (usize::from(fan) / 64, 1u64 << (fan % 64));
        if self.folders[word].load(Ordering::Relaxed) & bit != 0 {
            return Ok(());
        }
        match rustix::fs::mkdirat(&self.dir, name.folder(), Mode::from_raw_mode(0o777)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.folders[word].fetch_or(bit, Ordering::Relaxed);
        Ok(())
    }

    /// Forgets that a fan-out folder exists (it was found missing after all).
    fn forget_folder(&self, fan: u8) {
        let (word, bit) = (usize::from(fan) / 64, 1u64 << (fan % 64));
        self.folders[word].fetch_and(!bit, Ordering::Relaxed);
    }

    /// Writes `bytes` to an unnamed file and names it: see the module's doc. The caller has
    /// checked that the object is not there yet.
    pub(super) fn place(&self, name: &ObjectName, fan: u8, bytes: &[u8]) -> io::Result<Placed> {
        if self.link.load(Ordering::Relaxed) == LINK_UNSUPPORTED {
            return Ok(Placed::Unsupported);
        }
        self.ensure_folder(name, fan)?;
        let file = match self.unnamed_file() {
            Ok(file) => file,
            // Old kernels and filesystems without O_TMPFILE answer in one of these ways.
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOSYS) => {
                self.link.store(LINK_UNSUPPORTED, Ordering::Relaxed);
                return Ok(Placed::Unsupported);
            }
            Err(e) => return Err(e.into()),
        };
        write_all(&file, bytes)?;
        match self.link(&file, name) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The fan-out folder went away behind our back (removed by hand): again.
                self.forget_folder(fan);
                self.ensure_folder(name, fan)?;
                self.link(&file, name)
            }
            other => other,
        }
    }

    fn unnamed_file(&self) -> Result<OwnedFd, Errno> {
        rustix::fs::openat(
            &self.tmp,
            ".",
            OFlags::WRONLY | OFlags::TMPFILE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
    }

    /// Names the unnamed `file`: by its descriptor if allowed, else through `/proc`.
    fn link(&self, file: &OwnedFd, name: &ObjectName) -> io::Result<Placed> {
        let how = self.link.load(Ordering::Relaxed);
        if how == LINK_UNKNOWN || how == LINK_BY_DESCRIPTOR {
            let linked =
                rustix::fs::linkat(file, "", &self.dir, name.relative(), AtFlags::EMPTY_PATH);
            match linked {
                Ok(()) => {
                    self.link.store(LINK_BY_DESCRIPTOR, Ordering::Relaxed);
                    return Ok(Placed::Created);
                }
                Err(Errno::EXIST) => return Ok(Placed::Taken),
                // Refused without CAP_DAC_READ_SEARCH: try /proc (once learnt, always).
                Err(Errno::NOENT | Errno::PERM | Errno::ACCESS) if how == LINK_UNKNOWN => {}
                Err(e) => return Err(e.into()),
            }
        }
        let proc_path = format!("/proc/self/fd/{}", file.as_fd().as_raw_fd());
        let linked = rustix::fs::linkat(
            CWD,
            proc_path.as_str(),
            &self.dir,
            name.relative(),
            AtFlags::SYMLINK_FOLLOW,
        );
        match linked {
            Ok(()) => {
                self.link.store(LINK_BY_PROC, Ordering::Relaxed);
                Ok(Placed::Created)
            }
            Err(Errno::EXIST) => Ok(Placed::Taken),
            // No /proc, or linking through it refused too: give up on unnamed files.
            Err(Errno::NOENT | Errno::PERM | Errno::ACCESS | Errno::XDEV)
                if how == LINK_UNKNOWN =>
            {
                self.link.store(LINK_UNSUPPORTED, Ordering::Relaxed);
                Ok(Placed::Unsupported)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renames `tmp` (a finished temp file on the same filesystem) to the object's name,
    /// replacing what is there.
    pub(super) fn rename_into(&self, tmp: &Path, name: &ObjectName, fan: u8) -> io::Result<()> {
        self.ensure_folder(name, fan)?;
        match rustix::fs::renameat(CWD, tmp, &self.dir, name.relative()) {
            Err(Errno::NOENT) if tmp.exists() => {
                self.forget_folder(fan);
                self.ensure_folder(name, fan)?;
                Ok(rustix::fs::renameat(CWD, tmp, &self.dir, name.relative())?)
            }
            other => Ok(other?),
        }
    }

    /// Makes [`Objects::place`] answer [`Placed::Unsupported`], as on a system without
    /// `O_TMPFILE`, so tests cover the store's other way.
    #[cfg(test)]
    pub(super) fn without_unnamed_files(&self) {
        self.link.store(LINK_UNSUPPORTED, Ordering::Relaxed);
    }
}

fn write_all(file: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(file, bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectId;

    /// Objects in `dir` itself, temp files in `dir/tmp`.
    fn open(dir: &Path) -> Objects {
        std::fs::create_dir(dir.join("tmp")).unwrap();
        Objects::open(dir, &dir.join("tmp")).unwrap()
    }

    fn name(byte: u8) -> (ObjectName, u8) {
        let id = ObjectId([byte; 32]);
        (ObjectName::of(&id), byte)
    }

    #[test]
    fn an_object_appears_whole_and_a_second_writer_is_told() {
        let dir = tempfile::tempdir().unwrap();
        let objects = open(dir.path());
        let (name, fan) = name(0xab);
        assert!(objects.stat(&name).unwrap().is_none());
        let placed = objects.place(&name, fan, b"bytes").unwrap();
        if placed == Placed::Unsupported {
            return; // no O_TMPFILE here: the store's other way is tested in `write`
        }
        assert_eq!(placed, Placed::Created);
        assert_eq!(objects.stat(&name).unwrap().unwrap().st_size, 5);
        assert_eq!(
            std::fs::read(dir.path().join(name.relative())).unwrap(),
            b"bytes"
        );
        assert_eq!(
            objects.place(&name, fan, b"bytes").unwrap(),
            Placed::Taken,
            "the name is taken: nothing replaced"
        );
        // Only the object is in its folder: unnamed files leave nothing behind.
        assert_eq!(std::fs::read_dir(dir.path().join("ab")).unwrap().count(), 1);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn an_unnamed_file_is_linked_through_proc_too() {
        let dir = tempfile::tempdir().unwrap();
        let objects = open(dir.path());
        // As without CAP_DAC_READ_SEARCH, once learnt.
        objects.link.store(LINK_BY_PROC, Ordering::Relaxed);
        let (name, fan) = name(0x3c);
        match objects.place(&name, fan, b"by proc").unwrap() {
            Placed::Unsupported => return,
            placed => assert_eq!(placed, Placed::Created),
        }
        assert_eq!(
            std::fs::read(dir.path().join(name.relative())).unwrap(),
            b"by proc"
        );
        assert_eq!(
            objects.place(&name, fan, b"by proc").unwrap(),
            Placed::Taken
        );
    }

    #[test]
    fn a_fan_out_folder_removed_behind_its_back_is_made_again() {
        let dir = tempfile::tempdir().unwrap();
        let objects = open(dir.path());
        let (first, fan) = name(0x01);
        if objects.place(&first, fan, b"one").unwrap() == Placed::Unsupported {
            return;
        }
        std::fs::remove_dir_all(dir.path().join("01")).unwrap();
        let mut other = [0x01; 32];
        other[1] = 2;
        let second = ObjectName::of(&ObjectId(other));
        assert_eq!(
            objects.place(&second, fan, b"two").unwrap(),
            Placed::Created
        );
        let tmp = dir.path().join("tmp-file");
        std::fs::write(&tmp, b"one").unwrap();
        std::fs::remove_dir_all(dir.path().join("01")).unwrap();
        objects.rename_into(&tmp, &first, fan).unwrap();
        assert_eq!(
            std::fs::read(dir.path().join(first.relative())).unwrap(),
            b"one"
        );
    }
}
