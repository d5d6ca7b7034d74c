//! The admin's tools on the command line: `diff` between snapshots and `pin`/`unpin` (with
//! and without a running server). `import-pom` has its own file, `import_pom.rs`.

mod common;

use common::{pattern, Site};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Snapshot ids of source `site`, oldest first, and which one is current.
fn snapshots(site: &Site) -> (Vec<String>, String) {
    let out = site.cli(&["snapshots", "site"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut ids = Vec::new();
    let mut current = String::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.first() == Some(&"site") {
            ids.push(fields[1].to_string());
            if line.trim_end().ends_with('*') {
                current = fields[1].to_string();
            }
        }
    }
    (ids, current)
}

#[test]
fn diff_lists_added_removed_and_changed_paths() {
    let site = Site::new();
    std::fs::write(site.public().join("same"), b"same").unwrap();
    std::fs::write(site.public().join("gone"), pattern(300, 1)).unwrap();
    std::fs::write(site.public().join("edited"), pattern(100, 2)).unwrap();
    assert!(site.cli(&["sync"]).status.success());
    std::fs::remove_file(site.public().join("gone")).unwrap();
    std::fs::write(site.public().join("edited"), pattern(150, 3)).unwrap();
    std::fs::create_dir(site.public().join("sub")).unwrap();
    std::fs::write(site.public().join("sub/new"), pattern(42, 4)).unwrap();
    assert!(site.cli(&["sync"]).status.success());
    let (ids, current) = snapshots(&site);
    assert_eq!(ids.len(), 2);
    assert_eq!(current, ids[1]);
    let out = site.cli(&["diff", "site", &ids[0], "current"]);
    let output = text(&out);
    assert!(out.status.success(), "{output}");
    assert!(output.contains("+ sub/new (42 bytes)"), "{output}");
    assert!(output.contains("- gone (300 bytes)"), "{output}");
    assert!(output.contains("~ edited (100 → 150 bytes)"), "{output}");
    assert!(!output.contains(" same"), "{output}");
    assert!(output.contains("1 added, 1 removed, 1 changed"), "{output}");
    // Unknown snapshots are named as such.
    let out = site.cli(&["diff", "site", "ffffffff", "current"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no retained snapshot `ffffffff`"),
        "{}",
        text(&out)
    );
}

#[test]
fn pin_publishes_an_older_snapshot_until_unpin() {
    let site = Site::new();
    // The file is rewritten in place below: copies keep every version's bytes.
    site.store_keys("ingest = \"copy\"");
    let file = site.public().join("f");
    std::fs::write(&file, b"version 1").unwrap();
    assert!(site.cli(&["sync"]).status.success());
    std::fs::write(&file, b"version 2").unwrap();
    assert!(site.cli(&["sync"]).status.success());
    let (ids, _) = snapshots(&site);

    // Without a server: the CLI writes the refs itself.
    let out = site.cli(&["pin", "site", &ids[0]]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains(&format!("/.snapshots/site/{}/", ids[0])));
    assert_eq!(snapshots(&site).1, ids[0]);

    // With a server: it serves the pinned snapshot, keeps it through syncs, and unpins.
    let server = site.start_without_sync();
    let get = |path: &str| common::curl(&[&server.url(path)]).stdout;
    assert_eq!(get("/files/f"), b"version 1");
    std::fs::write(&file, b"version 3").unwrap();
    let out = site.cli(&["sync", "site"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("retained (pinned, not published)"),
        "{}",
        text(&out)
    );
    assert_eq!(get("/files/f"), b"version 1", "pinned through a sync");
    let (ids_now, current) = snapshots(&site);
    assert_eq!(current, ids[0]);
    let newest = ids_now.last().unwrap().clone();
    assert_ne!(newest, ids[0]);
    assert_eq!(
        get(&format!("/.snapshots/site/{newest}/f")),
        b"version 3",
        "the new snapshot is retained"
    );
    let out = site.cli(&["unpin", "site"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(get("/files/f"), b"version 3");
    // A pin through the server takes effect at once too.
    let out = site.cli(&["pin", "site", &ids[1]]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(get("/files/f"), b"version 2");
    let out = site.cli(&["pin", "site", "abcd0000"]);
    assert!(!out.status.success());
}
