//! HTTP-01 (RFC 8555 §8.3): the CA fetches `/.well-known/acme-challenge/<token>` and expects
//! the key authorization the engine put into the shared state. Answered on every listener
//! before sources and `[[access]]` rules, so a source mounted at `/` or a rule that closes the
//! whole site cannot hide it; only while ACME is on (otherwise the path is an ordinary one).

use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode};

use super::body::Body;
use super::respond::error;
use crate::acme::AcmeState;

/// The path prefix the CA asks under.
pub const PREFIX: &str = "/.well-known/acme-challenge/";

/// The answer for a request whose raw path is `path`, or `None` if the path is not a
/// challenge's.
pub fn respond(state: &AcmeState, method: &Method, path: &str) -> Option<Response<Body>> {
    let token = path.strip_prefix(PREFIX)?;
    if method != Method::GET && method != Method::HEAD {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "ACME challenges are read with GET or HEAD",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return Some(response);
    }
    // Tokens are base64url (RFC 8555 §8.3): anything else cannot be one, so it is not looked up.
    let answer = is_token(token).then(|| state.http_answer(token)).flatten();
    let Some(key_authorization) = answer else {
        return Some(error(StatusCode::NOT_FOUND, "no such ACME challenge"));
    };
    let len = key_authorization.len();
    let body = if method == Method::HEAD {
        Body::Empty
    } else {
        Body::bytes(key_authorization)
    };
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, "no-store")
        .body(body)
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "cannot answer"));
    Some(response)
}

/// A non-empty base64url string without padding, of a sane length.
fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn text(response: Response<Body>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn known_tokens_get_their_key_authorization_others_404_writes_405() {
        let state = AcmeState::new(vec!["mirror.example".into()]);
        state.set_http_answer("tok-EN_1", "tok-EN_1.thumbprint");
        let path = |token: &str| format!("{PREFIX}{token}");

        let ok = respond(&state, &Method::GET, &path("tok-EN_1")).unwrap();
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(ok.headers()[header::CONTENT_LENGTH], "19");
        assert_eq!(text(ok).await, "tok-EN_1.thumbprint");
        let head = respond(&state, &Method::HEAD, &path("tok-EN_1")).unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()[header::CONTENT_LENGTH], "19");
        assert_eq!(text(head).await, "");

        for unknown in ["other", "", "tok-EN_1.x", "tok%2DEN_1", "a/b", "tok-EN_1/"] {
            let response = respond(&state, &Method::GET, &path(unknown)).unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{unknown:?}");
        }
        for method in [Method::PUT, Method::POST, Method::DELETE] {
            let response = respond(&state, &method, &path("tok-EN_1")).unwrap();
            assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(response.headers()[header::ALLOW], "GET, HEAD");
        }
        state.remove_http_answer("tok-EN_1");
        let gone = respond(&state, &Method::GET, &path("tok-EN_1")).unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
        // Other paths are not the challenge route's.
        assert!(respond(&state, &Method::GET, "/.well-known/acme-challenge").is_none());
        assert!(respond(&state, &Method::GET, "/debian/tok-EN_1").is_none());
    }
}
