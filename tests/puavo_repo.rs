//! Puavo image repositories end to end: images made by `mksquashfs` (gzip, xz and zstd) in a
//! folder, built into a repository by `mirrorbox sync`, served, and checked with the real
//! tools: `rdiff patch` for every rdiff, coreutils `cksum` for CKSUMS, `jq '.[][][]'` over
//! the meta files, `sha512sum`, `wget --continue` for resume; then mirrored from an upstream
//! that serves the built tree.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::upstream::Upstream;
use common::{body_at as get, status_at as status_of};
use common::{pattern, Server, Site};

const URLBASE: &str = "https://images.example.org/puavo";

/// An image tree: puavo-conf definitions and some files that change with `version`.
fn image_tree(root: &Path, dist: &str, version: usize) {
    let defs = root.join("usr/share/puavo-conf/definitions");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("puavo-admin.json"),
        format!(r#"{{"puavo.admin.{dist}": {{"default": "v{version}", "typehint": "string", "description": "test"}}}}"#),
    )
    .unwrap();
    std::fs::write(
        defs.join("puavo-xorg.json"),
        r#"{"puavo.xorg.server": {"default": "default", "typehint": "string", "description": "X"}}"#,
    )
    .unwrap();
    let data = root.join("usr/lib/data");
    std::fs::create_dir_all(&data).unwrap();
    // Stable files, one rewritten per version, one removed, one added.
    for i in 0..6 {
        let seed = if i == version % 6 { 1000 + version } else { i };
        std::fs::write(
            data.join(format!("lib{i}.so")),
            pattern(150_000 + i * 7_000, seed as u64),
        )
        .unwrap();
    }
    if version.is_multiple_of(2) {
        std::fs::write(data.join("even.bin"), pattern(90_000, 77)).unwrap();
    }
    std::fs::write(
        data.join(format!("new-in-{version}.bin")),
        pattern(40_000 + version * 1_000, 500 + version as u64),
    )
    .unwrap();
}

/// Makes `<dir>/<file>` with mksquashfs from a tree for `version`.
fn make_image(dir: &Path, file: &str, dist: &str, version: usize, compression: &str) {
    let tree = tempfile::tempdir().unwrap();
    image_tree(tree.path(), dist, version);
    let out = Command::new("mksquashfs")
        .arg(tree.path())
        .arg(dir.join(file))
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-all-root",
            "-comp",
            compression,
        ])
        .output()
        .expect("mksquashfs (Debian package squashfs-tools)");
    assert!(out.status.success(), "mksquashfs: {out:?}");
}

fn image_name(dist: &str, day: usize) -> String {
    format!("puavo-os-test-{dist}-2024-03-{day:02}-101500-amd64.img")
}

/// The `version` puavo-os writes for an image name (14 digits of the date).
fn version_of(file: &str) -> String {
    let date = file.split('-').skip(4).take(4).collect::<Vec<_>>().join("");
    assert_eq!(date.len(), 14, "{file}");
    date
}

/// A folder with series `bookworm` (4 images) and `bullseye` (2 images) and a stray file.
fn image_folder() -> (tempfile::TempDir, Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let compressions = ["gzip", "xz", "zstd", "lzo"];
    let bookworm: Vec<String> = (1..=4).map(|d| image_name("bookworm", d)).collect();
    for (i, file) in bookworm.iter().enumerate() {
        make_image(dir.path(), file, "bookworm", i, compressions[i]);
    }
    let bullseye: Vec<String> = (1..=2).map(|d| image_name("bullseye", d)).collect();
    for (i, file) in bullseye.iter().enumerate() {
        make_image(dir.path(), file, "bullseye", 10 + i, "gzip");
    }
    // An image kept elsewhere and linked in with a relative symlink, as admins do.
    let elsewhere = dir.path().join("store");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::rename(dir.path().join(&bullseye[0]), elsewhere.join(&bullseye[0])).unwrap();
    std::os::unix::fs::symlink(
        format!("store/{}", bullseye[0]),
        dir.path().join(&bullseye[0]),
    )
    .unwrap();
    std::fs::write(dir.path().join("README.txt"), "not an image\n").unwrap();
    (dir, bookworm, bullseye)
}

fn puavo_source(id: &str, mount: &str, image_dir: &Path, extra: &str) -> String {
    format!(
        "[[source]]\nid = \"{id}\"\nkind = \"puavo\"\nmount = \"{mount}\"\nimage_dir = \"{}\"\nurlbase = \"{URLBASE}\"\n{extra}\n",
        image_dir.display()
    )
}

fn sync(site: &Site, id: &str) -> String {
    let out = site.cli(&["sync", id]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "sync {id}: {text}");
    text
}

/// A sync in which some series failed: exit status 1, the rest published.
fn sync_partly(site: &Site, id: &str) -> String {
    let out = site.cli(&["sync", id]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "sync {id}: {text}");
    assert!(text.contains("PARTLY FAILED"), "{text}");
    text
}

/// The rdiffs puavo-os builds for a series (target, source), computed here from the rule.
fn expected_pairs(images: &[String]) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    for target in images.iter().skip(images.len().saturating_sub(3)) {
        for source in images.iter().filter(|s| *s != target) {
            pairs.push((target.clone(), source.clone()));
        }
    }
    pairs
}

fn rdiff_name(source: &str, target: &str) -> String {
    // <src prefix>-<src date>--<dst date>-<src suffix>.rdiff
    let date = |f: &str| f.split('-').skip(4).take(4).collect::<Vec<_>>().join("-");
    let prefix = source.split('-').take(4).collect::<Vec<_>>().join("-");
    format!("{prefix}-{}--{}-amd64.rdiff", date(source), date(target))
}

fn run_ok(command: &mut Command) -> Vec<u8> {
    let out = command.output().expect("run tool");
    assert!(out.status.success(), "{command:?}: {out:?}");
    out.stdout
}

/// Downloads `path` of the server into `dir/name`.
fn download(server: &Server, path: &str, file: &Path) {
    std::fs::write(file, get(server, path)).unwrap();
}

#[test]
fn built_repository_works_with_real_tools() {
    let (images, bookworm, bullseye) = image_folder();
    let site = Site::with(
        false,
        &puavo_source("images", "/puavo", images.path(), "torrents = true"),
    );
    let server = site.start_without_sync();
    let output = sync(&site, "images");
    assert!(output.contains("published"), "{output}");

    let work = tempfile::tempdir().unwrap();
    let work = work.path();
    // Every rdiff of the rule is there and `rdiff patch` rebuilds its target exactly.
    let mut all_pairs = Vec::new();
    for series in [&bookworm, &bullseye] {
        all_pairs.extend(expected_pairs(series));
    }
    assert_eq!(all_pairs.len(), 3 * 3 + 2);
    for (target, source) in &all_pairs {
        let name = rdiff_name(source, target);
        let delta = work.join(&name);
        download(&server, &format!("/puavo/rdiffs/{name}"), &delta);
        let rebuilt = work.join("rebuilt");
        let _ = std::fs::remove_file(&rebuilt);
        run_ok(
            Command::new("rdiff")
                .arg("patch")
                .arg(images.path().join(source))
                .arg(&delta)
                .arg(&rebuilt),
        );
        assert!(
            std::fs::read(&rebuilt).unwrap() == std::fs::read(images.path().join(target)).unwrap(),
            "rdiff patch of {name} did not rebuild {target}"
        );
    }
    // The stray file and other rdiffs are not published.
    assert_eq!(status_of(&server, "/puavo/README.txt"), "404");
    let not_a_pair = rdiff_name(&bookworm[2], &bookworm[0]);
    assert_eq!(
        status_of(&server, &format!("/puavo/rdiffs/{not_a_pair}")),
        "404"
    );

    // CKSUMS equals coreutils cksum over the files in puavo-os's order.
    for file in bookworm.iter().chain(&bullseye) {
        std::fs::copy(images.path().join(file), work.join(file)).unwrap();
    }
    let mut expected = Vec::new();
    // Series by name: ...-bookworm-amd64 before ...-bullseye-amd64.
    for series in [&bookworm, &bullseye] {
        let pairs = expected_pairs(series);
        for image in series.iter() {
            expected.extend(run_ok(Command::new("cksum").arg(image).current_dir(work)));
            for (target, source) in &pairs {
                if target == image {
                    expected.extend(run_ok(
                        Command::new("cksum")
                            .arg(rdiff_name(source, target))
                            .current_dir(work),
                    ));
                }
            }
        }
    }
    let cksums = get(&server, "/puavo/CKSUMS");
    assert_eq!(
        String::from_utf8_lossy(&cksums),
        String::from_utf8_lossy(&expected)
    );

    // meta: jq '.[][][]' over all of them, then field checks.
    let meta_dir = work.join("meta");
    std::fs::create_dir_all(&meta_dir).unwrap();
    let mut metas = Vec::new();
    for series in ["bookworm", "bullseye"] {
        let name = format!("puavo-os-test-{series}-amd64.json");
        let file = meta_dir.join(&name);
        download(&server, &format!("/puavo/meta/{name}"), &file);
        metas.push(file);
    }
    let all = run_ok(Command::new("jq").arg(".[][][]").args(&metas));
    assert!(!all.is_empty());
    let checks = run_ok(
        Command::new("jq")
            .arg("-c")
            .arg(".[][][] | [(.sha256|length), (.size|type), (.urls|length), (.id|length > 0), (.version|test(\"^[0-9]{14}$\")), (.sha512|length), (.cksum|type)]")
            .args(&metas),
    );
    let lines: Vec<&str> = std::str::from_utf8(&checks).unwrap().lines().collect();
    assert_eq!(lines.len(), 6);
    for line in lines {
        assert_eq!(line, r#"[64,"number",1,true,true,128,"string"]"#);
    }
    for (series, images_of) in [("bookworm", &bookworm), ("bullseye", &bullseye)] {
        let text =
            std::fs::read(meta_dir.join(format!("puavo-os-test-{series}-amd64.json"))).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let top = value.as_object().unwrap();
        assert_eq!(top.len(), 1);
        let list = value[format!("puavo-os-test-{series}-amd64")]["images"]
            .as_array()
            .unwrap();
        let names: Vec<&str> = list
            .iter()
            .map(|i| i["filename"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            images_of.iter().map(String::as_str).collect::<Vec<_>>()
        );
        for image in list {
            let file = image["filename"].as_str().unwrap();
            let bytes = std::fs::read(images.path().join(file)).unwrap();
            assert_eq!(image["size"].as_u64().unwrap(), bytes.len() as u64);
            assert_eq!(image["sha256"], common::sha256_hex(&bytes));
            assert_eq!(image["id"], file.trim_end_matches(".img"));
            assert_eq!(image["version"], version_of(file));
            assert_eq!(image["urls"][0], format!("{URLBASE}/{file}"));
            let sha512 = run_ok(Command::new("sha512sum").arg(images.path().join(file)));
            assert_eq!(
                image["sha512"].as_str().unwrap(),
                String::from_utf8_lossy(&sha512).split(' ').next().unwrap()
            );
            // puavo-conf read from inside the squashfs (gzip, xz and zstd images).
            let conf = &image["puavo-conf"];
            assert_eq!(conf["puavo.xorg.server"]["default"], "default", "{file}");
            assert!(conf[format!("puavo.admin.{series}")]["default"]
                .as_str()
                .unwrap()
                .starts_with('v'));
            for diff in image["diffs"].as_array().unwrap() {
                let name = diff["filename"].as_str().unwrap();
                let source_date: String = name
                    .split("--")
                    .next()
                    .unwrap()
                    .rsplit('-')
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<Vec<_>>()
                    .join("");
                assert_eq!(diff["version"], source_date, "diff version is the source's");
                assert_eq!(diff["urls"][0], format!("{URLBASE}/rdiffs/{name}"));
                let delta = std::fs::read(work.join(name)).unwrap();
                assert_eq!(diff["size"].as_u64().unwrap(), delta.len() as u64);
                assert_eq!(diff["sha256"], common::sha256_hex(&delta));
            }
        }
        // Only the last three images have diffs.
        let with_diffs = list
            .iter()
            .filter(|i| !i["diffs"].as_array().unwrap().is_empty())
            .count();
        assert_eq!(with_diffs, images_of.len().min(3));
    }

    // Torrents: single file, web seed = the rdiff's URL, pieces = SHA-1 of the rdiff.
    let (target, source) = &all_pairs[0];
    let name = rdiff_name(source, target);
    let torrent = work.join("t.torrent");
    download(
        &server,
        &format!("/puavo/torrents/{name}.torrent"),
        &torrent,
    );
    let check = Command::new("python3")
        .arg("-c")
        .arg(TORRENT_CHECK)
        .arg(&torrent)
        .arg(work.join(&name))
        .arg(format!("{URLBASE}/rdiffs/{name}"))
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");

    // Caching: meta and CKSUMS short, images and rdiffs immutable.
    let headers = |path: &str| {
        let out = common::curl(&["-sI", &server.url(path)]);
        String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
    };
    assert!(headers(&format!("/puavo/{}", bookworm[0])).contains("immutable"));
    assert!(headers(&format!("/puavo/rdiffs/{name}")).contains("immutable"));
    assert!(!headers("/puavo/CKSUMS").contains("immutable"));
    assert!(!headers("/puavo/meta/puavo-os-test-bookworm-amd64.json").contains("immutable"));
    assert!(headers("/puavo/CKSUMS").contains("content-length"));
}

/// Decodes a torrent (bencode) and checks name, length, pieces and web seed.
const TORRENT_CHECK: &str = r#"
import hashlib, sys
data = open(sys.argv[1], 'rb').read()
def decode(i):
    c = data[i:i+1]
    if c == b'i':
        end = data.index(b'e', i)
        return int(data[i+1:end]), end + 1
    if c == b'l':
        i += 1; out = []
        while data[i:i+1] != b'e':
            v, i = decode(i); out.append(v)
        return out, i + 1
    if c == b'd':
        i += 1; out = {}
        while data[i:i+1] != b'e':
            k, i = decode(i); v, i = decode(i); out[k] = v
        return out, i + 1
    colon = data.index(b':', i)
    n = int(data[i:colon])
    return data[colon+1:colon+1+n], colon + 1 + n
torrent, end = decode(0)
assert end == len(data)
payload = open(sys.argv[2], 'rb').read()
info = torrent[b'info']
assert info[b'length'] == len(payload), 'length'
assert info[b'name'].decode() == sys.argv[2].rsplit('/', 1)[1], 'name'
size = info[b'piece length']
pieces = b''.join(hashlib.sha1(payload[i:i+size]).digest() for i in range(0, len(payload), size))
assert info[b'pieces'] == pieces, 'pieces'
assert torrent[b'url-list'] == sys.argv[3].encode(), torrent[b'url-list']
"#;

#[test]
fn deltas_are_remembered_and_series_configs_are_read_in_both_forms() {
    let (images, bookworm, bullseye) = image_folder();
    let config = tempfile::tempdir().unwrap();
    // Old form: series straight to arrays.
    let old_dir = config.path().join("old");
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::write(
        old_dir.join("bookworm.json"),
        serde_json::json!({ "puavo-os-test-bookworm-amd64": bookworm }).to_string(),
    )
    .unwrap();
    std::fs::write(
        old_dir.join("bullseye.json"),
        serde_json::json!({ "puavo-os-test-bullseye-amd64": bullseye }).to_string(),
    )
    .unwrap();
    // Current form, one file, with an extra rdiff from the other distribution.
    let new_file = config.path().join("all.json");
    std::fs::write(
        &new_file,
        serde_json::json!({
            "puavo-os-test-bookworm-amd64": { "images": bookworm },
            "puavo-os-test-bullseye-amd64": { "images": bullseye },
        })
        .to_string(),
    )
    .unwrap();
    let extra_file = config.path().join("extra.json");
    std::fs::write(
        &extra_file,
        serde_json::json!({
            "puavo-os-test-bookworm-amd64": {
                "images": bookworm,
                "extra_rdiffs": {
                    bookworm.last().unwrap(): [bullseye[1]],
                    &bookworm[0]: [bullseye[0]],
                }
            },
        })
        .to_string(),
    )
    .unwrap();
    let written = config.path().join("written");
    std::fs::create_dir_all(&written).unwrap();
    std::fs::write(
        written.join("custom.json"),
        serde_json::json!({ "puavo-os-test-bookworm-amd64": [&bookworm[0]] }).to_string(),
    )
    .unwrap();
    let sources = [
        puavo_source("byname", "/byname", images.path(), ""),
        puavo_source(
            "old",
            "/old",
            images.path(),
            &format!("series_config = \"{}\"", old_dir.display()),
        ),
        puavo_source(
            "new",
            "/new",
            images.path(),
            &format!("series_config = \"{}\"", new_file.display()),
        ),
        puavo_source(
            "extra",
            "/extra",
            images.path(),
            &format!("series_config = \"{}\"", extra_file.display()),
        ),
        puavo_source(
            "written",
            "/written",
            images.path(),
            &format!(
                "series_config = \"{}\"\nwrite_config = true",
                written.display()
            ),
        ),
        puavo_source(
            "reread",
            "/reread",
            images.path(),
            &format!("series_config = \"{}\"", written.display()),
        ),
    ]
    .join("\n");
    let site = Site::with(false, &sources);
    let server = site.start_without_sync();
    for id in ["byname", "old", "new", "extra", "written", "reread"] {
        sync(&site, id);
    }
    // Every pair is made once: sources share the delta cache.
    let made = server.log_text().matches("rdiff made").count();
    assert_eq!(made, 3 * 3 + 2 + 2, "{}", server.log_text());

    let tree = |mount: &str| {
        let mut files = BTreeMap::new();
        for path in [
            "CKSUMS".to_string(),
            "meta/puavo-os-test-bookworm-amd64.json".into(),
            "meta/puavo-os-test-bullseye-amd64.json".into(),
        ] {
            files.insert(path.clone(), get(&server, &format!("{mount}/{path}")));
        }
        files
    };
    let by_name = tree("/byname");
    assert_eq!(tree("/old"), by_name, "old config form");
    assert_eq!(tree("/new"), by_name, "current config form");
    // Series order follows the config files (bullseye.json before custom.json): the same
    // meta files and CKSUMS lines, bullseye's lines first.
    let same_lines = |mount: &str| {
        let mut files = tree(mount);
        let mut lines: Vec<String> = String::from_utf8(files.remove("CKSUMS").unwrap())
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        lines.sort();
        (files, lines)
    };
    assert_eq!(
        same_lines("/written"),
        same_lines("/byname"),
        "written config"
    );
    assert_eq!(
        same_lines("/reread"),
        same_lines("/byname"),
        "written config read back"
    );
    // write_config rewrote the file that defined bookworm (current form, all images) and
    // wrote a new one for bullseye: no series is defined twice.
    assert!(!written.join("bookworm.json").exists());
    for (file, dist) in [("custom.json", "bookworm"), ("bullseye.json", "bullseye")] {
        let text = std::fs::read(written.join(file)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
        let listed = value[format!("puavo-os-test-{dist}-amd64")]["images"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(listed, if dist == "bookworm" { 4 } else { 2 }, "{file}");
    }
    // The extra rdiff crosses distributions and applies.
    let extra = rdiff_name(&bullseye[1], bookworm.last().unwrap());
    let work = tempfile::tempdir().unwrap();
    let delta = work.path().join(&extra);
    download(&server, &format!("/extra/rdiffs/{extra}"), &delta);
    let rebuilt = work.path().join("rebuilt");
    run_ok(
        Command::new("rdiff")
            .arg("patch")
            .arg(images.path().join(&bullseye[1]))
            .arg(&delta)
            .arg(&rebuilt),
    );
    assert!(
        std::fs::read(&rebuilt).unwrap()
            == std::fs::read(images.path().join(bookworm.last().unwrap())).unwrap()
    );
    let cksums = String::from_utf8(get(&server, "/extra/CKSUMS")).unwrap();
    assert!(cksums.contains(&extra), "{cksums}");
    // Extras apply to older images too (puavo-os does the same), and the meta lists them.
    let older = rdiff_name(&bullseye[0], &bookworm[0]);
    assert!(cksums.contains(&older), "{cksums}");
    let meta: serde_json::Value = serde_json::from_slice(&get(
        &server,
        "/extra/meta/puavo-os-test-bookworm-amd64.json",
    ))
    .unwrap();
    assert_eq!(
        meta["puavo-os-test-bookworm-amd64"]["images"][0]["diffs"][0]["filename"],
        older.as_str()
    );
    assert!(
        !cksums.contains("bullseye-2024-03-01-101500-amd64.img"),
        "only the configured series: {cksums}"
    );

    // A new image costs only its new pairs: as target 4 sources, as source of the two
    // other targets 1 each.
    let fifth = image_name("bookworm", 5);
    make_image(images.path(), &fifth, "bookworm", 4, "gzip");
    let before = server.log_text().matches("rdiff made").count();
    sync(&site, "byname");
    let after = server.log_text().matches("rdiff made").count();
    assert_eq!(after - before, 4 + 1 + 1, "{}", server.log_text());
    // check-config reads series configs: a broken one, or an image not in image_dir, is a
    // PROBLEM before any sync runs.
    assert!(site.cli(&["check-config"]).status.success());
    std::fs::write(old_dir.join("broken.json"), "{\"s\": {\"imgs\": []}}").unwrap();
    let out = site.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success() && text.contains("PROBLEM") && text.contains("broken.json"),
        "{text}"
    );
    std::fs::write(
        old_dir.join("broken.json"),
        serde_json::json!({ "other-series": ["gone-2024-01-01-000000-x.img"] }).to_string(),
    )
    .unwrap();
    let out = site.cli(&["check-config"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success() && text.contains("gone-2024-01-01-000000-x.img"),
        "{text}"
    );
    std::fs::remove_file(old_dir.join("broken.json")).unwrap();

    // Nothing changed: nothing made, nothing new.
    let output = sync(&site, "byname");
    assert!(output.contains("unchanged"), "{output}");
    assert_eq!(server.log_text().matches("rdiff made").count(), after);
}

#[test]
fn a_corrupt_image_fails_only_its_series() {
    let (images, bookworm, bullseye) = image_folder();
    let site = Site::with(false, &puavo_source("images", "/puavo", images.path(), ""));
    let server = site.start_without_sync();
    sync(&site, "images");
    let bullseye_meta = get(&server, "/puavo/meta/puavo-os-test-bullseye-amd64.json");

    // A newer bullseye image cut short (a copy that ran out of disk), and a newer bookworm
    // image that is fine.
    let cut = image_name("bullseye", 9);
    let whole = std::fs::read(images.path().join(&bullseye[1])).unwrap();
    std::fs::write(images.path().join(&cut), &whole[..whole.len() / 2]).unwrap();
    let fresh = image_name("bookworm", 9);
    make_image(images.path(), &fresh, "bookworm", 7, "gzip");
    let output = sync_partly(&site, "images");
    assert!(
        output.contains("warning: series `puavo-os-test-bullseye-amd64` failed"),
        "{output}"
    );
    assert!(
        output.contains(&cut) && output.contains("truncated"),
        "{output}"
    );
    // bookworm moved on; bullseye is as before, whole.
    assert_eq!(status_of(&server, &format!("/puavo/{fresh}")), "200");
    assert_eq!(status_of(&server, &format!("/puavo/{cut}")), "404");
    assert_eq!(
        get(&server, "/puavo/meta/puavo-os-test-bullseye-amd64.json"),
        bullseye_meta
    );
    let cksums = String::from_utf8(get(&server, "/puavo/CKSUMS")).unwrap();
    assert!(
        cksums.contains(&bullseye[1]) && cksums.contains(&fresh),
        "{cksums}"
    );
    for image in &bullseye {
        assert_eq!(
            get(&server, &format!("/puavo/{image}")),
            std::fs::read(images.path().join(image)).unwrap()
        );
    }
    // The status page says why.
    let status = String::from_utf8(get(&server, "/.status.json")).unwrap();
    assert!(status.contains("truncated"), "{status}");

    // Not a squashfs at all: same.
    std::fs::write(images.path().join(&cut), pattern(100_000, 3)).unwrap();
    let output = sync_partly(&site, "images");
    assert!(output.contains("not a squashfs image"), "{output}");
    let _ = bookworm;
}

#[test]
fn wget_continue_resumes_images_and_rdiffs() {
    let (images, bookworm, _) = image_folder();
    let site = Site::with(false, &puavo_source("images", "/puavo", images.path(), ""));
    let server = site.start_without_sync();
    sync(&site, "images");
    let work = tempfile::tempdir().unwrap();
    let rdiff = rdiff_name(&bookworm[0], &bookworm[3]);
    for path in [bookworm[2].clone(), format!("rdiffs/{rdiff}")] {
        let whole = get(&server, &format!("/puavo/{path}"));
        let name = path.rsplit('/').next().unwrap();
        let file = work.path().join(name);
        // What an interrupted download left behind: the first part of the file.
        std::fs::write(&file, &whole[..whole.len() / 3]).unwrap();
        let status = Command::new("wget")
            .args(["-q", "--continue", "-O"])
            .arg(&file)
            .arg(server.url(&format!("/puavo/{path}")))
            .status()
            .expect("wget is installed");
        assert!(status.success());
        assert!(
            std::fs::read(&file).unwrap() == whole,
            "{path} resumed wrong"
        );
    }
}

/// Copies a served repository tree (by its CKSUMS and meta files) into a folder.
fn export(server: &Server, mount: &str, series: &[&str], dir: &Path) -> Vec<String> {
    let mut paths = vec!["CKSUMS".to_string()];
    for name in series {
        paths.push(format!("meta/{name}.json"));
    }
    let cksums = String::from_utf8(get(server, &format!("{mount}/CKSUMS"))).unwrap();
    for line in cksums.lines() {
        let file = line.rsplit(' ').next().unwrap();
        paths.push(if file.ends_with(".rdiff") {
            format!("rdiffs/{file}")
        } else {
            file.to_string()
        });
    }
    for path in &paths {
        let target = dir.join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(&target, get(server, &format!("{mount}/{path}"))).unwrap();
    }
    paths
}

#[test]
fn mirror_mode_copies_verifies_and_rewrites() {
    let (images, _, _) = image_folder();
    let series = [
        "puavo-os-test-bookworm-amd64",
        "puavo-os-test-bullseye-amd64",
    ];
    // The upstream: a tree built by build mode, exported to a folder and served by a plain
    // HTTP server.
    let upstream_dir = tempfile::tempdir().unwrap();
    let paths = {
        let site = Site::with(false, &puavo_source("images", "/puavo", images.path(), ""));
        let server = site.start_without_sync();
        sync(&site, "images");
        export(&server, "/puavo", &series, upstream_dir.path())
    };
    let upstream = Upstream::serve(upstream_dir.path());
    let mirror = |id: &str, mount: &str, extra: &str| {
        format!(
            "[[source]]\nid = \"{id}\"\nkind = \"puavo\"\nmount = \"{mount}\"\nupstream = \"{}\"\nseries = [\"{}\", \"{}\"]\n{extra}\n",
            upstream.url("/").trim_end_matches('/'),
            series[0],
            series[1]
        )
    };
    let sources = [
        mirror("same", "/same", "keep_images = 10\nkeep_rdiffs_per_image = 10\ntorrents = false"),
        mirror(
            "rewritten",
            "/rewritten",
            "keep_images = 10\nkeep_rdiffs_per_image = 10\nrewrite_urls = true\nurlbase = \"http://bootserver.example/images\"",
        ),
        mirror("newest", "/newest", "keep_images = 2\ntorrents = false"),
    ]
    .join("\n");
    let site = Site::with(false, &sources);
    let server = site.start_without_sync();
    sync(&site, "same");
    // Identical tree.
    for path in &paths {
        assert!(
            get(&server, &format!("/same/{path}"))
                == std::fs::read(upstream_dir.path().join(path)).unwrap(),
            "{path} differs"
        );
    }
    // Rewritten urls point at the mirror; everything else is the same.
    sync(&site, "rewritten");
    for name in series {
        let text =
            String::from_utf8(get(&server, &format!("/rewritten/meta/{name}.json"))).unwrap();
        let original =
            std::fs::read_to_string(upstream_dir.path().join(format!("meta/{name}.json"))).unwrap();
        assert!(!text.contains(URLBASE), "{text}");
        assert!(
            text.contains("\"urls\":[\"http://bootserver.example/images/"),
            "{text}"
        );
        assert_eq!(
            text.replace("http://bootserver.example/images", URLBASE),
            original
        );
    }
    assert!(
        get(&server, "/rewritten/CKSUMS")
            == std::fs::read(upstream_dir.path().join("CKSUMS")).unwrap()
    );
    // keep_images: the newest two per series, and only their files.
    sync(&site, "newest");
    let meta = get(&server, &format!("/newest/meta/{}.json", series[0]));
    let value: serde_json::Value = serde_json::from_slice(&meta).unwrap();
    let kept: Vec<&str> = value[series[0]]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["filename"].as_str().unwrap())
        .collect();
    assert_eq!(kept, [image_name("bookworm", 3), image_name("bookworm", 4)]);
    assert_eq!(
        status_of(&server, &format!("/newest/{}", image_name("bookworm", 1))),
        "404"
    );
    let cksums = String::from_utf8(get(&server, "/newest/CKSUMS")).unwrap();
    let listed: Vec<&str> = cksums
        .lines()
        .map(|l| l.rsplit(' ').next().unwrap())
        .collect();
    assert!(
        listed.contains(&image_name("bookworm", 4).as_str()),
        "{cksums}"
    );
    assert!(
        !listed.contains(&image_name("bookworm", 1).as_str()),
        "{cksums}"
    );

    // A corrupted upstream rdiff (same size, other bytes) is refused; its series keeps
    // what it had, the other series goes on.
    let rdiff_path = paths
        .iter()
        .find(|p| p.starts_with("rdiffs/") && p.contains("bullseye"))
        .unwrap()
        .clone();
    let good = std::fs::read(upstream_dir.path().join(&rdiff_path)).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0xff;
    std::fs::write(upstream_dir.path().join(&rdiff_path), &bad).unwrap();
    let fresh = PathBuf::from(&rdiff_path);
    let name = fresh.file_name().unwrap().to_str().unwrap();
    let fresh_site = Site::with(false, &mirror("fresh", "/fresh", "torrents = false"));
    let fresh_server = fresh_site.start_without_sync();
    let output = sync_partly(&fresh_site, "fresh");
    assert!(
        output.contains("series `puavo-os-test-bullseye-amd64` failed"),
        "{output}"
    );
    assert!(
        output.contains(name) || output.contains("SHA256") || output.contains("sha256"),
        "{output}"
    );
    assert_eq!(
        status_of(&fresh_server, &format!("/fresh/{rdiff_path}")),
        "404"
    );
    assert_eq!(
        status_of(&fresh_server, &format!("/fresh/meta/{}.json", series[0])),
        "200"
    );
    assert_eq!(
        status_of(&fresh_server, &format!("/fresh/meta/{}.json", series[1])),
        "404"
    );
    // What the failed series did download is kept for the next run (not collected by the
    // GC after the other series was published): once the upstream is fixed, only the
    // refused rdiff crosses the wire again, not the images.
    std::fs::write(upstream_dir.path().join(&rdiff_path), &good).unwrap();
    upstream.reset_counters();
    let output = sync(&fresh_site, "fresh");
    assert!(output.contains("published"), "{output}");
    let fetched: Vec<String> = upstream.log().into_iter().map(|(p, _)| p).collect();
    assert!(
        fetched.iter().any(|p| p.ends_with(name)),
        "the rdiff is fetched again: {fetched:?}"
    );
    assert!(
        !fetched.iter().any(|p| p.ends_with(".img")),
        "no image is fetched twice: {fetched:?}"
    );
    assert!(get(&fresh_server, &format!("/fresh/{rdiff_path}")) == good);
    // The earlier mirror keeps serving the good rdiff.
    sync(&site, "same");
    assert!(get(&server, &format!("/same/{rdiff_path}")) == good);
}
