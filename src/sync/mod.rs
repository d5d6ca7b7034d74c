//! Sync: turn a source's upstream into a new snapshot, and publish it only when complete.

pub mod confine;
pub mod fetch;
pub mod kind;
pub mod previous;
pub mod snapshot;
pub mod spill;

// The source kinds: one line each (see `kind`).
kind::registry! {
    dir: Dir(dir::DirOptions) = "dir";
    apt: Apt(apt::AptOptions) = "apt";
    puavo: Puavo(puavo::PuavoOptions) = "puavo";
    files: Files(files::FilesOptions) = "files";
}

use crate::time::unix_now;

use crate::manifest::binary::Header;
use crate::manifest::{Entry, ManifestError, Selection};
use crate::store::refs::SourceRefs;
use crate::store::{ObjectId, Store, StoreError};
use kind::{Kind, StreamRun};
use snapshot::NewEntries;

/// Why a sync failed. The previous snapshot stays published in every case.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The upstream is wrong or unreachable: the message says what and where.
    #[error("{0}")]
    Upstream(String),
    /// The upstream's host could not be reached at all (DNS, refused, connect timeout): the
    /// message names the host and the URL; the app adds where to point the source instead.
    #[error("{message}")]
    Unreachable { host: String, message: String },
    /// The upstream changed during the sync (used inside the apt sync to start over).
    #[error("the upstream changed during the sync: {0}")]
    Restart(String),
    #[error("cannot read {path}: {source}")]
    Input {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl SyncError {
    /// The host that could not be reached, for an [`SyncError::Unreachable`].
    pub fn unreachable_host(&self) -> Option<&str> {
        match self {
            SyncError::Unreachable { host, .. } => Some(host),
            _ => None,
        }
    }

    /// The disk (or its inodes) ran out: ENOSPC, or EDQUOT for a quota.
    pub fn is_disk_full(&self) -> bool {
        let io = match self {
            SyncError::Store(e) => Some(&e.source),
            SyncError::Input { source, .. } => Some(source),
            SyncError::Manifest(ManifestError::Store(e)) => Some(&e.source),
            // Downloads report their store errors as text.
            SyncError::Upstream(message) => {
                return message.contains("(os error 28)") || message.contains("(os error 122)")
            }
            _ => None,
        };
        io.is_some_and(|e| {
            e.kind() == std::io::ErrorKind::StorageFull
                || e.kind() == std::io::ErrorKind::QuotaExceeded
        })
    }
}

/// What a successful sync did.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SyncReport {
    pub source: String,
    /// The snapshot published now (new or unchanged).
    pub snapshot: Option<String>,
    /// False when nothing changed and no new snapshot was made.
    pub changed: bool,
    /// What the snapshot holds, what was new to the store, what the upstream was asked.
    #[serde(flatten)]
    pub counts: crate::store::refs::Counts,
    /// What went wrong without failing the whole sync (a Puavo series that could not be
    /// built, a listed in-use image that no followed series has).
    #[serde(default)]
    pub problems: Vec<String>,
    /// Part of the source (a Puavo series) failed and kept its previous files; the rest was
    /// published. Counts as a failure for exit codes and metrics.
    #[serde(default)]
    pub partial: bool,
    /// The source is pinned: a new snapshot was retained, not published.
    #[serde(default)]
    pub pinned: bool,
    /// A small state file to write once the snapshot is published (path, bytes).
    #[serde(skip)]
    pub pending_state: Option<(std::path::PathBuf, Vec<u8>)>,
    /// What chose the snapshot's files, recorded with it (see [`crate::manifest::Selection`]).
    #[serde(skip)]
    pub selection: Option<crate::manifest::Selection>,
}

/// Drives a remote sync's async work to the end. Syncs run on blocking threads (or the
/// CLI's main thread), never on a runtime worker, so blocking here is allowed; without a
/// runtime (the CLI) a small one is made for the sync.
pub fn block_on<T>(
    work: impl std::future::Future<Output = Result<T, SyncError>>,
) -> Result<T, SyncError> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => handle.block_on(work),
        Err(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| SyncError::Upstream(format!("cannot start the download runtime: {e}")))?
            .block_on(work),
    }
}

/// Runs one sync of source `id` (of kind `kind`, keeping `keep` snapshots) against the store
/// (blocking; call from a blocking thread).
pub fn run(store: &Store, id: &str, keep: usize, kind: &dyn Kind) -> Result<SyncReport, SyncError> {
    let refs = store.read_refs(id)?;
    // A pinned current is older than what the last sync made: compare with the newest.
    let previous = refs.head();
    let mut report = SyncReport {
        source: id.to_string(),
        ..SyncReport::default()
    };
    let mut entries = NewEntries::new(store, kind, previous.is_some());
    kind.sync_into(StreamRun {
        store,
        source: id,
        previous,
        report: &mut report,
        out: &mut entries,
    })?;
    let selection = report.selection.take();
    report.counts.files = entries.len();
    report.counts.bytes = entries.total_bytes();
    let published = publish(store, id, keep, &refs, entries, selection)?;
    if let Some((path, bytes)) = report.pending_state.take() {
        store.write_atomic(&path, &bytes)?;
    }
    report.pinned = refs.pinned.is_some();
    if let (Some(pinned), true) = (refs.pinned, published.1) {
        report.problems.push(format!(
            "the new snapshot is retained but not published: `{}` is pinned to {} (mirrorbox unpin {})",
            id,
            pinned.short(crate::view::SNAPSHOT_ID_CHARS),
            id
        ));
    }
    report.changed = published.1;
    report.snapshot = Some(published.0.short(crate::view::SNAPSHOT_ID_CHARS));
    cap_problems(id, &mut report.problems);
    Ok(report)
}

/// The most problems one run reports; the rest are counted. A Debian mirror with
/// `ignore_errors` can leave thousands of files out, and every one would otherwise be a line of
/// `mirrorbox sync` output, of the run record and of every status page.
const MAX_PROBLEMS: usize = 20;

/// Keeps the first [`MAX_PROBLEMS`] problems and one line counting the rest, which go to the log.
fn cap_problems(source: &str, problems: &mut Vec<String>) {
    if problems.len() <= MAX_PROBLEMS {
        return;
    }
    let dropped = problems.split_off(MAX_PROBLEMS - 1);
    for problem in &dropped {
        tracing::warn!(source, "{problem}");
    }
    problems.push(format!(
        "… and {} more problems like these (the log names each)",
        dropped.len()
    ));
}

/// Stores the new snapshot and makes it current, unless it equals the current one. Trims the
/// retained list to `keep`. Returns the current id and whether it changed.
fn publish(
    store: &Store,
    source: &str,
    keep: usize,
    refs: &SourceRefs,
    entries: NewEntries<'_>,
    selection: Option<Selection>,
) -> Result<(ObjectId, bool), SyncError> {
    if let Some(head) = refs.head() {
        // A new selection is recorded even when it chose the same files.
        if snapshot::unchanged(&entries, &selection) {
            return Ok((head, false));
        }
    }
    let header = Header {
        source: source.to_string(),
        created: unix_now(),
        immutability_recorded: true,
        selection,
        entries: 0,
    };
    let id = snapshot::save(store, entries, header)?;
    let mut snapshots: Vec<ObjectId> = refs
        .snapshots
        .iter()
        .copied()
        .filter(|s| *s != id)
        .collect();
    snapshots.push(id);
    // Trim the oldest, but never a pinned snapshot (it is still published).
    let mut excess = snapshots.len().saturating_sub(keep);
    snapshots.retain(|s| {
        if excess > 0 && Some(*s) != refs.pinned {
            excess -= 1;
            false
        } else {
            true
        }
    });
    store.write_refs(
        source,
        &SourceRefs {
            current: Some(refs.pinned.unwrap_or(id)),
            snapshots,
            pinned: refs.pinned,
        },
    )?;
    Ok((id, true))
}

/// Last-Modified for content at a path: kept while the content is the same; when it changes,
/// the file's own date, but never earlier than one second after the previous date (so an
/// `If-Range` date never matches different bytes) and never later than now unless that rule
/// requires it.
pub fn last_modified(previous: Option<&Entry>, object: &ObjectId, candidate: i64, now: i64) -> i64 {
    let candidate = candidate.min(now);
    match previous {
        Some(prev) if prev.object == *object => prev.mtime,
        Some(prev) => candidate.max(prev.mtime + 1),
        None => candidate,
    }
}

/// `published snapshot … (… files, … bytes; stored … new files, … bytes)`, then one
/// `warning:` line per problem.
impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let failed = if self.partial { "PARTLY FAILED: " } else { "" };
        let outcome = match (self.changed, self.pinned) {
            (true, false) => "published",
            (true, true) => "retained (pinned, not published)",
            (false, _) => "unchanged,",
        };
        write!(
            f,
            "{failed}{outcome} snapshot {} ({} files, {} bytes; stored {} new files, {} bytes)",
            self.snapshot.as_deref().unwrap_or("-"),
            self.counts.files,
            self.counts.bytes,
            self.counts.files_stored,
            self.counts.bytes_stored
        )?;
        for problem in &self.problems {
            write!(f, "\n  warning: {problem}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_beyond_the_cap_are_counted() {
        let mut few: Vec<String> = (0..MAX_PROBLEMS).map(|i| i.to_string()).collect();
        cap_problems("s", &mut few);
        assert_eq!(few.len(), MAX_PROBLEMS);
        let mut many: Vec<String> = (0..3000).map(|i| format!("file {i} left out")).collect();
        cap_problems("s", &mut many);
        assert_eq!(many.len(), MAX_PROBLEMS);
        assert_eq!(many[0], "file 0 left out");
        assert_eq!(
            many[MAX_PROBLEMS - 1],
            format!(
                "… and {} more problems like these (the log names each)",
                3000 - (MAX_PROBLEMS - 1)
            )
        );
    }

    #[test]
    fn disk_full_is_recognised() {
        let store = |errno| {
            SyncError::Store(StoreError {
                action: "write",
                path: "x".into(),
                source: std::io::Error::from_raw_os_error(errno),
            })
        };
        assert!(store(libc::ENOSPC).is_disk_full());
        assert!(store(libc::EDQUOT).is_disk_full());
        assert!(!store(libc::EIO).is_disk_full());
        assert!(SyncError::Upstream(
            "write tmp/partial/ab: No space left on device (os error 28)".into()
        )
        .is_disk_full());
        assert!(!SyncError::Upstream("connection refused".into()).is_disk_full());
    }

    #[test]
    fn last_modified_rules() {
        let prev = Entry {
            path: "p".into(),
            object: ObjectId([1; 32]),
            size: 0,
            mtime: 100,
            stamp: None,
            origin: None,
            immutable: false,
        };
        // New path: the file's date, clamped to now.
        assert_eq!(last_modified(None, &ObjectId([2; 32]), 50, 1000), 50);
        assert_eq!(last_modified(None, &ObjectId([2; 32]), 5000, 1000), 1000);
        // Same content: the date never moves.
        assert_eq!(
            last_modified(Some(&prev), &ObjectId([1; 32]), 900, 1000),
            100
        );
        // New content with an older file date: still moves forward.
        assert_eq!(
            last_modified(Some(&prev), &ObjectId([2; 32]), 50, 1000),
            101
        );
        assert_eq!(
            last_modified(Some(&prev), &ObjectId([2; 32]), 500, 1000),
            500
        );
    }
}
