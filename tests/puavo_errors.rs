//! Build-mode errors as puavo-os's make-rdiffs treats them, but per series: a puavo-conf key
//! defined in two definition files of one image, or an image whose filesystem cannot be read,
//! fails its series (the previous snapshot's files of that series stay published); an
//! `extra_rdiffs` entry for an image that is not built is ignored, a missing source of one
//! that is built fails the series. And the log of a sync carries our lines only.

mod common;

use std::path::Path;
use std::process::Command;

use common::{body_at as get, status_at as status_of};
use common::{pattern, Server, Site, BIN};

const URLBASE: &str = "https://images.example.org/puavo";
const BOOKWORM: &str = "puavo-os-test-bookworm-amd64";
const BULLSEYE: &str = "puavo-os-test-bullseye-amd64";

fn image_name(dist: &str, day: usize) -> String {
    format!("puavo-os-test-{dist}-2024-03-{day:02}-101500-amd64.img")
}

/// Makes `<dir>/<file>` with mksquashfs: the definition files `defs` (name, JSON text) and
/// some data that differs by `seed`.
fn make_image(dir: &Path, file: &str, defs: &[(&str, String)], seed: u64) {
    let tree = tempfile::tempdir().unwrap();
    let definitions = tree.path().join("usr/share/puavo-conf/definitions");
    std::fs::create_dir_all(&definitions).unwrap();
    for (name, text) in defs {
        std::fs::write(definitions.join(name), text).unwrap();
    }
    std::fs::create_dir_all(tree.path().join("usr/lib")).unwrap();
    std::fs::write(tree.path().join("usr/lib/a.so"), pattern(50_000, 1)).unwrap();
    std::fs::write(tree.path().join("usr/lib/b.so"), pattern(20_000, seed)).unwrap();
    let out = Command::new("mksquashfs")
        .arg(tree.path())
        .arg(dir.join(file))
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("mksquashfs (Debian package squashfs-tools)");
    assert!(out.status.success(), "mksquashfs: {out:?}");
}

fn definition(key: &str, default: &str) -> String {
    format!(r#"{{"{key}": {{"default": "{default}", "typehint": "string", "description": "t"}}}}"#)
}

/// Two images of each series, with sound definitions.
fn image_folder() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for dist in ["bookworm", "bullseye"] {
        for day in 1..=2 {
            make_image(
                dir.path(),
                &image_name(dist, day),
                &[
                    ("puavo-admin.json", definition("puavo.admin.x", dist)),
                    (
                        "puavo-xorg.json",
                        definition("puavo.xorg.server", "default"),
                    ),
                ],
                day as u64,
            );
        }
    }
    dir
}

fn source(images: &Path, extra: &str) -> String {
    format!(
        "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/puavo\"\nimage_dir = \"{}\"\nurlbase = \"{URLBASE}\"\n{extra}\n",
        images.display()
    )
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sync(site: &Site) -> String {
    let out = site.cli(&["sync", "images"]);
    assert!(out.status.success(), "{}", output(&out));
    output(&out)
}

/// A sync in which some series failed: exit status 1, the rest published.
fn sync_partly(site: &Site) -> String {
    let out = site.cli(&["sync", "images"]);
    let text = output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("PARTLY FAILED"), "{text}");
    text
}

fn meta(server: &Server, series: &str) -> serde_json::Value {
    serde_json::from_slice(&get(server, &format!("/puavo/meta/{series}.json"))).unwrap()
}

/// A new bookworm image (day 3) breaks that series only: the sync says why, bullseye moves
/// on, bookworm keeps what it had.
fn check_fails_bookworm_only(images: &Path, bad: &str, reason: &[&str]) {
    let site = Site::with(false, &source(images, ""));
    let server = site.start_without_sync();
    std::fs::rename(images.join(bad), images.join("held")).unwrap();
    sync(&site);
    let bookworm_before = get(&server, &format!("/puavo/meta/{BOOKWORM}.json"));
    std::fs::rename(images.join("held"), images.join(bad)).unwrap();
    let fresh = image_name("bullseye", 3);
    make_image(
        images,
        &fresh,
        &[("puavo-admin.json", definition("puavo.admin.x", "new"))],
        3,
    );
    let text = sync_partly(&site);
    assert!(
        text.contains(&format!("series `{BOOKWORM}` failed")) && text.contains(bad),
        "{text}"
    );
    for part in reason {
        assert!(text.contains(part), "`{part}` in {text}");
    }
    assert!(get(&server, &format!("/puavo/meta/{BOOKWORM}.json")) == bookworm_before);
    assert_eq!(status_of(&server, &format!("/puavo/{bad}")), "404");
    assert_eq!(status_of(&server, &format!("/puavo/{fresh}")), "200");
    let cksums = String::from_utf8(get(&server, "/puavo/CKSUMS")).unwrap();
    assert!(
        cksums.contains(&image_name("bookworm", 2)) && !cksums.contains(bad),
        "{cksums}"
    );
    assert_eq!(
        meta(&server, BULLSEYE)[BULLSEYE]["images"][2]["puavo-conf"]["puavo.admin.x"]["default"],
        "new"
    );
}

#[test]
fn a_key_defined_in_two_files_fails_the_series() {
    let images = image_folder();
    let bad = image_name("bookworm", 3);
    make_image(
        images.path(),
        &bad,
        &[
            ("puavo-admin.json", definition("puavo.admin.x", "a")),
            ("puavo-other.json", definition("puavo.admin.x", "b")),
        ],
        3,
    );
    check_fails_bookworm_only(
        images.path(),
        &bad,
        &["puavo.admin.x", "puavo-admin.json", "puavo-other.json"],
    );
}

#[test]
fn a_key_twice_in_one_file_keeps_the_last_value() {
    let images = image_folder();
    make_image(
        images.path(),
        &image_name("bookworm", 3),
        &[(
            "puavo-admin.json",
            r#"{"puavo.admin.x": {"default": "first"}, "puavo.admin.x": {"default": "last"}}"#
                .to_string(),
        )],
        3,
    );
    let site = Site::with(false, &source(images.path(), ""));
    let server = site.start_without_sync();
    let text = sync(&site);
    assert!(!text.contains("warning"), "{text}");
    let value = meta(&server, BOOKWORM);
    assert_eq!(
        value[BOOKWORM]["images"][2]["puavo-conf"],
        serde_json::json!({"puavo.admin.x": {"default": "last"}})
    );
}

#[test]
fn an_image_whose_filesystem_cannot_be_read_fails_the_series() {
    let images = image_folder();
    let bad = image_name("bookworm", 3);
    make_image(
        images.path(),
        &bad,
        &[("puavo-admin.json", definition("puavo.admin.x", "c"))],
        3,
    );
    // The superblock and the length are right (the cheap check passes); the inode and
    // directory tables it points at are noise.
    let path = images.path().join(&bad);
    let mut bytes = std::fs::read(&path).unwrap();
    let at = |offset: usize| u64::from_le_bytes(bytes[offset..offset + 8].try_into().unwrap());
    let (inodes, fragments) = (at(64) as usize, at(80) as usize);
    assert!(inodes < fragments && fragments <= bytes.len());
    let noise = pattern(fragments - inodes, 99);
    bytes[inodes..fragments].copy_from_slice(&noise);
    std::fs::write(&path, &bytes).unwrap();
    check_fails_bookworm_only(images.path(), &bad, &["puavo-conf"]);
}

#[test]
fn extra_rdiffs_of_an_image_not_built_are_ignored_and_a_missing_source_fails() {
    let images = image_folder();
    let config = tempfile::tempdir().unwrap();
    let series_file = config.path().join("images.json");
    let bookworm: Vec<String> = (1..=2).map(|d| image_name("bookworm", d)).collect();
    let bullseye: Vec<String> = (1..=2).map(|d| image_name("bullseye", d)).collect();
    let write = |extra: serde_json::Value| {
        std::fs::write(
            &series_file,
            serde_json::json!({
                BOOKWORM: { "images": bookworm, "extra_rdiffs": extra },
                BULLSEYE: { "images": bullseye },
            })
            .to_string(),
        )
        .unwrap();
    };
    // A target that is not in `images`, from a source that does not exist either.
    write(serde_json::json!({
        image_name("bookworm", 9): [image_name("bookworm", 8)],
    }));
    let site = Site::with(
        false,
        &source(
            images.path(),
            &format!("series_config = \"{}\"", series_file.display()),
        ),
    );
    let server = site.start_without_sync();
    let text = sync(&site);
    assert!(!text.contains("warning"), "{text}");
    let cksums = String::from_utf8(get(&server, "/puavo/CKSUMS")).unwrap();
    assert!(!cksums.contains("2024-03-08"), "{cksums}");
    assert_eq!(cksums.lines().count(), 2 * (2 + 2), "{cksums}");
    let bookworm_before = get(&server, &format!("/puavo/meta/{BOOKWORM}.json"));

    // A built target whose source is missing: that series fails, as the rake run does.
    let missing = image_name("bookworm", 8);
    write(serde_json::json!({ &bookworm[1]: [&missing] }));
    let text = sync_partly(&site);
    assert!(
        text.contains(&format!("series `{BOOKWORM}` failed"))
            && text.contains("extra_rdiffs source")
            && text.contains(&missing),
        "{text}"
    );
    assert!(get(&server, &format!("/puavo/meta/{BOOKWORM}.json")) == bookworm_before);
    assert_eq!(
        meta(&server, BULLSEYE)[BULLSEYE]["images"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Lines of a `fmt` log at INFO whose target is not ours.
fn foreign_info_lines(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|line| {
            let mut words = line.split_whitespace();
            words.any(|w| w == "INFO")
                && !words
                    .next()
                    .is_some_and(|target| target.starts_with("mirrorbox"))
        })
        .collect()
}

#[test]
fn a_sync_logs_no_info_lines_of_other_crates() {
    let images = image_folder();
    let site = Site::with(false, &source(images.path(), ""));
    let run = |log: Option<&str>| {
        let mut command = Command::new(BIN);
        command
            .arg("sync")
            .arg("--config")
            .arg(&site.config)
            .arg("images")
            .env_remove("MIRRORBOX_LOG")
            .env_remove("RUST_LOG");
        if let Some(log) = log {
            command.env("MIRRORBOX_LOG", log);
        }
        let out = command.output().expect("run mirrorbox");
        assert!(out.status.success(), "{}", output(&out));
        String::from_utf8_lossy(&out.stderr).to_string()
    };
    // Every image is read for its puavo-conf; the reader's own lines stay out.
    let log = run(None);
    assert!(
        log.contains("rdiff made"),
        "our info lines are there: {log}"
    );
    assert_eq!(foreign_info_lines(&log), Vec::<&str>::new(), "{log}");
    // So with a plain level set explicitly.
    std::fs::remove_dir_all(site.data()).unwrap();
    let log = run(Some("info"));
    assert!(log.contains("rdiff made"), "{log}");
    assert_eq!(foreign_info_lines(&log), Vec::<&str>::new(), "{log}");
    // Named explicitly, the library's lines come back: the filter is what kept them out.
    std::fs::remove_dir_all(site.data()).unwrap();
    let log = run(Some("info,backhand=info"));
    let foreign = foreign_info_lines(&log);
    assert!(
        foreign.iter().any(|line| line.contains("backhand")),
        "{log}"
    );
}
