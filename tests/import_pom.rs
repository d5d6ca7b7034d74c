//! `mirrorbox import-pom` on files in the format proxmox-offline-mirror writes (tab-indented
//! `key value` lines, lists as repeated keys, `mirror:`, `medium:` and `subscription:`
//! sections), and the check that refuses two sources publishing one suite at one mount.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::aptclient::AptClient;
use common::aptrepo::{AptRepo, Layout, Pkg};
use common::upstream::Upstream;
use common::Site;

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `import-pom` on `pom` (written to `dir`); the configuration it prints, made ready for
/// a test (loopback listener on a free port, no fsync).
fn import(dir: &Path, pom: &str) -> String {
    let file = dir.join("proxmox-offline-mirror.cfg");
    std::fs::write(&file, pom).unwrap();
    let out = Command::new(common::BIN)
        .arg("import-pom")
        .arg(&file)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout).unwrap()
}

/// A site running the imported `config`.
fn site_with(dir: tempfile::TempDir, config: &str) -> Site {
    let config = config.replace(
        "http = [\"0.0.0.0:8080\"]",
        "http = [\"127.0.0.1:0\"]\naccess_log = false\n\n[store]\nfsync = false",
    );
    let path = dir.path().join("mirrorbox.toml");
    std::fs::write(&path, config).unwrap();
    Site { dir, config: path }
}

/// The value of the first `key = "…"` line.
fn value_of<'a>(config: &'a str, key: &str) -> &'a str {
    config
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no `{key}` in {config}"))
}

/// A mirror section as the wizard writes it (properties in key order).
fn wizard_mirror(id: &str, url: &str, components: &str, key: &Path, extra: &str) -> String {
    format!(
        "mirror: {id}\n\tarchitectures amd64\n\tarchitectures all\n\tbase-dir /var/lib/proxmox-offline-mirror/mirrors/\n\tignore-errors false\n\tkey-path {key}\n\trepository deb {url} bookworm {components}\n{extra}\tsync true\n\tverify true\n",
        key = key.display()
    )
}

/// The wizard's layout for one product and suite: one mirror per component, both on one
/// repository URL. Imported, that is one source, and apt sees both components through it.
#[test]
fn one_suite_in_two_wizard_mirrors_is_one_source_apt_sees_both_components() {
    let repo = AptRepo::new(Layout::Proxmox);
    let charlie = Pkg::new("charlie", "0.3", 3_000);
    repo.suite(
        "bookworm",
        "pve-no-subscription",
        &[Pkg::new("alpha", "1.0", 20_000), charlie.clone()],
        false,
        None,
    );
    repo.suite(
        "bookworm",
        "pvetest",
        &[Pkg::new("bravo", "2.1", 50_000)],
        false,
        None,
    );
    let upstream = Upstream::serve(repo.root());
    let url = upstream.url("/");
    // `{charlie,zulu}` is one glob, as the original (globset) reads it.
    let skip = "\tskip-packages {charlie,zulu}\n";
    let pom = format!(
        "{}\n{}\nmedium: usb\n\tmirrors pve_bookworm_no-subscription\n\tmirrors pve_bookworm_test\n\tmountpoint /mnt/usb\n\tsync true\n\tverify true\n",
        wizard_mirror("pve_bookworm_no-subscription", &url, "pve-no-subscription", &repo.key(), skip),
        wizard_mirror("pve_bookworm_test", &url, "pvetest", &repo.key(), skip),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = import(dir.path(), &pom);
    assert_eq!(config.matches("[[source]]").count(), 1, "{config}");
    assert!(
        config.contains(" bookworm pve-no-subscription pvetest\""),
        "{config}"
    );
    assert!(
        config.contains("skip_packages = [\"{charlie,zulu}\"]"),
        "{config}"
    );
    assert!(
        config.contains("mirrorbox export /mnt/usb pve_bookworm"),
        "{config}"
    );
    let mount = value_of(&config, "mount").to_string();
    let site = site_with(dir, &config);

    let check = site.cli(&["check-config"]);
    assert!(check.status.success(), "{}\n{config}", text(&check));
    assert!(!text(&check).contains("PROBLEM"), "{}", text(&check));

    let server = site.start_without_sync();
    let out = site.cli(&["sync", "pve_bookworm"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        server.log_text()
    );
    let line = format!(
        "deb [signed-by={}] {} bookworm pve-no-subscription pvetest",
        repo.key().display(),
        server.url(&mount)
    );
    let client = AptClient::new(&line);
    let (ok, output) = client.run(&["update"]);
    assert!(ok, "apt-get update: {output}");
    let (ok, output) = client.run(&["install", "--download-only", "-y", "alpha", "bravo"]);
    assert!(ok, "apt-get install from both components: {output}");
    for name in ["alpha_1.0_amd64.deb", "bravo_2.1_amd64.deb"] {
        assert!(client.archive(name).exists(), "{name} not downloaded");
    }
    // The skipped package's file is not mirrored.
    let skipped = server.url(&format!(
        "{mount}/{}",
        repo.deb_path("bookworm", "pve-no-subscription", &charlie)
    ));
    assert_eq!(common::status_code(&skipped), "404");
}

/// `use-subscription` with the file's `subscription:` key: the upstream gets basic auth with
/// the key as user name and the server id as password, as the original sends it.
#[test]
fn subscription_credentials_reach_the_upstream_as_the_original_sends_them() {
    let repo = AptRepo::new(Layout::Proxmox);
    repo.suite(
        "bookworm",
        "pve-enterprise",
        &[Pkg::new("alpha", "1.0", 1_000)],
        false,
        None,
    );
    let upstream = Upstream::serve(repo.root());
    let key = "pve4b-1a2b3c4d5e";
    let server_id = "0123456789ABCDEF0123456789ABCDEF";
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    upstream.require_header(
        "authorization",
        &format!("Basic {}", b64(&format!("{key}:{server_id}"))),
    );
    let info = b64(
        r#"{"status":"active","serverid":"0123456789ABCDEF0123456789ABCDEF","productname":"Proxmox VE Basic"}"#,
    );
    let pom = format!(
        "{}\nsubscription: {key}\n\tinfo {info}\n\tserver-id {server_id}\n",
        wizard_mirror(
            "pve_bookworm_enterprise",
            &upstream.url("/"),
            "pve-enterprise",
            &repo.key(),
            "",
        )
        .replace("\tsync true\n", "\tsync true\n\tuse-subscription pve\n"),
    );
    let dir = tempfile::tempdir().unwrap();
    let config = import(dir.path(), &pom);
    assert!(
        config.contains(&format!("username = \"{key}\"")),
        "{config}"
    );
    assert!(
        config.contains("# WARNING: these credentials unlock"),
        "{config}"
    );
    let site = site_with(dir, &config);
    let out = site.cli(&["sync", "pve_bookworm_enterprise"]);
    assert!(out.status.success(), "{}\n{config}", text(&out));
    assert!(upstream.log().iter().all(|(_, status)| *status != 401));
    // The credentials never show in what mirrorbox prints.
    assert!(!text(&site.cli(&["check-config"])).contains(server_id));
}

/// The configuration a one-to-one import used to make: two apt sources at one mount, one
/// suite. `check-config` names both and fails; `serve` refuses to start.
#[test]
fn two_sources_publishing_one_suite_are_refused() {
    let key = common::gpg::Gpg::new("collide", "ed25519");
    let source = |id: &str, component: &str| {
        format!(
            "[[source]]\nid = \"{id}\"\nkind = \"apt\"\nmount = \"/debian/pve\"\nrepository = \"deb http://download.proxmox.com/debian/pve bookworm {component}\"\nkeys = [\"{}\"]\n",
            key.public.display()
        )
    };
    let site = Site::with(
        false,
        &format!(
            "{}\n{}",
            source("pve_no_subscription", "pve-no-subscription"),
            source("pve_test", "pvetest")
        ),
    );
    let check = site.cli(&["check-config"]);
    let output = text(&check);
    assert_eq!(check.status.code(), Some(2), "{output}");
    assert!(
        output.contains("sources `pve_no_subscription` and `pve_test` both publish /debian/pve/dists/bookworm/InRelease"),
        "{output}"
    );

    let mut serve = site.spawn_cli(&["serve"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = serve.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = serve.kill();
            panic!("serve started with two sources publishing one suite");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = serve.wait_with_output().unwrap();
    assert!(!status.success());
    assert!(
        text(&out).contains("`pve_no_subscription` and `pve_test`"),
        "{}",
        text(&out)
    );
}

/// The original's wizard file for a PVE host: Proxmox and Debian mirrors, a medium, a
/// subscription; what `import-pom` prints passes `check-config` without a problem.
#[test]
fn a_wizard_file_makes_a_config_check_config_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let key = common::gpg::Gpg::new("pom-import", "ed25519");
    let base = "\tbase-dir /var/lib/proxmox-offline-mirror/mirrors/\n\tignore-errors false\n";
    let k = key.public.display();
    let pom = format!(
        "mirror: pve_bookworm_no-subscription\n\tarchitectures amd64\n\tarchitectures all\n{base}\tkey-path {k}\n\trepository deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription\n\tsync true\n\tverify true\n\n\
mirror: ceph_reef_bookworm\n\tarchitectures amd64\n\tarchitectures all\n{base}\tkey-path {k}\n\trepository deb http://download.proxmox.com/debian/ceph-reef bookworm no-subscription\n\tsync true\n\tverify true\n\n\
mirror: debian_bookworm_security\n\tarchitectures amd64\n\tarchitectures all\n{base}\tkey-path {k}\n\trepository deb http://deb.debian.org/debian-security bookworm-security main contrib\n\tskip-sections debug\n\tskip-sections games\n\tsync true\n\tverify false\n\n\
medium: usb\n\tmirrors pve_bookworm_no-subscription\n\tmirrors debian_bookworm_security\n\tmountpoint /mnt/usb\n\tsync true\n\tverify true\n\n\
subscription: pom-1234567890\n\tserver-id 0123456789ABCDEF0123456789ABCDEF\n"
    );
    let config = import(dir.path(), &pom);
    assert_eq!(config.matches("[[source]]").count(), 3, "{config}");
    assert!(config.contains("mount = \"/debian/pve\""), "{config}");
    assert!(
        config.contains("skip_sections = [\"debug\", \"games\"]"),
        "{config}"
    );
    assert!(config.contains("not imported: `medium: usb`"), "{config}");
    assert_eq!(config.matches("verify_pool = true").count(), 2, "{config}");
    let site = site_with(dir, &config);
    let check = site.cli(&["check-config"]);
    let checked = text(&check);
    assert!(check.status.success(), "{checked}\n{config}");
    assert!(
        checked.contains("pve_bookworm_no-subscription")
            && checked.contains("debian_bookworm_security")
    );
    assert!(!checked.contains("PROBLEM"), "{checked}");

    // A broken file is refused with the line.
    let file = site.dir.path().join("broken.cfg");
    std::fs::write(&file, "mirror: x\n\tverify perhaps\n").unwrap();
    let out = Command::new(common::BIN)
        .arg("import-pom")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(text(&out).contains("line 2"), "{}", text(&out));
}
