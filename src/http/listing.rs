//! HTML directory listings, from the template in `static/listing.html`. A listing is rendered
//! once per view and then served from the view's [`crate::page_cache::PageCache`].

use crate::view::{DirNode, Node, View};

use super::path::encode_segment;
use super::template;
use crate::time::http_date;

const TEMPLATE: &str = include_str!("../../static/listing.html");
pub const STYLE: &str = include_str!("../../static/style.css");

/// Renders the listing of the directory at `key` (`/a/b` form, root `/`).
pub fn render(view: &View, key: &str, dir: &DirNode) -> String {
    let mut rows = String::new();
    if key != "/" {
        rows.push_str("<tr><td><a href=\"../\">../</a></td><td class=\"num\"></td><td class=\"date\"></td></tr>\n");
    }
    // Directories first, then files, each in name order (the children are sorted by name).
    for pass_dirs in [true, false] {
        for child in dir.children.iter().filter(|c| c.is_dir == pass_dirs) {
            let child_key = if key == "/" {
                format!("/{}", child.name)
            } else {
                format!("{key}/{}", child.name)
            };
            let (size, mtime) = match view.get(&child_key) {
                Some(Node::File(file)) => (human_size(file.size), file.mtime),
                Some(Node::Dir(sub)) => ("—".to_string(), sub.mtime),
                None => continue,
            };
            let slash = if child.is_dir { "/" } else { "" };
            rows.push_str(&format!(
                "<tr><td><a href=\"{href}{slash}\">{name}{slash}</a></td><td class=\"num\">{size}</td><td class=\"date\">{date}</td></tr>\n",
                href = encode_segment(&child.name),
                name = escape(&child.name),
                date = short_date(mtime),
            ));
        }
    }
    let count = dir.children.len();
    let title = escape(&display_path(key));
    let crumbs = breadcrumbs(key);
    let count = format!("{count} entr{}", if count == 1 { "y" } else { "ies" });
    // One pass: names that contain `{{…}}` are never taken for placeholders.
    template::fill(TEMPLATE, |name| match name {
        "title" => Some(title.as_str()),
        "style" => Some(STYLE),
        "breadcrumbs" => Some(crumbs.as_str()),
        "count" => Some(count.as_str()),
        "rows" => Some(rows.as_str()),
        _ => None,
    })
}

fn display_path(key: &str) -> String {
    if key == "/" {
        "/".into()
    } else {
        format!("{key}/")
    }
}

/// `/a/b/` as links to `/`, `/a/` and `/a/b/`.
fn breadcrumbs(key: &str) -> String {
    let mut out = String::from("<a href=\"/\">/</a>");
    let mut href = String::from("/");
    for segment in key.split('/').filter(|s| !s.is_empty()) {
        href.push_str(&encode_segment(segment));
        href.push('/');
        out.push_str(&format!("<a href=\"{href}\">{}/</a>", escape(segment)));
    }
    out
}

pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// `2024-01-31 12:34` from an HTTP date, which is always in UTC.
fn short_date(unix: i64) -> String {
    // "Wed, 31 Jan 2024 12:34:56 GMT" -> reorder without a date crate.
    let text = http_date(unix);
    let parts: Vec<&str> = text.split(' ').collect();
    if parts.len() < 5 {
        return text;
    }
    let month = match parts[2] {
        "Jan" => "01",
        "Feb" => "02",
        "Mar" => "03",
        "Apr" => "04",
        "May" => "05",
        "Jun" => "06",
        "Jul" => "07",
        "Aug" => "08",
        "Sep" => "09",
        "Oct" => "10",
        "Nov" => "11",
        _ => "12",
    };
    format!("{}-{month}-{} {}", parts[3], parts[1], &parts[4][..5])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_sizes() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(short_date(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(
            breadcrumbs("/a b/c"),
            "<a href=\"/\">/</a><a href=\"/a%20b/\">a b/</a><a href=\"/a%20b/c/\">c/</a>"
        );
    }
}
