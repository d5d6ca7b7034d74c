//! Fuzzes `mirrorbox::http::range::parse` and checks the invariants of what it returns.
//!
//! Input layout: byte 0 = flags, bytes 1..9 = `len` (little-endian u64, shaped by the flags),
//! the rest = the header value (lossy UTF-8).
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorbox::http::range::{parse, ByteRange, RangeOutcome, MAX_RANGES};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (len_bytes, header) = rest.split_at(rest.len().min(8));
    let mut raw = [0u8; 8];
    raw[..len_bytes.len()].copy_from_slice(len_bytes);
    let raw = u64::from_le_bytes(raw);
    // Mostly small lengths (where ranges actually land), sometimes huge ones.
    let len = match (flags >> 1) & 3 {
        0 => raw % 64,
        1 => raw % 100_000,
        2 => u64::MAX - (raw % 64),
        _ => raw,
    };
    let text = String::from_utf8_lossy(header);
    // Bit 0: prepend the unit so the fuzzer spends its time in the range-set syntax.
    let header = if flags & 1 == 1 {
        format!("bytes={text}")
    } else {
        text.into_owned()
    };

    let outcome = parse(&header, len);
    assert_eq!(outcome, parse(&header, len), "not deterministic: {header:?} of {len}");

    let RangeOutcome::Ranges(ranges) = outcome else {
        return;
    };
    assert!(!ranges.is_empty(), "empty Ranges for {header:?} of {len}");
    assert!(
        ranges.len() <= MAX_RANGES,
        "{} ranges > MAX_RANGES for {header:?} of {len}",
        ranges.len()
    );
    for r in &ranges {
        assert!(
            r.start < r.end && r.end <= len,
            "bad range {r:?} for {header:?} of {len}"
        );
    }
    let mut sorted: Vec<ByteRange> = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    for w in sorted.windows(2) {
        // Overlapping or touching ranges are documented to be merged by `coalesce`.
        assert!(
            w[0].end < w[1].start,
            "overlapping/touching ranges {:?} and {:?} for {header:?} of {len}",
            w[0],
            w[1]
        );
    }
    if ranges.len() > 1 {
        let total = ranges
            .iter()
            .try_fold(0u64, |acc, r| acc.checked_add(r.end - r.start))
            .expect("total overflowed u64");
        assert!(total <= len, "total {total} > len for {header:?} of {len}");
    }
});
