//! Parsing and messages of whole configuration files.

use super::*;
use crate::sync::files::FilesIndex;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
}

#[test]
fn minimal_dir_source() {
    let config = parse(
        "data_dir = \"d\"\n[[source]]\nid = \"site\"\nkind = \"dir\"\nmount = \"/files/\"\npath = \"/srv\"\n",
    )
    .unwrap();
    assert_eq!(config.sources[0].mount, "/files");
    assert_eq!(config.sources[0].keep, 3);
    assert_eq!(config.server.http, vec!["127.0.0.1:8080".parse().unwrap()]);
}

#[test]
fn root_mount_is_empty_prefix() {
    let config = parse(
        "data_dir = \"d\"\n[[source]]\nid = \"s\"\nkind = \"dir\"\nmount = \"/\"\npath = \"/srv\"\n",
    )
    .unwrap();
    assert_eq!(config.sources[0].mount, "");
}

#[test]
fn errors_name_file_source_and_key() {
    let cases = [
        ("data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"/f\"\npath = \"/srv\"\nkepp = 3\n", "source `web`", "kepp"),
        ("data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"f\"\npath = \"/srv\"\n", "source `web`", "mount"),
        ("data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"/f\"\npath = \"/srv\"\nevery = \"2x\"\n", "source `web`", "every"),
        ("data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"/f\"\n", "source `web`", "path"),
        ("data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"disk\"\nmount = \"/f\"\npath = \"/srv\"\n", "source `web`", "kind"),
        ("data_dir = \"d\"\n[server]\nhttps = [\"127.0.0.1:1\"]\n", "[server]", "https"),
        ("data_dir = \"d\"\n[server]\nhttp = [\"nowhere\"]\n", "[server]", "http"),
        ("data_dir = \"d\"\n[servre]\n", "test.toml", "servre"),
        ("data_dir = \"d\"\n[server]\nmax_connections = \"50\"\n", "[server]", "`max_connections`"),
        ("data_dir = \"d\"\n[server]\nheader_timeout = \"0s\"\n", "[server]", "header_timeout"),
        ("data_dir = \"d\"\n[server]\nidle_timeout = \"0\"\n", "[server]", "idle_timeout"),
        ("data_dir = \"d\"\n[server]\nhttp = [\"127.0.0.1:80\", \"127.0.0.1:80\"]\n", "[server]", "twice in `http`"),
        ("data_dir = \"d\"\n[server]\n[server.tls]\ncert = \"c\"\nkey = \"k\"\n", "[server.tls]", "https"),
        ("data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"/f\"\npath = \"/srv\"\nkeep = \"3\"\n", "source `web`", "`keep`"),
        ("[server]\n", "test.toml", "data_dir"),
    ];
    for (text, place, key) in cases {
        let message = parse(text).expect_err(text);
        assert!(message.contains("test.toml"), "{message}");
        assert!(message.contains(place), "{message}");
        assert!(message.contains(key), "{message}");
    }
}

fn files_source(keys: &str) -> Result<Config, String> {
    parse(&format!(
        "data_dir = \"d\"\n[[source]]\nid = \"iso\"\nkind = \"files\"\nmount = \"/iso\"\n{keys}\n"
    ))
}

#[test]
fn files_source_is_parsed() {
    let config = files_source(
        "url = \"http://download.proxmox.com/iso\"\ninclude = [\"*.iso\", \"SHA256SUMS\"]\nexclude = [\"**/*beta*\"]\nparallel = 4\nusername = \"u\"\npassword = \"p\"\n",
    )
    .unwrap();
    let SourceKind::Files(files) = &config.sources[0].kind else {
        panic!("not a files source");
    };
    assert_eq!(config.sources[0].kind.name(), "files");
    assert_eq!(files.url, "http://download.proxmox.com/iso/");
    assert_eq!(files.filter.include, ["*.iso", "SHA256SUMS"]);
    assert_eq!(files.filter.exclude, ["**/*beta*"]);
    assert_eq!(files.index, FilesIndex::Listing);
    assert_eq!(files.fetch.parallel, 4);
    assert!(files.fetch.basic_auth.is_some());

    let config = files_source("url = \"https://h/images/\"\nindex = \"aplinfo\"\n").unwrap();
    let SourceKind::Files(files) = &config.sources[0].kind else {
        panic!("not a files source");
    };
    assert_eq!(files.url, "https://h/images/");
    assert_eq!(files.index, FilesIndex::Aplinfo);

    let config = files_source("url = \"https://h/\"\nindex = \"iso/SHA256SUMS\"\n").unwrap();
    let SourceKind::Files(files) = &config.sources[0].kind else {
        panic!("not a files source");
    };
    assert_eq!(files.index, FilesIndex::Checksums("iso/SHA256SUMS".into()));
}

#[test]
fn files_source_errors_name_the_key() {
    let cases = [
        ("", "url"),
        ("url = \"ftp://h/iso/\"", "url"),
        ("url = \"/srv/iso\"", "url"),
        ("url = \"http://h/iso/?C=N\"", "url"),
        ("url = \"http://h/\"\ninclude = [\"/iso/*\"]", "include"),
        ("url = \"http://h/\"\nexclude = [\"\"]", "exclude"),
        ("url = \"http://h/\"\nexclude = [\"../x\"]", "exclude"),
        ("url = \"http://h/\"\nindex = \"index.html\"", "index"),
        ("url = \"http://h/\"\nindex = \"../SHA256SUMS\"", "index"),
        ("url = \"http://h/\"\nindex = \"/SHA256SUMS\"", "index"),
        ("url = \"http://h/\"\nparallel = 0", "parallel"),
        ("url = \"http://h/\"\nbandwidth = \"fast\"", "bandwidth"),
        ("url = \"http://h/\"\nusername = \"u\"", "password"),
        ("url = \"http://h/\"\npath = \"/srv\"", "path"),
        (
            "url = \"http://h/\"\nrepository = \"deb http://h/ x main\"",
            "repository",
        ),
        ("url = \"http://h/\"\ninclde = [\"*\"]", "inclde"),
    ];
    for (keys, key) in cases {
        let message = files_source(keys).expect_err(keys);
        assert!(message.contains("test.toml"), "{message}");
        assert!(message.contains("source `iso`"), "{message}");
        assert!(
            message.contains(&format!("`{key}`")) || message.contains(key),
            "{key}: {message}"
        );
    }
    // Keys of `files` sources belong to them only.
    for keys in [
        "url = \"http://h/\"",
        "include = [\"*\"]",
        "index = \"aplinfo\"",
    ] {
        let text = format!(
            "data_dir = \"d\"\n[[source]]\nid = \"web\"\nkind = \"dir\"\nmount = \"/f\"\npath = \"/srv\"\n{keys}\n"
        );
        let message = parse(&text).expect_err(keys);
        assert!(message.contains("only to files"), "{message}");
    }
}

fn access(keys: &str) -> Result<Config, String> {
    parse(&format!(
        "data_dir = \"d\"\n[[source]]\nid = \"pve\"\nkind = \"dir\"\nmount = \"/debian/pve\"\npath = \"/srv\"\n{keys}\n"
    ))
}

#[test]
fn access_rules_are_parsed() {
    let config = access(
        "[[access]]\npath = \"/debian/pve/\"\nallow = [\"10.1.2.3/8\", \"2001:db8::/32\", \"192.0.2.7\"]\ndeny = [\"10.9.0.0/16\"]\nhtpasswd = \"/etc/mirrorbox/htpasswd\"\nrealm = \"Proxmox enterprise\"\n[[access]]\npath = \"/.status\"\nallow = [\"::1/128\"]\n[[access]]\npath = \"/\"\n",
    )
    .unwrap();
    let rule = &config.access[0];
    assert_eq!(rule.path, "/debian/pve");
    assert_eq!(rule.allow[0].to_string(), "10.0.0.0/8");
    assert_eq!(rule.allow[2].to_string(), "192.0.2.7/32");
    assert_eq!(rule.deny[0].to_string(), "10.9.0.0/16");
    assert_eq!(rule.realm, "Proxmox enterprise");
    assert_eq!(config.access[1].path, "/.status");
    assert_eq!(config.access[1].realm, DEFAULT_REALM);
    assert_eq!(config.access[2].path, "");
}

#[test]
fn credentials_in_urls_are_refused() {
    let source = |keys: &str| {
        parse(&format!(
            "data_dir = \"d\"\n[[source]]\nid = \"s\"\nmount = \"/m\"\n{keys}\n"
        ))
    };
    let cases = [
        (
            "kind = \"apt\"\nrepository = \"deb https://alice:s3cret@enterprise.proxmox.com/debian/pve bookworm pve-enterprise\"\nkeys = [\"/k.gpg\"]",
            "repository",
            true,
        ),
        (
            "kind = \"files\"\nurl = \"https://alice:s3cret@h/iso/\"",
            "url",
            true,
        ),
        (
            "kind = \"files\"\nurl = \"https://token@h/iso/\"",
            "url",
            true,
        ),
        (
            "kind = \"puavo\"\nupstream = \"https://alice:s3cret@images.example/\"\nseries = [\"s\"]",
            "upstream",
            true,
        ),
        (
            "kind = \"puavo\"\nimage_dir = \"/srv/images\"\nurlbase = \"https://alice:s3cret@mirror.example/puavo\"",
            "urlbase",
            false,
        ),
    ];
    for (keys, key, has_keys) in cases {
        let message = source(keys).expect_err(keys);
        assert!(message.contains(&format!("key `{key}`")), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(!message.contains("token"), "{message}");
        assert!(message.contains("//…@"), "{message}");
        assert_eq!(
            message.contains("put them in the `username` and `password` keys"),
            has_keys,
            "{message}"
        );
    }
    // An `@` in the path is no user info.
    source("kind = \"files\"\nurl = \"https://h/users/@me/\"").unwrap();
}

#[test]
fn access_rule_changes_are_told_apart_from_reordering() {
    let a = access("[[access]]\npath = \"/debian/pve\"\nallow = [\"10.0.0.0/8\"]\n[[access]]\npath = \"/.status\"\ndeny = [\"0.0.0.0/0\"]\n").unwrap();
    let reordered = access("[[access]]\npath = \"/.status\"\ndeny = [\"0.0.0.0/0\"]\n[[access]]\npath = \"/debian/pve/\"\nallow = [\"10.1.2.3/8\"]\n").unwrap();
    assert!(!access_rules_differ(&a.access, &reordered.access));
    for changed in [
        "[[access]]\npath = \"/debian/pve\"\nallow = [\"10.0.0.0/16\"]\n[[access]]\npath = \"/.status\"\ndeny = [\"0.0.0.0/0\"]\n",
        "[[access]]\npath = \"/debian/pve\"\nallow = [\"10.0.0.0/8\"]\n",
        "[[access]]\npath = \"/debian/pve\"\nallow = [\"10.0.0.0/8\"]\nhtpasswd = \"/h\"\n[[access]]\npath = \"/.status\"\ndeny = [\"0.0.0.0/0\"]\n",
    ] {
        let b = access(changed).unwrap();
        assert!(access_rules_differ(&a.access, &b.access), "{changed}");
    }
}

#[test]
fn trust_loopback_defaults_to_true() {
    assert!(access("").unwrap().server.trust_loopback);
    let config = parse("data_dir = \"d\"\n[server]\ntrust_loopback = false\n").unwrap();
    assert!(!config.server.trust_loopback);
}

#[test]
fn ipv4_mapped_ranges_become_ipv4() {
    let config = access(
        "[[access]]\npath = \"/\"\ndeny = [\"::ffff:203.0.113.5\", \"::ffff:10.0.0.0/104\", \"::ffff:0:0/96\", \"::ffff:0:0/95\", \"2001:db8::/32\"]\n",
    )
    .unwrap();
    let deny: Vec<String> = config.access[0]
        .deny
        .iter()
        .map(|n| n.to_string())
        .collect();
    assert_eq!(
        deny,
        [
            "203.0.113.5/32",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "::fffe:0:0/95",
            "2001:db8::/32"
        ]
    );
}

#[test]
fn access_errors_name_entry_and_key() {
    let cases = [
        (
            "path = \"/x\"\nallow = [\"10.0.0.0/33\"]",
            "#1 (path \"/x\")",
            "allow",
        ),
        ("path = \"/x\"\ndeny = [\"example.org\"]", "#1", "deny"),
        ("path = \"/x\"\nallow = []", "#1", "allow"),
        ("path = \"x\"", "#1", "path"),
        ("path = \"/.snapshots/pve\"", "#1", "path"),
        ("path = \"/.status.json\"", "#1", "path"),
        ("path = \"/x\"\nrealm = \"r\"", "#1", "realm"),
        (
            "path = \"/x\"\nhtpasswd = \"/h\"\nrealm = \"a\\\"b\"",
            "#1",
            "realm",
        ),
        ("path = \"/x\"\nhtpaswd = \"/h\"", "#1", "htpaswd"),
        ("allow = [\"::1\"]", "#1", "path"),
        ("path = \"/x\"\n[[access]]\npath = \"/x/\"", "#2", "path"),
    ];
    for (keys, place, key) in cases {
        let message = access(&format!("[[access]]\n{keys}")).expect_err(keys);
        assert!(message.contains("test.toml"), "{message}");
        assert!(message.contains("[[access]] "), "{message}");
        assert!(message.contains(place), "{message}");
        assert!(message.contains(key), "{key}: {message}");
    }
}

#[test]
fn duplicate_ids_are_refused() {
    let text = "data_dir = \"d\"\n[[source]]\nid = \"a\"\nkind = \"dir\"\nmount = \"/x\"\npath = \"/x\"\n[[source]]\nid = \"a\"\nkind = \"dir\"\nmount = \"/y\"\npath = \"/y\"\n";
    assert!(parse(text).unwrap_err().contains("used by another source"));
}

#[test]
fn follow_symlinks_into_is_checked() {
    let dir = |keys: &str| {
        parse(&format!(
            "data_dir = \"d\"\n[[source]]\nid = \"a\"\nkind = \"dir\"\nmount = \"/x\"\npath = \"/x\"\n{keys}\n"
        ))
    };
    let config = dir("follow_symlinks_into = [\"/srv/shared\"]").unwrap();
    assert_eq!(
        match &config.sources[0].kind {
            SourceKind::Dir(dir) => dir.follow_symlinks_into.clone(),
            _ => Vec::new(),
        },
        vec![PathBuf::from("/srv/shared")]
    );
    for bad in [
        "follow_symlinks_into = [\"shared\"]",
        "follow_symlinks_into = \"/srv\"",
    ] {
        let message = dir(bad).expect_err(bad);
        assert!(message.contains("follow_symlinks_into"), "{message}");
    }
}
