//! Whole deltas checked by applying them, and the pipeline's errors and ordering.

use std::io::{self, Write};

use super::pipeline::delta_in_segments;
use super::scan::WINDOW;
use super::source::FileSource;
use super::*;

/// Applies a delta the way librsync's patch does (for unit tests; integration tests use
/// the real `rdiff patch`).
fn patch(old: &[u8], delta: &[u8]) -> Vec<u8> {
    assert_eq!(&delta[..4], &DELTA_MAGIC.to_be_bytes());
    let mut out = Vec::new();
    let mut i = 4;
    let number = |bytes: &[u8]| bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    loop {
        let cmd = delta[i];
        i += 1;
        match cmd {
            0 => break,
            1..=0x40 => {
                out.extend_from_slice(&delta[i..i + cmd as usize]);
                i += cmd as usize;
            }
            0x41..=0x44 => {
                let bytes = 1 << (cmd - 0x41);
                let len = number(&delta[i..i + bytes]) as usize;
                i += bytes;
                out.extend_from_slice(&delta[i..i + len]);
                i += len;
            }
            0x45..=0x54 => {
                let c = cmd - 0x45;
                let (sb, lb) = (1 << (c / 4), 1 << (c % 4));
                let start = number(&delta[i..i + sb]) as usize;
                let len = number(&delta[i + sb..i + sb + lb]) as usize;
                assert!(len > 0, "zero-length copy");
                i += sb + lb;
                out.extend_from_slice(&old[start..start + len]);
            }
            other => panic!("bad command {other:#x}"),
        }
    }
    assert_eq!(i, delta.len());
    out
}

/// `len` pseudo-random bytes (xorshift from `seed`).
pub(super) fn data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn round_trips_on_edits() {
    let old = data(3_000_000, 1);
    let mut new = old.clone();
    new.splice(1000..1000, data(777, 2)); // insert
    new.drain(500_000..501_234); // delete
    new[2_000_000..2_000_100].copy_from_slice(&data(100, 3)); // overwrite
    new.extend_from_slice(&old[..4000]); // a moved piece
    for threads in [1, 2, 3] {
        let mut delta = Vec::new();
        let stats = delta_bytes(
            &old,
            &new,
            Params {
                block: 128,
                threads,
            },
            &mut delta,
        )
        .unwrap();
        assert_eq!(patch(&old, &delta), new);
        assert!(stats.literal < 5_000, "{stats:?}");
        assert_eq!(stats.delta_bytes, delta.len() as u64);
    }
}

#[test]
fn edge_cases() {
    for (old, new) in [
        (vec![], vec![]),
        (vec![], data(1000, 5)),
        (data(1000, 5), vec![]),
        (data(100, 6), data(100, 6)),
        (vec![0u8; 100_000], vec![0u8; 200_000]),
        (data(200_000, 7), data(200_000, 8)),
    ] {
        let mut delta = Vec::new();
        delta_bytes(&old, &new, Params::default(), &mut delta).unwrap();
        assert_eq!(patch(&old, &delta), new);
    }
    // Blocks larger than the old image, or than a segment; absurd ones are refused.
    let (old, new) = (data(300_000, 9), data(300_000, 9));
    for block in [0, 200_000, 400_000] {
        let mut delta = Vec::new();
        let params = Params { block, threads: 2 };
        delta_in_segments(
            &old.as_slice(),
            &new.as_slice(),
            params,
            1 << 16,
            &mut delta,
        )
        .unwrap();
        assert_eq!(patch(&old, &delta), new, "block {block}");
    }
    let params = Params {
        block: usize::MAX,
        threads: 0,
    };
    let err = delta_bytes(&old, &new, params, &mut Vec::new()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

/// Long literals, matches across window moves and gigabyte-like runs, runs of identical
/// blocks (capped buckets), odd block sizes.
#[test]
fn round_trips_across_windows() {
    let old = data(5 * WINDOW + 12_345, 11);
    let mut new = Vec::new();
    new.extend_from_slice(&data(WINDOW + 999, 12)); // a literal longer than a window
    new.extend_from_slice(&old[77..3 * WINDOW + 5]); // a match through several windows
    new.extend_from_slice(&[0; 70_000]); // zeros, not in old
    new.extend_from_slice(&old[4 * WINDOW..]);
    let mut old_zeros = old.clone();
    old_zeros.extend_from_slice(&[0; 100_000]);
    for (old, block) in [
        (&old, 128),
        (&old, 1000),
        (&old_zeros, 64),
        (&old_zeros, 4096),
    ] {
        let mut delta = Vec::new();
        let stats = delta_bytes(old, &new, Params { block, threads: 2 }, &mut delta).unwrap();
        assert_eq!(patch(old, &delta), new, "block {block}");
        assert!(
            stats.literal < WINDOW as u64 + 999 + 70_000 + 2 * block as u64,
            "block {block}: {stats:?}"
        );
    }
}

/// Inputs that shrink while read (the old one while indexed, the new one while scanned
/// or written) make errors that name the file, not panics or hangs.
#[test]
fn a_file_that_shrinks_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let content = data(3_000_000, 41);
    for (shrunk, name) in [(0, "old"), (1, "new")] {
        let paths = [dir.path().join("old"), dir.path().join("new")];
        for path in &paths {
            std::fs::write(path, &content).unwrap();
        }
        let old = FileSource::open(&paths[0]).unwrap();
        let new = FileSource::open(&paths[1]).unwrap();
        std::fs::write(&paths[shrunk], &content[..5_000]).unwrap();
        for threads in [1, 2] {
            let err = delta_in_segments(
                &old,
                &new,
                Params {
                    block: 128,
                    threads,
                },
                1 << 16,
                &mut Vec::new(),
            )
            .unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }
}

/// Many segments, fewer threads: the delta comes out in order; each cut costs at most a
/// block of literal.
#[test]
fn segments_are_written_in_order() {
    let old = data(3_000_000, 51);
    let mut new = old.clone();
    new.splice(1000..1000, data(777, 52));
    new.drain(500_000..501_234);
    new.extend_from_slice(&data(200_000, 53));
    for segment in [1 << 16, 100_003, 1 << 20] {
        for threads in [1, 2, 3] {
            let params = Params {
                block: 128,
                threads,
            };
            let mut delta = Vec::new();
            let stats = delta_in_segments(
                &old.as_slice(),
                &new.as_slice(),
                params,
                segment,
                &mut delta,
            )
            .unwrap();
            assert_eq!(
                patch(&old, &delta),
                new,
                "segment {segment}, {threads} threads"
            );
            let cuts = new.len() as u64 / segment;
            assert!(
                stats.literal < 777 + 200_000 + 128 * (cuts + 2),
                "{stats:?}"
            );
            assert_eq!(stats.delta_bytes, delta.len() as u64);
        }
    }
}

/// A writer that fails stops the scanning threads (no hang) and its error comes out.
#[test]
fn a_failing_writer_stops_the_scan() {
    struct Full(usize);
    impl Write for Full {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.0 < buf.len() {
                return Err(io::Error::other("disk full"));
            }
            self.0 -= buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let old = data(2_000_000, 61);
    let new = data(2_000_000, 62);
    for room in [0, 100, 300_000] {
        let err = delta_in_segments(
            &old.as_slice(),
            &new.as_slice(),
            Params {
                block: 128,
                threads: 2,
            },
            1 << 16,
            &mut Full(room),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "disk full");
    }
}
