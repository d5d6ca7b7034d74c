//! The entries of a new snapshot kept on disk while a sync makes them, so that a tree of a
//! million files costs the sync a few kilobytes of memory instead of an `Entry` each.
//!
//! A manifest announces its number of entries before them, and whether a new snapshot is
//! needed at all is known only at the end of the scan (see `snapshot`): so entries go here
//! first, front-coded like a manifest but never compressed, then are read back once into the
//! manifest writer. The file is unlinked as soon as it is made: a crash leaves nothing behind,
//! and `tmp/` is emptied at start anyway.

use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::manifest::varint;
use crate::manifest::{Entry, Origin};
use crate::store::{ObjectId, Stamp, Store};

use crate::manifest::binary::{entry_flags, IMMUTABLE, ORIGIN, STAMP, STAMP_CTIME, STAMP_INODE};
/// Two bits for the entry's [`Check`].
const CHECK_SHIFT: u8 = 5;

/// What publishing must still do about an entry's object before a snapshot may name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Stored by this sync, or seen in the store by it: nothing.
    Done,
    /// Named by the previous snapshot and not quarantined when the sync started: checked
    /// only if it was quarantined meanwhile.
    Trusted,
    /// Nothing known: checked.
    Needed,
}

impl Check {
    fn bits(self) -> u8 {
        match self {
            Check::Done => 0,
            Check::Trusted => 1,
            Check::Needed => 2,
        }
    }

    fn from_bits(bits: u8) -> Check {
        match bits & 3 {
            0 => Check::Done,
            1 => Check::Trusted,
            _ => Check::Needed,
        }
    }
}

/// How many bytes of entries are kept in memory before they go to a file: a small sync
/// (a few thousand files) never makes one, a big one holds no more than this.
const IN_MEMORY: usize = 256 * 1024;

/// Entries written one by one, in strictly increasing path order.
pub struct Spill {
    /// Entries not yet in the file (all of them while there is none).
    buffer: Vec<u8>,
    /// Made, and unlinked at once, when the buffer is full the first time.
    file: Option<File>,
    /// Where to make the file.
    path: PathBuf,
    /// The last path written: the next one is coded against it and must sort after it.
    last: Vec<u8>,
    count: u64,
}

impl Spill {
    /// An empty spill; a file in the store's `tmp/` is made when needed.
    pub fn new(store: &Store) -> Spill {
        Spill {
            buffer: Vec::new(),
            file: None,
            path: store.tmp_path("entries"),
            last: Vec::new(),
            count: 0,
        }
    }

    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Where a failure happened: the file's folder.
    pub fn folder(&self) -> &Path {
        self.path.parent().unwrap_or(&self.path)
    }

    /// Appends `entry`; its path must sort after the previous one (a snapshot lists each path
    /// once, in order).
    pub fn push(&mut self, entry: &Entry, check: Check) -> io::Result<()> {
        let path = entry.path.as_bytes();
        if self.count > 0 && path <= self.last.as_slice() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "entry `{}` does not come after `{}` in path order",
                    entry.path,
                    String::from_utf8_lossy(&self.last)
                ),
            ));
        }
        let out = &mut self.buffer;
        out.push(check.bits() << CHECK_SHIFT | entry_flags(entry));
        let shared = path
            .iter()
            .zip(&self.last)
            .take_while(|(a, b)| a == b)
            .count();
        varint::put(out, shared as u64);
        varint::put(out, (path.len() - shared) as u64);
        out.extend_from_slice(&path[shared..]);
        self.last.truncate(shared);
        self.last.extend_from_slice(&path[shared..]);
        out.extend_from_slice(&entry.object.0);
        varint::put(out, entry.size);
        varint::put_signed(out, entry.mtime);
        if let Some(origin) = &entry.origin {
            varint::put(out, origin.size);
            varint::put_signed(out, origin.mtime_ns);
            varint::put(out, origin.inode);
        }
        if let Some(stamp) = &entry.stamp {
            varint::put_signed(out, stamp.mtime_ns);
            if let Some(ctime_ns) = stamp.ctime_ns {
                varint::put_signed(out, ctime_ns);
            }
            if let Some(inode) = stamp.inode {
                varint::put(out, inode);
            }
        }
        self.count += 1;
        if self.buffer.len() >= IN_MEMORY {
            self.write_out()?;
        }
        Ok(())
    }

    /// Moves the buffer into the file, made (and unlinked) the first time.
    fn write_out(&mut self) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&self.path)?;
                fs::remove_file(&self.path)?;
                self.file.insert(file)
            }
        };
        file.write_all(&self.buffer)?;
        self.buffer.clear();
        Ok(())
    }

    /// Forgets every entry (a scan that starts over).
    pub fn clear(&mut self) -> io::Result<()> {
        if let Some(file) = &mut self.file {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
        }
        self.buffer.clear();
        self.last.clear();
        self.count = 0;
        Ok(())
    }

    /// The entries written, from the first, with what publishing must check about each.
    pub fn read_back(mut self) -> io::Result<SpillReader> {
        let input: Box<dyn BufRead> = if self.file.is_some() {
            self.write_out()?;
            let mut file = self
                .file
                .take()
                .ok_or_else(|| io::Error::other("no file"))?;
            file.seek(SeekFrom::Start(0))?;
            Box::new(BufReader::with_capacity(64 * 1024, file))
        } else {
            Box::new(io::Cursor::new(std::mem::take(&mut self.buffer)))
        };
        Ok(SpillReader {
            input,
            left: self.count,
            path: Vec::new(),
        })
    }
}

/// Reads a [`Spill`] back.
pub struct SpillReader {
    input: Box<dyn BufRead>,
    left: u64,
    path: Vec<u8>,
}

impl SpillReader {
    fn entry(&mut self) -> io::Result<(Entry, Check)> {
        let input = &mut self.input;
        let flags = varint::byte(input).map_err(io::Error::other)?;
        let num = |input: &mut Box<dyn BufRead>| varint::get(input).map_err(io::Error::other);
        let signed =
            |input: &mut Box<dyn BufRead>| varint::get_signed(input).map_err(io::Error::other);
        let shared = num(input)? as usize;
        let rest = num(input)? as usize;
        if shared > self.path.len() {
            return Err(io::Error::other("entries spill: damaged path"));
        }
        self.path.truncate(shared);
        let start = self.path.len();
        self.path.resize(start + rest, 0);
        input.read_exact(&mut self.path[start..])?;
        let path = String::from_utf8(self.path.clone()).map_err(io::Error::other)?;
        let mut object = [0u8; 32];
        input.read_exact(&mut object)?;
        let size = num(input)?;
        let mtime = signed(input)?;
        let origin = if flags & ORIGIN != 0 {
            Some(Origin {
                size: num(input)?,
                mtime_ns: signed(input)?,
                inode: num(input)?,
            })
        } else {
            None
        };
        let stamp = if flags & STAMP != 0 {
            let mtime_ns = signed(input)?;
            let ctime_ns = if flags & STAMP_CTIME != 0 {
                Some(signed(input)?)
            } else {
                None
            };
            let inode = if flags & STAMP_INODE != 0 {
                Some(num(input)?)
            } else {
                None
            };
            Some(Stamp {
                mtime_ns,
                ctime_ns,
                inode,
            })
        } else {
            None
        };
        let entry = Entry {
            path,
            object: ObjectId(object),
            size,
            mtime,
            stamp,
            origin,
            immutable: flags & IMMUTABLE != 0,
        };
        Ok((entry, Check::from_bits(flags >> CHECK_SHIFT)))
    }
}

impl Iterator for SpillReader {
    type Item = io::Result<(Entry, Check)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(self.entry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tests::store;
    use crate::store::IngestMode;

    #[test]
    fn entries_read_back_as_written_and_only_in_path_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), IngestMode::Copy);
        let mut full = Entry::plain("a/b/c", ObjectId([7; 32]));
        full.mtime = -5;
        full.immutable = true;
        full.origin = Some(Origin {
            size: 9,
            mtime_ns: 1_700_000_000_123,
            inode: u64::MAX,
        });
        full.stamp = Some(Stamp {
            mtime_ns: 3,
            ctime_ns: Some(-4),
            inode: Some(5),
        });
        let mut legacy = Entry::plain("a/b/d", ObjectId([8; 32]));
        legacy.stamp = Some(Stamp {
            mtime_ns: 3,
            ctime_ns: None,
            inode: None,
        });
        let written = [
            (Entry::plain("a", ObjectId([1; 32])), Check::Needed),
            (full, Check::Trusted),
            (legacy, Check::Done),
            (Entry::plain("b", ObjectId([2; 32])), Check::Done),
        ];
        let mut spill = Spill::new(&store);
        spill
            .push(&Entry::plain("z", ObjectId([0; 32])), Check::Done)
            .unwrap();
        spill.clear().unwrap();
        for (entry, check) in &written {
            spill.push(entry, *check).unwrap();
        }
        assert!(spill.push(&written[3].0, Check::Done).is_err(), "twice");
        assert!(spill.push(&written[0].0, Check::Done).is_err(), "backwards");
        assert_eq!(spill.len(), 4);
        let read: Vec<(Entry, Check)> = spill.read_back().unwrap().map(Result::unwrap).collect();
        assert_eq!(read, written);

        // Past what is kept in memory: the rest goes to a file, unlinked once made.
        let mut spill = Spill::new(&store);
        let many: Vec<Entry> = (0..20_000)
            .map(|i| Entry::plain(&format!("pool/f{i:06}"), ObjectId([(i % 251) as u8; 32])))
            .collect();
        for entry in &many {
            spill.push(entry, Check::Done).unwrap();
        }
        assert!(spill.file.is_some(), "{} entries made a file", many.len());
        assert_eq!(
            fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0,
            "no name left in tmp/"
        );
        let read: Vec<Entry> = spill.read_back().unwrap().map(|e| e.unwrap().0).collect();
        assert_eq!(read, many);
    }
}
