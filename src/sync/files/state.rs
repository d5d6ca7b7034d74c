//! What the upstream said about each file last time (ETag, Last-Modified, and the object
//! those describe), so the next sync can ask "changed since?" and get a body-less 304 for
//! every unchanged file.
//!
//! The state is written only after the snapshot is published (through
//! [`SyncReport::pending_state`](crate::sync::SyncReport)): validators from a sync that
//! failed must never turn into a 304 for content the mirror does not publish.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::store::{ObjectId, Store};

/// Per path: the object we hold for it and the upstream's validators for those bytes.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub files: BTreeMap<String, FileState>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileState {
    pub object: ObjectId,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    /// SHA-512 of the object, once an index asked for it (saves re-reading big files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha512: Option<String>,
}

impl FileState {
    /// Whether a conditional request can be made: there are validators.
    pub fn has_validators(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// `refs/<source>/files.json`.
pub fn path(store: &Store, source: &str) -> PathBuf {
    store.refs_dir().join(source).join("files.json")
}

/// The state of the last published sync; empty if there is none or it cannot be read (the
/// cost is one full download per file, never a wrong file).
pub fn load(store: &Store, source: &str) -> State {
    let path = path(store, source);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable upstream state");
            State::default()
        }),
        Err(_) => State::default(),
    }
}

impl State {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("state serializes")
    }
}
