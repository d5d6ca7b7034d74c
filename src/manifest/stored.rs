//! Manifests as store objects: written in the binary format, read in either format (the
//! first byte tells), and checked against their id while they are read.
//!
//! The checksum of a manifest is its id: the store names every object by the sha256 of its
//! bytes, so reading hashes the bytes as they stream by and, at the end, compares with the id.
//! Damage anywhere (a flipped bit in a path, a cut file) is an error naming the manifest, never
//! a different or shorter manifest. The hash costs about as much as reading the file again
//! from the page cache, once per load.
//!
//! JSON manifests from before the binary format keep their bytes and so their ids: snapshot
//! URLs (`/.snapshots/<source>/<id>/`) and pins name them by id, and re-encoding would change
//! it. They are read as they are for as long as a ref names them, and leave with `keep` like
//! any snapshot; every snapshot published from now on is binary.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use sha2::{Digest, Sha256};

use super::binary::{Compression, DecodeError, Header, ManifestReader, ManifestWriter};
use super::{Entry, Manifest, ManifestError, FORMAT};
use crate::store::{ObjectId, Store, StoreError};

/// The entries of a stored manifest, one at a time, with its header. The last item is an
/// error if the bytes do not hash to the id, so a caller that acts on entries before the end
/// must be ready to undo (a loader simply collects into a `Result`).
pub struct StoredEntries {
    id: ObjectId,
    header: Header,
    inner: Inner,
}

enum Inner {
    Binary(Option<Box<ManifestReader<BufReader<Hashing<File>>>>>),
    /// An old JSON manifest: parsed whole (they were always read that way), then handed out.
    Json(std::vec::IntoIter<Entry>),
}

impl StoredEntries {
    /// Opens manifest `id` and reads its header.
    pub fn open(store: &Store, id: &ObjectId) -> Result<StoredEntries, ManifestError> {
        let path = store.object_path(id);
        let file = File::open(&path).map_err(|source| StoreError {
            action: "read object",
            path: path.clone(),
            source,
        })?;
        let damaged = |source| ManifestError::Damaged { id: *id, source };
        let mut input = BufReader::with_capacity(64 * 1024, Hashing::new(file));
        let first = input
            .fill_buf()
            .map_err(|source| StoreError {
                action: "read object",
                path,
                source,
            })?
            .first()
            .copied();
        match first {
            Some(b'{') => {
                let mut bytes = Vec::new();
                input
                    .read_to_end(&mut bytes)
                    .map_err(|e| damaged(DecodeError::from_io(e)))?;
                check_hash(id, input.into_inner()).map_err(damaged)?;
                let manifest: Manifest =
                    serde_json::from_slice(&bytes).map_err(|e| damaged(DecodeError::Json(e)))?;
                if manifest.format != FORMAT {
                    return Err(ManifestError::Format(*id, manifest.format));
                }
                Ok(StoredEntries {
                    id: *id,
                    header: Header {
                        source: manifest.source,
                        created: manifest.created,
                        immutability_recorded: manifest.immutability_recorded,
                        selection: manifest.selection,
                        entries: manifest.entries.len() as u64,
                    },
                    inner: Inner::Json(manifest.entries.into_iter()),
                })
            }
            None => Err(damaged(DecodeError::Truncated)),
            Some(_) => {
                let reader = ManifestReader::new(input).map_err(damaged)?;
                Ok(StoredEntries {
                    id: *id,
                    header: reader.header().clone(),
                    inner: Inner::Binary(Some(Box::new(reader))),
                })
            }
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
}

impl Iterator for StoredEntries {
    type Item = Result<Entry, ManifestError>;

    fn next(&mut self) -> Option<Self::Item> {
        let id = self.id;
        let damaged = |source| ManifestError::Damaged { id, source };
        match &mut self.inner {
            Inner::Json(entries) => entries.next().map(Ok),
            Inner::Binary(slot) => {
                let reader = slot.as_mut()?;
                match reader.next() {
                    Some(Ok(entry)) => Some(Ok(entry)),
                    Some(Err(e)) => {
                        *slot = None;
                        Some(Err(damaged(e)))
                    }
                    None => {
                        let reader = slot.take()?;
                        let hashing = reader.into_inner().into_inner();
                        check_hash(&id, hashing).err().map(|e| Err(damaged(e)))
                    }
                }
            }
        }
    }
}

impl Manifest {
    /// Reads manifest `id` whole, in either format, checked against its id.
    pub fn load(store: &Store, id: &ObjectId) -> Result<Manifest, ManifestError> {
        let mut stream = StoredEntries::open(store, id)?;
        let header = stream.header().clone();
        // The count comes from outside: trust it for the allocation only up to a point.
        let mut entries = Vec::with_capacity(header.entries.min(1 << 20) as usize);
        for entry in &mut stream {
            entries.push(entry?);
        }
        Ok(Manifest {
            format: FORMAT,
            source: header.source,
            created: header.created,
            entries,
            immutability_recorded: header.immutability_recorded,
            selection: header.selection,
        })
    }

    /// Stores the manifest in the binary format (see [`save_entries`]).
    pub fn save(&self, store: &Store) -> Result<ObjectId, StoreError> {
        save_entries(store, &self.header(), &self.entries)
    }

    /// Everything but the entries, as the binary format stores it.
    pub fn header(&self) -> Header {
        Header {
            source: self.source.clone(),
            created: self.created,
            immutability_recorded: self.immutability_recorded,
            selection: self.selection.clone(),
            entries: self.entries.len() as u64,
        }
    }
}

/// Stores a manifest given as its header and its entries, streamed into the store, which
/// hashes the bytes and renames them into place only when complete: a failure leaves no
/// object behind. For a caller that makes entries one by one and need not hold them all;
/// `header.entries` must be their number, and equal input always gives the same id.
pub fn save_entries<'a>(
    store: &Store,
    header: &Header,
    entries: impl IntoIterator<Item = &'a Entry>,
) -> Result<ObjectId, StoreError> {
    let failed = |source| StoreError {
        action: "write manifest into",
        path: store.root().join("tmp"),
        source,
    };
    let writer = store.writer()?;
    let mut out = ManifestWriter::new(writer, header, Compression::Zstd).map_err(failed)?;
    for entry in entries {
        out.push(entry).map_err(failed)?;
    }
    Ok(out.finish().map_err(failed)?.finish()?.id)
}

/// Reads what is left of the object through the hasher and compares with the id.
fn check_hash(id: &ObjectId, mut rest: Hashing<File>) -> Result<(), DecodeError> {
    io::copy(&mut rest, &mut io::sink()).map_err(DecodeError::from_io)?;
    let actual = ObjectId(rest.hasher.finalize().into());
    if actual == *id {
        Ok(())
    } else {
        Err(DecodeError::Hash { actual })
    }
}

/// Hashes every byte read through it.
struct Hashing<R> {
    inner: R,
    hasher: Sha256,
}

impl<R> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            hasher: Sha256::new(),
        }
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
