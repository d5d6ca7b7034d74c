//! The file responder: one representation (bytes in memory or an open object) plus the request
//! headers in, a complete response out. Preconditions first, then ranges, as RFC 9110 orders.

use std::fs::File;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::{Body, FileStream, FinalCheck, Segment};
use super::conditional::{self, Decision, Validators};
use super::range::{self, ByteRange, RangeOutcome};

/// Where a representation's bytes are.
#[derive(Clone)]
pub enum Content {
    Memory(Bytes),
    File(Arc<File>),
    /// A file that may change under us (see `ObjectCache`): checked before the last frame.
    CheckedFile(Arc<File>, FinalCheck),
}

/// Everything needed to answer GET or HEAD for one resource.
pub struct Representation {
    pub content: Content,
    pub len: u64,
    /// Strong entity tag with quotes.
    pub etag: HeaderValue,
    pub last_modified: i64,
    pub content_type: HeaderValue,
    pub cache_control: HeaderValue,
}

/// What a request gets, decided from the request and the representation's validators before
/// any header or body is built: the one place where HEAD and GET differ is whether the built
/// body is sent.
enum Answer {
    NotModified,
    PreconditionFailed,
    Unsatisfiable,
    Whole,
    Single(ByteRange),
    Multipart(Vec<ByteRange>),
}

/// Preconditions first, then `Range` (ignored when `If-Range` does not match or the header is
/// not text).
fn decide(method: &Method, headers: &HeaderMap, rep: &Representation, now: i64) -> Answer {
    let validators = Validators {
        etag: rep.etag.to_str().unwrap_or(""),
        last_modified: rep.last_modified,
        now,
    };
    let use_range = match conditional::evaluate(method, headers, &validators) {
        Decision::NotModified => return Answer::NotModified,
        Decision::PreconditionFailed => return Answer::PreconditionFailed,
        Decision::Proceed { use_range } => use_range,
    };
    let outcome = match headers.get(header::RANGE).map(|h| h.to_str()) {
        Some(Ok(value)) if use_range => range::parse(value, rep.len),
        _ => RangeOutcome::Ignore,
    };
    match outcome {
        RangeOutcome::Ignore => Answer::Whole,
        RangeOutcome::Unsatisfiable => Answer::Unsatisfiable,
        RangeOutcome::Ranges(ranges) if ranges.len() == 1 => Answer::Single(ranges[0]),
        RangeOutcome::Ranges(ranges) => Answer::Multipart(ranges),
    }
}

/// A response with content: what its headers say and which bytes make its body.
struct Payload {
    status: StatusCode,
    content_type: HeaderValue,
    content_range: Option<HeaderValue>,
    len: u64,
    segments: Vec<Segment>,
}

/// Answers GET or HEAD for `rep`: decides first (`decide`), then builds headers and body.
pub fn respond(
    method: &Method,
    headers: &HeaderMap,
    rep: Representation,
    now: i64,
) -> Response<Body> {
    let answer = decide(method, headers, &rep, now);
    // Built straight into one header map sized for a file response: the response builder
    // re-checks every name and value and grows its map as it goes.
    let mut h = HeaderMap::with_capacity(12);
    h.insert(header::ETAG, rep.etag.clone());
    h.insert(
        header::LAST_MODIFIED,
        super::header_cache::http_date(rep.last_modified),
    );
    h.insert(header::CACHE_CONTROL, rep.cache_control.clone());
    let payload = match answer {
        Answer::NotModified => return response(StatusCode::NOT_MODIFIED, h, Body::Empty),
        Answer::PreconditionFailed => {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return response(StatusCode::PRECONDITION_FAILED, h, Body::Empty);
        }
        Answer::Unsatisfiable => {
            h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::CONTENT_RANGE,
                text_value(format!("bytes */{}", rep.len)),
            );
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
            return response(StatusCode::RANGE_NOT_SATISFIABLE, h, Body::Empty);
        }
        Answer::Whole => Payload {
            status: StatusCode::OK,
            content_type: rep.content_type.clone(),
            content_range: None,
            len: rep.len,
            segments: vec![Segment::File {
                start: 0,
                end: rep.len,
            }],
        },
        Answer::Single(r) => Payload {
            status: StatusCode::PARTIAL_CONTENT,
            content_type: rep.content_type.clone(),
            content_range: Some(text_value(content_range(r, rep.len))),
            len: r.len(),
            segments: vec![Segment::File {
                start: r.start,
                end: r.end,
            }],
        },
        Answer::Multipart(ranges) => multipart(&ranges, &rep),
    };
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CONTENT_TYPE, payload.content_type);
    if let Some(content_range) = payload.content_range {
        h.insert(header::CONTENT_RANGE, content_range);
    }
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(payload.len));
    let body = if method == Method::HEAD {
        Body::Empty
    } else {
        body_of(&rep.content, payload.segments)
    };
    response(payload.status, h, body)
}

/// `multipart/byteranges`: each range behind a part head, the exact length counted up front.
fn multipart(ranges: &[ByteRange], rep: &Representation) -> Payload {
    let boundary = format!("{:016x}", rand::random::<u64>());
    let content_type = rep
        .content_type
        .to_str()
        .unwrap_or("application/octet-stream");
    let mut segments = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut total = 0u64;
    for r in ranges {
        let part_head = format!(
            "\r\n--{boundary}\r\nContent-Type: {content_type}\r\nContent-Range: {}\r\n\r\n",
            content_range(*r, rep.len)
        );
        total += part_head.len() as u64 + r.len();
        segments.push(Segment::Bytes(Bytes::from(part_head)));
        segments.push(Segment::File {
            start: r.start,
            end: r.end,
        });
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    total += tail.len() as u64;
    segments.push(Segment::Bytes(Bytes::from(tail)));
    Payload {
        status: StatusCode::PARTIAL_CONTENT,
        content_type: text_value(format!("multipart/byteranges; boundary={boundary}")),
        content_range: None,
        len: total,
        segments,
    }
}

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A header value made of text this module formatted (digits, ASCII names).
fn text_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

fn content_range(r: ByteRange, len: u64) -> String {
    format!("bytes {}-{}/{len}", r.start, r.end - 1)
}

/// Memory content is sliced right here; file content streams from the blocking pool.
fn body_of(content: &Content, segments: Vec<Segment>) -> Body {
    match content {
        Content::File(file) => Body::Stream(FileStream::new(file.clone(), segments)),
        Content::CheckedFile(file, check) => {
            Body::Stream(FileStream::new(file.clone(), segments).with_final_check(check.clone()))
        }
        Content::Memory(bytes) => {
            if let [Segment::File { start, end }] = segments.as_slice() {
                return Body::bytes(bytes.slice(*start as usize..*end as usize));
            }
            let mut out = Vec::new();
            for segment in segments {
                match segment {
                    Segment::Bytes(b) => out.extend_from_slice(&b),
                    Segment::File { start, end } => {
                        out.extend_from_slice(&bytes[start as usize..end as usize])
                    }
                }
            }
            Body::bytes(out)
        }
    }
}

/// A plain error response with a short text body.
pub fn error(status: StatusCode, message: &str) -> Response<Body> {
    let text = format!(
        "{} {}\n{message}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .header(header::CACHE_CONTROL, "no-store")
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .body(Body::bytes(text))
        .expect("valid response")
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn rep(data: &'static [u8]) -> Representation {
        Representation {
            content: Content::Memory(Bytes::from_static(data)),
            len: data.len() as u64,
            etag: HeaderValue::from_static("\"t\""),
            last_modified: 1_000_000,
            content_type: HeaderValue::from_static("text/plain"),
            cache_control: HeaderValue::from_static("max-age=1"),
        }
    }

    async fn run(method: Method, headers: &[(&str, &str)]) -> (StatusCode, HeaderMap, Bytes) {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        let response = respond(&method, &map, rep(b"0123456789"), 2_000_000);
        let (parts, body) = response.into_parts();
        (
            parts.status,
            parts.headers,
            body.collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn whole_and_single_range() {
        let (status, headers, body) = run(Method::GET, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(body, "0123456789");
        assert_eq!(headers["content-length"], "10");
        assert_eq!(headers["accept-ranges"], "bytes");
        let (status, headers, body) = run(Method::GET, &[("range", "bytes=2-4")]).await;
        assert_eq!(status, 206);
        assert_eq!(body, "234");
        assert_eq!(headers["content-range"], "bytes 2-4/10");
        assert_eq!(headers["content-length"], "3");
    }

    #[tokio::test]
    async fn head_has_get_headers_and_no_body() {
        let (status, headers, body) = run(Method::HEAD, &[("range", "bytes=2-4")]).await;
        assert_eq!(status, 200, "HEAD ignores Range");
        assert_eq!(headers["content-length"], "10");
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn unsatisfiable_and_not_modified() {
        let (status, headers, _) = run(Method::GET, &[("range", "bytes=10-")]).await;
        assert_eq!(status, 416);
        assert_eq!(headers["content-range"], "bytes */10");
        let (status, headers, body) = run(
            Method::GET,
            &[("range", "bytes=10-"), ("if-none-match", "\"t\"")],
        )
        .await;
        assert_eq!(status, 304);
        assert_eq!(headers["etag"], "\"t\"");
        assert!(headers.contains_key("last-modified"));
        assert!(headers.contains_key("cache-control"));
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn multipart_length_is_exact() {
        let (status, headers, body) = run(Method::GET, &[("range", "bytes=0-1,5-6")]).await;
        assert_eq!(status, 206);
        let content_type = headers["content-type"].to_str().unwrap();
        let boundary = content_type
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap();
        assert_eq!(headers["content-length"], body.len().to_string().as_str());
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            text,
            format!("\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/10\r\n\r\n01\r\n--{boundary}\r\nContent-Type: text/plain\r\nContent-Range: bytes 5-6/10\r\n\r\n56\r\n--{boundary}--\r\n")
        );
    }

    #[tokio::test]
    async fn if_range_mismatch_sends_everything() {
        let (status, _, body) = run(
            Method::GET,
            &[("range", "bytes=2-4"), ("if-range", "\"other\"")],
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body, "0123456789");
    }
}
