//! What GC and verify need to know of a snapshot: the files it publishes. The manifest format
//! lives above the store (`crate::manifest` builds on the store), so the store does not read
//! manifests itself: the caller hands GC and verify a [`SnapshotReader`].

use std::fmt::Display;

use super::{ObjectId, Store, StoreError};

/// Reads the file list of a snapshot stored as object `id`.
pub trait SnapshotReader {
    /// Why a snapshot could not be read; store errors convert into it.
    type Error: From<StoreError> + Display;

    /// Calls `each` with the path and object of every file snapshot `id` publishes.
    fn for_each_file(
        &self,
        store: &Store,
        id: &ObjectId,
        each: &mut dyn FnMut(&str, &ObjectId),
    ) -> Result<(), Self::Error>;
}
