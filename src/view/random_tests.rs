//! The compact view answers exactly like the plain reference map, on random trees: several
//! sources (some sharing a mount or nested), retained snapshots that mostly share their
//! files, fill-ins, directories, conflicts and paths that are a file and a directory.

use std::collections::BTreeMap;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::reference::Reference;
use super::*;
use crate::manifest::Entry;
use crate::store::Stamp;

const SEGMENTS: [&str; 7] = ["a", "a-b", "b", "p.deb", "by-hash", "x.dsc", "c"];
const MOUNTS: [&str; 5] = ["", "/m", "/m/a", "/n", "/.snapshots"];

pub(super) fn random_path(rng: &mut StdRng) -> String {
    let depth = rng.gen_range(1..=4);
    (0..depth)
        .map(|_| SEGMENTS[rng.gen_range(0..SEGMENTS.len())])
        .collect::<Vec<_>>()
        .join("/")
}

pub(super) fn random_entry(rng: &mut StdRng, path: String) -> Entry {
    Entry {
        path,
        object: ObjectId([rng.gen_range(0..4); 32]),
        size: rng.gen_range(0..1000),
        mtime: rng.gen_range(0..100),
        stamp: rng.gen_bool(0.1).then_some(Stamp {
            mtime_ns: rng.gen_range(0..10),
            ctime_ns: None,
            inode: None,
        }),
        origin: None,
        immutable: rng.gen_bool(0.5),
    }
}

/// Snapshots that share most of their entries, as a source's retained ones do. Manifest
/// ids are made of the source number, the snapshot number and `epoch`, so no two manifests
/// share one (in the store an id is the hash of the content).
fn random_source(rng: &mut StdRng, number: usize, epoch: u8) -> SourceSnapshots {
    let id = format!("s{number}");
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    for _ in 0..rng.gen_range(0..25) {
        let path = random_path(rng);
        entries.insert(path.clone(), random_entry(rng, path));
    }
    let mut retained = Vec::new();
    for snapshot in 0..rng.gen_range(0..4u8) {
        for _ in 0..rng.gen_range(0..4) {
            let path = random_path(rng);
            if rng.gen_bool(0.3) {
                entries.remove(&path);
            } else {
                entries.insert(path.clone(), random_entry(rng, path));
            }
        }
        let manifest = Manifest::new(&id, 0, entries.values().cloned().collect());
        let mut id = [number as u8 * 16 + snapshot; 32];
        id[0] = epoch;
        retained.push((ObjectId(id), Arc::new(manifest)));
    }
    let current = match rng.gen_range(0..4) {
        0 => None,
        1 => Some(Arc::new(Manifest::new(
            &id,
            1,
            entries.values().cloned().collect(),
        ))),
        _ => retained.last().map(|(_, m)| m.clone()),
    };
    SourceSnapshots {
        id,
        mount: MOUNTS[rng.gen_range(0..MOUNTS.len())].into(),
        current,
        retained,
        fill_in: rng.gen_bool(0.5),
    }
}

pub(super) fn random_sources(rng: &mut StdRng) -> Vec<SourceSnapshots> {
    (0..rng.gen_range(1..=3))
        .map(|n| random_source(rng, n, 0))
        .collect()
}

/// Every path the reference knows, and some it does not.
pub(super) fn queries(reference: &Reference, rng: &mut StdRng) -> Vec<String> {
    let mut keys: Vec<String> = reference.files.keys().cloned().collect();
    keys.extend(reference.dirs.keys().cloned());
    for _ in 0..50 {
        let mount = MOUNTS[rng.gen_range(0..MOUNTS.len())];
        keys.push(format!("{mount}/{}", random_path(rng)));
    }
    keys.extend(["/m".into(), "/.snapshots/s0".into(), "/zz".into()]);
    keys
}

pub(super) fn assert_same(view: &View, reference: &Reference, keys: &[String]) {
    for key in keys {
        let expected = if reference.dirs.contains_key(key) {
            Some(Node::Dir)
        } else {
            reference.files.get(key).copied().map(Node::File)
        };
        assert_eq!(view.get(key), expected, "lookup of {key}");
        let Some((children, mtime)) = reference.dirs.get(key) else {
            assert!(view.dir(key).is_none(), "{key} is no directory");
            continue;
        };
        let dir = view.dir(key).expect("a directory");
        assert_eq!(dir.mtime, *mtime, "mtime of {key}");
        let names: Vec<(String, bool)> = dir
            .children
            .iter()
            .map(|c| (c.name.to_string(), c.is_dir))
            .collect();
        assert!(names.iter().eq(children.iter()), "children of {key}");
        for child in &dir.children {
            let path = if key == "/" {
                format!("/{}", child.name)
            } else {
                format!("{key}/{}", child.name)
            };
            let expected = match child.is_dir {
                true => reference.dirs[&path].1,
                false => reference.newest[&path],
            };
            assert_eq!(child.mtime, expected, "mtime of child {path}");
        }
    }
    assert_eq!(view.conflicts, reference.conflicts);
}

#[test]
fn lookups_listings_and_conflicts_equal_a_plain_map() {
    let mut rng = StdRng::seed_from_u64(12);
    for _ in 0..400 {
        let sources = random_sources(&mut rng);
        let reference = Reference::build(&sources);
        let view = View::build(&sources);
        assert_same(&view, &reference, &queries(&reference, &mut rng));
    }
}

#[test]
fn a_new_snapshot_of_one_source_rebuilds_only_its_part() {
    let mut rng = StdRng::seed_from_u64(13);
    for _ in 0..100 {
        let mut sources = random_sources(&mut rng);
        let before = View::build(&sources);
        let changed = rng.gen_range(0..sources.len());
        let mut renewed = random_source(&mut rng, changed, 1);
        renewed.mount = sources[changed].mount.clone();
        sources[changed] = renewed;
        let after = View::build_after(&sources, &before);
        for (n, (old, new)) in before.parts.iter().zip(&after.parts).enumerate() {
            let own_current =
                sources[n].current.is_some() && old.current().is_some_and(|c| c.url.is_empty());
            if n != changed && !own_current {
                assert!(Arc::ptr_eq(old, new), "part {n} reused");
            }
        }
        let reference = Reference::build(&sources);
        assert_same(&after, &reference, &queries(&reference, &mut rng));
    }
}
