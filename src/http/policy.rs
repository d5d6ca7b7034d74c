//! Per-path header policy: Content-Type by name, Cache-Control by what kind of path it is.
//!
//! Caching matters for mirrors: without Cache-Control, proxies guess freshness and apt users
//! get "Hash Sum mismatch". Paths whose bytes can never change are cached for a year.

use http::HeaderValue;

/// Paths whose content never changes: pinned snapshot URLs, by-hash indices, pool files,
/// packages, Puavo images (their names carry a timestamp) and rdiffs.
pub fn is_immutable(path: &str) -> bool {
    if path.starts_with("/.snapshots/") || path.contains("/by-hash/") || path.contains("/pool/") {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    matches!(extension, "deb" | "udeb" | "ddeb" | "rdiff") || is_versioned_image(name)
}

/// `<prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img`, the Puavo image naming scheme.
fn is_versioned_image(name: &str) -> bool {
    let Some(stem) = name.strip_suffix(".img") else {
        return false;
    };
    let bytes = stem.as_bytes();
    // Look for "-dddd-dd-dd-dddddd-" anywhere.
    const PATTERN: &[u8] = b"-dddd-dd-dd-dddddd-";
    bytes.windows(PATTERN.len()).any(|w| {
        w.iter().zip(PATTERN).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
    })
}

pub fn cache_control(path: &str) -> HeaderValue {
    if is_immutable(path) {
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
    fn immutable_paths() {
        for path in [
            "/.snapshots/pve/0123456789abcdef/dists/bookworm/InRelease",
            "/debian/dists/bookworm/main/binary-amd64/by-hash/SHA256/abc",
            "/debian/pool/main/a/apt/apt_2.6.1_amd64.deb",
            "/pve/dists/bookworm/pve-no-subscription/binary-amd64/foo_1.0_amd64.deb",
            "/puavo/rdiffs/puavo-os-2024-01-01-000000--2024-02-01-000000-amd64.rdiff",
            "/puavo/puavo-os-2024-01-01-000000-amd64.img",
        ] {
            assert!(is_immutable(path), "{path}");
        }
        for path in [
            "/debian/dists/bookworm/InRelease",
            "/debian/dists/bookworm/main/binary-amd64/Packages.xz",
            "/puavo/meta/bookworm.json",
            "/puavo/CKSUMS",
            "/files/latest.img",
            "/iso/proxmox-ve_8.1-1.iso",
        ] {
            assert!(!is_immutable(path), "{path}");
        }
    }

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
