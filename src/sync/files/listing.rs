//! HTML directory listings (nginx `autoindex`, Apache `mod_autoindex` plain and fancy,
//! lighttpd `mod_dirlisting`, Python's `http.server`): the links of one page, resolved and
//! kept only when they name something strictly below the tree's root.
//!
//! Listings differ in markup but all link each entry with `<a href="…">`, directories with a
//! trailing `/`. Everything else on the page (sort links `?C=N;O=D`, the parent directory,
//! absolute links to other sites, icons, style sheets) must be ignored, or a walk would
//! leave the tree or loop; the check is on the resolved URL, not on the link text.

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Url;

/// One entry of a listing, below the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Relative to the root, percent-decoded, `/`-separated; no trailing slash.
    pub path: String,
    /// The URL to fetch (as the upstream spelled it, resolved).
    pub url: Url,
    pub is_dir: bool,
}

/// The links of a listing page at `page` that lie strictly below `root` (both URLs end with
/// `/`). Links that leave the tree, carry a query, or name the page itself are dropped;
/// duplicates are kept once.
pub fn links(html: &str, page: &Url, root: &Url) -> Vec<Link> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for href in hrefs(html) {
        let Some(link) = resolve(&href, page, root) else {
            continue;
        };
        if seen.insert(link.path.clone()) {
            out.push(link);
        }
    }
    out
}

/// Resolves a link against the page and keeps it if it names something below `root`.
pub fn resolve(href: &str, page: &Url, root: &Url) -> Option<Link> {
    let href = href.trim();
    if href.is_empty() || href.starts_with('#') || href.contains('?') {
        return None;
    }
    let mut url = page.join(href).ok()?;
    url.set_fragment(None);
    if url.query().is_some() {
        return None;
    }
    let relative = relative_path(&url, root)?;
    let is_dir = relative.ends_with('/');
    let path = decode_path(relative.trim_end_matches('/'))?;
    Some(Link { path, url, is_dir })
}

/// The part of `url`'s path below `root` (still percent-encoded), if `url` is strictly below
/// it on the same scheme, host and port.
pub fn relative_path<'u>(url: &'u Url, root: &Url) -> Option<&'u str> {
    if url.scheme() != root.scheme()
        || url.host_str() != root.host_str()
        || url.port_or_known_default() != root.port_or_known_default()
    {
        return None;
    }
    let relative = url.path().strip_prefix(root.path())?;
    if relative.is_empty() || relative.starts_with('/') {
        return None;
    }
    Some(relative)
}

/// Percent-decodes a relative path and checks every segment: UTF-8, no `.` or `..`, no
/// encoded `/`, no control characters. `None` when the path cannot be published as is.
pub fn decode_path(encoded: &str) -> Option<String> {
    let mut segments = Vec::new();
    for segment in encoded.split('/') {
        let decoded = percent_decode(segment)?;
        if decoded.is_empty()
            || decoded == "."
            || decoded == ".."
            || decoded.contains('/')
            || decoded.chars().any(char::is_control)
        {
            return None;
        }
        segments.push(decoded);
    }
    Some(segments.join("/"))
}

/// Decodes `%XX` escapes; `None` for a malformed escape (which the crate's decoder would pass
/// through as text) or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, &b)| {
        b != b'%'
            || bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return None;
    }
    String::from_utf8(percent_decode_str(text).collect()).ok()
}

/// Bytes [`encode_path`] escapes: all but RFC 3986's unreserved characters and `/`.
const PATH: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Percent-encodes a relative path for a URL: every byte but unreserved characters and `/`.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH).to_string()
}

/// The `href` values of the `<a>` elements of a page, with HTML character references
/// decoded. Tolerant of the markup listings really send: upper case, single, double or no
/// quotes, other attributes before `href`.
pub fn hrefs(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = lower[at..].find("<a") {
        let start = at + found + 2;
        at = start;
        // `<a` must be the whole tag name (`<abbr>` is not a link).
        if !lower[start..].starts_with(|c: char| c.is_ascii_whitespace()) {
            continue;
        }
        let Some(end) = tag_end(&lower, start) else {
            break;
        };
        if let Some(value) = attribute(&html[start..end], &lower[start..end], "href") {
            out.push(unescape(&value));
        }
        at = end;
    }
    out
}

/// The index of the `>` closing a tag whose attributes start at `from`, skipping quoted
/// values (an attribute may contain `>`).
fn tag_end(lower: &str, from: usize) -> Option<usize> {
    let mut quote = None;
    for (i, c) in lower[from..].char_indices() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if q == c => quote = None,
            (None, '>') => return Some(from + i),
            _ => {}
        }
    }
    None
}

/// The value of attribute `name` in a tag's attribute text (`lower` is its lowercase twin).
fn attribute(tag: &str, lower: &str, name: &str) -> Option<String> {
    let bytes = lower.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // Skip whitespace, then read an attribute name.
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let name_start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() && !b"=/>".contains(&bytes[i]) {
            i += 1;
        }
        let attr = &lower[name_start..i];
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() || bytes[i] != b'=' {
            if i == name_start {
                i += 1; // a stray `/` or `=`
            }
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let value = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = lower[i + 1..]
                    .find(q as char)
                    .map_or(bytes.len(), |e| i + 1 + e);
                let value = &tag[i + 1..end];
                i = end + 1;
                value
            }
            _ => {
                let start = i;
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'>' {
                    i += 1;
                }
                &tag[start..i]
            }
        };
        if attr == name {
            return Some(value.to_string());
        }
    }
    None
}

/// Decodes the character references listings use in attributes (`&amp;`, `&quot;`,
/// `&#39;`, `&#x27;`, …). Unknown ones stay as they are.
fn unescape(text: &str) -> String {
    if !text.contains('&') {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|&e| e <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    /// (path, is_dir) of the links a page yields.
    fn entries(html: &str, page: &str, root: &str) -> Vec<(String, bool)> {
        links(html, &url(page), &url(root))
            .into_iter()
            .map(|l| (l.path, l.is_dir))
            .collect()
    }

    fn owned(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(p, d)| (p.to_string(), *d)).collect()
    }

    #[test]
    fn nginx_autoindex() {
        let html = r#"<html>
<head><title>Index of /iso/</title></head>
<body>
<h1>Index of /iso/</h1><hr><pre><a href="../">../</a>
<a href="old/">old/</a>                                               12-Mar-2024 10:00       -
<a href="SHA256SUMS">SHA256SUMS</a>                                         24-Apr-2024 14:19    1234
<a href="proxmox-ve_8.2-1.iso">proxmox-ve_8.2-1.iso</a>                               24-Apr-2024 14:19  1361051648
<a href="with%20space%20%26%20amp.iso">with space &amp; amp.iso</a>                      24-Apr-2024 14:19  1
<a href="very-long-name-that-nginx-truncates-in-the-text-but-not-in-the-href.iso">very-long-name-that-nginx-truncates-in-the-te..&gt;</a> 24-Apr-2024 14:19 1
</pre><hr></body>
</html>"#;
        assert_eq!(
            entries(
                html,
                "http://download.example/iso/",
                "http://download.example/iso/"
            ),
            owned(&[
                ("old", true),
                ("SHA256SUMS", false),
                ("proxmox-ve_8.2-1.iso", false),
                ("with space & amp.iso", false),
                (
                    "very-long-name-that-nginx-truncates-in-the-text-but-not-in-the-href.iso",
                    false
                ),
            ])
        );
    }

    #[test]
    fn apache_fancy_index() {
        let html = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html>
 <head>
  <title>Index of /images/system</title>
 </head>
 <body>
<h1>Index of /images/system</h1>
  <table>
   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>
   <tr><th colspan="5"><hr></th></tr>
<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/images/">Parent Directory</a></td><td>&nbsp;</td><td align="right">  - </td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/compressed.gif" alt="[   ]"></td><td><a href="debian-12-standard_12.2-1_amd64.tar.zst">debian-12-standard_12.2-1_amd64.tar.zst</a></td><td align="right">2023-11-20 10:03  </td><td align="right">120M</td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td><td><a href="extra/">extra/</a></td><td align="right">2023-11-20 10:03  </td><td align="right">  - </td><td>&nbsp;</td></tr>
   <tr><th colspan="5"><hr></th></tr>
</table>
<address>Apache/2.4.57 (Debian) Server at download.example Port 80</address>
</body></html>"#;
        assert_eq!(
            entries(
                html,
                "http://download.example/images/system/",
                "http://download.example/images/"
            ),
            owned(&[
                ("system/debian-12-standard_12.2-1_amd64.tar.zst", false),
                ("system/extra", true),
            ])
        );
    }

    #[test]
    fn apache_plain_index() {
        let html = r#"<html><head><title>Index of /iso</title></head><body>
<h1>Index of /iso</h1>
<ul><li><a href="/"> Parent Directory</a></li>
<li><a href="a.iso"> a.iso</a></li>
<li><a href="sub/"> sub/</a></li>
</ul>
</body></html>"#;
        assert_eq!(
            entries(html, "http://h/iso/", "http://h/iso/"),
            owned(&[("a.iso", false), ("sub", true)])
        );
    }

    #[test]
    fn lighttpd_dirlisting() {
        let html = r#"<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en">
<head>
<title>Index of /mirror/</title>
<style type="text/css">
a, a:active {text-decoration: none; color: blue;}
</style>
</head>
<body>
<h2>Index of /mirror/</h2>
<div class="list">
<table summary="Directory Listing" cellpadding="0" cellspacing="0">
<thead><tr><th class="n">Name</th><th class="m">Last Modified</th><th class="s">Size</th><th class="t">Type</th></tr></thead>
<tbody>
<tr class="d"><td class="n"><a href="../">..</a>/</td><td class="m">&nbsp;</td><td class="s">- &nbsp;</td><td class="t">Directory</td></tr>
<tr class="d"><td class="n"><a href="dir%20one/">dir one</a>/</td><td class="m">2024-Apr-24 14:19:00</td><td class="s">- &nbsp;</td><td class="t">Directory</td></tr>
<tr><td class="n"><a href="file.txt">file.txt</a></td><td class="m">2024-Apr-24 14:19:00</td><td class="s">0.1K</td><td class="t">text/plain</td></tr>
</tbody>
</table>
</div>
<div class="foot">lighttpd/1.4.69</div>
</body>
</html>"#;
        assert_eq!(
            entries(html, "http://h/mirror/", "http://h/mirror/"),
            owned(&[("dir one", true), ("file.txt", false)])
        );
    }

    #[test]
    fn python_http_server() {
        let html = r#"<!DOCTYPE HTML>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Directory listing for /</title>
</head>
<body>
<h1>Directory listing for /</h1>
<hr>
<ul>
<li><a href="caf%C3%A9.txt">café.txt</a></li>
<li><a href="it%27s%20%26%20%3Cok%3E.txt">it&#x27;s &amp; &lt;ok&gt;.txt</a></li>
<li><a href="link">link@</a></li>
<li><a href="sub/">sub/</a></li>
</ul>
<hr>
</body>
</html>"#;
        assert_eq!(
            entries(html, "http://127.0.0.1:8000/", "http://127.0.0.1:8000/"),
            owned(&[
                ("café.txt", false),
                ("it's & <ok>.txt", false),
                ("link", false),
                ("sub", true)
            ])
        );
    }

    #[test]
    fn links_that_leave_the_tree_are_dropped() {
        let html = r##"
<a href="../">up</a> <a href="/">root</a> <a href="/other/x.iso">elsewhere</a>
<a href="http://evil.example/iso/x.iso">other host</a>
<a href="https://h/iso/x.iso">other scheme</a>
<a href="http://h:8080/iso/x.iso">other port</a>
<a href="sub/../../x">climbs out</a>
<a href="%2e%2e/x">encoded dots</a>
<a href="a%2Fb">encoded slash</a>
<a href="?C=N;O=D">sort</a> <a href="x.iso?download=1">query</a>
<a href="#top">anchor</a> <a href="./">self</a> <a href="">empty</a>
<a href="mailto:root@h">mail</a> <a href="javascript:void(0)">js</a>
<a href="%ff.bin">not utf-8</a>
<A HREF='ok.iso#frag'>kept, fragment dropped</A>
<a class="x" href=bare.iso>unquoted</a>
<abbr href="no.iso">not a link</abbr>
<link rel="stylesheet" href="style.css">
<a href="http://h/iso/abs.iso">absolute, inside</a>
<a href="ok.iso">duplicate</a>
"##;
        assert_eq!(
            entries(html, "http://h/iso/", "http://h/iso/"),
            owned(&[("ok.iso", false), ("bare.iso", false), ("abs.iso", false)])
        );
        let link = resolve("ok.iso#frag", &url("http://h/iso/"), &url("http://h/iso/")).unwrap();
        assert_eq!(link.url.as_str(), "http://h/iso/ok.iso");
    }

    #[test]
    fn paths_round_trip_through_encoding() {
        for path in ["a b/c&d.iso", "café/x+y.iso", "plain/file-1.0_amd64.deb"] {
            assert_eq!(decode_path(&encode_path(path)).as_deref(), Some(path));
        }
        assert_eq!(decode_path("a/%2E%2E/b"), None);
        assert_eq!(decode_path("a//b"), None);
        assert_eq!(decode_path("bad%zz"), None);
        // Checked against the hand-written decoder this module had before the crate.
        for bad in [
            "%", "a%4", "%+f", "%-1", "100%", "%%41", "%00", "%2f", "%ff", "%C3", "a/",
        ] {
            assert_eq!(decode_path(bad), None, "{bad:?}");
        }
        assert_eq!(decode_path("%41/%c3%A4/a%20b").as_deref(), Some("A/ä/a b"));
        assert_eq!(encode_path("~-._/x?#%ä"), "~-._/x%3F%23%25%C3%A4");
    }
}
