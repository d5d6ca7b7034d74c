//! Per-thread memo of the header values every file response repeats: the ETag of an object and
//! the HTTP date of a Last-Modified time. Formatting them anew costs hex and date formatting plus
//! allocations on every request; a hit costs one reference-count increment.
//!
//! Direct-mapped and per runtime thread: no lock, a bounded size (`SLOTS` entries per kind and
//! thread), and a miss simply formats the value and takes the slot. The values are pure
//! functions of their keys, so nothing ever needs invalidating.

use std::cell::RefCell;

use http::HeaderValue;

use crate::store::ObjectId;

/// Entries per thread and kind (a power of two).
const SLOTS: usize = 512;

type Table<K> = RefCell<Vec<Option<(K, HeaderValue)>>>;

thread_local! {
    static ETAGS: Table<ObjectId> = RefCell::new(vec![None; SLOTS]);
    static DATES: Table<i64> = RefCell::new(vec![None; SLOTS]);
}

fn memo<K: Copy + PartialEq>(
    table: &'static std::thread::LocalKey<Table<K>>,
    key: K,
    slot: usize,
    make: impl FnOnce() -> HeaderValue,
) -> HeaderValue {
    table.with(|cell| {
        let mut entries = cell.borrow_mut();
        let entry = &mut entries[slot & (SLOTS - 1)];
        match entry {
            Some((k, value)) if *k == key => value.clone(),
            _ => {
                let value = make();
                *entry = Some((key, value.clone()));
                value
            }
        }
    })
}

/// The strong ETag of an object: its first 32 hex digits, quoted.
pub fn etag(id: &ObjectId) -> HeaderValue {
    // The id is a sha256: any 8 of its bytes are as good a hash as any.
    let slot = u64::from_le_bytes(id.0[..8].try_into().expect("8 bytes")) as usize;
    memo(&ETAGS, *id, slot, || format_etag(id))
}

fn format_etag(id: &ObjectId) -> HeaderValue {
    let mut text = [b'"'; 34];
    hex::encode_to_slice(&id.0[..16], &mut text[1..33]).expect("32 hex digits fit");
    HeaderValue::from_bytes(&text).expect("hex is a valid header")
}

/// `unix` (seconds) as an HTTP date, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(unix: i64) -> HeaderValue {
    let slot = ((unix as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as usize;
    memo(&DATES, unix, slot, || {
        HeaderValue::from_str(&crate::time::http_date(unix)).expect("dates are valid headers")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etag_is_the_quoted_short_id() {
        let id = ObjectId([0xab; 32]);
        let expected = format!("\"{}\"", id.short(32));
        assert_eq!(etag(&id), expected.as_str());
        // A hit gives the same value.
        assert_eq!(etag(&id), expected.as_str());
    }

    #[test]
    fn dates_match_the_formatter_and_collisions_are_harmless() {
        for unix in [0, 784_111_777, 1_700_000_000, 1_700_000_001] {
            let expected = crate::time::http_date(unix);
            assert_eq!(http_date(unix), expected.as_str());
            assert_eq!(http_date(unix), expected.as_str());
        }
        // Many keys through the same table: every answer is still right.
        for unix in 0..(4 * SLOTS as i64) {
            let expected = crate::time::http_date(unix * 7919);
            assert_eq!(http_date(unix * 7919), expected.as_str());
        }
    }
}
