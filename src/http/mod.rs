//! The HTTP side: request → path → view lookup → file responder → response.
//!
//! Reading order: `server` (listeners, connections, shutdown) → this file's [`handle`]
//! (methods, Host, paths, routing) → `respond` (preconditions, ranges) → `body` (streaming).
//! `metrics` counts every answer (status, mount, body bytes) and serves `/.metrics`;
//! `status_page` serves `/.status` and `/.status.json`.

pub mod body;
pub mod conditional;
mod header_cache;
mod idle;
pub mod listing;
pub mod metrics;
pub mod objects;
pub mod path;
pub mod policy;
pub mod range;
pub mod respond;
pub mod server;
mod status_page;
pub mod tls;
pub mod zerocopy;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::sync::unix_now;
use crate::view::Node;
use body::Body;
use metrics::CountedBody;
use respond::{error, Content, Representation};

/// Answers one request. Never panics on client input; every refusal has the right status.
/// `tls`: the connection is HTTPS (for the URLs the status page shows).
pub async fn handle<B>(
    app: Arc<App>,
    req: Request<B>,
    peer: SocketAddr,
    tls: bool,
) -> Response<CountedBody> {
    // (Only the access log reads the clock.)
    let started = app.config.server.access_log.then(Instant::now);
    let mut slot = app.metrics.other_slot();
    let response = route(&app, &req, tls, &mut slot).await;
    if app.config.server.access_log {
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-");
        tracing::info!(
            target: "access",
            peer = %peer,
            method = %req.method(),
            path = %req.uri().path(),
            version = ?req.version(),
            status = response.status().as_u16(),
            bytes = length,
            us = started.map_or(0, |t| t.elapsed().as_micros() as u64),
        );
    }
    let response = zerocopy::divert(response, req.extensions().get(), req.version());
    let cell = app.metrics.count_request(response.status().as_u16(), slot);
    response.map(|body| CountedBody::new(body, app, cell))
}

/// `slot`: set to the metrics slot (mount) of the path once it is known.
async fn route<B>(app: &App, req: &Request<B>, tls: bool, slot: &mut usize) -> Response<Body> {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return not_allowed(method);
    }
    // HTTP/1.1 requires exactly one Host (RFC 9112 §3.2); hyper does not check it.
    if req.version() == Version::HTTP_11 && req.headers().get_all(header::HOST).iter().count() != 1
    {
        return error(
            StatusCode::BAD_REQUEST,
            "HTTP/1.1 requests need exactly one Host header",
        );
    }
    let decoded = match path::decode(req.uri().path()) {
        Ok(decoded) => decoded,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    match decoded.key.as_str() {
        "/.status" | "/.status.json" | "/.status.html" => {
            *slot = app.metrics.status_slot();
            return status_page::respond(app, req, &decoded.key, tls).await;
        }
        "/.metrics" => {
            *slot = app.metrics.status_slot();
            return metrics::respond(app, req).await;
        }
        _ => *slot = app.metrics.mount_slot(&decoded.key),
    }
    let view = app.view.load();
    let Some(node) = view.get(&decoded.key) else {
        return error(StatusCode::NOT_FOUND, "no such file or directory");
    };
    let now = unix_now();
    match node {
        Node::File(_) if decoded.trailing_slash => {
            error(StatusCode::NOT_FOUND, "no such directory")
        }
        Node::File(file) => {
            let content = match app.objects.open(file).await {
                Ok(content) => content,
                Err(e) => {
                    tracing::error!(path = %decoded.key, error = %e, "cannot serve a published file");
                    return error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "this file cannot be served right now",
                    );
                }
            };
            let rep = Representation {
                content,
                len: file.size,
                etag: header_cache::etag(&file.object),
                last_modified: file.mtime,
                content_type: policy::content_type(&decoded.key),
                cache_control: policy::cache_control(&decoded.key),
            };
            respond::respond(method, req.headers(), rep, now)
        }
        Node::Dir(_) if !decoded.trailing_slash && decoded.key != "/" => {
            redirect_to_slash(req, &decoded.key)
        }
        Node::Dir(dir) => {
            let html = listing::render(&view, &decoded.key, dir);
            generated(
                method,
                req.headers(),
                html.into(),
                "text/html; charset=utf-8",
                dir.mtime,
                now,
            )
        }
    }
}

/// A page made on the fly (listing, status): strong ETag from its bytes, short caching.
fn generated(
    method: &Method,
    headers: &http::HeaderMap,
    bytes: Bytes,
    content_type: &'static str,
    last_modified: i64,
    now: i64,
) -> Response<Body> {
    let digest = Sha256::digest(&bytes);
    let etag = format!("\"{}\"", hex::encode(&digest[..16]));
    let rep = Representation {
        len: bytes.len() as u64,
        content: Content::Memory(bytes),
        etag: HeaderValue::from_str(&etag).expect("hex is a valid header"),
        last_modified: last_modified.min(now),
        content_type: HeaderValue::from_static(content_type),
        cache_control: HeaderValue::from_static(policy::SHORT_CACHE),
    };
    respond::respond(method, headers, rep, now)
}

/// `/a/b` → `b/`, relative so it is right behind any proxy prefix; the query is kept.
fn redirect_to_slash<B>(req: &Request<B>, key: &str) -> Response<Body> {
    let last = key.rsplit('/').next().unwrap_or("");
    let mut location = format!("{}/", path::encode_segment(last));
    if let Some(query) = req.uri().query() {
        location.push('?');
        location.push_str(query);
    }
    let text = format!("Moved to {location}\n");
    Response::builder()
        .status(StatusCode::MOVED_PERMANENTLY)
        .header(header::LOCATION, location)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CONTENT_LENGTH, text.len())
        .header(header::CACHE_CONTROL, policy::SHORT_CACHE)
        .body(Body::bytes(text))
        .unwrap_or_else(|_| error(StatusCode::BAD_REQUEST, "bad query"))
}

fn not_allowed(method: &Method) -> Response<Body> {
    const KNOWN: [Method; 7] = [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::CONNECT,
        Method::OPTIONS,
        Method::TRACE,
        Method::PATCH,
    ];
    if KNOWN.contains(method) {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "this server only reads: GET and HEAD",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        response
    } else {
        error(StatusCode::NOT_IMPLEMENTED, "unknown method")
    }
}
