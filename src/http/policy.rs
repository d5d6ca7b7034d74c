//! Per-path header policy: Content-Type by name, Cache-Control by what the source recorded.
//!
//! Caching matters for mirrors: without Cache-Control, proxies guess freshness and apt users
//! get "Hash Sum mismatch". Paths whose bytes can never change are cached for a year.

use http::HeaderValue;

/// A year for content that can never change (the source kind says which, at sync), a minute
/// for the rest.
pub fn cache_control(immutable: bool) -> HeaderValue {
    if immutable {
        HeaderValue::from_static("max-age=31536000, immutable")
    } else {
        HeaderValue::from_static("max-age=60")
    }
}

/// Listings and status pages change with every publish.
pub const SHORT_CACHE: &str = "max-age=10";

pub fn content_type(path: &str) -> HeaderValue {
    let name = path.rsplit('/').next().unwrap_or(path);
    let value = match name {
        "InRelease" | "Release" | "Packages" | "Sources" | "CKSUMS" | "SHA256SUMS"
        | "SHA512SUMS" | "MD5SUMS" => "text/plain; charset=utf-8",
        _ => match name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .as_deref()
        {
            Some("html" | "htm") => "text/html; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("json") => "application/json",
            Some("txt" | "md" | "sha256" | "sha512" | "list" | "dsc") => {
                "text/plain; charset=utf-8"
            }
            Some("xml") => "application/xml",
            Some("svg") => "image/svg+xml",
            Some("png") => "image/png",
            Some("jpg" | "jpeg") => "image/jpeg",
            Some("gif") => "image/gif",
            Some("ico") => "image/x-icon",
            Some("pdf") => "application/pdf",
            Some("gpg" | "asc" | "sig") => "application/pgp-signature",
            Some("gz" | "tgz") => "application/gzip",
            Some("xz") => "application/x-xz",
            Some("bz2") => "application/x-bzip2",
            Some("zst") => "application/zstd",
            Some("iso") => "application/x-iso9660-image",
            Some("torrent") => "application/x-bittorrent",
            _ => "application/octet-stream",
        },
    };
    HeaderValue::from_static(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert_eq!(content_type("/a/InRelease"), "text/plain; charset=utf-8");
        assert_eq!(content_type("/a/x.deb"), "application/octet-stream");
        assert_eq!(content_type("/a/x.rdiff"), "application/octet-stream");
        assert_eq!(content_type("/a/Packages.XZ"), "application/x-xz");
        assert_eq!(content_type("/a/noext"), "application/octet-stream");
        assert_eq!(content_type("/a/index.html"), "text/html; charset=utf-8");
    }
}
