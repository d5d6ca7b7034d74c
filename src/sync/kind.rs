//! What every source kind provides, and the registry that picks one by its `kind = "…"` name.
//!
//! A kind is one module under `sync/` that owns its options (a serde struct with
//! `deny_unknown_fields`), its sync, its checks against the machine, its check-config lines,
//! its client instructions and which of its files can never change. Nothing outside its module
//! and the one line in `registry!` (in `sync/mod.rs`) names a kind: adding a kind is writing its module
//! and adding that line.

use std::path::Path;

use crate::manifest::{Entry, Manifest};
use crate::store::{ObjectId, Store};

use super::snapshot::NewEntries;
use super::{SourceKind, SyncError, SyncReport, KIND_NAMES};

/// Everything a kind's sync works with.
pub struct Run<'a> {
    pub store: &'a Store,
    /// The source's id (folder names in refs/, log fields).
    pub source: &'a str,
    /// The newest snapshot the source made before (pinned or not): unchanged files keep
    /// their objects and dates.
    pub previous: Option<&'a Manifest>,
    pub report: &'a mut SyncReport,
}

/// Everything a kind's sync works with when it hands its entries over one at a time.
pub struct StreamRun<'a, 'n> {
    pub store: &'a Store,
    /// The source's id (folder names in refs/, log fields).
    pub source: &'a str,
    /// The id of the newest snapshot the source made before (pinned or not), not loaded:
    /// a kind that can read it as a stream need not hold it whole.
    pub previous: Option<ObjectId>,
    pub report: &'a mut SyncReport,
    /// Where the entries go, in path order, with what is known about each object.
    pub out: &'a mut NewEntries<'n>,
}

/// One source kind, with its validated options.
pub trait Kind: std::fmt::Debug + Send + Sync {
    /// Makes the entries of a new snapshot (blocking; runs on a blocking thread or the CLI's
    /// main thread). Entries carry `immutable` as [`Kind::is_immutable`] says.
    fn sync(&self, run: Run<'_>) -> Result<Vec<Entry>, SyncError>;

    /// Makes the entries of a new snapshot into `run.out`, telling it what differs from the
    /// previous snapshot. By default: the previous snapshot loaded whole, [`Kind::sync`], and
    /// its entries compared in order; a kind whose snapshots can be too big to hold twice
    /// (`dir`) streams instead, and a kind that can tell the previous snapshot stands as it is
    /// (`apt` on "not modified") says so with [`NewEntries::keep_previous`] without loading it.
    fn sync_into(&self, run: StreamRun<'_, '_>) -> Result<(), SyncError> {
        let previous = match run.previous {
            Some(id) => Some(Manifest::load(run.store, &id)?),
            None => None,
        };
        let entries = self.sync(Run {
            store: run.store,
            source: run.source,
            previous: previous.as_ref(),
            report: run.report,
        })?;
        run.out.push_all(entries, previous.as_ref())
    }

    /// Whether the bytes published at `path` (relative to the mount) can never change, so
    /// clients and proxies may cache them for a year. Recorded on each entry at sync; also
    /// fills in snapshots made before entries carried it.
    fn is_immutable(&self, path: &str) -> bool;

    /// Whether files of retained snapshots stay reachable at the current paths (apt: a
    /// client that read an older index can still download what it names).
    fn fills_in(&self) -> bool {
        false
    }

    /// Checks of the options against this machine, shared by `check-config` and `serve`.
    /// `at(key)` names the file, source and key for a message.
    fn check_machine(&self, _at: &dyn Fn(&str) -> String, _out: &mut Vec<Finding>) {}

    /// Local files and folders the options name: status messages hide them from clients
    /// that are not trusted.
    fn local_paths(&self) -> Vec<&Path> {
        Vec::new()
    }

    /// What `check-config` prints about the source, one line each.
    fn describe(&self) -> Vec<String>;

    /// The key naming the upstream (`repository`, `url`): what the message of an
    /// unreachable upstream tells the administrator to change. A local kind has none.
    fn upstream_key(&self) -> Option<&'static str> {
        None
    }

    /// How clients use the source (`usage` comes with `base_url` set): a plain tree under
    /// its mount needs nothing more.
    fn client_use(&self, _at: &ClientContext<'_>, _usage: &mut ClientUse) {}

    /// Whether the clients of this kind can use the source as it is served (Puavo: mounted
    /// at `/`, over HTTPS): green and red lines on the status page, and the warnings of
    /// `check-config` and `serve`. A plain tree has none.
    fn client_checks(&self, _at: &Serving<'_>) -> Vec<ClientCheck> {
        Vec::new()
    }
}

/// How clients use a source: what the status page shows and `/.status.json` serves.
#[derive(serde::Serialize, Default, Debug, Clone, PartialEq)]
pub struct ClientUse {
    pub base_url: String,
    /// apt: the lines for `/etc/apt/sources.list`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub architectures: Vec<String>,
    /// Puavo: `meta/<series>.json` of the current snapshot, `CKSUMS`, and the rdiffs folder.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub meta: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cksums: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rdiffs: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// See [`Kind::client_checks`].
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub checks: Vec<ClientCheck>,
}

/// How the server serves a source, as configured, for [`Kind::client_checks`].
pub struct Serving<'a> {
    /// The mount: `""` for the root, else `/a/b`.
    pub mount: &'a str,
    /// The server has an HTTPS listener (`[server] https`).
    pub https_listener: bool,
}

/// One thing a client needs from a source's setup, and whether it has it.
#[derive(serde::Serialize, Debug, Clone, PartialEq)]
pub struct ClientCheck {
    /// A stable name, e.g. `mounted_at_root`.
    pub check: &'static str,
    pub pass: bool,
    /// Failing, but this key of the source says the setup is deliberate: a note, not a
    /// warning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged_by: Option<&'static str>,
    /// Failing matters enough to warn at start (else it is only a note).
    #[serde(skip)]
    pub warns: bool,
    /// One line: what holds, or which client fails, the key to blame and how to fix it.
    pub text: String,
}

impl ClientCheck {
    /// Failing, not acknowledged, and worth a warning.
    pub fn is_warning(&self) -> bool {
        !self.pass && self.warns && self.acknowledged_by.is_none()
    }
}

/// Where a source is served, for [`Kind::client_use`].
pub struct ClientContext<'a> {
    /// The URL of the source's mount as the client reached the server, ending with `/`.
    pub base_url: &'a str,
    /// The mount: `""` for the root, else `/a/b`.
    pub mount: &'a str,
    /// What is published now.
    pub view: &'a crate::view::View,
}

impl ClientContext<'_> {
    /// The names of the files directly in folder `folder` (relative to the mount) of the
    /// published view, sorted.
    pub fn files_in(&self, folder: &str) -> Vec<String> {
        let path = format!("{}/{folder}", self.mount.trim_end_matches('/'));
        match self.view.dir(&path) {
            Some(dir) => dir
                .children
                .iter()
                .filter(|c| !c.is_dir)
                .map(|c| c.name.to_string())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// How a kind reads its options from its `[[source]]` table (the keys every source has are
/// taken out before).
pub trait KindOptions: Kind + Sized + 'static {
    /// Every key the kind takes (for "does not apply to … sources" messages).
    fn keys() -> Vec<&'static str>;

    /// Reads and validates the options; messages start with the key (`key `url`: …`).
    fn parse(table: toml::Table) -> Result<Self, String>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The configuration cannot work as written.
    Error,
    /// Something the configuration names is missing now; syncs of that source fail until
    /// it is there, and the last snapshot stays served.
    Warning,
}

/// One problem found by a check against the machine, with a message that names the file,
/// the source and the key.
#[derive(Debug, Clone)]
pub struct Finding {
    pub severity: Severity,
    pub message: String,
}

/// A folder a source reads: a file there is a mistake in the configuration; nothing there
/// may be a mount that is not up yet.
pub fn check_folder(path: &Path, at: &str, out: &mut Vec<Finding>) {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => out.push(Finding {
            severity: Severity::Error,
            message: format!("{at}: {} is a file, not a directory", path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => out.push(Finding {
            severity: Severity::Warning,
            message: format!(
                "{at}: directory {} does not exist (syncs of this source fail until it does; the last snapshot stays served)",
                path.display()
            ),
        }),
        Err(e) => out.push(Finding {
            severity: Severity::Warning,
            message: format!("{at}: cannot read {}: {e}", path.display()),
        }),
    }
}

/// Names that pin their content by the conventions of package pools and image trees: what a
/// kind that does not know its files' meaning (a local folder, a plain file tree) treats as
/// never changing. Package files and the by-hash and pool trees of apt repositories, rdiffs,
/// and Puavo images (their names carry a timestamp).
pub fn name_pins_content(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    // Asked for every entry of every sync: no allocation.
    if [("by-hash/", "/by-hash/"), ("pool/", "/pool/")]
        .iter()
        .any(|(top, inner)| path.starts_with(top) || path.contains(inner))
    {
        return true;
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    let extension = name.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    matches!(extension, "deb" | "udeb" | "ddeb" | "rdiff")
        || crate::puavo::image_name::is_versioned(name)
}

/// Declares the kinds, one line each: `module: Variant(options type) = "name";`. Declares
/// the kind's module under `sync/`, and generates [`SourceKind`] (a source's kind with its
/// options), the name table and the dispatch. Invoked once, in `sync/mod.rs`.
macro_rules! registry {
    ($($module:ident: $variant:ident($options:ty) = $name:literal;)*) => {
        $(pub mod $module;)*

        /// A source's kind with its validated options.
        #[derive(Debug, Clone)]
        pub enum SourceKind {
            $($variant(Box<$options>),)*
        }

        /// Every kind's `kind = "…"` name, in registry order.
        pub const KIND_NAMES: &[&str] = &[$($name),*];

        impl SourceKind {
            /// The `kind = "…"` name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(SourceKind::$variant(_) => $name,)*
                }
            }

            /// The kind's behaviour.
            pub fn get(&self) -> &(dyn $crate::sync::kind::Kind + 'static) {
                match self {
                    $(SourceKind::$variant(options) => options.as_ref(),)*
                }
            }

            /// The keys kind `name` takes (none for an unknown name).
            fn keys_of(name: &str) -> Vec<&'static str> {
                match name {
                    $($name => <$options as $crate::sync::kind::KindOptions>::keys(),)*
                    _ => Vec::new(),
                }
            }

            fn parse_as(name: &str, table: toml::Table) -> Option<Result<SourceKind, String>> {
                match name {
                    $($name => Some(
                        <$options as $crate::sync::kind::KindOptions>::parse(table)
                            .map(|options| SourceKind::$variant(Box::new(options))),
                    ),)*
                    _ => None,
                }
            }
        }
    };
}

pub(crate) use registry;

impl SourceKind {
    /// Reads the kind-specific keys of a `[[source]]` table (the common keys already taken
    /// out). A key of another kind is named as such; a key of no kind is unknown.
    pub fn parse(name: &str, table: toml::Table) -> Result<SourceKind, String> {
        let quoted = || {
            KIND_NAMES
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let own = SourceKind::keys_of(name);
        if own.is_empty() {
            return Err(format!("key `kind`: `{name}` is not one of {}", quoted()));
        }
        for key in table.keys() {
            if own.contains(&key.as_str()) {
                continue;
            }
            let takers: Vec<&str> = KIND_NAMES
                .iter()
                .copied()
                .filter(|kind| SourceKind::keys_of(kind).contains(&key.as_str()))
                .collect();
            if takers.is_empty() {
                let mut keys = own.clone();
                keys.sort_unstable();
                return Err(format!(
                    "key `{key}`: unknown key (`{name}` sources take {}, besides id, kind, mount, every, jitter, verify_every and keep)",
                    keys.join(", ")
                ));
            }
            return Err(format!(
                "key `{key}`: does not apply to `{name}` sources (only to {})",
                takers.join(", ")
            ));
        }
        match SourceKind::parse_as(name, table) {
            Some(parsed) => parsed,
            None => Err(format!("key `kind`: `{name}` is not one of {}", quoted())),
        }
    }
}

impl std::ops::Deref for SourceKind {
    type Target = dyn Kind;

    fn deref(&self) -> &Self::Target {
        self.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> SourceKind {
        let mut table: toml::Table = toml::from_str(text).expect("toml");
        let name = table
            .remove("kind")
            .and_then(|v| v.as_str().map(str::to_string))
            .expect("kind");
        SourceKind::parse(&name, table).expect("valid")
    }

    #[test]
    fn each_kind_says_what_never_changes() {
        let apt = kind(
            "kind = \"apt\"\nrepository = \"deb http://deb.example/debian bookworm main\"\nkeys = [\"/k.gpg\"]",
        );
        for path in [
            "dists/bookworm/main/binary-amd64/by-hash/SHA256/abc",
            "pool/main/a/apt/apt_2.6.1_amd64.deb",
            "dists/bookworm/pve-no-subscription/binary-amd64/foo_1.0_amd64.deb",
        ] {
            assert!(apt.is_immutable(path), "{path}");
        }
        for path in [
            "dists/bookworm/InRelease",
            "dists/bookworm/main/binary-amd64/Packages.xz",
        ] {
            assert!(!apt.is_immutable(path), "{path}");
        }
        let puavo = kind(
            "kind = \"puavo\"\nimage_dir = \"/srv/images\"\nurlbase = \"https://m.example/puavo\"",
        );
        for path in [
            "rdiffs/puavo-os-2024-01-01-000000--2024-02-01-000000-amd64.rdiff",
            "puavo-os-2024-01-01-000000-amd64.img",
        ] {
            assert!(puavo.is_immutable(path), "{path}");
        }
        for path in ["meta/bookworm.json", "CKSUMS", "latest.img"] {
            assert!(!puavo.is_immutable(path), "{path}");
        }
        let files = kind("kind = \"files\"\nurl = \"http://download.example/iso/\"");
        assert!(!files.is_immutable("proxmox-ve_8.1-1.iso"));
        assert!(!files.is_immutable("latest.img"));
        assert!(files.is_immutable("pool/x_1_amd64.deb"));
        let dir = kind("kind = \"dir\"\npath = \"/srv\"");
        assert!(dir.is_immutable("rdiffs/a-2024-01-01-000000--2024-02-01-000000-x.rdiff"));
        assert!(!dir.is_immutable("index.html"));
    }

    #[test]
    fn keys_of_another_kind_are_named() {
        let mut table = toml::Table::new();
        table.insert("url".into(), "http://x/".into());
        table.insert("path".into(), "/srv".into());
        let message = SourceKind::parse("dir", table).expect_err("url is a files key");
        assert_eq!(
            message,
            "key `url`: does not apply to `dir` sources (only to files)"
        );
        let mut table = toml::Table::new();
        table.insert("kepp".into(), 3.into());
        let message = SourceKind::parse("dir", table).expect_err("unknown");
        assert!(message.starts_with("key `kepp`: unknown key"), "{message}");
        let message = SourceKind::parse("svn", toml::Table::new()).expect_err("no such kind");
        assert_eq!(
            message,
            "key `kind`: `svn` is not one of `dir`, `apt`, `puavo`, `files`"
        );
    }

    fn client_use(kind: &SourceKind, base_url: &str, mount: &str, published: &[&str]) -> ClientUse {
        let entries = published
            .iter()
            .map(|path| crate::manifest::Entry {
                path: path.to_string(),
                object: crate::store::ObjectId([1; 32]),
                size: 1,
                mtime: 0,
                stamp: None,
                origin: None,
                immutable: false,
            })
            .collect();
        let manifest = std::sync::Arc::new(Manifest::new("s", 0, entries));
        let view = crate::view::View::build(&[crate::view::SourceSnapshots {
            id: "s".into(),
            mount: mount.into(),
            current: Some(manifest),
            retained: Vec::new(),
            fill_in: false,
        }]);
        let mut usage = ClientUse {
            base_url: base_url.into(),
            ..ClientUse::default()
        };
        let at = ClientContext {
            base_url,
            mount,
            view: &view,
        };
        kind.client_use(&at, &mut usage);
        usage
    }

    #[test]
    fn apt_sources_list_lines() {
        let apt = |line: &str| {
            let kind = kind(&format!(
                "kind = \"apt\"\nrepository = \"{line}\"\nkeys = [\"/k.gpg\"]"
            ));
            client_use(
                &kind,
                "https://mirror.example:8443/debian/pve/",
                "/debian/pve",
                &[],
            )
            .sources_list
        };
        assert_eq!(
            apt("deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest"),
            ["deb [arch=amd64 signed-by=/k.gpg] https://mirror.example:8443/debian/pve bookworm pve-no-subscription pvetest"]
        );
        assert_eq!(
            apt("deb-src http://deb.debian.org/debian bookworm main"),
            ["deb-src [arch=amd64 signed-by=/k.gpg] https://mirror.example:8443/debian/pve bookworm main"]
        );
        assert_eq!(
            apt("deb+deb-src http://deb.debian.org/debian bookworm main contrib"),
            [
                "deb [arch=amd64 signed-by=/k.gpg] https://mirror.example:8443/debian/pve bookworm main contrib",
                "deb-src [arch=amd64 signed-by=/k.gpg] https://mirror.example:8443/debian/pve bookworm main contrib"
            ]
        );
        assert_eq!(
            apt("deb http://example.org/repo ./"),
            ["deb [arch=amd64 signed-by=/k.gpg] https://mirror.example:8443/debian/pve ./"]
        );
    }

    #[test]
    fn puavo_urls_and_the_notes() {
        let puavo = kind(
            "kind = \"puavo\"\nimage_dir = \"/images\"\nurlbase = \"https://images.example.org/puavo\"",
        );
        let published = [
            "meta/puavo-os-bookworm-amd64.json",
            "meta/notes.txt",
            "CKSUMS",
        ];
        let at_mount = client_use(&puavo, "http://host/m/", "/m", &published);
        assert_eq!(
            at_mount.meta,
            ["http://host/m/meta/puavo-os-bookworm-amd64.json"]
        );
        assert_eq!(at_mount.cksums.as_deref(), Some("http://host/m/CKSUMS"));
        assert_eq!(at_mount.rdiffs.as_deref(), Some("http://host/m/rdiffs/"));
        // Below the root, the red `mounted_at_root` check says it (`client_checks`), not a note.
        assert_eq!(at_mount.notes.len(), 1, "{:?}", at_mount.notes);
        assert!(at_mount.notes[0].contains("https://images.example.org/puavo/"));
        let at_root = client_use(&puavo, "http://host/", "", &published);
        assert_eq!(
            at_root.meta,
            ["http://host/meta/puavo-os-bookworm-amd64.json"]
        );
        assert!(
            at_root.notes[0].starts_with("Mounted at /"),
            "{:?}",
            at_root.notes
        );
        let dir = client_use(
            &kind("kind = \"dir\"\npath = \"/srv\""),
            "http://host/m/",
            "/m",
            &[],
        );
        assert_eq!(
            dir,
            ClientUse {
                base_url: "http://host/m/".into(),
                ..ClientUse::default()
            }
        );
        let files = kind("kind = \"files\"\nurl = \"http://download.example.org/iso/\"");
        assert_eq!(client_use(&files, "http://host/m/", "/m", &[]), dir);
    }
}
