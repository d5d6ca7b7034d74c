//! The marker an export writes before its first change. Two interrupted exports in a row must
//! not lose what the first one may have written: the second one's marker holds its own plan
//! and everything the first one's marker listed, and a path the two planned with other bytes
//! stays tainted. Only an export that finishes forgets them, having removed or re-checked each.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::ObjectId;

use super::medium::{MediumFile, MediumManifest};

/// The marker of an export carrying out `plan`, after the interrupted export that left
/// `previous` (if one did).
pub fn next(plan: &MediumManifest, previous: Option<&MediumManifest>) -> MediumManifest {
    let mut files: BTreeMap<&str, &MediumFile> =
        plan.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let mut tainted = BTreeSet::new();
    for earlier in previous.into_iter().flat_map(|p| &p.files) {
        let path = earlier.path.as_str();
        let doubtful = previous.is_some_and(|p| is_tainted(p, path));
        match files.get(path) {
            Some(planned) if planned.sha256 == earlier.sha256 && !doubtful => {}
            Some(_) => {
                tainted.insert(path.to_string());
            }
            None => {
                files.insert(path, earlier);
                if doubtful {
                    tainted.insert(path.to_string());
                }
            }
        }
    }
    MediumManifest {
        files: files.into_values().cloned().collect(),
        tainted: tainted.into_iter().collect(),
        ..plan.clone()
    }
}

/// Whether the interrupted export that left `marker` may have put other bytes than
/// `sha256`'s at `path`: it planned other bytes there, or inherited a doubt about it.
pub fn may_differ(marker: Option<&MediumManifest>, path: &str, sha256: &ObjectId) -> bool {
    let Some(marker) = marker else {
        return false;
    };
    is_tainted(marker, path)
        || marker
            .files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .is_ok_and(|at| marker.files[at].sha256 != *sha256)
}

fn is_tainted(marker: &MediumManifest, path: &str) -> bool {
    marker
        .tainted
        .binary_search_by(|p| p.as_str().cmp(path))
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(&str, u8)], tainted: &[&str]) -> MediumManifest {
        MediumManifest {
            format: super::super::medium::FORMAT,
            created: 0,
            sources: vec![],
            files: files
                .iter()
                .map(|(path, byte)| MediumFile {
                    path: path.to_string(),
                    source: "s".into(),
                    sha256: ObjectId([*byte; 32]),
                    size: 1,
                    mtime: 0,
                })
                .collect(),
            tainted: tainted.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn nothing_an_interrupted_export_planned_is_forgotten() {
        let first = manifest(&[("a", 2), ("gone", 9), ("same", 1), ("was", 1)], &["was"]);
        let plan = manifest(&[("a", 1), ("new", 3), ("same", 1), ("was", 1)], &[]);
        let marker = next(&plan, Some(&first));
        let paths: Vec<&str> = marker.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a", "gone", "new", "same", "was"]);
        assert_eq!(marker.tainted, ["a", "was"]);
        assert_eq!(
            marker.files[0].sha256,
            ObjectId([1; 32]),
            "the plan's bytes"
        );
        let one = ObjectId([1; 32]);
        assert!(may_differ(Some(&marker), "a", &one));
        assert!(!may_differ(Some(&marker), "same", &one));
        assert!(may_differ(Some(&marker), "gone", &one));
        assert!(!may_differ(None, "a", &one));
        assert_eq!(next(&plan, None), plan);
    }
}
