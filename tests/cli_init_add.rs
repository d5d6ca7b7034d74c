//! `mirrorbox init` and `mirrorbox add`, run as a new user would: the real binary writes and
//! edits a configuration, and the result is synced, served and used by real apt-get.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::{Server, BIN};

/// Runs mirrorbox with `args` and extra environment; (exit status, stdout, stderr).
fn mirrorbox_env(args: &[&str], env: &[(&str, &Path)]) -> (i32, String, String) {
    let mut command = Command::new(BIN);
    command.args(args).env_remove("MIRRORBOX_CONFIG");
    for (name, value) in env {
        command.env(name, value);
    }
    let out: Output = command.output().expect("run mirrorbox");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn mirrorbox(args: &[&str]) -> (i32, String, String) {
    mirrorbox_env(args, &[])
}

/// `mirrorbox init` of `file` with its data in `data`; the config's text.
fn init(file: &Path, data: &Path) -> String {
    let (code, out, err) = mirrorbox(&[
        "init",
        "--data-dir",
        data.to_str().unwrap(),
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "init: {out}{err}");
    std::fs::read_to_string(file).unwrap()
}

/// `mirrorbox add --config FILE ARGS…`.
fn add(file: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["add", "--config", file.to_str().unwrap()];
    all.extend_from_slice(args);
    mirrorbox(&all)
}

fn packages() -> Vec<Pkg> {
    vec![
        Pkg::new("alpha", "1.0", 20_000),
        Pkg::new("bravo", "2.1", 90_000),
    ]
}

/// A signed Debian-layout fixture served on 127.0.0.1 under `/debian` (a link in the
/// served folder), as real archives are.
struct Fixture {
    repo: AptRepo,
    upstream: Upstream,
    _served: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let repo = AptRepo::new(Layout::Debian);
        repo.suite("bookworm", "main", &packages(), false, None);
        let served = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(repo.root(), served.path().join("debian")).unwrap();
        let upstream = Upstream::serve(served.path());
        Fixture {
            repo,
            upstream,
            _served: served,
        }
    }

    fn line(&self, suite_and_components: &str) -> String {
        format!(
            "deb {} {suite_and_components}",
            self.upstream.url("/debian")
        )
    }
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn init_add_sync_and_apt_gets_packages_with_the_printed_line() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("etc/mirrorbox.toml");
    let text = init(&file, &dir.path().join("data"));
    // The user picks the port the server listens on.
    let port = free_port();
    assert_eq!(text.matches("\"127.0.0.1:8080\"").count(), 1, "{text}");
    std::fs::write(
        &file,
        text.replace("\"127.0.0.1:8080\"", &format!("\"127.0.0.1:{port}\"")),
    )
    .unwrap();

    let key = fixture.repo.key();
    let (code, out, err) = add(
        &file,
        &[
            "apt",
            &fixture.line("bookworm main"),
            "--key",
            key.to_str().unwrap(),
            "--arch",
            "amd64",
        ],
    );
    assert_eq!(code, 0, "add: {out}{err}");
    assert!(out.contains("added source `debian_bookworm`"), "{out}");
    assert!(out.contains("mirrorbox sync --config"), "{out}");
    assert!(out.contains("restart"), "{out}");
    let deb_lines = |text: &str| -> Vec<String> {
        text.lines()
            .map(str::trim)
            .filter(|l| l.starts_with("deb "))
            .map(str::to_string)
            .collect()
    };
    let printed = deb_lines(&out);
    assert_eq!(printed.len(), 1, "{out}");
    let mirror = format!("http://127.0.0.1:{port}/debian");
    assert!(
        printed[0].contains(&format!("] {mirror} bookworm main")),
        "{out}"
    );
    assert!(printed[0].contains("signed-by="), "{out}");

    let config = file.to_str().unwrap();
    let (code, out, err) = mirrorbox(&["check-config", "--config", config]);
    assert_eq!(code, 0, "check-config: {out}{err}");
    let (code, out, err) = mirrorbox(&["sync", "--config", config]);
    assert_eq!(code, 0, "sync: {out}{err}");

    // `sources-list` prints the line `add` printed; apt uses exactly that.
    let (code, out, err) = mirrorbox(&["sources-list", "--config", config, "debian_bookworm"]);
    assert_eq!(code, 0, "sources-list: {out}{err}");
    assert_eq!(deb_lines(&out), printed, "{out}");

    let server = Server::start(&file, false);
    assert_eq!(server.http.port(), port);
    let client = AptClient::new(&printed[0]);
    let (ok, text) = client.run(&["update"]);
    assert!(ok, "apt-get update: {text}");
    let (ok, text) = client.run(&["install", "--download-only", "-y", "alpha", "bravo"]);
    assert!(ok, "apt-get install: {text}");
    for pkg in packages() {
        let got = std::fs::read(client.archive(&pkg.file_name())).unwrap();
        let want = std::fs::read(
            fixture
                .repo
                .root()
                .join(fixture.repo.deb_path("bookworm", "main", &pkg)),
        )
        .unwrap();
        assert!(
            got == want,
            "{} differs from the upstream's",
            pkg.file_name()
        );
    }
}

/// A configuration made by `init` with one apt source added; (folder, file, text).
fn config_with_one_source(fixture: &Fixture) -> (tempfile::TempDir, PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirrorbox.toml");
    let starter = init(&file, &dir.path().join("data"));
    let key = fixture.repo.key();
    let (code, out, err) = add(
        &file,
        &[
            "apt",
            &fixture.line("bookworm main"),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    // The starter's comments, the closing example included, stay where they were.
    assert!(text.starts_with(&starter), "{text}");
    (dir, file, text)
}

#[test]
fn add_refuses_the_same_suite_at_the_same_mount_and_a_taken_id_and_writes_nothing() {
    let fixture = Fixture::new();
    let (_dir, file, before) = config_with_one_source(&fixture);
    let key = fixture.repo.key();
    let key = key.to_str().unwrap();

    let other_component = fixture.line("bookworm contrib");
    let (code, out, err) = add(&file, &["apt", &other_component, "--key", key, "--id", "x"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("source `debian_bookworm`"), "{err}");
    let merged = format!(
        "repository = \"deb {} bookworm main contrib\"",
        fixture.upstream.url("/debian")
    );
    assert!(err.contains(&merged), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // Another suite of the same upstream: the derived id is new, the given one is taken.
    let (code, out, err) = add(
        &file,
        &[
            "apt",
            &fixture.line("trixie main"),
            "--key",
            key,
            "--id",
            "debian_bookworm",
        ],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("the id `debian_bookworm` is taken"), "{err}");
    assert!(err.contains("--id"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    // What the loader refuses is not written either.
    let (code, out, err) = add(&file, &["dir", "/srv/x", "--mount", "/a/../b"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("mount"), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    let (code, out, err) = add(&file, &["apt", &fixture.line("trixie main"), "--key", key]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("`debian_trixie`"), "{out}");
}

#[test]
fn comments_and_layout_survive_two_adds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirrorbox.toml");
    let original = format!(
        "# my mirror\ndata_dir = \"{data}\"   # here\n\n[server]\n# only here\nhttp = [\"127.0.0.1:0\"]\n\n[[source]]          # mine\nid = \"site\"\nkind = \"dir\"\nmount = \"/files\"\npath = \"{site}\"\nkeep = 5            # more\n\n[[access]]          # who\npath = \"/files\"\nallow = [\"127.0.0.1\"]\n# the end\n",
        data = dir.path().join("data").display(),
        site = dir.path().display()
    );
    std::fs::write(&file, &original).unwrap();
    let (code, out, err) = add(&file, &["files", "http://download.proxmox.com/iso/"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = add(
        &file,
        &[
            "dir",
            dir.path().to_str().unwrap(),
            "--id",
            "two",
            "--mount",
            "/two",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let edited = std::fs::read_to_string(&file).unwrap();
    let mut lines = edited.lines();
    for line in original.lines() {
        assert!(
            lines.any(|l| l == line),
            "`{line}` is gone or out of order:\n{edited}"
        );
    }
    let (code, out, err) = mirrorbox(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    // The new sources follow the last one, in the order added, before [[access]].
    let at = |needle: &str| {
        edited
            .find(needle)
            .unwrap_or_else(|| panic!("{needle}: {edited}"))
    };
    assert!(at("keep = 5") < at("id = \"proxmox_iso\""));
    assert!(at("id = \"proxmox_iso\"") < at("id = \"two\""));
    assert!(at("id = \"two\"") < at("[[access]]"));
    assert!(edited.contains("mount = \"/iso\""), "{edited}");
}

#[test]
fn init_refuses_to_overwrite_and_writes_a_file_check_config_passes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("new/folder/mirrorbox.toml");
    // `add` before `init` says what to run.
    let (code, out, err) = add(&file, &["dir", "/srv/files"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains(&format!("mirrorbox init {}", file.display())),
        "{err}"
    );
    assert!(!file.exists());

    let (code, out, err) = mirrorbox(&["init", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    for step in ["mirrorbox add", "mirrorbox sync", "mirrorbox serve"] {
        assert!(out.contains(step), "{step}: {out}");
    }
    let text = std::fs::read_to_string(&file).unwrap();
    let data = dir.path().join("new/folder/data");
    assert!(
        text.contains(&format!("data_dir = \"{}\"", data.display())),
        "{text}"
    );
    let (code, out, err) = mirrorbox(&["check-config", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 0, "check-config: {out}{err}");

    let (code, out, err) = mirrorbox(&["init", "--data-dir", "/elsewhere", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&file.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    // No temp file is left behind (check-config made the data folder).
    let mut names: Vec<_> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["data", "mirrorbox.toml"]);
}

#[test]
fn the_keyring_of_a_known_repository_is_looked_up_in_the_keyring_folders() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirrorbox.toml");
    init(&file, &dir.path().join("data"));
    let before = std::fs::read_to_string(&file).unwrap();
    let (empty, keyrings) = (dir.path().join("empty"), dir.path().join("keyrings"));
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::create_dir_all(&keyrings).unwrap();
    let line = "deb http://deb.debian.org/debian bookworm-updates main";
    let config = file.to_str().unwrap();
    let args = ["add", "--config", config, "apt", line];

    let (code, out, err) = mirrorbox_env(&args, &[("MIRRORBOX_KEYRING_PATH", &empty)]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("debian-archive-keyring.gpg"), "{err}");
    assert!(err.contains("debian-archive-keyring package"), "{err}");
    assert!(err.contains(&empty.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before);

    let unknown = fixture.line("bookworm main");
    let (code, out, err) = mirrorbox_env(
        &["add", "--config", config, "apt", &unknown],
        &[("MIRRORBOX_KEYRING_PATH", &keyrings)],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("--key"), "{err}");

    let keyring = keyrings.join("debian-archive-keyring.gpg");
    std::fs::copy(fixture.repo.key(), &keyring).unwrap();
    let search = std::env::join_paths([&empty, &keyrings]).unwrap();
    let (code, out, err) = mirrorbox_env(&args, &[("MIRRORBOX_KEYRING_PATH", Path::new(&search))]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("signed-by={}]", keyring.display())),
        "{out}"
    );
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("keys = [\"{}\"]", keyring.display())),
        "{text}"
    );
    assert!(text.contains("id = \"debian_bookworm-updates\""), "{text}");
    assert!(text.contains("mount = \"/debian\""), "{text}");
}

#[test]
fn the_lines_options_become_architectures_and_keys() {
    let fixture = Fixture::new();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirrorbox.toml");
    init(&file, &dir.path().join("data"));
    let line = format!(
        "deb [arch=amd64 signed-by={}] {}/ bookworm main",
        fixture.repo.key().display(),
        fixture.upstream.url("/debian")
    );
    let (code, out, err) = add(&file, &["apt", &line]);
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!(
            "repository = \"deb {}/ bookworm main\"",
            fixture.upstream.url("/debian")
        )),
        "{text}"
    );
    assert!(text.contains("architectures = [\"amd64\"]"), "{text}");
    assert!(
        text.contains(&format!("keys = [\"{}\"]", fixture.repo.key().display())),
        "{text}"
    );
}

#[test]
fn puavo_sources_in_both_modes_from_flags_named_as_their_keys() {
    let dir = tempfile::tempdir().unwrap();
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    let build = dir.path().join("build.toml");
    init(&build, &dir.path().join("data"));
    let before = std::fs::read_to_string(&build).unwrap();
    let images_arg = images.to_str().unwrap();

    // Torrents (on by default) need the server's URL: refused, nothing written.
    let (code, out, err) = add(&build, &["puavo", "--image-dir", images_arg]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("urlbase"), "{err}");
    assert_eq!(std::fs::read_to_string(&build).unwrap(), before);

    let (code, out, err) = add(
        &build,
        &[
            "puavo",
            "--image-dir",
            images_arg,
            "--urlbase",
            "https://images.example.org",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("added source `puavo` (puavo) at mount /"),
        "{out}"
    );
    let text = std::fs::read_to_string(&build).unwrap();
    for key in [
        "kind = \"puavo\"".to_string(),
        "mount = \"/\"".into(),
        format!("image_dir = \"{}\"", images.display()),
        "urlbase = \"https://images.example.org\"".into(),
    ] {
        assert!(text.contains(&key), "{key}: {text}");
    }
    let (code, out, err) = mirrorbox(&["check-config", "--config", build.to_str().unwrap()]);
    assert_eq!(code, 0, "check-config: {out}{err}");

    let mirror = dir.path().join("mirror.toml");
    init(&mirror, &dir.path().join("data"));
    let (code, out, err) = add(
        &mirror,
        &[
            "puavo",
            "--upstream",
            "https://images.example.org/puavo",
            "--series",
            "puavo-os-opinsys-bookworm-amd64",
            "--urlbase",
            "https://bootserver.example.org",
            "--every",
            "1h",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(&mirror).unwrap();
    for key in [
        "id = \"puavo_mirror\"",
        "upstream = \"https://images.example.org/puavo\"",
        "series = [\"puavo-os-opinsys-bookworm-amd64\"]",
        "every = \"1h\"",
    ] {
        assert!(text.contains(key), "{key}: {text}");
    }
    let (code, out, err) = mirrorbox(&["check-config", "--config", mirror.to_str().unwrap()]);
    assert_eq!(code, 0, "check-config: {out}{err}");
}

#[test]
fn concurrent_inits_write_one_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mirrorbox.toml");
    // All started before any is waited for.
    let children: Vec<_> = (0..6)
        .map(|n| {
            Command::new(BIN)
                .args(["init", "--data-dir"])
                .arg(dir.path().join(format!("data{n}")))
                .arg(&file)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("run mirrorbox")
        })
        .collect();
    let codes: Vec<i32> = children
        .into_iter()
        .map(|mut child| child.wait().unwrap().code().unwrap_or(-1))
        .collect();
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| **c == 1).count(), 5, "{codes:?}");
    let text = std::fs::read_to_string(&file).unwrap();
    let winner = codes.iter().position(|c| *c == 0).unwrap();
    let data = dir.path().join(format!("data{winner}"));
    assert!(
        text.contains(&format!("data_dir = \"{}\"", data.display())),
        "{text}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}
