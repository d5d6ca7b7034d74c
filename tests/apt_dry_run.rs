//! `sync --dry-run` of several apt sources: they are planned side by side, yet the output is
//! one line per source in the configuration's order, each the line a dry run of that source
//! alone prints, and the data directory is never made.

mod common;

use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::Site;

/// An apt source `id` at `mount` for `suite main` of `upstream`.
fn source(
    id: &str,
    mount: &str,
    upstream: &Upstream,
    suite: &str,
    key: &std::path::Path,
) -> String {
    format!(
        "[[source]]\nid = \"{id}\"\nkind = \"apt\"\nmount = \"{mount}\"\nrepository = \"deb {} {suite} main\"\narchitectures = [\"amd64\"]\nkeys = [\"{}\"]\n",
        upstream.url("/"),
        key.display()
    )
}

/// The line of `source` in a dry run's output.
fn line_of<'a>(output: &'a str, source: &str) -> &'a str {
    let prefix = format!("{source}: ");
    output
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no line for {source}: {output}"))
}

#[test]
fn several_sources_are_planned_in_the_order_of_the_configuration() {
    let repo = AptRepo::new(Layout::Debian);
    repo.suite(
        "bookworm",
        "main",
        &[Pkg::new("alpha", "1.0", 2_000)],
        false,
        None,
    );
    let trixie = [
        Pkg::new("bravo", "2.0", 3_000),
        Pkg::new("charlie", "0.1", 500),
    ];
    repo.suite("trixie", "main", &trixie, true, None);
    let upstream = Upstream::serve(repo.root());
    let images = tempfile::tempdir().unwrap();
    let config = [
        source("zulu", "/z", &upstream, "trixie", &repo.key()),
        format!(
            "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/puavo\"\nimage_dir = \"{}\"\nurlbase = \"http://images.example\"\n",
            images.path().display()
        ),
        source("alpha", "/a", &upstream, "bookworm", &repo.key()),
        source("mike", "/m", &upstream, "trixie", &repo.key()),
    ]
    .concat();
    let site = Site::with(false, &config);
    let (ok, output) = site.cli_text(&["sync", "--dry-run"]);
    assert!(ok, "{output}");
    let order: Vec<&str> = output
        .lines()
        .filter_map(|l| l.split_once(": ").map(|(id, _)| id))
        .collect();
    // `site` is the `dir` source every test site has, first.
    assert_eq!(
        order,
        ["site", "zulu", "images", "alpha", "mike"],
        "{output}"
    );
    assert!(
        line_of(&output, "images").contains("not planned"),
        "{output}"
    );
    assert!(
        line_of(&output, "zulu").contains("would fetch 2 files"),
        "{output}"
    );
    assert!(
        line_of(&output, "alpha").contains("would fetch 1 files"),
        "{output}"
    );
    for id in ["zulu", "alpha", "mike"] {
        let (ok, alone) = site.cli_text(&["sync", "--dry-run", id]);
        assert!(ok, "{alone}");
        assert_eq!(line_of(&alone, id), line_of(&output, id));
    }
    assert!(!site.data().exists(), "a dry run made the data dir");
}
