//! HTML directory listings, from the askama template `static/listing.html` (names are
//! escaped by the template). A listing is rendered once per view and then served from the
//! view's `PageCache` (`page_cache`).

use askama::Template;

use crate::view::{DirNode, Node, View};

use super::path::encode_segment;
use crate::time::http_date;

/// The page style, shared with the status page; inserted as it is (it is ours, not input).
pub const STYLE: &str = include_str!("../../static/style.css");

#[derive(Template)]
#[template(path = "listing.html", config = "static/askama.toml")]
struct Listing<'a> {
    title: String,
    style: &'static str,
    crumbs: Vec<Crumb<'a>>,
    root: bool,
    rows: Vec<Row<'a>>,
    count: usize,
}

/// One link of the heading: `/a/b/` links to `/a/` and `/a/b/`.
struct Crumb<'a> {
    href: String,
    name: &'a str,
}

struct Row<'a> {
    href: String,
    name: &'a str,
    slash: &'static str,
    size: String,
    date: String,
}

/// Renders the listing of the directory at `key` (`/a/b` form, root `/`).
pub fn render(view: &View, key: &str, dir: &DirNode) -> String {
    let mut rows = Vec::with_capacity(dir.children.len());
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
                Some(Node::Dir) => ("—".to_string(), child.mtime),
                None => continue,
            };
            rows.push(Row {
                href: encode_segment(&child.name),
                name: &child.name,
                slash: if child.is_dir { "/" } else { "" },
                size,
                date: short_date(mtime),
            });
        }
    }
    let page = Listing {
        title: display_path(key),
        style: STYLE,
        crumbs: breadcrumbs(key),
        root: key == "/",
        rows,
        count: dir.children.len(),
    };
    // Rendering into a String only fails if a Display impl fails; ours do not.
    page.render()
        .unwrap_or_else(|e| format!("cannot render the listing: {e}"))
}

fn display_path(key: &str) -> String {
    if key == "/" {
        "/".into()
    } else {
        format!("{key}/")
    }
}

/// The links of `/a/b/` after the root's: `/a/` and `/a/b/`.
fn breadcrumbs(key: &str) -> Vec<Crumb<'_>> {
    let mut href = String::from("/");
    key.split('/')
        .filter(|s| !s.is_empty())
        .map(|segment| {
            href.push_str(&encode_segment(segment));
            href.push('/');
            Crumb {
                href: href.clone(),
                name: segment,
            }
        })
        .collect()
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
    fn sizes_dates_and_breadcrumbs() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(short_date(1_700_000_000), "2023-11-14 22:13");
        let crumbs: Vec<(String, &str)> = breadcrumbs("/a b/c")
            .into_iter()
            .map(|c| (c.href, c.name))
            .collect();
        assert_eq!(
            crumbs,
            [
                ("/a%20b/".to_string(), "a b"),
                ("/a%20b/c/".to_string(), "c")
            ]
        );
    }
}
