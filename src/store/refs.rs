//! Refs: tiny files that name manifests. Publishing a snapshot is replacing one of them.

use std::fs;
use std::io;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{ObjectId, Store, StoreError};

/// What a source publishes: its current snapshot and the retained ones (oldest first).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRefs {
    pub current: Option<ObjectId>,
    pub snapshots: Vec<ObjectId>,
    /// Set by `mirrorbox pin`: `current` stays this snapshot while syncs go on adding new ones.
    pub pinned: Option<ObjectId>,
}

impl SourceRefs {
    /// The newest snapshot a sync made (what the next sync compares with), which is
    /// `current` unless a snapshot is pinned.
    pub fn head(&self) -> Option<ObjectId> {
        self.snapshots.last().copied().or(self.current)
    }
}

/// What a sync run saw and did, counted. A sync's report and its run record carry the same
/// counts, so they are one struct that both embed (flattened: the JSON keeps its flat shape).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Counts {
    /// Files and bytes the snapshot publishes.
    pub files: u64,
    pub bytes: u64,
    /// Files and bytes that were new to the store.
    pub files_stored: u64,
    pub bytes_stored: u64,
    /// Requests made to the upstream and bytes received from it (remote sources).
    #[serde(default)]
    pub upstream_requests: u64,
    #[serde(default)]
    pub bytes_fetched: u64,
}

/// The last sync run of a source, kept for the status page and the scheduler across restarts.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    /// Unix seconds when the run started.
    pub started: i64,
    pub duration_ms: u64,
    pub ok: bool,
    pub error: Option<String>,
    /// Unix seconds of the last run that succeeded.
    pub last_success: Option<i64>,
    /// Flattened where the separate fields stood, so `state.json` is written byte for byte
    /// as before and older files read back.
    #[serde(flatten)]
    pub counts: Counts,
    /// Problems of a sync that still published (e.g. one Puavo series failed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Part of the source failed (see `problems`); the rest was published.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    /// Unix seconds of the last deep verify.
    #[serde(default)]
    pub last_verify: Option<i64>,
}

/// Why a snapshot was not removed. The refusals read after the snapshot's id, which the
/// caller prints in its short form.
#[derive(Debug, thiserror::Error)]
pub enum RemoveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("is current for `{0}` (what clients get) and cannot be removed; it can be once a newer snapshot is current")]
    Current(String),
    #[error("is pinned for `{0}` (served as current) and cannot be removed; `mirrorbox unpin {0}` first")]
    Pinned(String),
}

fn bad_ref(path: PathBuf, what: String) -> StoreError {
    StoreError {
        action: "read ref",
        path,
        source: io::Error::new(io::ErrorKind::InvalidData, what),
    }
}

impl Store {
    fn source_dir(&self, source: &str) -> PathBuf {
        self.refs_dir().join(source)
    }

    /// The ids of every source that has refs, including sources no longer configured.
    pub fn sources_with_refs(&self) -> Result<Vec<String>, StoreError> {
        let dir = self.refs_dir();
        let mut names = Vec::new();
        for entry in fs::read_dir(dir).map_err(super::err("read", dir))? {
            let entry = entry.map_err(super::err("read", dir))?;
            if entry.path().is_dir() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_string());
                }
            }
        }
        names.sort();
        Ok(names)
    }

    pub fn read_refs(&self, source: &str) -> Result<SourceRefs, StoreError> {
        let dir = self.source_dir(source);
        let current_path = dir.join("current");
        let current =
            match fs::read_to_string(&current_path) {
                Ok(text) => Some(text.trim().parse().map_err(
                    |e: super::object::BadObjectId| bad_ref(current_path.clone(), e.to_string()),
                )?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(super::err("read ref", &current_path)(e)),
            };
        let list_path = dir.join("snapshots");
        let snapshots = match fs::read_to_string(&list_path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    l.parse().map_err(|e: super::object::BadObjectId| {
                        bad_ref(list_path.clone(), e.to_string())
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(super::err("read ref", &list_path)(e)),
        };
        let pinned_path = dir.join("pinned");
        let pinned =
            match fs::read_to_string(&pinned_path) {
                Ok(text) => Some(text.trim().parse().map_err(
                    |e: super::object::BadObjectId| bad_ref(pinned_path.clone(), e.to_string()),
                )?),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => return Err(super::err("read ref", &pinned_path)(e)),
            };
        Ok(SourceRefs {
            current,
            snapshots,
            pinned,
        })
    }

    /// Replaces a source's refs: the snapshot list first, then the pin, then `current`. A
    /// crash between them leaves the old current published and the new snapshot merely
    /// retained.
    pub fn write_refs(&self, source: &str, refs: &SourceRefs) -> Result<(), StoreError> {
        let dir = self.source_dir(source);
        let pinned_path = dir.join("pinned");
        let mut list = String::new();
        for id in &refs.snapshots {
            list.push_str(&id.to_hex());
            list.push('\n');
        }
        self.write_atomic(&dir.join("snapshots"), list.as_bytes())?;
        match &refs.pinned {
            Some(id) => self.write_atomic(&pinned_path, format!("{id}\n").as_bytes())?,
            None => match fs::remove_file(&pinned_path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(super::err("remove ref", &pinned_path)(e)),
            },
        }
        match &refs.current {
            Some(id) => self.write_atomic(&dir.join("current"), format!("{id}\n").as_bytes())?,
            None => {
                let path = dir.join("current");
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(super::err("remove ref", &path)(e)),
                }
            }
        }
        Ok(())
    }

    /// Removes snapshot `id` from the retained list of `source`, refusing the current and the
    /// pinned snapshot (they are served). Its objects stay until the next GC, which frees
    /// what no other snapshot names. The caller keeps syncs of the source out meanwhile (a
    /// sync rewrites the list it read).
    pub fn remove_snapshot(&self, source: &str, id: &ObjectId) -> Result<SourceRefs, RemoveError> {
        let mut refs = self.read_refs(source)?;
        if refs.pinned == Some(*id) {
            return Err(RemoveError::Pinned(source.into()));
        }
        if refs.current == Some(*id) {
            return Err(RemoveError::Current(source.into()));
        }
        refs.snapshots.retain(|s| s != id);
        self.write_refs(source, &refs)?;
        Ok(refs)
    }

    /// Objects a sync fetched but could not publish yet (a failed Puavo series): GC keeps
    /// them until the source's next sync replaces the list, so a multi-gigabyte download is
    /// not thrown away and fetched again. A list that cannot be read holds nothing.
    pub fn read_held(&self, source: &str) -> Vec<ObjectId> {
        fs::read_to_string(self.source_dir(source).join("held"))
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    pub fn write_held(&self, source: &str, objects: &[ObjectId]) -> Result<(), StoreError> {
        let mut text = String::new();
        for id in objects {
            text.push_str(&id.to_hex());
            text.push('\n');
        }
        self.write_atomic(&self.source_dir(source).join("held"), text.as_bytes())
    }

    pub fn read_run_record(&self, source: &str) -> Option<RunRecord> {
        let text = fs::read(self.source_dir(source).join("state.json")).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn write_run_record(&self, source: &str, record: &RunRecord) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec_pretty(record).expect("run records serialize");
        self.write_atomic(&self.source_dir(source).join("state.json"), &bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{IngestMode, StoreOptions};

    #[test]
    fn refs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            dir.path(),
            &StoreOptions {
                fsync: true,
                ingest: IngestMode::Copy,
            },
        )
        .unwrap();
        assert_eq!(store.read_refs("a").unwrap(), SourceRefs::default());
        let one = store.put_bytes(b"1").unwrap();
        let two = store.put_bytes(b"2").unwrap();
        let refs = SourceRefs {
            current: Some(two),
            snapshots: vec![one, two],
            pinned: None,
        };
        store.write_refs("a", &refs).unwrap();
        assert_eq!(store.read_refs("a").unwrap(), refs);
        assert_eq!(store.sources_with_refs().unwrap(), vec!["a".to_string()]);
    }

    #[test]
    fn only_a_retained_snapshot_that_is_neither_current_nor_pinned_is_removed() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::tests::store(dir.path(), IngestMode::Copy);
        let (one, two, three) = (ObjectId([1; 32]), ObjectId([2; 32]), ObjectId([3; 32]));
        let refs = SourceRefs {
            current: Some(two),
            snapshots: vec![one, two, three],
            pinned: Some(two),
        };
        store.write_refs("a", &refs).unwrap();
        assert!(matches!(
            store.remove_snapshot("a", &two),
            Err(RemoveError::Pinned(_))
        ));
        store
            .write_refs(
                "a",
                &SourceRefs {
                    pinned: None,
                    ..refs.clone()
                },
            )
            .unwrap();
        assert!(matches!(
            store.remove_snapshot("a", &two),
            Err(RemoveError::Current(_))
        ));
        let left = store.remove_snapshot("a", &one).unwrap();
        assert_eq!(left.snapshots, vec![two, three]);
        assert_eq!(store.read_refs("a").unwrap(), left);
    }

    /// A `state.json` as written before the counters moved into [`Counts`].
    const OLD_STATE: &str = r#"{
  "started": 1700000000,
  "duration_ms": 1234,
  "ok": true,
  "error": null,
  "last_success": 1700000000,
  "files": 3,
  "bytes": 4096,
  "files_stored": 1,
  "bytes_stored": 100,
  "upstream_requests": 7,
  "bytes_fetched": 2048,
  "problems": [
    "one series failed"
  ],
  "partial": true,
  "last_verify": null
}"#;

    #[test]
    fn old_run_records_read_back_and_are_written_the_same() {
        let record: RunRecord = serde_json::from_str(OLD_STATE).unwrap();
        assert_eq!(record.counts.files_stored, 1);
        assert_eq!(record.counts.bytes_fetched, 2048);
        assert_eq!(record.problems, ["one series failed"]);
        assert_eq!(serde_json::to_string_pretty(&record).unwrap(), OLD_STATE);
        // From before the upstream counters and verify were recorded.
        let oldest = r#"{"started": 1, "duration_ms": 2, "ok": false, "error": "x",
            "last_success": null, "files": 3, "bytes": 4, "files_stored": 5, "bytes_stored": 6}"#;
        let record: RunRecord = serde_json::from_str(oldest).unwrap();
        assert_eq!(
            record.counts,
            Counts {
                files: 3,
                bytes: 4,
                files_stored: 5,
                bytes_stored: 6,
                upstream_requests: 0,
                bytes_fetched: 0,
            }
        );
        assert_eq!(record.last_verify, None);
    }
}
