//! The delta's two inputs: random access by offset, to a file read with `pread` or to bytes
//! in memory. Files are never mapped (the module's documentation says why).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Random access to one input: a file read with `pread`, or bytes already in memory.
pub(super) trait Source: Sync {
    fn size(&self) -> u64;
    /// Fills `buf` with the bytes at `offset` (all of them, or an error).
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

impl Source for &[u8] {
    fn size(&self) -> u64 {
        self.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = usize::try_from(offset)
            .ok()
            .and_then(|start| self.get(start..start.checked_add(buf.len())?))
            .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
        buf.copy_from_slice(bytes);
        Ok(())
    }
}

/// A file read with `pread`; its path names it in errors.
pub(super) struct FileSource {
    file: File,
    size: u64,
    path: PathBuf,
}

impl FileSource {
    pub(super) fn open(path: &Path) -> io::Result<FileSource> {
        let context =
            |e: io::Error| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display()));
        let file = File::open(path).map_err(context)?;
        let size = file.metadata().map_err(context)?.len();
        Ok(FileSource {
            file,
            size,
            path: path.to_owned(),
        })
    }
}

impl Source for FileSource {
    fn size(&self) -> u64 {
        self.size
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "reading {} bytes at offset {offset} of {} (was it changed while read?): {e}",
                    buf.len(),
                    self.path.display()
                ),
            )
        })
    }
}

/// Largest read of an input at once: big enough that syscalls cost nothing measurable,
/// small enough to stay in the CPU's caches.
pub(super) const READ_CHUNK: usize = 1 << 20;
