//! What costs a full read of a large file is computed once and remembered beside the store:
//! an object's SHA-512, `cksum` and puavo-conf, and the deltas (and torrents) made from
//! objects. Keys are object hashes, so a cache entry can never describe other bytes; a
//! delta whose object was collected since is simply made again. Losing `cache/` costs time,
//! never correctness.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256, Sha512};

use crate::puavo::meta::FileFacts;
use crate::puavo::{cksum, squashfs};
use crate::store::{ObjectId, Store, StoreError};

/// Facts about one object, as stored in `cache/puavo/facts/<object>.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Facts {
    pub size: u64,
    pub cksum: u32,
    pub sha512: String,
    /// Only for images: the merged puavo-conf definitions, or why they could not be read.
    #[serde(default)]
    pub puavo_conf: Option<Map<String, Value>>,
    #[serde(default)]
    pub puavo_conf_problem: Option<String>,
}

impl Facts {
    pub fn file_facts(&self, object: &ObjectId) -> FileFacts {
        FileFacts {
            size: self.size,
            cksum: self.cksum,
            sha256: object.to_hex(),
            sha512: self.sha512.clone(),
        }
    }
}

pub struct Cache<'a> {
    store: &'a Store,
    facts_dir: PathBuf,
    made_dir: PathBuf,
}

impl<'a> Cache<'a> {
    pub fn open(store: &'a Store) -> Result<Cache<'a>, StoreError> {
        let root = store.root().join("cache").join("puavo");
        let facts_dir = root.join("facts");
        let made_dir = root.join("made");
        for dir in [&facts_dir, &made_dir] {
            fs::create_dir_all(dir).map_err(|source| StoreError {
                action: "create directory",
                path: dir.clone(),
                source,
            })?;
        }
        Ok(Cache {
            store,
            facts_dir,
            made_dir,
        })
    }

    /// SHA-512 and `cksum` of an object (one read), and for images its puavo-conf.
    pub fn facts(&self, object: &ObjectId, image: bool) -> Result<Facts, StoreError> {
        let path = self.facts_dir.join(format!("{}.json", object.to_hex()));
        if let Ok(text) = fs::read(&path) {
            if let Ok(facts) = serde_json::from_slice::<Facts>(&text) {
                if !image || facts.puavo_conf.is_some() || facts.puavo_conf_problem.is_some() {
                    return Ok(facts);
                }
            }
        }
        let object_path = self.store.object_path(object);
        let read_error = |source| StoreError {
            action: "read object",
            path: object_path.clone(),
            source,
        };
        let file = File::open(&object_path).map_err(read_error)?;
        let mut tee = HashingReader {
            inner: file,
            hasher: Sha512::new(),
        };
        let (crc, size) = cksum::cksum(&mut tee).map_err(read_error)?;
        let mut facts = Facts {
            size,
            cksum: crc,
            sha512: hex::encode(tee.hasher.finalize()),
            puavo_conf: None,
            puavo_conf_problem: None,
        };
        if image {
            match squashfs::puavo_conf(&object_path) {
                Ok(conf) => facts.puavo_conf = Some(conf),
                Err(why) => facts.puavo_conf_problem = Some(why),
            }
        }
        if let Ok(text) = serde_json::to_vec(&facts) {
            // A cache write that fails only costs the next run a re-read.
            let _ = self.store.write_atomic(&path, &text);
        }
        Ok(facts)
    }

    /// The object made earlier from the inputs named by `key`, if it is still stored.
    pub fn made(&self, key: &CacheKey) -> Option<ObjectId> {
        let text = fs::read_to_string(self.made_dir.join(&key.0)).ok()?;
        let id: ObjectId = text.trim().parse().ok()?;
        self.store.contains(&id).then_some(id)
    }

    pub fn remember(&self, key: &CacheKey, object: &ObjectId) {
        let path = self.made_dir.join(&key.0);
        let _ = self.store.write_atomic(&path, object.to_hex().as_bytes());
    }
}

/// A hash of everything a derived object depends on.
pub struct CacheKey(String);

impl CacheKey {
    pub fn new(parts: &[&[u8]]) -> CacheKey {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        CacheKey(hex::encode(hasher.finalize()))
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha512,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}
