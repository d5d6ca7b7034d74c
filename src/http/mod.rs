//! The HTTP side: request → path → view lookup → file responder → response.
//!
//! Reading order: `server` (listeners, connections, shutdown) → this file's [`handle`]
//! (methods, Host, paths, routing) → `respond` (preconditions, ranges) → `body` (streaming).
//! `metrics` counts every answer (status, mount, body bytes) and serves `/.metrics`;
//! `status` serves `/.status` and `/.status.json`; `access` decides `[[access]]` rules
//! (with `htpasswd` and `apr1` for passwords) before any lookup; `acme_challenge` answers
//! ACME HTTP-01 before all of them. HTTPS listeners take their certificate from
//! `certificates` (files or the ACME state), with the profile of `tls`. Handlers see only
//! [`State`] (see `state`): the app builds it and answers its [`StatusSource`] questions.

pub mod access;
pub mod acme_challenge;
mod activity;
mod apr1;
pub mod body;
pub mod budget;
pub mod certificates;
pub mod conditional;
mod drain;
mod header_cache;
pub mod htpasswd;
mod idle;
pub mod listing;
mod memory;
pub mod metrics;
pub mod objects;
pub mod path;
pub mod policy;
pub mod range;
pub mod redact;
pub mod respond;
pub mod server;
pub mod settings;
mod state;
pub mod status;
mod template;
pub mod tls;
pub mod zerocopy;

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};

use crate::page_cache::Page;
use crate::time::unix_now;
use crate::view::Node;
use access::Decision;
use body::Body;
use metrics::CountedBody;
use respond::{error, Content, Representation};
pub use state::{IntoState, LiveStatus, Settings, SourceState, State, StatusSource};

/// Answers one request. Never panics on client input; every refusal has the right status.
/// `tls`: the connection is HTTPS (for the URLs the status page shows). `state`: the
/// server's [`State`] (or an owner that makes it, such as the app).
pub async fn handle<B>(
    state: impl IntoState,
    req: Request<B>,
    peer: SocketAddr,
    tls: bool,
) -> Response<CountedBody> {
    let state = state.into_state();
    let access_log = state.settings.access_log;
    // (Only the access log reads the clock.)
    let started = access_log.then(Instant::now);
    let mut slot = state.metrics.other_slot();
    let response = route(&state, &req, peer.ip(), tls, &mut slot).await;
    if access_log {
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
    let bytes = state
        .metrics
        .count_request(response.status().as_u16(), slot);
    response.map(|body| CountedBody::new(body, bytes))
}

/// `slot`: set to the metrics slot (mount) of the path once it is known.
async fn route<B>(
    state: &State,
    req: &Request<B>,
    peer: IpAddr,
    tls: bool,
    slot: &mut usize,
) -> Response<Body> {
    let method = req.method();
    // Before methods, sources and access rules: the CA must always reach its token.
    if let Some(acme) = state.acme() {
        if let Some(answer) = acme_challenge::respond(acme, method, req.uri().path()) {
            return answer;
        }
    }
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
    let builtin = matches!(
        decoded.key.as_str(),
        "/.status" | "/.status.json" | "/.status.html" | "/.metrics"
    );
    *slot = if builtin {
        state.metrics.status_slot()
    } else {
        state.metrics.mount_slot(&decoded.key)
    };
    // Before any lookup: a refused client must not learn whether the path exists.
    let access = state.access();
    let restricted = if access.has_rules() {
        let authorization = req.headers().get(header::AUTHORIZATION);
        match access.check(&decoded.key, peer, authorization).await {
            Decision::Allowed { restricted } => restricted,
            Decision::Forbidden => {
                return error(
                    StatusCode::FORBIDDEN,
                    "this path is not served to your address",
                )
            }
            Decision::Unauthorized(challenge) => {
                let mut response = error(
                    StatusCode::UNAUTHORIZED,
                    "this path needs a user name and password",
                );
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
                return response;
            }
            Decision::Busy => {
                let mut response = error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many password checks at once; try again",
                );
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                return response;
            }
        }
    } else {
        false
    };
    let mut response = serve(state, req, &decoded, peer, restricted, tls).await;
    if restricted {
        // Content behind a rule must not be kept by shared caches for other clients.
        private(response.headers_mut());
    }
    response
}

/// `Cache-Control: private, …` (unless the response is not stored at all).
fn private(headers: &mut http::HeaderMap) {
    let value = match headers.get(header::CACHE_CONTROL).map(|v| v.to_str()) {
        Some(Ok(v)) if v.contains("no-store") || v.contains("private") => return,
        Some(Ok(v)) => format!("private, {v}"),
        _ => "private".to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::CACHE_CONTROL, value);
    }
}

/// Answers a request that may be served. `restricted`: an `[[access]]` rule with an allow
/// list or a password let it through.
async fn serve<B>(
    state: &State,
    req: &Request<B>,
    decoded: &path::RequestPath,
    peer: IpAddr,
    restricted: bool,
    tls: bool,
) -> Response<Body> {
    let method = req.method();
    match decoded.key.as_str() {
        "/.status" | "/.status.json" | "/.status.html" => {
            // Full error messages (with filesystem paths) only for trusted clients.
            let trusted = trusted(restricted, peer, state.settings.trust_loopback);
            return status::respond(state, req, &decoded.key, tls, trusted, peer).await;
        }
        "/.metrics" => return metrics::respond(state, req).await,
        _ => {}
    }
    let view = state.view.load();
    let Some(node) = view.get(&decoded.key) else {
        return error(StatusCode::NOT_FOUND, "no such file or directory");
    };
    let now = unix_now();
    match node {
        Node::File(_) if decoded.trailing_slash => {
            error(StatusCode::NOT_FOUND, "no such directory")
        }
        Node::File(file) => {
            let content = match state.objects.open(&file).await {
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
                cache_control: policy::cache_control(file.immutable),
            };
            respond::respond(method, req.headers(), rep, now)
        }
        Node::Dir if !decoded.trailing_slash && decoded.key != "/" => {
            redirect_to_slash(req, &decoded.key)
        }
        Node::Dir => {
            let page = view.listings.get_or_render(&decoded.key, || {
                let dir = view.dir(&decoded.key).unwrap_or_default();
                (listing::render(&view, &decoded.key, &dir), dir.mtime)
            });
            page_response(
                method,
                req.headers(),
                &page,
                "text/html; charset=utf-8",
                page.last_modified,
                now,
            )
        }
    }
}

/// Whether a status page client sees full messages: let through by a restricting rule, or
/// on this host (unless `[server] trust_loopback = false`: behind a reverse proxy on the same
/// host, every client arrives from loopback).
fn trusted(restricted: bool, peer: IpAddr, trust_loopback: bool) -> bool {
    restricted || (trust_loopback && (peer.is_loopback() || is_mapped_loopback(peer)))
}

fn is_mapped_loopback(peer: IpAddr) -> bool {
    match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
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
    let page = Page::new(bytes);
    page_response(method, headers, &page, content_type, last_modified, now)
}

/// A page made earlier, with its ETag.
fn page_response(
    method: &Method,
    headers: &http::HeaderMap,
    page: &Page,
    content_type: &'static str,
    last_modified: i64,
    now: i64,
) -> Response<Body> {
    let rep = Representation {
        len: page.bytes.len() as u64,
        content: Content::Memory(page.bytes.clone()),
        etag: HeaderValue::from_str(&page.etag).expect("hex is a valid header"),
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

#[cfg(test)]
mod tests {
    use super::trusted;
    use std::net::IpAddr;

    #[test]
    fn loopback_is_trusted_only_if_configured() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        for peer in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(trusted(false, ip(peer), true), "{peer}");
            assert!(!trusted(false, ip(peer), false), "{peer}");
            assert!(trusted(true, ip(peer), false), "{peer}");
        }
        assert!(!trusted(false, ip("192.0.2.1"), true));
    }
}
