//! Fuzzes `mirrorbox::http::path::{decode, encode_segment}`.
//!
//! The whole input (lossy UTF-8) is decoded as is and with a leading `/`; the invariants of
//! a decoded key are checked, and `encode_segment` → `decode` must round-trip the input
//! whenever it is a legal single segment.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mirrorbox::http::path::{decode, encode_segment, RequestPath};

fn check_key(raw: &str, path: &RequestPath) {
    let key = &path.key;
    assert!(key.starts_with('/'), "key {key:?} of {raw:?} is not absolute");
    assert!(!key.contains("//"), "key {key:?} of {raw:?} has //");
    assert!(!key.contains('\0'), "key {key:?} of {raw:?} has NUL");
    for segment in key.split('/').skip(1) {
        assert!(
            segment != "." && segment != "..",
            "key {key:?} of {raw:?} has a dot segment"
        );
    }
    if key == "/" {
        assert!(!path.trailing_slash, "root with trailing_slash for {raw:?}");
    } else {
        // Re-encoding every segment and decoding again gives the same key.
        let reencoded: String = key
            .split('/')
            .skip(1)
            .map(|s| format!("/{}", encode_segment(s)))
            .collect();
        let again = decode(&reencoded)
            .unwrap_or_else(|e| panic!("re-encoded key {reencoded:?} of {raw:?}: {e}"));
        assert_eq!(&again.key, key, "re-encoding {raw:?} changed the key");
    }
}

fn check_decode(raw: &str) {
    let first = decode(raw);
    assert_eq!(first, decode(raw), "decode({raw:?}) is not deterministic");
    if let Ok(path) = &first {
        check_key(raw, path);
    }
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    check_decode(&s);
    check_decode(&format!("/{s}"));

    if !s.is_empty() && s != "." && s != ".." && !s.contains(['/', '\0']) {
        let encoded = encode_segment(&s);
        assert!(
            !encoded.contains(['/', '?', '#', ' ', '\0']),
            "encode_segment({s:?}) = {encoded:?} left a delimiter"
        );
        let decoded = decode(&format!("/{encoded}"))
            .unwrap_or_else(|e| panic!("round trip of {s:?} via {encoded:?}: {e}"));
        assert_eq!(decoded.key, format!("/{s}"), "round trip of {s:?} via {encoded:?}");
        assert!(!decoded.trailing_slash, "round trip of {s:?} set trailing_slash");
    }
});
