//! Deep verify: re-hash stored objects, quarantine the ones whose bytes no longer match their
//! name, and check that every ref names a complete snapshot.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use super::gc::ObjectSet;
use super::{hash_file, GcGuard, ObjectId, SnapshotReader, Store, StoreError};

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub objects: u64,
    pub bytes: u64,
    /// Objects whose content did not match their name; moved to quarantine/.
    pub damaged: Vec<ObjectId>,
    /// Problems with refs and manifests: what is named but absent or unreadable.
    pub missing: Vec<String>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.damaged.is_empty() && self.missing.is_empty()
    }
}

/// Verifies the snapshots of `sources` (all sources with refs if empty), reading their file
/// lists with `snapshots`. Objects named by several snapshots are hashed once. Uses every
/// core. The guard keeps GC and syncs from moving objects meanwhile.
pub fn verify<R: SnapshotReader>(
    store: &Store,
    snapshots: &R,
    sources: &[String],
    _alone: &GcGuard<'_>,
) -> Result<VerifyReport, StoreError> {
    let sources = if sources.is_empty() {
        store.sources_with_refs()?
    } else {
        sources.to_vec()
    };
    let mut report = VerifyReport::default();
    // Every object to hash, kept sorted and without repeats after each snapshot: 32 bytes
    // per distinct object, however many snapshots share it (an object an earlier snapshot
    // named is not even added again).
    let mut objects = ObjectSet::default();
    for source in &sources {
        let refs = match store.read_refs(source) {
            Ok(refs) => refs,
            Err(e) => {
                report.missing.push(format!("source {source}: {e}"));
                continue;
            }
        };
        let mut manifests: BTreeSet<ObjectId> = refs.snapshots.iter().copied().collect();
        manifests.extend(refs.current);
        if let Some(current) = refs.current {
            if !refs.snapshots.contains(&current) {
                // A pinned or crashed-mid-publish state is fine; just keep checking.
                tracing::debug!(source, "current snapshot is not in the retained list");
            }
        }
        for id in manifests {
            let mut absent = Vec::new();
            let listed = snapshots.for_each_file(store, &id, &mut |path, object| {
                if store.contains(object) {
                    objects.add(*object);
                } else {
                    absent.push(format!(
                        "source {source}: snapshot {} names {path} ({}), which is not stored",
                        id.short(16),
                        object.short(16)
                    ));
                }
            });
            match listed {
                Ok(()) => {
                    objects.add(id);
                    report.missing.extend(absent);
                    objects.settle();
                }
                Err(e) => {
                    objects.discard_batch();
                    report
                        .missing
                        .push(format!("source {source}: snapshot {}: {e}", id.short(16)));
                }
            }
        }
    }
    let next = AtomicUsize::new(0);
    let bytes = AtomicU64::new(0);
    let damaged = Mutex::new(Vec::new());
    let failures = Mutex::new(Vec::new());
    let objects = objects.as_slice();
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(id) = objects.get(i) else { break };
                let path = store.object_path(id);
                match hash_file(&path) {
                    Ok((actual, size)) => {
                        bytes.fetch_add(size, Ordering::Relaxed);
                        if actual != *id {
                            damaged.lock().expect("not poisoned").push(*id);
                        }
                    }
                    Err(e) => failures.lock().expect("not poisoned").push(e.to_string()),
                }
            });
        }
    });
    report.objects = objects.len() as u64;
    report.bytes = bytes.into_inner();
    report
        .missing
        .extend(failures.into_inner().expect("not poisoned"));
    let mut damaged = damaged.into_inner().expect("not poisoned");
    damaged.sort();
    for id in &damaged {
        let to = store.quarantine(id)?;
        tracing::error!(object = %id, quarantined = %to.display(), "object content does not match its hash");
    }
    report.damaged = damaged;
    Ok(report)
}

/// A summary line, then one line per damaged object and per problem.
impl std::fmt::Display for VerifyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "verified {} objects, {} bytes: {} damaged (quarantined), {} problems",
            self.objects,
            self.bytes,
            self.damaged.len(),
            self.missing.len()
        )?;
        for id in &self.damaged {
            write!(f, "\n  damaged: {id}")?;
        }
        for problem in &self.missing {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
