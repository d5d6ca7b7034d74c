//! What the upstream said about the InRelease this mirror holds (`upstream.json` beside the
//! source's snapshots), for a conditional request next time. A 304 proves "unchanged" only
//! for the same object from the same upstream: the validators record both.

use serde::{Deserialize, Serialize};

use super::urls::url_key;
use super::Mirror;
use crate::store::ObjectId;
use crate::sync::fetch::Small;
use crate::sync::SyncReport;

#[derive(Debug, Default, Serialize, Deserialize)]
struct UpstreamState {
    /// The object those validators describe.
    object: Option<ObjectId>,
    /// [`url_key`] of the InRelease URL they came from: another upstream's `ETag` or date
    /// says nothing about this one's InRelease.
    #[serde(default)]
    url: Option<String>,
    etag: Option<String>,
    last_modified: Option<String>,
}

impl Mirror<'_> {
    fn state_path(&self) -> std::path::PathBuf {
        self.store
            .refs_dir()
            .join(self.source)
            .join("upstream.json")
    }

    /// `(ETag, Last-Modified)` to send for `url` when the current snapshot's InRelease is
    /// `current`; none (an unconditional request) when they describe another object or came
    /// from another upstream (validators recorded before the URL was are not trusted either).
    pub(super) fn validators(
        &self,
        url: &str,
        current: Option<ObjectId>,
    ) -> Option<(String, String)> {
        let state: UpstreamState = std::fs::read(self.state_path())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let same_object = current.is_some() && state.object == current;
        let same_upstream = state.url.as_deref() == Some(url_key(url).as_str());
        (same_object && same_upstream).then(|| {
            (
                state.etag.unwrap_or_default(),
                state.last_modified.unwrap_or_default(),
            )
        })
    }

    fn state_bytes(&self, url: &str, object: ObjectId, small: &Small) -> Vec<u8> {
        serde_json::to_vec(&UpstreamState {
            object: Some(object),
            url: Some(url_key(url)),
            etag: small.etag.clone(),
            last_modified: small.last_modified.clone(),
        })
        .expect("state serializes")
    }

    /// Records the validators now: the object they describe is already the current one.
    pub(super) fn save_state(&self, url: &str, object: ObjectId, small: &Small) {
        let bytes = self.state_bytes(url, object, small);
        if let Err(e) = self.store.write_atomic(&self.state_path(), &bytes) {
            tracing::warn!(error = %e, "cannot remember the upstream's validators");
        }
    }

    /// The validators are written only once the snapshot is published (by `sync::run`), so a
    /// failed sync never turns into a 304 "nothing to do" next time.
    pub(super) fn save_state_later(
        &self,
        url: &str,
        object: ObjectId,
        small: &Small,
        report: &mut SyncReport,
    ) {
        report.pending_state = Some((self.state_path(), self.state_bytes(url, object, small)));
    }
}
