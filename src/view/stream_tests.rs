//! A view built from streamed snapshots equals the one built from sorted manifests in memory,
//! whatever order a snapshot's entries come in, and a snapshot that fails at its end fails
//! the build.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::random_tests::{assert_same, queries, random_entry, random_path, random_sources};
use super::reference::Reference;
use super::*;

/// Each snapshot's entries as stored: in path order, or (outside data) shuffled with repeats
/// of some paths after their first occurrence (the first one counts).
fn stored_forms(
    sources: &[SourceSnapshots],
    rng: &mut StdRng,
) -> HashMap<(String, ObjectId), Vec<Entry>> {
    let mut stored = HashMap::new();
    for source in sources {
        let plan = source.plan();
        let ids = plan.retained.iter().chain(plan.current.iter());
        for id in ids {
            let mut entries = source.manifest(&plan, id).entries.clone();
            if rng.gen_bool(0.5) {
                entries.shuffle(rng);
                for at in (0..entries.len()).rev().step_by(3) {
                    let mut repeat = entries[at].clone();
                    repeat.object = ObjectId([0xee; 32]);
                    repeat.size += 1;
                    let after = rng.gen_range(at + 1..=entries.len());
                    entries.insert(after, repeat);
                }
            }
            stored.insert((source.id.clone(), *id), entries);
        }
    }
    stored
}

#[test]
fn snapshots_streamed_in_any_order_give_the_view_of_sorted_manifests() {
    let mut rng = StdRng::seed_from_u64(14);
    for _ in 0..300 {
        let sources = random_sources(&mut rng);
        let stored = stored_forms(&sources, &mut rng);
        let plans: Vec<SourcePlan> = sources.iter().map(SourceSnapshots::plan).collect();
        let mut open = |source: &str, id: &ObjectId| -> Result<Entries<'_>, ManifestError> {
            let entries = stored[&(source.to_string(), *id)].clone();
            Ok(Box::new(entries.into_iter().map(Ok)))
        };
        let view = View::build_streamed(&plans, &mut open, &View::default()).unwrap();
        let reference = Reference::build(&sources);
        assert_same(&view, &reference, &queries(&reference, &mut rng));
    }
}

#[test]
fn a_snapshot_failing_at_its_end_fails_the_build() {
    let mut rng = StdRng::seed_from_u64(15);
    let sources = loop {
        let sources = random_sources(&mut rng);
        if sources.iter().any(|s| !s.retained.is_empty()) {
            break sources;
        }
    };
    let plans: Vec<SourcePlan> = sources.iter().map(SourceSnapshots::plan).collect();
    let damaged = plans
        .iter()
        .find_map(|p| p.retained.last().copied())
        .unwrap();
    let mut open = |source: &str, id: &ObjectId| -> Result<Entries<'_>, ManifestError> {
        let snapshots = sources.iter().find(|s| s.id == source).unwrap();
        let plan = snapshots.plan();
        let entries = snapshots.manifest(&plan, id).entries.clone();
        let end = (*id == damaged).then_some(Err(ManifestError::Damaged {
            id: *id,
            source: crate::manifest::binary::DecodeError::Truncated,
        }));
        Ok(Box::new(entries.into_iter().map(Ok).chain(end)))
    };
    let built = View::build_streamed(&plans, &mut open, &View::default());
    assert!(matches!(built, Err(ManifestError::Damaged { id, .. }) if id == damaged));
}

/// A new snapshot of a source: the snapshots it keeps are indexed from the previous part (no
/// manifest of theirs is opened), and the view equals the one of the manifests.
#[test]
fn snapshots_kept_from_the_previous_view_are_not_read_again() {
    let mut rng = StdRng::seed_from_u64(16);
    for round in 0..200u8 {
        let mut sources = random_sources(&mut rng);
        let before = View::build(&sources);
        let kept: Vec<ObjectId> = sources[0].retained.iter().map(|(id, _)| *id).collect();
        let source = &mut sources[0];
        let mut entries: Vec<Entry> = source
            .retained
            .last()
            .map(|(_, m)| m.entries.clone())
            .unwrap_or_default();
        for _ in 0..3 {
            let path = random_path(&mut rng);
            entries.push(random_entry(&mut rng, path));
        }
        let newest = Arc::new(Manifest::new(&source.id, 2, entries));
        if !source.retained.is_empty() && rng.gen_bool(0.5) {
            source.retained.remove(0);
        }
        source
            .retained
            .push((ObjectId([0xd0 ^ round; 32]), newest.clone()));
        source.current = Some(newest);
        let plans: Vec<SourcePlan> = sources.iter().map(SourceSnapshots::plan).collect();
        let mut open = |source: &str, id: &ObjectId| -> Result<Entries<'_>, ManifestError> {
            assert!(
                source != sources[0].id || !kept.contains(id),
                "{id} read again"
            );
            let snapshots = sources.iter().find(|s| s.id == source).unwrap();
            let plan = snapshots.plan();
            let entries = snapshots.manifest(&plan, id).entries.clone();
            Ok(Box::new(entries.into_iter().map(Ok)))
        };
        let after = View::build_streamed(&plans, &mut open, &before).unwrap();
        let reference = Reference::build(&sources);
        assert_same(&after, &reference, &queries(&reference, &mut rng));
    }
}
