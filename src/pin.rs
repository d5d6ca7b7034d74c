//! Pinning: publish an older retained snapshot as a source's current one (a rollback), while
//! syncs go on making and retaining new snapshots until `unpin`.
//!
//! apt clients refuse an InRelease older than the one they have seen (replay protection), so
//! pinning an apt source only helps clients that have not updated yet; clients that already
//! saw the newer snapshot are rolled back by pointing them at the pinned snapshot's stable URL,
//! `/.snapshots/<source>/<snapshot>/`, which `mirrorbox pin` prints.

use crate::store::refs::SourceRefs;
use crate::store::{ObjectId, Store, StoreError};
use crate::view::SNAPSHOT_ID_CHARS;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("source `{id}` has no retained snapshot `{wanted}` (retained: {retained})")]
    Unknown {
        id: String,
        wanted: String,
        retained: String,
    },
    #[error("`{wanted}` matches more than one snapshot of `{id}`; give more digits")]
    Ambiguous { id: String, wanted: String },
}

/// Finds a retained snapshot of `source` by a prefix of its id (at least 4 hex digits).
pub fn resolve(refs: &SourceRefs, source: &str, wanted: &str) -> Result<ObjectId, PinError> {
    let wanted_lower = wanted.to_ascii_lowercase();
    let mut all: Vec<ObjectId> = refs.snapshots.clone();
    all.extend(refs.current);
    all.dedup();
    let matches: Vec<ObjectId> = if wanted_lower.len() >= 4 {
        let mut found: Vec<ObjectId> = all
            .iter()
            .copied()
            .filter(|id| id.to_hex().starts_with(&wanted_lower))
            .collect();
        found.dedup();
        found
    } else {
        Vec::new()
    };
    match matches.as_slice() {
        [one] => Ok(*one),
        [] => Err(PinError::Unknown {
            id: source.into(),
            wanted: wanted.into(),
            retained: all
                .iter()
                .map(|id| id.short(SNAPSHOT_ID_CHARS))
                .collect::<Vec<_>>()
                .join(", "),
        }),
        _ => Err(PinError::Ambiguous {
            id: source.into(),
            wanted: wanted.into(),
        }),
    }
}

/// Pins `source` to the snapshot `wanted` (or unpins it with `None`): the new refs.
pub fn set(store: &Store, source: &str, wanted: Option<&str>) -> Result<SourceRefs, PinError> {
    let mut refs = store.read_refs(source)?;
    match wanted {
        Some(wanted) => {
            let id = resolve(&refs, source, wanted)?;
            if !refs.snapshots.contains(&id) {
                refs.snapshots.insert(0, id);
            }
            refs.pinned = Some(id);
            refs.current = Some(id);
        }
        None => {
            refs.pinned = None;
            refs.current = refs.head();
        }
    }
    store.write_refs(source, &refs)?;
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_resolve_to_one_snapshot() {
        let a = ObjectId([0xab; 32]);
        let b = ObjectId([0xac; 32]);
        let refs = SourceRefs {
            current: Some(b),
            snapshots: vec![a, b],
            pinned: None,
        };
        assert_eq!(resolve(&refs, "s", "abab").unwrap(), a);
        assert_eq!(resolve(&refs, "s", "ACAC").unwrap(), b);
        assert!(matches!(
            resolve(&refs, "s", "ab"),
            Err(PinError::Unknown { .. })
        ));
        assert!(matches!(
            resolve(&refs, "s", "ffff"),
            Err(PinError::Unknown { .. })
        ));
        let c = ObjectId([0xab; 32]);
        let mut same = c;
        same.0[31] = 0;
        let refs = SourceRefs {
            current: Some(c),
            snapshots: vec![same, c],
            pinned: None,
        };
        assert!(matches!(
            resolve(&refs, "s", "abab"),
            Err(PinError::Ambiguous { .. })
        ));
    }
}
