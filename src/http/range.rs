//! `Range: bytes=…` parsing (RFC 9110 §14), a pure function with the nasty cases in tests.

/// A satisfiable byte range, inclusive start, exclusive end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

/// What to do with a Range header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Absent, unknown unit, invalid syntax, too many ranges: send the whole body (200).
    Ignore,
    /// At least one range is satisfiable (206): in request order, or sorted when coalesced.
    Ranges(Vec<ByteRange>),
    /// Valid, but no range is satisfiable (416 with `Content-Range: bytes */len`).
    Unsatisfiable,
}

/// More ranges than this in one request: ignore the header (a cheap defence against abuse).
pub const MAX_RANGES: usize = 128;

#[derive(Clone, Copy)]
enum Spec {
    /// `a-b` or `a-` (end is inclusive, `None` = to the end).
    From(u64, Option<u64>),
    /// `-n`: the last n bytes.
    Suffix(u64),
}

/// Parses a Range header value against a representation of `len` bytes.
pub fn parse(header: &str, len: u64) -> RangeOutcome {
    let Some((unit, set)) = header.split_once('=') else {
        return RangeOutcome::Ignore;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Ignore;
    }
    let mut specs = Vec::new();
    for part in set.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() {
            continue; // the list syntax allows empty elements
        }
        if specs.len() == MAX_RANGES {
            return RangeOutcome::Ignore;
        }
        match parse_spec(part) {
            Some(spec) => specs.push(spec),
            None => return RangeOutcome::Ignore,
        }
    }
    if specs.is_empty() {
        return RangeOutcome::Ignore;
    }
    let mut ranges = Vec::with_capacity(specs.len());
    let mut requested: u64 = 0;
    for spec in specs {
        let range = match spec {
            Spec::From(start, _) if start >= len => continue,
            Spec::From(start, end) => ByteRange {
                start,
                end: end.map_or(len, |e| e.saturating_add(1).min(len)),
            },
            Spec::Suffix(0) => continue,
            Spec::Suffix(n) => ByteRange {
                start: len.saturating_sub(n),
                end: len,
            },
        };
        if range.is_empty() {
            continue;
        }
        requested = requested.saturating_add(range.len());
        ranges.push(range);
    }
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }
    if ranges.len() > 1 && requested > len {
        // Overlapping requests for more than the whole body: just send the body.
        return RangeOutcome::Ignore;
    }
    RangeOutcome::Ranges(coalesce(ranges))
}

fn parse_spec(part: &str) -> Option<Spec> {
    let (first, last) = part.split_once('-')?;
    let first = first.trim_matches([' ', '\t']);
    let last = last.trim_matches([' ', '\t']);
    if first.is_empty() {
        return Some(Spec::Suffix(number(last)?));
    }
    let start = number(first)?;
    if last.is_empty() {
        return Some(Spec::From(start, None));
    }
    let end = number(last)?;
    if end < start {
        return None;
    }
    Some(Spec::From(start, Some(end)))
}

/// Digits only; values past u64 saturate (they are past any real length anyway).
fn number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.bytes().fold(0u64, |n, d| {
        n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    }))
}

/// Keeps the request order unless ranges overlap or touch; then sorts and merges them all.
fn coalesce(mut ranges: Vec<ByteRange>) -> Vec<ByteRange> {
    if ranges.len() < 2 {
        return ranges;
    }
    let mut sorted = ranges.clone();
    sorted.sort_by_key(|r| r.start);
    let touching = sorted.windows(2).any(|w| w[1].start <= w[0].end);
    if !touching {
        return ranges;
    }
    ranges.clear();
    for range in sorted {
        match ranges.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => ranges.push(range),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::*;

    fn r(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    #[test]
    fn table() {
        let cases: &[(&str, u64, RangeOutcome)] = &[
            ("bytes=0-0", 10, Ranges(vec![r(0, 1)])),
            ("bytes=0-9", 10, Ranges(vec![r(0, 10)])),
            ("bytes=5-", 10, Ranges(vec![r(5, 10)])),
            ("bytes=-3", 10, Ranges(vec![r(7, 10)])),
            ("bytes=2-100", 10, Ranges(vec![r(2, 10)])),
            ("bytes=-100", 10, Ranges(vec![r(0, 10)])),
            ("bytes=9-9", 10, Ranges(vec![r(9, 10)])),
            ("BYTES=1-2", 10, Ranges(vec![r(1, 3)])),
            ("bytes = 1-2", 10, Ranges(vec![r(1, 3)])),
            ("bytes=1-2, 5-6", 10, Ranges(vec![r(1, 3), r(5, 7)])),
            ("bytes=5-6,1-2", 10, Ranges(vec![r(5, 7), r(1, 3)])),
            ("bytes=1-2,,5-6", 10, Ranges(vec![r(1, 3), r(5, 7)])),
            ("bytes=0-4,2-6", 10, Ranges(vec![r(0, 7)])),
            ("bytes=6-7,0-2,3-4", 10, Ranges(vec![r(0, 5), r(6, 8)])),
            ("bytes=0-1,20-30", 10, Ranges(vec![r(0, 2)])),
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=99999999999999999999999-", 10, Unsatisfiable),
            (
                "bytes=0-99999999999999999999999",
                10,
                Ranges(vec![r(0, 10)]),
            ),
            ("bytes=-99999999999999999999999", 10, Ranges(vec![r(0, 10)])),
            ("bytes=5-4", 10, Ignore),
            ("bytes=1-2,5-4", 10, Ignore),
            ("bytes=", 10, Ignore),
            ("bytes=,", 10, Ignore),
            ("bytes=-", 10, Ignore),
            ("bytes=a-b", 10, Ignore),
            ("bytes=1", 10, Ignore),
            ("bytes=+1-2", 10, Ignore),
            ("bytes=1-2-3", 10, Ignore),
            ("bytes=0x1-2", 10, Ignore),
            ("items=0-1", 10, Ignore),
            ("0-1", 10, Ignore),
            ("", 10, Ignore),
            ("bytes=0-9,0-9", 10, Ignore),
            ("bytes=0-5,3-9", 10, Ignore),
        ];
        for (header, len, expected) in cases {
            assert_eq!(&parse(header, *len), expected, "{header:?} of {len}");
        }
    }

    #[test]
    fn too_many_ranges_are_ignored() {
        let many: Vec<String> = (0..=MAX_RANGES as u64)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        assert_eq!(parse(&format!("bytes={}", many.join(",")), 10_000), Ignore);
        let allowed: Vec<String> = (0..MAX_RANGES as u64)
            .map(|i| format!("{}-{}", i * 2, i * 2))
            .collect();
        assert!(
            matches!(parse(&format!("bytes={}", allowed.join(",")), 10_000), Ranges(v) if v.len() == MAX_RANGES)
        );
    }
}
