//! The app's view: built from the refs when this process serves, rebuilt after each publish,
//! and the per-source "held alone" numbers the status page shows.
//!
//! Nothing here keeps a manifest: a source whose refs did not change keeps its part of the
//! view (decided from the ids alone), and a part that must be built streams its manifests one
//! entry at a time. The memory of a serving process is the view plus a fixed amount.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::{heap, App, Published};
use crate::config::SourceConfig;
use crate::manifest::{ManifestError, StoredEntries};
use crate::store::gc;
use crate::store::ObjectId;
use crate::view::{Entries, SourcePlan, View};

impl App {
    /// From now on this process serves: builds the view now, and again whenever snapshots
    /// change.
    pub fn serve_view(&self) -> Result<(), ManifestError> {
        self.serving.store(true, Ordering::Relaxed);
        self.refresh_view()
    }

    /// Builds the view from every configured source's refs and publishes it, if this process
    /// serves; a CLI process (no [`App::serve_view`]) builds nothing. On an error (a damaged
    /// manifest) the previous view stays published.
    pub fn refresh_view(&self) -> Result<(), ManifestError> {
        if !self.serving.load(Ordering::Relaxed) {
            return Ok(());
        }
        let _one_at_a_time = self.view_builds.lock().expect("not poisoned");
        let started = Instant::now();
        let built = self.build_view();
        // The previous view's parts that were rebuilt, and the build's buffers, are free now
        // (or at the publish below): give them back whether the build worked or not.
        let (view, published) = match built {
            Ok(built) => built,
            Err(e) => {
                heap::release_free();
                return Err(e);
            }
        };
        let entries = view.len();
        for conflict in &view.conflicts {
            tracing::warn!(path = %conflict, "two sources publish different content at this path; the first in the config wins");
        }
        self.view.publish(view);
        *self.published.lock().expect("not poisoned") = published;
        self.objects.clear();
        if self.unique_wanted.load(Ordering::Relaxed) {
            self.refresh_unique();
        }
        heap::release_free();
        tracing::debug!(
            entries,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "view published"
        );
        Ok(())
    }

    /// The view of the refs as they are now, and what each source published.
    fn build_view(&self) -> Result<(View, HashMap<String, Published>), ManifestError> {
        let before = self.published.lock().expect("not poisoned").clone();
        let mut plans = Vec::new();
        let mut published = HashMap::new();
        for source in &self.config.sources {
            let refs = self.store.read_refs(&source.id)?;
            let mut retained: Vec<ObjectId> = Vec::new();
            for id in refs.snapshots.iter().chain(refs.current.iter()) {
                if !retained.contains(id) {
                    retained.push(*id);
                }
            }
            let known = before
                .get(&source.id)
                .filter(|p| p.refs.current.is_some() && p.refs.current == refs.current);
            let current_created = match (known, refs.current) {
                (Some(known), _) => known.current_created,
                (None, Some(id)) => Some(StoredEntries::open(&self.store, &id)?.header().created),
                (None, None) => None,
            };
            plans.push(SourcePlan {
                id: source.id.clone(),
                mount: source.mount.clone(),
                retained,
                current: refs.current,
                fill_in: source.kind.fills_in(),
            });
            published.insert(
                source.id.clone(),
                Published {
                    current_created,
                    refs,
                },
            );
        }
        let mut open = |source: &str, id: &ObjectId| self.open_snapshot(source, id);
        // Sources whose snapshots did not change keep their part of the view as it is.
        let view = View::build_streamed(&plans, &mut open, &self.view.load())?;
        Ok((view, published))
    }

    /// The entries of manifest `id` of `source`, streamed; snapshots made before entries
    /// carried their caching flag get it from the source kind's rule as they stream by.
    fn open_snapshot(&self, source: &str, id: &ObjectId) -> Result<Entries<'_>, ManifestError> {
        let stream = StoredEntries::open(&self.store, id)?;
        let kind: Option<&SourceConfig> = self.config.source(source);
        match kind {
            Some(config) if !stream.header().immutability_recorded => {
                let kind = &config.kind;
                Ok(Box::new(stream.map(move |entry| {
                    entry.map(|mut entry| {
                        entry.immutable = kind.is_immutable(&entry.path);
                        entry
                    })
                })))
            }
            _ => Ok(Box::new(stream)),
        }
    }

    /// From now on, keeps the bytes each source and snapshot holds alone up to date (for the
    /// status page), starting now.
    pub fn track_unique(&self) {
        // Not beside a view build: its count, from a newer view, must be the last word.
        let _one_at_a_time = self.view_builds.lock().expect("not poisoned");
        self.unique_wanted.store(true, Ordering::Relaxed);
        self.refresh_unique();
        self.unique_ready.store(true, Ordering::Relaxed);
        heap::release_free();
    }

    /// Recomputes [`gc::Unique`] from the files of each snapshot as the view holds them (no
    /// manifest decoded), streaming the manifest of a snapshot the view lacks (refs that moved
    /// since it was built); on an error the previous numbers stay, and the status page shows
    /// them.
    fn refresh_unique(&self) {
        let view = self.view.load();
        let mut each_file = |id: &ObjectId, each: &mut dyn FnMut(ObjectId, u64)| {
            if view.each_file_of(id, &mut *each) {
                return Ok(());
            }
            for entry in StoredEntries::open(&self.store, id)? {
                let entry = entry?;
                each(entry.object, entry.size);
            }
            Ok::<_, ManifestError>(())
        };
        match gc::unique_streamed(&self.store, &mut each_file) {
            Ok(unique) => *self.unique.lock().expect("not poisoned") = unique,
            Err(e) => tracing::warn!(error = %e, "cannot count the bytes each source holds alone"),
        }
    }
}
