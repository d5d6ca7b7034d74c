//! The command line's shape: the clap types that `mirrorbox --help` describes. What each
//! command does lives in its own module next to this one.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "mirrorbox",
    version,
    about = "Keeps mirrors of upstream repositories and serves them over HTTP and HTTPS"
)]
pub struct Cli {
    /// More log output (repeat for more).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log output (repeat for less).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(clap::Args, Debug, Clone)]
pub struct ConfigArg {
    /// Configuration file [default: $MIRRORBOX_CONFIG, config/mirrorbox.toml, /etc/mirrorbox/mirrorbox.toml]
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server and the sync scheduler (foreground).
    Serve {
        #[command(flatten)]
        config: ConfigArg,
        /// Do not scan `dir` sources at start-up; every source keeps to its schedule.
        #[arg(long)]
        no_initial_sync: bool,
    },
    /// Sync the named sources (all if none) now; exit status 0 only if every one succeeded.
    Sync {
        #[command(flatten)]
        config: ConfigArg,
        /// Print what a sync would fetch (files, bytes; new or already stored) and store
        /// nothing: only the upstream's indices are read. Works while the server runs.
        #[arg(long)]
        dry_run: bool,
        sources: Vec<String>,
    },
    /// List snapshots: id, time, files, bytes, the bytes only that snapshot holds, current;
    /// and per source the bytes no other source holds.
    Snapshots {
        #[command(flatten)]
        config: ConfigArg,
        source: Option<String>,
        #[command(subcommand)]
        action: Option<SnapshotsAction>,
    },
    /// Re-hash stored objects; report and quarantine damaged ones.
    Verify {
        #[command(flatten)]
        config: ConfigArg,
        sources: Vec<String>,
    },
    /// Remove objects no retained snapshot names.
    Gc(ConfigArg),
    /// The sources.list lines (with `signed-by`) a client uses for this server's apt
    /// sources, as the status page shows them.
    SourcesList {
        #[command(flatten)]
        config: ConfigArg,
        source: Option<String>,
        /// The server's URL as clients reach it [default: from the first listener].
        #[arg(long, value_name = "BASE")]
        url: Option<String>,
        /// A deb822 `.sources` stanza instead of one-line entries.
        #[arg(long)]
        deb822: bool,
    },
    /// Validate the configuration and print what would be served where. Exit status 1 if
    /// anything is a PROBLEM (or, with --strict, a WARNING), 2 if serve would refuse it.
    CheckConfig {
        #[command(flatten)]
        config: ConfigArg,
        /// Count WARNING lines (clients that cannot use a source as configured) as problems.
        #[arg(long)]
        strict: bool,
    },
    /// What changed between two snapshots of a source: added, removed and changed paths with
    /// sizes. A and B are snapshot ids (a prefix of at least 4 digits) or `current`.
    Diff {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
        a: String,
        b: String,
    },
    /// Publish an older retained snapshot as the source's current one (a rollback); syncs go
    /// on and are retained, but current stays pinned until `unpin`. apt clients ignore an
    /// InRelease older than one they have seen: roll those back with the snapshot's stable URL
    /// (printed), not with a pin.
    Pin {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
        snapshot: String,
    },
    /// Publish the newest snapshot again after `pin`.
    Unpin {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
    },
    /// Print a mirrorbox configuration made from a proxmox-offline-mirror configuration file
    /// (`mirror:` sections become `apt` sources).
    ImportPom {
        /// The proxmox-offline-mirror configuration (e.g. /etc/proxmox-offline-mirror.cfg).
        file: PathBuf,
        /// data_dir of the printed configuration.
        #[arg(long, default_value = "/var/lib/mirrorbox")]
        data_dir: String,
    },
    /// Write the current snapshots of the named sources (all if none) to DIR as a plain tree,
    /// laid out as served (`DIR/<mount>/<path>`): an offline medium for apt (`file://`) or a
    /// `dir` source. Incremental and verified; prints what changed since the last export.
    Export {
        #[command(flatten)]
        config: ConfigArg,
        /// The medium's folder (e.g. a mounted USB disk); created if missing.
        dir: PathBuf,
        /// Sources to export (all if none); what the medium holds of the others stays.
        sources: Vec<String>,
        /// Re-hash the medium in DIR against its manifest instead of exporting; exit status 1
        /// if a file is damaged or missing, or an export was interrupted.
        #[arg(long, conflicts_with = "sources")]
        check: bool,
    },
    /// Write a commented starter configuration to FILE (refused if FILE exists), then print
    /// the next steps (`mirrorbox add`, `sync`, `serve`).
    Init {
        /// Where objects/, refs/ and tmp/ will live [default: /var/lib/mirrorbox for a FILE
        /// under /etc, else a folder `data` next to FILE].
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
        /// The configuration file to write [default: $MIRRORBOX_CONFIG, else
        /// /etc/mirrorbox/mirrorbox.toml, where the other commands look for it].
        file: Option<PathBuf>,
    },
    /// Append a source to the configuration: its id and mount are derived from the upstream
    /// (the URL's path is kept as the mount, so clients only swap the host). The edited file
    /// is validated before it is written; its comments and layout are kept.
    Add {
        #[command(flatten)]
        config: ConfigArg,
        #[command(subcommand)]
        what: AddWhat,
    },
    /// Write the librsync delta that turns OLD into NEW (what `rdiff signature` + `rdiff delta`
    /// make; apply it with `rdiff patch OLD DELTA NEW`).
    Rdiff {
        old: PathBuf,
        new: PathBuf,
        delta: PathBuf,
        /// Bytes per indexed block of OLD.
        #[arg(long, default_value_t = 128)]
        block_size: usize,
    },
}

/// What `mirrorbox snapshots` can do besides listing.
#[derive(Subcommand, Debug)]
pub enum SnapshotsAction {
    /// Remove a retained snapshot (not the current or a pinned one), here or in the running
    /// server. SNAPSHOT is an id or a prefix of at least 4 digits. Its files that no other
    /// snapshot holds are deleted by the next GC (`mirrorbox gc`, or after the next sync
    /// that publishes a snapshot).
    Rm {
        #[command(flatten)]
        config: ConfigArg,
        source: String,
        snapshot: String,
    },
}

/// What `mirrorbox add` can add: one variant per source kind.
#[derive(Subcommand, Debug)]
pub enum AddWhat {
    /// An upstream apt repository, given as its sources.list line: `deb URL SUITE
    /// COMPONENT…`, `deb-src …`, or a flat repository `deb URL DIR/`; `[arch=… signed-by=…]`
    /// options in the line become the source's architectures and keys. Without --key (and
    /// signed-by), the keyring of a well-known repository (Debian, Ubuntu, Proxmox) is looked
    /// up in /usr/share/keyrings, /etc/apt/keyrings and /etc/apt/trusted.gpg.d (or the
    /// folders in $MIRRORBOX_KEYRING_PATH, separated by `:`).
    Apt {
        /// The sources.list line, quoted: "deb http://deb.debian.org/debian bookworm main".
        line: String,
        /// A keyring or key file that signs the repository (repeatable).
        #[arg(long, value_name = "FILE")]
        key: Vec<PathBuf>,
        /// An architecture to mirror (repeatable) [default: amd64 and all].
        #[arg(long, value_name = "ARCH")]
        arch: Vec<String>,
        #[command(flatten)]
        common: AddCommon,
    },
    /// An upstream HTTP file tree (ISO images, container templates), found through its
    /// directory listings.
    Files {
        /// The tree's root: http://download.proxmox.com/iso/
        url: String,
        #[command(flatten)]
        common: AddCommon,
    },
    /// A local folder, published as it is.
    Dir {
        /// The folder (stored as an absolute path).
        path: PathBuf,
        #[command(flatten)]
        common: AddCommon,
    },
    /// A Puavo image repository: built from a folder of images (--image-dir) or mirrored
    /// from another image server (--upstream and --series). Mounted at / unless --mount says
    /// otherwise: Puavo laptops look for it there.
    Puavo {
        /// Build mode: the folder of <prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img files.
        #[arg(
            long,
            value_name = "DIR",
            conflicts_with = "upstream",
            required_unless_present = "upstream"
        )]
        image_dir: Option<PathBuf>,
        /// Build mode: the <dist>.json series files (a folder or one file).
        #[arg(long, value_name = "PATH", requires = "image_dir")]
        series_config: Option<PathBuf>,
        /// Mirror mode: the image server to mirror (https://images.example.org/puavo).
        #[arg(long, value_name = "URL")]
        upstream: Option<String>,
        /// Mirror mode: a series to mirror, fetched as <upstream>/meta/<series>.json (repeatable).
        #[arg(long, value_name = "NAME", requires = "upstream")]
        series: Vec<String>,
        /// This server's URL as clients reach it: the meta files' `urls` and the torrents'
        /// web seed point there (https://images.example.org).
        #[arg(long, value_name = "URL")]
        urlbase: Option<String>,
        /// Write no torrents (then --urlbase may be left out in build mode).
        #[arg(long)]
        no_torrents: bool,
        #[command(flatten)]
        common: AddCommon,
    },
}

/// The options every `mirrorbox add` takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AddCommon {
    /// The source's id [default: derived from the URL or folder, e.g. `pve_bookworm`].
    #[arg(long)]
    pub id: Option<String>,
    /// The URL prefix it is served under [default: the upstream URL's path, e.g. `/debian/pve`;
    /// a folder's name for `dir`; `/` for `puavo`].
    #[arg(long, value_name = "PATH")]
    pub mount: Option<String>,
    /// How often it syncs on its own while `serve` runs [default: 6h; `dir`: 5m; `puavo`
    /// from a folder: 10m].
    #[arg(long, value_name = "DURATION")]
    pub every: Option<String>,
    /// Configuration file to edit (also accepted before the kind).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}
