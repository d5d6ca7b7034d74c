//! Symlinks in local folders (`dir` sources, Puavo `image_dir`): followed only where they lead
//! inside the folder or into a `follow_symlinks_into` root; anything else is skipped with a
//! warning naming the link and its target. Checked with curl against the real server.

mod common;

use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{curl, Server, Site};

fn status(server: &Server, path: &str) -> String {
    let out = curl(&["-o", "/dev/null", "-w", "%{http_code}", &server.url(path)]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn body(server: &Server, path: &str) -> String {
    let out = curl(&["-f", &server.url(path)]);
    assert!(out.status.success(), "GET {path}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dir_source_does_not_follow_links_out_of_its_folder() {
    let site = Site::new();
    let public = site.public();
    std::fs::create_dir(public.join("real")).unwrap();
    std::fs::write(public.join("real/file.txt"), "inside\n").unwrap();
    // Links that stay inside: to a file, to a folder, and loops (which must not hang).
    symlink("real/file.txt", public.join("alias.txt")).unwrap();
    symlink("real", public.join("reallink")).unwrap();
    symlink(".", public.join("loop")).unwrap();
    symlink("b", public.join("a")).unwrap();
    symlink("a", public.join("b")).unwrap();
    // Links out: the parent folder (which holds the config, the data and a "key"), and a file
    // elsewhere on the machine.
    std::fs::write(site.dir.path().join("key.pem"), "PRIVATE KEY\n").unwrap();
    symlink("..", public.join("up")).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let secret = elsewhere.path().join("passwd");
    std::fs::write(&secret, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    symlink(&secret, public.join("passwd")).unwrap();

    let server = site.start();
    for path in [
        "/files/up/",
        "/files/up/key.pem",
        "/files/up/mirrorbox.toml",
        "/files/passwd",
        "/files/loop/",
        "/files/a",
    ] {
        assert_eq!(status(&server, path), "404", "{path}");
    }
    assert_eq!(body(&server, "/files/alias.txt"), "inside\n");
    assert_eq!(body(&server, "/files/reallink/file.txt"), "inside\n");
    assert_eq!(body(&server, "/files/real/file.txt"), "inside\n");
    let listing = body(&server, "/files/");
    assert!(!listing.contains("passwd"), "{listing}");
    assert!(!listing.contains("\"up/\""), "{listing}");
    // The warning names the link and where it leads.
    assert!(
        server.log_contains(&format!(
            "symlink {} points to {}",
            public.join("up").display(),
            std::fs::canonicalize(site.dir.path()).unwrap().display()
        )),
        "{}",
        server.log_text()
    );
    // The status page lists it among the source's problems.
    let status_json = body(&server, "/.status.json");
    assert!(
        status_json.contains(&format!(
            "symlink {} points to",
            public.join("passwd").display()
        )),
        "{status_json}"
    );
    assert!(
        server.log_contains(&format!(
            "symlink {} points to {}",
            public.join("passwd").display(),
            std::fs::canonicalize(&secret).unwrap().display()
        )),
        "{}",
        server.log_text()
    );
}

#[test]
fn dir_source_follows_links_into_allowed_roots() {
    let shared = tempfile::tempdir().unwrap();
    std::fs::create_dir(shared.path().join("iso")).unwrap();
    std::fs::write(shared.path().join("iso/a.iso"), "shared bytes\n").unwrap();
    std::fs::write(shared.path().join("one.txt"), "one\n").unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("no.txt"), "not allowed\n").unwrap();
    let site = Site::with(
        false,
        &format!("follow_symlinks_into = [\"{}\"]", shared.path().display()),
    );
    let public = site.public();
    symlink(shared.path().join("iso"), public.join("iso")).unwrap();
    symlink(shared.path().join("one.txt"), public.join("one.txt")).unwrap();
    symlink(other.path().join("no.txt"), public.join("no.txt")).unwrap();

    let server = site.start();
    assert_eq!(body(&server, "/files/iso/a.iso"), "shared bytes\n");
    assert_eq!(body(&server, "/files/one.txt"), "one\n");
    assert_eq!(status(&server, "/files/no.txt"), "404");
}

// ---- Puavo image_dir ----------------------------------------------------------------------

const URLBASE: &str = "https://images.example.org/puavo";

fn image_name(day: usize) -> String {
    format!("puavo-os-test-bookworm-2024-03-{day:02}-101500-amd64.img")
}

/// A small squashfs image at `path` whose content depends on `version`.
fn make_image(path: &Path, version: usize) {
    let tree = tempfile::tempdir().unwrap();
    let defs = tree.path().join("usr/share/puavo-conf/definitions");
    std::fs::create_dir_all(&defs).unwrap();
    std::fs::write(
        defs.join("puavo-admin.json"),
        format!(r#"{{"puavo.admin.v": {{"default": "v{version}", "typehint": "string", "description": "test"}}}}"#),
    )
    .unwrap();
    std::fs::write(
        tree.path().join("data.bin"),
        common::pattern(50_000, version as u64),
    )
    .unwrap();
    let out = Command::new("mksquashfs")
        .arg(tree.path())
        .arg(path)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .expect("mksquashfs (Debian package squashfs-tools)");
    assert!(out.status.success(), "mksquashfs: {out:?}");
}

fn puavo_source(id: &str, mount: &str, image_dir: &Path, extra: &str) -> String {
    format!(
        "[[source]]\nid = \"{id}\"\nkind = \"puavo\"\nmount = \"{mount}\"\nimage_dir = \"{}\"\nurlbase = \"{URLBASE}\"\n{extra}\n",
        image_dir.display()
    )
}

fn sync(site: &Site, id: &str) -> (Option<i32>, String) {
    let out = site.cli(&["sync", id]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// An image folder: 01 a plain file, 02 linked from a folder inside, 03 linked from outside,
/// 04 linked from `shared` (allowed in one test); and a series config naming 01 and 03.
struct Images {
    top: tempfile::TempDir,
}

impl Images {
    fn new() -> Images {
        let top = tempfile::tempdir().unwrap();
        let images = Images { top };
        let dir = images.dir();
        let outside = images.top.path().join("outside");
        let shared = images.shared();
        for folder in [&dir, &dir.join("store"), &outside, &shared] {
            std::fs::create_dir_all(folder).unwrap();
        }
        make_image(&dir.join(image_name(1)), 1);
        make_image(&dir.join("store").join(image_name(2)), 2);
        symlink(format!("store/{}", image_name(2)), dir.join(image_name(2))).unwrap();
        make_image(&outside.join(image_name(3)), 3);
        symlink(outside.join(image_name(3)), dir.join(image_name(3))).unwrap();
        make_image(&shared.join(image_name(4)), 4);
        symlink(shared.join(image_name(4)), dir.join(image_name(4))).unwrap();
        let configs = images.configs();
        std::fs::create_dir(&configs).unwrap();
        std::fs::write(
            configs.join("bookworm.json"),
            format!(
                r#"{{"bookworm": ["{}", "{}"]}}"#,
                image_name(1),
                image_name(3)
            ),
        )
        .unwrap();
        images
    }

    fn dir(&self) -> std::path::PathBuf {
        self.top.path().join("images")
    }

    fn shared(&self) -> std::path::PathBuf {
        self.top.path().join("shared")
    }

    fn configs(&self) -> std::path::PathBuf {
        self.top.path().join("series")
    }
}

fn assert_published(server: &Server, mount: &str, present: [bool; 4]) {
    for (i, present) in present.iter().enumerate() {
        let path = format!("{mount}/{}", image_name(i + 1));
        let want = if *present { "200" } else { "404" };
        assert_eq!(status(server, &path), want, "{path}");
    }
    let cksums = body(server, &format!("{mount}/CKSUMS"));
    assert!(!cksums.contains(&image_name(3)), "{cksums}");
}

#[test]
fn puavo_image_dir_does_not_follow_links_out_of_its_folder() {
    let images = Images::new();
    let site = Site::with(
        false,
        &format!(
            "{}{}",
            puavo_source("strict", "/strict", &images.dir(), ""),
            puavo_source(
                "configured",
                "/configured",
                &images.dir(),
                &format!("series_config = \"{}\"", images.configs().display())
            ),
        ),
    );
    let link = images.dir().join(image_name(3));
    let (code, text) = sync(&site, "strict");
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("symlink {} points to", link.display())),
        "{text}"
    );
    // A series config that names the outside image: that series cannot be built.
    let (code, text) = sync(&site, "configured");
    assert_ne!(code, Some(0), "{text}");
    assert!(
        text.contains(&format!("symlink {} points to", link.display())),
        "{text}"
    );
    let server = site.start_without_sync();
    assert_published(&server, "/strict", [true, true, false, false]);
    assert_eq!(
        status(&server, &format!("/configured/{}", image_name(3))),
        "404"
    );
}

#[test]
fn puavo_image_dir_follows_links_into_allowed_roots() {
    let images = Images::new();
    let site = Site::with(
        false,
        &puavo_source(
            "shared",
            "/shared",
            &images.dir(),
            &format!("follow_symlinks_into = [\"{}\"]", images.shared().display()),
        ),
    );
    let (code, text) = sync(&site, "shared");
    assert_eq!(code, Some(0), "{text}");
    let server = site.start_without_sync();
    assert_published(&server, "/shared", [true, true, false, true]);
}
