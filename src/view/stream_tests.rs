//! A view built from streamed snapshots equals the one built from sorted manifests in memory,
//! whatever order a snapshot's entries come in, and a snapshot that fails at its end fails
//! the build.

use std::collections::HashMap;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::random_tests::{assert_same, queries, random_sources};
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
