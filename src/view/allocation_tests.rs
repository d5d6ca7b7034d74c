//! Lookups do not allocate: the test binary's allocator (`crate::counting_alloc`) counts, per
//! thread, the allocations made while a flag is up.

use std::sync::Arc;

use super::*;
use crate::manifest::Entry;

use crate::counting_alloc::allocations;

fn entry(path: &str, byte: u8) -> Entry {
    Entry::plain(path, ObjectId([byte; 32]))
}

#[test]
fn lookups_allocate_nothing() {
    let snapshot = |byte: u8| {
        let entries = (0..500)
            .map(|n| entry(&format!("pool/main/p{n}/p{n}_{byte}.deb"), byte))
            .chain([entry("dists/x/by-hash/SHA256/ab", byte)])
            .collect();
        Arc::new(Manifest::new("a", 0, entries))
    };
    let (old, new) = (snapshot(1), snapshot(2));
    let view = View::build(&[
        SourceSnapshots {
            id: "a".into(),
            mount: "/debian".into(),
            current: Some(new.clone()),
            retained: vec![(ObjectId([7; 32]), old), (ObjectId([8; 32]), new)],
            fill_in: true,
        },
        SourceSnapshots {
            id: "b".into(),
            mount: "".into(),
            current: Some(snapshot(3)),
            retained: Vec::new(),
            fill_in: false,
        },
    ]);
    let keys = [
        "/debian/pool/main/p7/p7_2.deb",
        "/debian/pool/main/p7/p7_1.deb",
        "/debian/pool/main/p7",
        "/debian/dists/x/by-hash/SHA256/ab",
        "/pool/main/p499/p499_3.deb",
        "/.snapshots/a/0707070707070707/pool/main/p1/p1_1.deb",
        "/.snapshots/a",
        "/",
        "/debian/pool/main/p7/missing",
        "/nowhere",
    ];
    let mut answers = Vec::with_capacity(keys.len());
    let made = allocations(|| answers.extend(keys.iter().map(|key| view.get(key))));
    assert_eq!(made, 0, "allocations during {} lookups", keys.len());
    assert!(answers[..8].iter().all(Option::is_some));
    assert!(answers[8..].iter().all(Option::is_none));
}
