//! Preconditions (RFC 9110 §13.2.2), evaluated in the order the RFC gives, as a pure function
//! of the request headers and the representation's validators.

use http::header::{self, HeaderMap};
use http::Method;

/// The validators of one representation.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The strong entity tag, with its quotes: `"abc…"`.
    pub etag: &'a str,
    /// Last-Modified, unix seconds.
    pub last_modified: i64,
    /// The time the response is made, unix seconds (a date validator is strong only if it is
    /// at least a second older than this).
    pub now: i64,
}

/// What the preconditions decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go on; `use_range` says whether a Range header may be honoured (If-Range passed or absent).
    Proceed {
        use_range: bool,
    },
    NotModified,
    PreconditionFailed,
}

pub fn evaluate(method: &Method, headers: &HeaderMap, v: &Validators) -> Decision {
    let safe = method == Method::GET || method == Method::HEAD;
    // 1. If-Match
    if let Some(list) = joined(headers, header::IF_MATCH) {
        if !matches_list(&list, v.etag, Comparison::Strong) {
            return Decision::PreconditionFailed;
        }
    } else if let Some(date) = date(headers, header::IF_UNMODIFIED_SINCE) {
        // 2. If-Unmodified-Since, only without If-Match
        if v.last_modified > date {
            return Decision::PreconditionFailed;
        }
    }
    // 3. If-None-Match
    if let Some(list) = joined(headers, header::IF_NONE_MATCH) {
        if matches_list(&list, v.etag, Comparison::Weak) {
            return if safe {
                Decision::NotModified
            } else {
                Decision::PreconditionFailed
            };
        }
    } else if safe {
        // 4. If-Modified-Since, only without If-None-Match
        if let Some(date) = date(headers, header::IF_MODIFIED_SINCE) {
            if v.last_modified <= date {
                return Decision::NotModified;
            }
        }
    }
    // 5. If-Range
    let use_range = method == Method::GET
        && match headers.get(header::IF_RANGE).map(|h| h.to_str()) {
            None => true,
            Some(Ok(value)) => if_range_holds(value.trim(), v),
            Some(Err(_)) => false,
        };
    Decision::Proceed { use_range }
}

fn if_range_holds(value: &str, v: &Validators) -> bool {
    if value.starts_with('"') || value.starts_with("W/") {
        // An entity tag: strong comparison, so a weak tag never matches.
        return value == v.etag;
    }
    match httpdate::parse_http_date(value) {
        Ok(time) => {
            let date = unix(time);
            date == v.last_modified && v.last_modified < v.now
        }
        Err(_) => false,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Comparison {
    Strong,
    Weak,
}

/// All values of a header, joined as one list (repeated headers are one comma list).
fn joined(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    let mut values = headers.get_all(name).iter().peekable();
    values.peek()?;
    let mut list = String::new();
    for value in values {
        if !list.is_empty() {
            list.push(',');
        }
        // A value that is not visible ASCII cannot hold a valid tag; keep it so it fails.
        list.push_str(value.to_str().unwrap_or("\u{0}"));
    }
    Some(list)
}

/// `*` or a list of entity tags; an invalid list matches nothing (except for `*`).
fn matches_list(list: &str, etag: &str, comparison: Comparison) -> bool {
    if list.trim() == "*" {
        return true;
    }
    let opaque = |tag: &str| tag.strip_prefix("W/").unwrap_or(tag).to_string();
    let mine = opaque(etag);
    parse_tags(list).iter().any(|tag| match comparison {
        Comparison::Strong => !tag.starts_with("W/") && tag == etag,
        Comparison::Weak => opaque(tag) == mine,
    })
}

/// Splits `"a", W/"b,c" ,"d"` into tags; commas inside quotes belong to the tag.
fn parse_tags(list: &str) -> Vec<String> {
    let mut tags = Vec::new();
    let bytes = list.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        if list[i..].starts_with("W/") {
            i += 2;
        }
        if bytes.get(i) != Some(&b'"') {
            return Vec::new(); // not a list of entity tags
        }
        i += 1;
        while i < bytes.len() && bytes[i] != b'"' {
            i += 1;
        }
        if i >= bytes.len() {
            return Vec::new();
        }
        i += 1;
        tags.push(list[start..i].to_string());
    }
    tags
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<i64> {
    let value = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(value.trim()).ok().map(unix)
}

fn unix(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use Decision::*;

    const TAG: &str = "\"abc\"";
    const LM: i64 = 1_700_000_000; // Tue, 14 Nov 2023 22:13:20 GMT
    const LM_TEXT: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const EARLIER: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const LATER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

    fn run(method: Method, headers: &[(&str, &str)]) -> Decision {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let v = Validators {
            etag: TAG,
            last_modified: LM,
            now: LM + 100,
        };
        evaluate(&method, &map, &v)
    }

    #[test]
    fn table() {
        let go = Proceed { use_range: true };
        let whole = Proceed { use_range: false };
        let get = Method::GET;
        type Case<'a> = (Method, Vec<(&'a str, &'a str)>, Decision);
        let cases: Vec<Case> = vec![
            (get.clone(), vec![], go),
            // 1. If-Match
            (get.clone(), vec![("if-match", "*")], go),
            (get.clone(), vec![("if-match", TAG)], go),
            (get.clone(), vec![("if-match", "\"x\", \"abc\"")], go),
            (
                get.clone(),
                vec![("if-match", "\"x\""), ("if-match", "\"abc\"")],
                go,
            ),
            (
                get.clone(),
                vec![("if-match", "W/\"abc\"")],
                PreconditionFailed,
            ),
            (get.clone(), vec![("if-match", "\"x\"")], PreconditionFailed),
            (get.clone(), vec![("if-match", "abc")], PreconditionFailed),
            // If-Match wins over If-Unmodified-Since
            (
                get.clone(),
                vec![("if-match", TAG), ("if-unmodified-since", EARLIER)],
                go,
            ),
            // 2. If-Unmodified-Since
            (get.clone(), vec![("if-unmodified-since", LM_TEXT)], go),
            (get.clone(), vec![("if-unmodified-since", LATER)], go),
            (
                get.clone(),
                vec![("if-unmodified-since", EARLIER)],
                PreconditionFailed,
            ),
            (get.clone(), vec![("if-unmodified-since", "yesterday")], go),
            // 3. If-None-Match
            (get.clone(), vec![("if-none-match", TAG)], NotModified),
            (
                get.clone(),
                vec![("if-none-match", "W/\"abc\"")],
                NotModified,
            ),
            (get.clone(), vec![("if-none-match", "*")], NotModified),
            (
                get.clone(),
                vec![("if-none-match", "\"x\", W/\"abc\"")],
                NotModified,
            ),
            (
                get.clone(),
                vec![("if-none-match", "\"a,b\", \"abc\"")],
                NotModified,
            ),
            (get.clone(), vec![("if-none-match", "\"x\"")], go),
            (Method::HEAD, vec![("if-none-match", TAG)], NotModified),
            (
                Method::POST,
                vec![("if-none-match", TAG)],
                PreconditionFailed,
            ),
            // If-None-Match wins over If-Modified-Since
            (
                get.clone(),
                vec![("if-none-match", "\"x\""), ("if-modified-since", LATER)],
                go,
            ),
            // 4. If-Modified-Since
            (
                get.clone(),
                vec![("if-modified-since", LM_TEXT)],
                NotModified,
            ),
            (get.clone(), vec![("if-modified-since", LATER)], NotModified),
            (get.clone(), vec![("if-modified-since", EARLIER)], go),
            (
                get.clone(),
                vec![("if-modified-since", "Sunday, 06-Nov-94 08:49:37 GMT")],
                go,
            ),
            (get.clone(), vec![("if-modified-since", "garbage")], go),
            (
                Method::HEAD,
                vec![("if-modified-since", LM_TEXT)],
                NotModified,
            ),
            // preconditions beat Range: a 304 comes before any 416
            (
                get.clone(),
                vec![("if-none-match", TAG), ("range", "bytes=99-")],
                NotModified,
            ),
            (
                get.clone(),
                vec![("if-match", "\"x\""), ("range", "bytes=0-1")],
                PreconditionFailed,
            ),
            // 5. If-Range
            (get.clone(), vec![("if-range", TAG)], go),
            (get.clone(), vec![("if-range", "W/\"abc\"")], whole),
            (get.clone(), vec![("if-range", "\"x\"")], whole),
            (get.clone(), vec![("if-range", LM_TEXT)], go),
            (get.clone(), vec![("if-range", LATER)], whole),
            (get.clone(), vec![("if-range", EARLIER)], whole),
            (get.clone(), vec![("if-range", "not a date")], whole),
            (Method::HEAD, vec![], whole),
        ];
        for (method, headers, expected) in cases {
            assert_eq!(
                run(method.clone(), &headers),
                expected,
                "{method} {headers:?}"
            );
        }
    }

    #[test]
    fn if_range_date_needs_a_strong_last_modified() {
        let mut map = HeaderMap::new();
        map.insert(header::IF_RANGE, HeaderValue::from_static(LM_TEXT));
        let v = Validators {
            etag: TAG,
            last_modified: LM,
            now: LM, // modified this very second: the date is weak
        };
        assert_eq!(
            evaluate(&Method::GET, &map, &v),
            Proceed { use_range: false }
        );
    }
}
