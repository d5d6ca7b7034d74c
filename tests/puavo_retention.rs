//! Mirror-mode retention, as a Puavo bootserver keeps its disk: per series the newest
//! `keep_images` images plus the images a site's in-use file names, and for each kept image
//! the rdiffs from its `keep_rdiffs_per_image` newest base versions. The upstream is a local
//! HTTP server over a repository made here: images of random bytes, rdiffs made by the real
//! `rdiff` between them by puavo-os's rule (each of the last three images from every other),
//! meta files listing coreutils `cksum` and `sha512sum` values.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::upstream::Upstream;
use common::{body_at as get, status_at as status_of};
use common::{pattern, sha256_hex, Server, Site};

const BOOKWORM: &str = "puavo-os-test-bookworm-amd64";
const BULLSEYE: &str = "puavo-os-test-bullseye-amd64";

fn image_name(dist: &str, day: usize) -> String {
    format!("puavo-os-test-{dist}-2024-03-{day:02}-101500-amd64.img")
}

fn version(day: usize) -> String {
    format!("202403{day:02}101500")
}

fn rdiff_name(dist: &str, source: usize, target: usize) -> String {
    format!(
        "puavo-os-test-{dist}-2024-03-{source:02}-101500--2024-03-{target:02}-101500-amd64.rdiff"
    )
}

fn tool(command: &mut Command) -> String {
    let out = command.output().expect("run tool");
    assert!(out.status.success(), "{command:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// A meta entry for `file` (in `dir`), with coreutils' cksum and sha512sum.
fn listed(dir: &Path, path: &str, file: &str, version: String) -> serde_json::Value {
    let full = dir.join(path);
    let bytes = std::fs::read(&full).unwrap();
    let cksum = tool(Command::new("cksum").arg(&full));
    let sha512 = tool(Command::new("sha512sum").arg(&full));
    serde_json::json!({
        "filename": file,
        "urls": [format!("https://cdn.example.org/{path}")],
        "version": version,
        "size": bytes.len(),
        "cksum": cksum.split(' ').next().unwrap(),
        "sha256": sha256_hex(&bytes),
        "sha512": sha512.split(' ').next().unwrap(),
    })
}

/// Writes series `dist` with images of days `days` into the upstream folder `dir`.
fn write_series(dir: &Path, dist: &str, days: &[usize]) {
    std::fs::create_dir_all(dir.join("rdiffs")).unwrap();
    std::fs::create_dir_all(dir.join("meta")).unwrap();
    // Images that share most of their bytes, as successive builds do.
    for &day in days {
        let mut bytes = pattern(60_000, 7);
        bytes.extend(pattern(8_000, day as u64));
        bytes.extend(pattern(30_000, 8));
        std::fs::write(dir.join(image_name(dist, day)), bytes).unwrap();
    }
    let targets = &days[days.len().saturating_sub(3)..];
    let mut images = Vec::new();
    for &day in days {
        let file = image_name(dist, day);
        let mut diffs = Vec::new();
        if targets.contains(&day) {
            for &source in days.iter().filter(|&&s| s != day) {
                let name = rdiff_name(dist, source, day);
                let signature = dir.join("sig.tmp");
                tool(
                    Command::new("rdiff")
                        .args(["--force", "signature"])
                        .arg(dir.join(image_name(dist, source)))
                        .arg(&signature),
                );
                tool(
                    Command::new("rdiff")
                        .args(["--force", "delta"])
                        .arg(&signature)
                        .arg(dir.join(&file))
                        .arg(dir.join("rdiffs").join(&name)),
                );
                std::fs::remove_file(&signature).unwrap();
                diffs.push(listed(
                    dir,
                    &format!("rdiffs/{name}"),
                    &name,
                    version(source),
                ));
            }
        }
        let mut entry = listed(dir, &file, &file, version(day));
        entry["diffs"] = serde_json::Value::Array(diffs);
        entry["id"] = file.trim_end_matches(".img").into();
        entry["puavo-conf"] = serde_json::json!({"puavo.test": {"default": day.to_string()}});
        images.push(entry);
    }
    let series = format!("puavo-os-test-{dist}-amd64");
    let meta = serde_json::json!({ series.clone(): { "images": images } });
    std::fs::write(
        dir.join(format!("meta/{series}.json")),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
}

/// An upstream with bookworm images of days 1..=5 and bullseye of days 1..=4.
fn upstream_tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_series(dir.path(), "bookworm", &[1, 2, 3, 4, 5]);
    write_series(dir.path(), "bullseye", &[1, 2, 3, 4]);
    dir
}

fn mirror_source(id: &str, upstream: &Upstream, extra: &str) -> String {
    format!(
        "[[source]]\nid = \"{id}\"\nkind = \"puavo\"\nmount = \"/{id}\"\nupstream = \"{}\"\nseries = [\"{BOOKWORM}\", \"{BULLSEYE}\"]\ntorrents = false\n{extra}\n",
        upstream.url("/").trim_end_matches('/'),
    )
}

fn output(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sync(site: &Site, id: &str) -> String {
    let out = site.cli(&["sync", id]);
    assert!(out.status.success(), "sync {id}: {}", output(&out));
    output(&out)
}

/// What a published series holds: (image, its rdiffs), from its meta file.
type Published = Vec<(String, BTreeSet<String>)>;

fn published(server: &Server, mount: &str, series: &str) -> Published {
    let meta: serde_json::Value =
        serde_json::from_slice(&get(server, &format!("{mount}/meta/{series}.json"))).unwrap();
    meta[series]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|image| {
            let diffs = image["diffs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["filename"].as_str().unwrap().to_string())
                .collect();
            (image["filename"].as_str().unwrap().to_string(), diffs)
        })
        .collect()
}

fn expect(dist: &str, kept: &[(usize, &[usize])]) -> Published {
    kept.iter()
        .map(|(day, sources)| {
            (
                image_name(dist, *day),
                sources.iter().map(|s| rdiff_name(dist, *s, *day)).collect(),
            )
        })
        .collect()
}

/// Every file the meta files list is served with the upstream's bytes, CKSUMS lists exactly
/// those files, and every other upstream image and rdiff is neither served nor fetched.
fn check_served(server: &Server, mount: &str, upstream: &Upstream, dir: &Path) {
    let mut listed = BTreeSet::new();
    for series in [BOOKWORM, BULLSEYE] {
        for (image, diffs) in published(server, mount, series) {
            listed.insert(image);
            for diff in diffs {
                listed.insert(format!("rdiffs/{diff}"));
            }
        }
    }
    let cksums = String::from_utf8(get(server, &format!("{mount}/CKSUMS"))).unwrap();
    let in_cksums: BTreeSet<String> = cksums
        .lines()
        .map(|line| {
            let file = line.rsplit(' ').next().unwrap();
            if file.ends_with(".rdiff") {
                format!("rdiffs/{file}")
            } else {
                file.to_string()
            }
        })
        .collect();
    assert_eq!(in_cksums, listed, "CKSUMS lists what the meta files list");
    let fetched: BTreeSet<String> = upstream
        .log()
        .into_iter()
        .map(|(path, _)| path.trim_start_matches('/').to_string())
        .collect();
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir)
        .unwrap()
        .chain(std::fs::read_dir(dir.join("rdiffs")).unwrap())
    {
        let path = entry.unwrap().path();
        let relative = path
            .strip_prefix(dir)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        if relative.ends_with(".img") || relative.ends_with(".rdiff") {
            all.push(relative);
        }
    }
    assert!(all.len() > listed.len());
    for path in all {
        if listed.contains(&path) {
            assert!(
                get(server, &format!("{mount}/{path}")) == std::fs::read(dir.join(&path)).unwrap(),
                "{path}"
            );
        } else {
            assert_eq!(
                status_of(server, &format!("{mount}/{path}")),
                "404",
                "{path}"
            );
            assert!(
                !fetched.contains(&path),
                "{path} was fetched but is not kept"
            );
        }
    }
}

#[test]
fn defaults_keep_two_images_and_two_rdiffs_each() {
    let dir = upstream_tree();
    let upstream = Upstream::serve(dir.path());
    let site = Site::with(false, &mirror_source("boot", &upstream, ""));
    let server = site.start_without_sync();
    sync(&site, "boot");
    // Day 4's rdiffs come from days 1, 2, 3 and 5: the newest bases are 5 and 3.
    assert_eq!(
        published(&server, "/boot", BOOKWORM),
        expect("bookworm", &[(4, &[3, 5]), (5, &[3, 4])])
    );
    assert_eq!(
        published(&server, "/boot", BULLSEYE),
        expect("bullseye", &[(3, &[2, 4]), (4, &[2, 3])])
    );
    check_served(&server, "/boot", &upstream, dir.path());
    // The rest of a kept image's meta entry is the upstream's.
    let meta: serde_json::Value =
        serde_json::from_slice(&get(&server, &format!("/boot/meta/{BOOKWORM}.json"))).unwrap();
    assert_eq!(
        meta[BOOKWORM]["images"][1]["puavo-conf"]["puavo.test"]["default"],
        "5"
    );
    // check-config says what is kept.
    let out = site.cli(&["check-config"]);
    let text = output(&out);
    assert!(
        text.contains("keeps per series the newest 2 images, and for each kept image the rdiffs to it from its 2 newest base versions"),
        "{text}"
    );
}

#[test]
fn one_rdiff_per_image() {
    let dir = upstream_tree();
    let upstream = Upstream::serve(dir.path());
    let site = Site::with(
        false,
        &mirror_source(
            "boot",
            &upstream,
            "keep_images = 3\nkeep_rdiffs_per_image = 1",
        ),
    );
    let server = site.start_without_sync();
    sync(&site, "boot");
    // Day 3 of bookworm is a target (one of the last three): its newest base is day 5.
    assert_eq!(
        published(&server, "/boot", BOOKWORM),
        expect("bookworm", &[(3, &[5]), (4, &[5]), (5, &[4])])
    );
    assert_eq!(
        published(&server, "/boot", BULLSEYE),
        expect("bullseye", &[(2, &[4]), (3, &[4]), (4, &[3])])
    );
    check_served(&server, "/boot", &upstream, dir.path());
}

#[test]
fn images_in_use_are_kept_and_a_missing_list_fails_the_sync() {
    let dir = upstream_tree();
    let upstream = Upstream::serve(dir.path());
    let lists = tempfile::tempdir().unwrap();
    let in_use = lists.path().join("images-in-use");
    // As a site script writes it: ids and file names, comments, blank lines; one image of
    // a series not followed here.
    std::fs::write(
        &in_use,
        format!(
            "# images booted by devices\n\n{}\n{}  # the lab\npuavo-os-test-buster-2020-01-01-000000-amd64\n",
            image_name("bookworm", 1).trim_end_matches(".img"),
            image_name("bullseye", 3),
        ),
    )
    .unwrap();
    let site = Site::with(
        false,
        &mirror_source(
            "boot",
            &upstream,
            &format!("keep_images_in_use = \"{}\"", in_use.display()),
        ),
    );
    let server = site.start_without_sync();
    let text = sync(&site, "boot");
    assert!(
        text.contains("keep_images_in_use: `puavo-os-test-buster-2020-01-01-000000-amd64.img` is in no followed series"),
        "{text}"
    );
    // Day 1 is no rdiff target upstream: it is kept without rdiffs.
    assert_eq!(
        published(&server, "/boot", BOOKWORM),
        expect("bookworm", &[(1, &[]), (4, &[3, 5]), (5, &[3, 4])])
    );
    // Already among the newest: nothing more.
    assert_eq!(
        published(&server, "/boot", BULLSEYE),
        expect("bullseye", &[(3, &[2, 4]), (4, &[2, 3])])
    );
    check_served(&server, "/boot", &upstream, dir.path());
    let out = site.cli(&["check-config"]);
    assert!(
        output(&out).contains(&format!("and the images listed in {}", in_use.display())),
        "{}",
        output(&out)
    );

    // The list is gone (a site script failed): the sync fails before fetching anything and
    // the published snapshot stays, the old image in it.
    let before = get(&server, "/boot/CKSUMS");
    std::fs::remove_file(&in_use).unwrap();
    write_series(dir.path(), "bookworm", &[1, 2, 3, 4, 5, 6]);
    upstream.reset_counters();
    let out = site.cli(&["sync", "boot"]);
    let text = output(&out);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("keep_images_in_use") && text.contains(&in_use.display().to_string()),
        "{text}"
    );
    assert!(upstream.log().is_empty(), "{:?}", upstream.log());
    assert!(get(&server, "/boot/CKSUMS") == before);
    // check-config says so before the next sync would find out.
    let out = site.cli(&["check-config"]);
    let text = output(&out);
    assert!(
        text.contains("keep_images_in_use")
            && text.contains(&in_use.display().to_string())
            && text.contains("cannot read"),
        "{text}"
    );
    assert_eq!(
        status_of(&server, &format!("/boot/{}", image_name("bookworm", 1))),
        "200"
    );

    // Back, now empty: only the newest remain, and the new image is in.
    std::fs::write(&in_use, "# nothing in use\n").unwrap();
    sync(&site, "boot");
    assert_eq!(
        published(&server, "/boot", BOOKWORM),
        expect("bookworm", &[(5, &[4, 6]), (6, &[4, 5])])
    );
    assert_eq!(
        status_of(&server, &format!("/boot/{}", image_name("bookworm", 1))),
        "404"
    );
}

#[test]
fn retention_keys_are_refused_in_build_mode() {
    let images = tempfile::tempdir().unwrap();
    for key in ["keep_rdiffs_per_image = 1", "keep_images_in_use = \"/x\""] {
        let site = Site::with(
            false,
            &format!(
                "[[source]]\nid = \"images\"\nkind = \"puavo\"\nmount = \"/puavo\"\nimage_dir = \"{}\"\nurlbase = \"https://images.example\"\n{key}\n",
                images.path().display()
            ),
        );
        let out = site.cli(&["check-config"]);
        let name = key.split(' ').next().unwrap();
        assert!(!out.status.success());
        assert!(
            output(&out).contains(&format!(
                "key `{name}`: only applies to mirroring (`upstream`)"
            )),
            "{}",
            output(&out)
        );
    }
}
