//! Lookups do not allocate: this test binary's allocator counts, per thread, the
//! allocations made while a flag is up.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use super::*;
use crate::manifest::Entry;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static COUNT: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            COUNT.with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// How many allocations `run` makes on this thread.
fn allocations(run: impl FnOnce()) -> usize {
    COUNT.with(|c| c.set(0));
    COUNTING.with(|c| c.set(true));
    run();
    COUNTING.with(|c| c.set(false));
    COUNT.with(Cell::get)
}

fn entry(path: &str, byte: u8) -> Entry {
    Entry {
        path: path.into(),
        object: ObjectId([byte; 32]),
        size: 1,
        mtime: 0,
        stamp: None,
        origin: None,
        immutable: false,
    }
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
