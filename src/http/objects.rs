//! Opening objects for serving: small ones come from memory, big ones from cached open files.
//!
//! Objects are immutable, so caching them is always correct, with one exception the store
//! allows: an object hard-linked to a file outside the store (see `Stored::stamp`). Those are
//! checked with `fstat` on every use (their cache entry keeps the file open for that), their
//! bytes are re-checked after being read into memory, and a streamed one is checked once more
//! before its last frame goes out.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::respond::Content;
use crate::store::ObjectId;
use crate::view::FileNode;

/// Objects up to this size are served from memory once read.
const SMALL_OBJECT: u64 = 256 * 1024;
/// Memory for small objects; the cache starts over when it is full.
const SMALL_BUDGET: usize = 64 * 1024 * 1024;
/// Open file handles kept.
const MAX_OPEN_FILES: usize = 1024;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("object {0} is not in the store")]
    Missing(ObjectId),
    #[error("object {0} changed on disk since it was stored (its hard-linked original was modified); run a sync or verify")]
    Changed(ObjectId),
    #[error("cannot read object {0}: {1}")]
    Io(ObjectId, io::Error),
}

#[derive(Default)]
struct Small {
    bytes: usize,
    /// Entries that hold an open file (hard-linked objects): bounded like `files`.
    open_files: usize,
    /// The bytes, and for a stamped object the open file to check its stamp on every use.
    map: HashMap<ObjectId, (Bytes, Option<Arc<File>>)>,
}

pub struct ObjectCache {
    objects_dir: PathBuf,
    small: Mutex<Small>,
    files: Mutex<HashMap<ObjectId, Arc<File>>>,
}

impl ObjectCache {
    pub fn new(objects_dir: PathBuf) -> ObjectCache {
        ObjectCache {
            objects_dir,
            small: Mutex::default(),
            files: Mutex::default(),
        }
    }

    /// Forgets everything (after a publish, a GC or a quarantine).
    pub fn clear(&self) {
        *self.small.lock().expect("not poisoned") = Small::default();
        self.files.lock().expect("not poisoned").clear();
    }

    fn path(&self, id: &ObjectId) -> PathBuf {
        crate::store::layout::object_path(&self.objects_dir, id)
    }

    /// The content of a file node, checked against its size (and stamp, if it has one).
    pub async fn open(&self, node: &FileNode) -> Result<Content, OpenError> {
        let small = self
            .small
            .lock()
            .expect("not poisoned")
            .map
            .get(&node.object)
            .cloned();
        if let Some((bytes, file)) = small {
            match file {
                // A hard-linked original: the bytes in memory are right while its stamp is.
                Some(file) => {
                    check(&file, node)?;
                    return Ok(Content::Memory(bytes));
                }
                None => return Ok(Content::Memory(bytes)),
            }
        }
        let cached = self
            .files
            .lock()
            .expect("not poisoned")
            .get(&node.object)
            .cloned();
        if let Some(file) = cached {
            if node.stamp.is_some() {
                check(&file, node)?;
            }
            return Ok(streamed(file, node));
        }
        let path = self.path(&node.object);
        let wanted = *node;
        let opened =
            tokio::task::spawn_blocking(move || -> Result<(File, Option<Bytes>), OpenError> {
                let file = File::open(&path).map_err(|e| match e.kind() {
                    io::ErrorKind::NotFound => OpenError::Missing(wanted.object),
                    _ => OpenError::Io(wanted.object, e),
                })?;
                check(&file, &wanted)?;
                let small = if wanted.size <= SMALL_OBJECT {
                    let mut buffer = vec![0u8; wanted.size as usize];
                    std::os::unix::fs::FileExt::read_exact_at(&file, &mut buffer, 0)
                        .map_err(|e| OpenError::Io(wanted.object, e))?;
                    // Changed while we read: the stamp no longer matches.
                    check(&file, &wanted)?;
                    Some(Bytes::from(buffer))
                } else {
                    None
                };
                Ok((file, small))
            })
            .await
            .map_err(|e| OpenError::Io(node.object, io::Error::other(e)))??;
        let (file, small) = opened;
        if let Some(bytes) = small {
            let mut cache = self.small.lock().expect("not poisoned");
            let holds_file = node.stamp.is_some();
            if cache.bytes + bytes.len() > SMALL_BUDGET
                || (holds_file && cache.open_files >= MAX_OPEN_FILES)
            {
                *cache = Small::default();
            }
            cache.bytes += bytes.len();
            cache.open_files += usize::from(holds_file);
            let keep = holds_file.then(|| Arc::new(file));
            cache.map.insert(node.object, (bytes.clone(), keep));
            return Ok(Content::Memory(bytes));
        }
        let file = Arc::new(file);
        let mut files = self.files.lock().expect("not poisoned");
        if files.len() >= MAX_OPEN_FILES {
            files.clear();
        }
        files.insert(node.object, file.clone());
        Ok(streamed(file, node))
    }
}

/// A large object to stream. A stamped one is checked again before its last bytes go out: a
/// rewrite of its original during the download cuts the response instead of finishing it
/// with mixed bytes under the old ETag.
fn streamed(file: Arc<File>, node: &FileNode) -> Content {
    if node.stamp.is_none() {
        return Content::File(file);
    }
    let node = *node;
    let checked = file.clone();
    Content::CheckedFile(
        file,
        Arc::new(move || {
            check(&checked, &node).map_err(|e| {
                tracing::error!(error = %e, "response cut: the file changed while it was sent");
                io::Error::other(e)
            })
        }),
    )
}

/// The bytes on disk must still be the bytes the manifest describes.
fn check(file: &File, node: &FileNode) -> Result<(), OpenError> {
    let meta = file.metadata().map_err(|e| OpenError::Io(node.object, e))?;
    if meta.len() != node.size {
        return Err(OpenError::Changed(node.object));
    }
    if node.stamp.is_some_and(|stamp| !stamp.matches(&meta)) {
        return Err(OpenError::Changed(node.object));
    }
    Ok(())
}
