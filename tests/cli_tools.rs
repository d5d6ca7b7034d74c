//! The admin's tools on the command line: `diff` between snapshots, `pin`/`unpin` (with and
//! without a running server), and `import-pom` producing a configuration `check-config`
//! accepts.

mod common;

use std::process::Command;

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

#[test]
fn import_pom_makes_a_config_check_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key = common::gpg::Gpg::new("pom-import", "ed25519");
    // The shape proxmox-offline-mirror writes: `mirror:` sections with tab-indented
    // properties, repeated keys for lists, plus media and keys that have no equivalent.
    let pom = format!(
        "mirror: pve_bookworm\n\tarchitectures amd64\n\tarchitectures all\n\tbase-dir /var/lib/proxmox-offline-mirror/mirrors\n\tkey-path {key}\n\trepository deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription\n\tsync true\n\tverify true\n\tskip-packages *-dbgsym\n\tskip-sections debug\n\n\
mirror: ceph_reef_bookworm\n\tarchitectures amd64\n\tbase-dir /var/lib/proxmox-offline-mirror/mirrors\n\tkey-path {key}\n\trepository deb http://download.proxmox.com/debian/ceph-reef bookworm no-subscription\n\tsync true\n\tverify true\n\n\
mirror: debian_bookworm_security\n\tarchitectures amd64\n\tarchitectures all\n\tbase-dir /var/lib/proxmox-offline-mirror/mirrors\n\tkey-path {key}\n\trepository deb http://deb.debian.org/debian-security bookworm-security main contrib\n\tskip-sections debug\n\tskip-sections games\n\tsync true\n\tverify false\n\n\
medium: usb\n\tmirrors pve_bookworm\n\tmountpoint /mnt/usb\n\tsync true\n\tverify true\n",
        key = key.public.display()
    );
    let pom_file = dir.path().join("proxmox-offline-mirror.cfg");
    std::fs::write(&pom_file, pom).unwrap();
    let data = dir.path().join("data");
    let out = Command::new(common::BIN)
        .arg("import-pom")
        .arg(&pom_file)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let config = String::from_utf8(out.stdout).unwrap();
    assert_eq!(config.matches("[[source]]").count(), 3, "{config}");
    assert!(config.contains("mount = \"/debian/pve\""), "{config}");
    assert!(
        config.contains("skip_sections = [\"debug\", \"games\"]"),
        "{config}"
    );
    assert!(config.contains("not imported: `medium: usb`"), "{config}");
    let file = dir.path().join("mirrorbox.toml");
    std::fs::write(&file, &config).unwrap();
    let check = Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    let checked = text(&check);
    assert!(check.status.success(), "{checked}\n{config}");
    assert!(checked.contains("pve_bookworm") && checked.contains("debian_bookworm_security"));
    assert!(!checked.contains("PROBLEM"), "{checked}");

    // A broken file is refused with the line.
    std::fs::write(&pom_file, "mirror: x\n\tverify perhaps\n").unwrap();
    let out = Command::new(common::BIN)
        .arg("import-pom")
        .arg(&pom_file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("line 2"), "{}", text(&out));
}
