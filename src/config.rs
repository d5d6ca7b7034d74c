//! The configuration file: parsed once, validated in one place, then handed to everything else.
//!
//! Every error names the file, the source id (when there is one) and the key, because an
//! administrator reading a log at 3 a.m. must be able to fix a typo without guessing.
//! Unknown keys are errors: a misspelled `kepp = 3` must not silently keep the default.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::sync::apt::index::Filter;
use crate::sync::apt::repository::Repository;
use crate::sync::fetch::FetchOptions;
use crate::sync::files::filter::PathFilter;

/// A configuration problem, always with the file it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}: {message}")]
    Invalid { file: PathBuf, message: String },
}

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from (for messages).
    pub file: PathBuf,
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub store: StoreConfig,
    pub sources: Vec<SourceConfig>,
    /// `[[access]]` rules, in file order (see [`AccessConfig`]).
    pub access: Vec<AccessConfig>,
}

pub use crate::http::access::{access_rules_differ, AccessRule as AccessConfig};

impl crate::http::access::AccessSource for Config {
    fn config_file(&self) -> &Path {
        &self.file
    }
    fn access_rules(&self) -> &[AccessConfig] {
        &self.access
    }
    fn source_mounts(&self) -> Vec<(&str, &str)> {
        self.sources
            .iter()
            .map(|s| (s.id.as_str(), s.mount.as_str()))
            .collect()
    }
}

pub use crate::http::settings::{ServerSettings as ServerConfig, TlsSettings as TlsConfig};

/// How local files (dir sources, images) enter the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IngestMode {
    /// Reflink if the filesystem can, else hard link, else copy.
    Auto,
    /// Always copy: the store never shares an inode with a file outside it.
    Copy,
}

#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// fsync objects and refs before they become visible (survives power loss, costs time).
    pub fsync: bool,
    pub ingest: IngestMode,
}

/// One source: something to keep a mirror of, published under `mount`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub mount: String,
    pub every: Option<Duration>,
    pub jitter: Duration,
    pub verify_every: Option<Duration>,
    pub keep: usize,
    pub kind: SourceKind,
    /// Folders outside the source's own (`dir` `path`, Puavo `image_dir`) that its symlinks may
    /// point into; links to anywhere else are skipped (see `sync::confine`).
    pub follow_symlinks_into: Vec<PathBuf>,
}

#[derive(Debug, Clone)]
pub enum SourceKind {
    /// A local directory, published as it is.
    Dir { path: PathBuf },
    /// An upstream apt repository.
    Apt(Box<AptConfig>),
    /// A Puavo image repository, built from a folder of images or mirrored from another one.
    Puavo(Box<PuavoConfig>),
    /// An upstream HTTP directory tree (ISO images, container templates).
    Files(Box<FilesConfig>),
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Dir { .. } => "dir",
            SourceKind::Apt(_) => "apt",
            SourceKind::Puavo(_) => "puavo",
            SourceKind::Files(_) => "files",
        }
    }
}

/// An apt source: what to fetch, which keys to trust, how to talk to the upstream.
#[derive(Debug, Clone)]
pub struct AptConfig {
    pub repository: Repository,
    /// `amd64`, `arm64`, `all`, …
    pub architectures: Vec<String>,
    pub keys: Vec<PathBuf>,
    pub filter: Filter,
    /// Extra index kinds carried besides Packages/Sources: `i18n`, `contents`, `dep11`, `cnf`,
    /// `installer`. Default: all of them that the Release lists.
    pub indices: Vec<String>,
    /// Publish even if some package files could not be fetched (they are left out).
    pub ignore_errors: bool,
    /// Accept a Release whose Valid-Until has passed.
    pub allow_expired: bool,
    pub fetch: FetchOptions,
}

/// A `files` source: which upstream tree, which of its files, and how to find them.
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// The tree's root, `http://` or `https://`, always ending with `/`.
    pub url: String,
    pub filter: PathFilter,
    pub index: FilesIndex,
    pub fetch: FetchOptions,
}

/// How a `files` source learns which files the upstream has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FilesIndex {
    /// Walk the HTML directory listings from the root.
    Listing,
    /// Proxmox `aplinfo.dat` at the root: the templates it lists, and itself.
    Aplinfo,
    /// A checksum file (`SHA256SUMS`, relative to the root): the files it names, and itself.
    Checksums(String),
}

/// A Puavo source: where the images come from, and how the published tree names them.
#[derive(Debug, Clone)]
pub struct PuavoConfig {
    pub mode: PuavoMode,
    /// Base of the `urls` in meta files (images at `<urlbase>/<file>`, rdiffs at
    /// `<urlbase>/rdiffs/<file>`) and of torrent web seeds.
    pub urlbase: Option<String>,
    /// Also publish `torrents/<rdiff>.torrent` (web seed = the rdiff's URL).
    pub torrents: bool,
    /// Tracker announce URLs written into torrents (none: web seed and peer discovery only).
    pub torrent_trackers: Vec<String>,
}

#[derive(Debug, Clone)]
pub enum PuavoMode {
    /// Build CKSUMS, meta and rdiffs from the images in a local folder.
    Build {
        image_dir: PathBuf,
        /// A folder of `<dist>.json` series files (or one such file); `None`: series from names.
        series_config: Option<PathBuf>,
        /// Scan `image_dir` and (re)write the `series_config` files, like
        /// puavo-update-repository without `--no-config`.
        write_config: bool,
        /// Block size of the rdiff generator (puavo-os: 128).
        block_size: usize,
    },
    /// Follow another image repository's series.
    Mirror {
        upstream: String,
        series: Vec<String>,
        /// Newest images kept per series.
        keep_images: usize,
        /// Point meta `urls` at `urlbase` (this mirror) instead of the upstream.
        rewrite_urls: bool,
        fetch: FetchOptions,
    },
}

/// Index kinds an apt source can carry besides Packages and Sources.
pub const APT_INDEX_KINDS: [&str; 5] = ["i18n", "contents", "dep11", "cnf", "installer"];

// ---- raw (serde) shapes -------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    source: Vec<toml::Table>,
    #[serde(default)]
    access: Vec<toml::Table>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    path: String,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    htpasswd: Option<PathBuf>,
    realm: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    http: Option<Vec<String>>,
    #[serde(default)]
    https: Vec<String>,
    tls: Option<RawTls>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    listen_backlog: Option<u32>,
    max_header_bytes: Option<String>,
    max_streams: Option<u32>,
    buffer_memory: Option<String>,
    connection_buffer: Option<String>,
    shutdown_grace: Option<String>,
    access_log: Option<bool>,
    trust_loopback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    fsync: Option<bool>,
    ingest: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    id: String,
    kind: String,
    mount: String,
    every: Option<String>,
    jitter: Option<String>,
    verify_every: Option<String>,
    keep: Option<usize>,
    // dir
    path: Option<PathBuf>,
    // dir and puavo (build)
    /// Read as a plain value so a wrong type is reported with the key's name.
    follow_symlinks_into: Option<toml::Value>,
    // apt
    repository: Option<String>,
    architectures: Option<Vec<String>>,
    keys: Option<Vec<PathBuf>>,
    skip_packages: Option<Vec<String>>,
    skip_sections: Option<Vec<String>>,
    indices: Option<Vec<String>>,
    ignore_errors: Option<bool>,
    allow_expired: Option<bool>,
    // puavo
    image_dir: Option<PathBuf>,
    series_config: Option<PathBuf>,
    write_config: Option<bool>,
    rdiff_block_size: Option<usize>,
    upstream: Option<String>,
    series: Option<Vec<String>>,
    keep_images: Option<usize>,
    rewrite_urls: Option<bool>,
    urlbase: Option<String>,
    torrents: Option<bool>,
    torrent_trackers: Option<Vec<String>>,
    // files
    url: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    index: Option<String>,
    // fetching
    parallel: Option<usize>,
    retries: Option<u32>,
    bandwidth: Option<String>,
    proxy: Option<String>,
    username: Option<String>,
    password: Option<String>,
    headers: Option<std::collections::BTreeMap<String, String>>,
}

impl RawSource {
    /// Keys that only some kinds take, with whether they are set.
    fn kind_keys(&self) -> [(&'static str, &'static [&'static str], bool); 32] {
        const DIR: &[&str] = &["dir"];
        const APT: &[&str] = &["apt"];
        const PUAVO: &[&str] = &["puavo"];
        const FILES: &[&str] = &["files"];
        const FETCHING: &[&str] = &["apt", "puavo", "files"];
        [
            ("url", FILES, self.url.is_some()),
            ("include", FILES, self.include.is_some()),
            ("exclude", FILES, self.exclude.is_some()),
            ("index", FILES, self.index.is_some()),
            ("image_dir", PUAVO, self.image_dir.is_some()),
            ("series_config", PUAVO, self.series_config.is_some()),
            ("write_config", PUAVO, self.write_config.is_some()),
            ("rdiff_block_size", PUAVO, self.rdiff_block_size.is_some()),
            ("upstream", PUAVO, self.upstream.is_some()),
            ("series", PUAVO, self.series.is_some()),
            ("keep_images", PUAVO, self.keep_images.is_some()),
            ("rewrite_urls", PUAVO, self.rewrite_urls.is_some()),
            ("urlbase", PUAVO, self.urlbase.is_some()),
            ("torrents", PUAVO, self.torrents.is_some()),
            ("torrent_trackers", PUAVO, self.torrent_trackers.is_some()),
            ("path", DIR, self.path.is_some()),
            (
                "follow_symlinks_into",
                &["dir", "puavo"],
                self.follow_symlinks_into.is_some(),
            ),
            ("repository", APT, self.repository.is_some()),
            ("architectures", APT, self.architectures.is_some()),
            ("keys", APT, self.keys.is_some()),
            ("skip_packages", APT, self.skip_packages.is_some()),
            ("skip_sections", APT, self.skip_sections.is_some()),
            ("indices", APT, self.indices.is_some()),
            ("ignore_errors", APT, self.ignore_errors.is_some()),
            ("allow_expired", APT, self.allow_expired.is_some()),
            ("parallel", FETCHING, self.parallel.is_some()),
            ("retries", FETCHING, self.retries.is_some()),
            ("bandwidth", FETCHING, self.bandwidth.is_some()),
            ("proxy", FETCHING, self.proxy.is_some()),
            ("username", FETCHING, self.username.is_some()),
            ("password", FETCHING, self.password.is_some()),
            ("headers", FETCHING, self.headers.is_some()),
        ]
    }
}

/// `500k`, `10M`, `1G` (bytes per second, binary multiples) or a bare number of bytes.
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, scale) = match text.chars().last() {
        Some('k' | 'K') => (&text[..text.len() - 1], 1024),
        Some('m' | 'M') => (&text[..text.len() - 1], 1024 * 1024),
        Some('g' | 'G') => (&text[..text.len() - 1], 1024 * 1024 * 1024),
        _ => (text, 1),
    };
    let value: u64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a rate like 500k, 10M or 1G (bytes per second)"))?;
    if value == 0 {
        return Err("must be more than 0".into());
    }
    Ok(value * scale)
}

/// The least `buffer_memory` and `connection_buffer`: a few of the smallest file reads.
const MIN_BUFFER: usize = 64 * 1024;

/// Parses a size such as `64k`, `16M`, `1G` (binary multiples; `KiB`, `MiB`, `GiB` and a
/// trailing `B` are also accepted). A bare number is bytes.
pub fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a size like 64k, 16M or 1G (bytes)");
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: usize = number.parse().map_err(|_| bad())?;
    let scale: usize = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        "g" | "gb" | "gib" => 1024 * 1024 * 1024,
        _ => return Err(bad()),
    };
    value
        .checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// Parses a duration such as `90s`, `10m`, `2h` or `7d`. A bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (use e.g. 30s, 10m, 2h, 7d)"))?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        other => {
            return Err(format!(
                "`{text}` has unknown unit `{other}` (use s, m, h or d)"
            ))
        }
    };
    value
        .checked_mul(scale)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("`{text}` is too long"))
}

impl Config {
    /// Reads and validates a configuration file.
    pub fn load(file: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
            file: file.to_path_buf(),
            source,
        })?;
        Config::parse(&text, file)
    }

    /// Validates configuration text; `file` is only used in messages.
    pub fn parse(text: &str, file: &Path) -> Result<Config, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            file: file.to_path_buf(),
            message,
        };
        let raw: RawConfig = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| invalid(top_level_message(&e, text)))?;

        let data_dir = raw.data_dir.ok_or_else(|| {
            invalid("missing key `data_dir` (where objects/ and refs/ live)".into())
        })?;
        let server = parse_server(raw.server).map_err(invalid)?;
        let store = StoreConfig {
            fsync: raw.store.fsync.unwrap_or(true),
            ingest: match raw.store.ingest.as_deref() {
                None | Some("auto") => IngestMode::Auto,
                Some("copy") => IngestMode::Copy,
                Some(other) => {
                    return Err(invalid(format!(
                        "[store] key `ingest`: `{other}` is not one of `auto`, `copy`"
                    )))
                }
            },
        };

        let mut sources = Vec::new();
        let mut seen = HashSet::new();
        for (index, table) in raw.source.into_iter().enumerate() {
            let label = table
                .get("id")
                .and_then(|v| v.as_str())
                .map(|id| format!("source `{id}`"))
                .unwrap_or_else(|| format!("source #{}", index + 1));
            let source = parse_source(table).map_err(|m| invalid(format!("{label}: {m}")))?;
            if !seen.insert(source.id.clone()) {
                return Err(invalid(format!(
                    "{label}: key `id`: the id is used by another source too"
                )));
            }
            sources.push(source);
        }
        let access = parse_access_rules(raw.access).map_err(invalid)?;
        Ok(Config {
            file: file.to_path_buf(),
            data_dir,
            server,
            store,
            sources,
            access,
        })
    }

    pub fn source(&self, id: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.id == id)
    }
}

/// A syntax or type error in the file: where (section and key, and the line), what, and the
/// expected type in words. toml alone names only a byte offset.
fn top_level_message(error: &serde_path_to_error::Error<toml::de::Error>, text: &str) -> String {
    let inner = error.inner();
    let mut message = humanize(inner.message());
    if let Some(span) = inner.span() {
        let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
        message = format!("{message} (line {line})");
    }
    // Keys, each with the list item it went into, if any (`https = ["a", 5]`: item 2).
    let mut keys: Vec<(String, Option<usize>)> = Vec::new();
    for segment in error.path().iter() {
        match segment {
            serde_path_to_error::Segment::Map { key } => keys.push((key.clone(), None)),
            serde_path_to_error::Segment::Seq { index } => match keys.last_mut() {
                Some(last) if last.1.is_none() => last.1 = Some(*index),
                _ => keys.push((String::new(), Some(*index))),
            },
            _ => {}
        }
    }
    let name = |(key, item): &(String, Option<usize>)| match item {
        Some(index) => format!("{key} #{}", index + 1),
        None => key.clone(),
    };
    match keys.split_last() {
        None => message,
        Some((key, [])) => format!("key `{}`: {message}", name(key)),
        Some((key, section)) => format!(
            "[{}] key `{}`: {message}",
            section.iter().map(name).collect::<Vec<_>>().join("."),
            name(key)
        ),
    }
}

/// A type error inside one `[[source]]` table: the key and the expected type in words.
fn source_message(error: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let message = humanize(error.inner().message());
    let path = error.path().to_string();
    if path.is_empty() || path == "." {
        message
    } else {
        format!("key `{path}`: {message}")
    }
}

/// serde names Rust types (`expected usize`); an administrator needs words and a hint.
fn humanize(message: &str) -> String {
    let mut message = message.trim().to_string();
    for (rust, words) in [
        ("expected usize", "expected a whole number, without quotes"),
        ("expected u64", "expected a whole number, without quotes"),
        ("expected u32", "expected a whole number, without quotes"),
        (
            "expected a boolean",
            "expected true or false, without quotes",
        ),
        ("expected a string", "expected a string in quotes"),
        ("expected a sequence", "expected a list like [\"a\", \"b\"]"),
    ] {
        if let Some(at) = message.find(rust) {
            message.replace_range(at..at + rust.len(), words);
            break;
        }
    }
    message
}

fn parse_server(raw: RawServer) -> Result<ServerConfig, String> {
    let addresses = |list: Vec<String>, key: &str| -> Result<Vec<SocketAddr>, String> {
        list.iter()
            .map(|a| {
                a.parse().map_err(|_| {
                    format!("[server] key `{key}`: `{a}` is not an address like 127.0.0.1:8080")
                })
            })
            .collect()
    };
    let http = addresses(
        raw.http.unwrap_or_else(|| vec!["127.0.0.1:8080".into()]),
        "http",
    )?;
    let https = addresses(raw.https, "https")?;
    let tls = raw.tls.map(|t| TlsConfig {
        cert: t.cert,
        key: t.key,
    });
    if !https.is_empty() && tls.is_none() {
        return Err("[server] key `https`: HTTPS listeners need a [server.tls] section with `cert` and `key`".into());
    }
    if https.is_empty() && tls.is_some() {
        return Err("[server.tls]: no `https` listener uses it (add e.g. https = [\"0.0.0.0:443\"] to [server], or remove [server.tls])".into());
    }
    check_unique_listeners(&http, &https)?;
    let duration = |value: Option<String>, key: &str, default: u64| -> Result<Duration, String> {
        let value = match value {
            None => return Ok(Duration::from_secs(default)),
            Some(v) => parse_duration(&v).map_err(|m| format!("[server] key `{key}`: {m}"))?,
        };
        // A zero grace period means "stop at once", which is meaningful; a zero timeout
        // would close every connection before its first byte.
        if value.is_zero() && key != "shutdown_grace" {
            return Err(format!(
                "[server] key `{key}`: must be longer than 0s (e.g. \"{default}s\", the default)"
            ));
        }
        Ok(value)
    };
    let max_connections = raw.max_connections.unwrap_or(10_000);
    if max_connections == 0 {
        return Err("[server] key `max_connections`: must be at least 1".into());
    }
    let size = |value: Option<String>, key: &str, default: usize| -> Result<usize, String> {
        match value {
            None => Ok(default),
            Some(v) => parse_size(&v).map_err(|m| format!("[server] key `{key}`: {m}")),
        }
    };
    let listen_backlog = raw.listen_backlog.unwrap_or(1024);
    if listen_backlog == 0 {
        return Err("[server] key `listen_backlog`: must be at least 1".into());
    }
    let max_header_bytes = size(raw.max_header_bytes, "max_header_bytes", 64 * 1024)?;
    // hyper's HTTP/1.1 read buffer, which this sets, cannot be smaller than 8 KiB.
    if !(8 * 1024..=16 * 1024 * 1024).contains(&max_header_bytes) {
        return Err("[server] key `max_header_bytes`: must be between 8k and 16M".into());
    }
    let max_streams = raw.max_streams.unwrap_or(100);
    if max_streams == 0 {
        return Err("[server] key `max_streams`: must be at least 1".into());
    }
    let buffer_memory = size(raw.buffer_memory, "buffer_memory", 16 * 1024 * 1024)?;
    let connection_buffer = size(raw.connection_buffer, "connection_buffer", 1024 * 1024)?;
    if !(MIN_BUFFER..=u32::MAX as usize).contains(&buffer_memory) {
        return Err("[server] key `buffer_memory`: must be between 64k and 4G".into());
    }
    if !(MIN_BUFFER..=buffer_memory).contains(&connection_buffer) {
        return Err(
            "[server] key `connection_buffer`: must be at least 64k and at most `buffer_memory`"
                .into(),
        );
    }
    Ok(ServerConfig {
        http,
        https,
        tls,
        header_timeout: duration(raw.header_timeout, "header_timeout", 30)?,
        idle_timeout: duration(raw.idle_timeout, "idle_timeout", 75)?,
        max_connections,
        listen_backlog,
        max_header_bytes,
        max_streams,
        buffer_memory,
        connection_buffer,
        shutdown_grace: duration(raw.shutdown_grace, "shutdown_grace", 30)?,
        access_log: raw.access_log.unwrap_or(true),
        trust_loopback: raw.trust_loopback.unwrap_or(true),
    })
}

/// Two listeners on one address would fail at bind time with a bare "address in use";
/// say which keys collide instead. `0.0.0.0:0`-style port 0 addresses never collide.
fn check_unique_listeners(http: &[SocketAddr], https: &[SocketAddr]) -> Result<(), String> {
    let mut seen: Vec<(SocketAddr, &str)> = Vec::new();
    let all = http
        .iter()
        .map(|a| (*a, "http"))
        .chain(https.iter().map(|a| (*a, "https")));
    for (addr, key) in all {
        if addr.port() == 0 {
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == addr) {
            let place = if *first == key {
                format!("twice in `{key}`")
            } else {
                format!("in both `{first}` and `{key}`")
            };
            return Err(format!(
                "[server] key `{key}`: the address {addr} is listed {place} (one listener per address)"
            ));
        }
        seen.push((addr, key));
    }
    Ok(())
}

fn parse_source(table: toml::Table) -> Result<SourceConfig, String> {
    let raw: RawSource = serde_path_to_error::deserialize(toml::Value::Table(table))
        .map_err(|e| source_message(&e))?;
    if raw.id.is_empty()
        || !raw
            .id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "key `id`: `{}` must be letters, digits, `_` or `-` (it names a folder and a URL)",
            raw.id
        ));
    }
    let mount = normalize_mount(&raw.mount).map_err(|m| format!("key `mount`: {m}"))?;
    let duration = |value: &Option<String>, key: &str| -> Result<Option<Duration>, String> {
        value
            .as_deref()
            .map(|v| parse_duration(v).map_err(|m| format!("key `{key}`: {m}")))
            .transpose()
    };
    let every = duration(&raw.every, "every")?;
    if every == Some(Duration::ZERO) {
        return Err(
            "key `every`: must be longer than 0s (leave it out to sync only on demand)".into(),
        );
    }
    let jitter = duration(&raw.jitter, "jitter")?.unwrap_or(Duration::ZERO);
    let verify_every = duration(&raw.verify_every, "verify_every")?;
    let keep = raw.keep.unwrap_or(3);
    if keep == 0 {
        return Err("key `keep`: must be at least 1 (the current snapshot)".into());
    }
    if !["dir", "apt", "files", "puavo"].contains(&raw.kind.as_str()) {
        return Err(format!(
            "key `kind`: `{}` is not one of `dir`, `apt`, `files`, `puavo`",
            raw.kind
        ));
    }
    for (key, kinds, set) in raw.kind_keys() {
        if set && !kinds.contains(&raw.kind.as_str()) {
            return Err(format!(
                "key `{key}`: does not apply to `{}` sources (only to {})",
                raw.kind,
                kinds.join(", ")
            ));
        }
    }
    let kind = match raw.kind.as_str() {
        "dir" => SourceKind::Dir {
            path: raw
                .path
                .ok_or("key `path`: missing (the directory to publish)")?,
        },
        "apt" => SourceKind::Apt(Box::new(parse_apt(&raw)?)),
        "puavo" => SourceKind::Puavo(Box::new(parse_puavo(&raw)?)),
        "files" => SourceKind::Files(Box::new(parse_files(&raw)?)),
        other => {
            return Err(format!(
                "key `kind`: `{other}` is not one of `dir`, `apt`, `files`, `puavo`"
            ))
        }
    };
    let follow_symlinks_into = parse_roots(raw.follow_symlinks_into)?;
    Ok(SourceConfig {
        id: raw.id,
        mount,
        every,
        jitter,
        verify_every,
        keep,
        kind,
        follow_symlinks_into,
    })
}

/// `follow_symlinks_into`: a list of absolute folder paths.
fn parse_roots(value: Option<toml::Value>) -> Result<Vec<PathBuf>, String> {
    const KEY: &str = "key `follow_symlinks_into`";
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let toml::Value::Array(items) = value else {
        return Err(format!(
            "{KEY}: expected a list of folders, like [\"/srv/shared\"]"
        ));
    };
    items
        .into_iter()
        .map(|item| match item {
            toml::Value::String(path) if Path::new(&path).is_absolute() => Ok(PathBuf::from(path)),
            toml::Value::String(path) => Err(format!("{KEY}: `{path}` must be an absolute path")),
            other => Err(format!("{KEY}: `{other}` is not a folder path")),
        })
        .collect()
}

fn parse_files(raw: &RawSource) -> Result<FilesConfig, String> {
    let url = raw
        .url
        .as_deref()
        .ok_or("key `url`: missing (the upstream directory to mirror, e.g. \"http://download.proxmox.com/iso/\")")?
        .trim();
    no_userinfo("url", url, true)?;
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("key `url`: `{url}`: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!(
            "key `url`: `{url}` must be an http:// or https:// URL"
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "key `url`: `{url}` must name a directory, without `?` or `#`"
        ));
    }
    // The root is a directory: relative links and paths resolve below it only with a `/`.
    let mut url = parsed.to_string();
    if !url.ends_with('/') {
        url.push('/');
    }
    let patterns = |list: &Option<Vec<String>>, key: &str| -> Result<Vec<String>, String> {
        let list = list.clone().unwrap_or_default();
        for pattern in &list {
            PathFilter::check_pattern(pattern).map_err(|m| format!("key `{key}`: {m}"))?;
        }
        Ok(list)
    };
    let filter = PathFilter::new(
        patterns(&raw.include, "include")?,
        patterns(&raw.exclude, "exclude")?,
    )?;
    let index = match raw.index.as_deref().map(str::trim) {
        None | Some("listing") => FilesIndex::Listing,
        Some("aplinfo") => FilesIndex::Aplinfo,
        Some(name) => {
            let valid = !name.is_empty()
                && !name.starts_with('/')
                && !name.ends_with('/')
                && !name.contains(['?', '#', '\\'])
                && name
                    .split('/')
                    .all(|s| !s.is_empty() && s != "." && s != "..");
            if !valid {
                return Err(format!(
                    "key `index`: `{name}` is not `listing`, `aplinfo` or the relative path of a checksum file such as `SHA256SUMS`"
                ));
            }
            if !crate::sync::files::checksums::is_checksum_file(name) {
                return Err(format!(
                    "key `index`: `{name}` is not `listing`, `aplinfo` or a checksum file (`SHA256SUMS`, `SHA512SUMS`, `*.sha256`, `*.sha512`)"
                ));
            }
            FilesIndex::Checksums(name.to_string())
        }
    };
    Ok(FilesConfig {
        url,
        filter,
        index,
        fetch: fetch_options(raw)?,
    })
}

fn parse_puavo(raw: &RawSource) -> Result<PuavoConfig, String> {
    let urlbase = raw
        .urlbase
        .as_deref()
        .map(|u| {
            no_userinfo("urlbase", u, false)?;
            let trimmed = u.trim_end_matches('/');
            if trimmed.starts_with("http://") || trimmed.starts_with("https://") {
                Ok(trimmed.to_string())
            } else {
                Err(format!(
                    "key `urlbase`: `{u}` must be an http:// or https:// URL (clients download from it)"
                ))
            }
        })
        .transpose()?;
    let torrents = raw.torrents.unwrap_or(false);
    let torrent_trackers = raw.torrent_trackers.clone().unwrap_or_default();
    if torrents && urlbase.is_none() {
        return Err("key `urlbase`: missing (torrents need it for their web seed URL)".into());
    }
    if !torrents && !torrent_trackers.is_empty() {
        return Err("key `torrent_trackers`: set `torrents = true` too, or leave it out".into());
    }
    let mode = match (&raw.image_dir, &raw.upstream) {
        (Some(_), Some(_)) => {
            return Err("keys `image_dir` and `upstream`: give one (build from a folder, or mirror a repository), not both".into())
        }
        (None, None) => {
            return Err("key `image_dir` or `upstream`: missing (build from a folder of images, or mirror a repository)".into())
        }
        (Some(image_dir), None) => {
            for (key, set) in [
                ("series", raw.series.is_some()),
                ("keep_images", raw.keep_images.is_some()),
                ("rewrite_urls", raw.rewrite_urls.is_some()),
                ("parallel", raw.parallel.is_some()),
                ("retries", raw.retries.is_some()),
                ("bandwidth", raw.bandwidth.is_some()),
                ("proxy", raw.proxy.is_some()),
                ("username", raw.username.is_some()),
                ("password", raw.password.is_some()),
                ("headers", raw.headers.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "key `{key}`: only applies to mirroring (`upstream`), not to building from `image_dir`"
                    ));
                }
            }
            if urlbase.is_none() {
                return Err("key `urlbase`: missing (the URL clients download this repository from; meta files list `<urlbase>/<image>`)".into());
            }
            let write_config = raw.write_config.unwrap_or(false);
            if write_config && raw.series_config.is_none() {
                return Err("key `write_config`: needs `series_config` (the folder to write `<dist>.json` files to)".into());
            }
            let block_size = raw.rdiff_block_size.unwrap_or(128);
            if !(16..=1 << 20).contains(&block_size) {
                return Err(format!(
                    "key `rdiff_block_size`: {block_size} is outside 16..1048576 (puavo-os uses 128)"
                ));
            }
            PuavoMode::Build {
                image_dir: image_dir.clone(),
                series_config: raw.series_config.clone(),
                write_config,
                block_size,
            }
        }
        (None, Some(upstream)) => {
            for (key, set) in [
                ("series_config", raw.series_config.is_some()),
                ("write_config", raw.write_config.is_some()),
                ("rdiff_block_size", raw.rdiff_block_size.is_some()),
                ("follow_symlinks_into", raw.follow_symlinks_into.is_some()),
            ] {
                if set {
                    return Err(format!(
                        "key `{key}`: only applies to building from `image_dir`, not to mirroring (`upstream`)"
                    ));
                }
            }
            no_userinfo("upstream", upstream, true)?;
            let upstream = upstream.trim_end_matches('/').to_string();
            if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
                return Err(format!(
                    "key `upstream`: `{upstream}` must be an http:// or https:// URL"
                ));
            }
            let series = raw.series.clone().unwrap_or_default();
            if series.is_empty() {
                return Err("key `series`: list the series to follow (e.g. [\"puavo-os-opinsys-bookworm-amd64\"]; each is fetched as meta/<series>.json)".into());
            }
            for name in &series {
                if name.is_empty()
                    || !name
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
                    || name.starts_with('.')
                {
                    return Err(format!(
                        "key `series`: `{name}` is not a series name (letters, digits, `-`, `_`, `.`)"
                    ));
                }
            }
            let keep_images = raw.keep_images.unwrap_or(2);
            if keep_images == 0 {
                return Err("key `keep_images`: must be at least 1".into());
            }
            let rewrite_urls = raw.rewrite_urls.unwrap_or(false);
            if rewrite_urls && urlbase.is_none() {
                return Err("key `urlbase`: missing (`rewrite_urls` points meta urls at it)".into());
            }
            PuavoMode::Mirror {
                upstream,
                series,
                keep_images,
                rewrite_urls,
                fetch: fetch_options(raw)?,
            }
        }
    };
    Ok(PuavoConfig {
        mode,
        urlbase,
        torrents,
        torrent_trackers,
    })
}

fn parse_apt(raw: &RawSource) -> Result<AptConfig, String> {
    let line = raw
        .repository
        .as_deref()
        .ok_or("key `repository`: missing (a sources.list line: `deb URL SUITE COMPONENT…`)")?;
    let repository = Repository::parse(line).map_err(|m| format!("key `repository`: {m}"))?;
    no_userinfo("repository", &repository.url, true)?;
    let architectures = raw
        .architectures
        .clone()
        .unwrap_or_else(|| vec!["amd64".into(), "all".into()]);
    if architectures.is_empty() && repository.binary {
        return Err("key `architectures`: list at least one (e.g. [\"amd64\", \"all\"])".into());
    }
    let keys = raw.keys.clone().unwrap_or_default();
    if keys.is_empty() {
        return Err("key `keys`: list the keyring or key files that sign this repository (unsigned repositories are refused)".into());
    }
    let indices = raw
        .indices
        .clone()
        .unwrap_or_else(|| APT_INDEX_KINDS.iter().map(|k| k.to_string()).collect());
    for kind in &indices {
        if !APT_INDEX_KINDS.contains(&kind.as_str()) {
            return Err(format!(
                "key `indices`: `{kind}` is not one of {}",
                APT_INDEX_KINDS.join(", ")
            ));
        }
    }
    let fetch = fetch_options(raw)?;
    Ok(AptConfig {
        repository,
        architectures,
        keys,
        filter: Filter::new(
            raw.skip_packages.clone().unwrap_or_default(),
            raw.skip_sections.clone().unwrap_or_default(),
        )
        .map_err(|m| format!("key `skip_packages`: {m}"))?,
        indices,
        ignore_errors: raw.ignore_errors.unwrap_or(false),
        allow_expired: raw.allow_expired.unwrap_or(false),
        fetch,
    })
}

/// Download settings shared by remote sources.
fn fetch_options(raw: &RawSource) -> Result<FetchOptions, String> {
    let mut fetch = FetchOptions::default();
    if let Some(parallel) = raw.parallel {
        if parallel == 0 {
            return Err("key `parallel`: must be at least 1".into());
        }
        fetch.parallel = parallel;
    }
    if let Some(retries) = raw.retries {
        fetch.retries = retries;
    }
    if let Some(rate) = &raw.bandwidth {
        fetch.bandwidth = Some(parse_rate(rate).map_err(|m| format!("key `bandwidth`: {m}"))?);
    }
    fetch.proxy = raw.proxy.clone();
    match (&raw.username, &raw.password) {
        (Some(user), Some(password)) => fetch.basic_auth = Some((user.clone(), password.clone())),
        (None, None) => {}
        (Some(_), None) => return Err("key `password`: missing (it goes with `username`)".into()),
        (None, Some(_)) => return Err("key `username`: missing (it goes with `password`)".into()),
    }
    fetch.headers = raw
        .headers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(fetch)
}

/// Refuses a URL with a user name or password in it (`https://user:pass@host/`): URLs show in
/// error messages, logs and on `/.status`, so credentials in them would be shown to anyone.
/// `credential_keys`: whether the source kind takes `username`/`password` keys instead.
fn no_userinfo(key: &str, url: &str, credential_keys: bool) -> Result<(), String> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or(authority);
    if !authority.contains('@') {
        return Ok(());
    }
    let shown = crate::http::redact::credentials(url);
    Err(if credential_keys {
        format!(
            "key `{key}`: `{shown}` has a user name or password in the URL, which would show in messages and on /.status; put them in the `username` and `password` keys instead"
        )
    } else {
        format!(
            "key `{key}`: `{shown}` has a user name or password in the URL; `{key}` is handed to clients and has no `username`/`password` keys: leave them out"
        )
    })
}

/// Default realm of `[[access]]` rules with `htpasswd`.
pub const DEFAULT_REALM: &str = "mirrorbox";

/// `[[access]]` tables, checked each on its own and for duplicate paths.
fn parse_access_rules(tables: Vec<toml::Table>) -> Result<Vec<AccessConfig>, String> {
    let mut rules: Vec<AccessConfig> = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let label = match table.get("path").and_then(|v| v.as_str()) {
            Some(path) => format!("[[access]] #{} (path \"{path}\")", index + 1),
            None => format!("[[access]] #{}", index + 1),
        };
        let rule = parse_access(table, &label).map_err(|m| format!("{label}: {m}"))?;
        if let Some(other) = rules.iter().find(|r| r.path == rule.path) {
            return Err(format!(
                "{label}: key `path`: {} has the same path",
                other.label
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_access(table: toml::Table, label: &str) -> Result<AccessConfig, String> {
    let raw: RawAccess = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let path = access_path(&raw.path).map_err(|m| format!("key `path`: {m}"))?;
    let ranges = |list: Option<Vec<String>>, key: &str| -> Result<Vec<ipnet::IpNet>, String> {
        let list = list.unwrap_or_default();
        list.iter()
            .map(|text| parse_range(text).map_err(|m| format!("key `{key}`: {m}")))
            .collect()
    };
    if raw.allow.as_ref().is_some_and(|a| a.is_empty()) {
        return Err("key `allow`: empty list (leave the key out to allow every address, or deny = [\"0.0.0.0/0\", \"::/0\"] to refuse all)".into());
    }
    let allow = ranges(raw.allow, "allow")?;
    let deny = ranges(raw.deny, "deny")?;
    if raw.realm.is_some() && raw.htpasswd.is_none() {
        return Err("key `realm`: only applies with `htpasswd`".into());
    }
    let realm = raw.realm.unwrap_or_else(|| DEFAULT_REALM.to_string());
    if realm.is_empty()
        || realm.len() > 200
        || realm
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(format!(
            "key `realm`: `{realm}` must be 1 to 200 characters without quotes, backslashes or control characters"
        ));
    }
    if raw
        .htpasswd
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err("key `htpasswd`: empty path".into());
    }
    Ok(AccessConfig {
        path,
        allow,
        deny,
        htpasswd: raw.htpasswd,
        realm,
        label: label.to_string(),
    })
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address (`192.0.2.7` means `/32`). Host bits
/// are cleared: `10.1.2.3/8` is `10.0.0.0/8`.
///
/// IPv4-mapped ranges (`::ffff:203.0.113.5`, anything within `::ffff:0:0/96`) become the IPv4
/// range they stand for: clients on a dual-stack listener are matched by their IPv4 address,
/// so the mapped form would never match anyone.
fn parse_range(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    let net = if let Ok(net) = text.parse::<ipnet::IpNet>() {
        net.trunc()
    } else if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        ipnet::IpNet::from(addr)
    } else {
        return Err(format!(
            "`{text}` is not an address range like 10.0.0.0/8 or 2001:db8::/32"
        ));
    };
    Ok(unmapped(net))
}

/// `::ffff:a.b.c.d/(96+n)` → `a.b.c.d/n`; every other range as it is.
fn unmapped(net: ipnet::IpNet) -> ipnet::IpNet {
    let ipnet::IpNet::V6(v6) = net else {
        return net;
    };
    match (
        v6.network().to_ipv4_mapped(),
        v6.prefix_len().checked_sub(96),
    ) {
        (Some(v4), Some(prefix)) => ipnet::Ipv4Net::new(v4, prefix).map_or(net, ipnet::IpNet::V4),
        _ => net,
    }
}

/// An `[[access]]` path: like a mount, or `/.status` / `/.metrics`. `/.snapshots/…` is refused:
/// snapshots follow the rule of their source's mount.
fn access_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or("");
    if first.starts_with(".snapshots") {
        return Err(format!(
            "`{path}`: snapshots are covered by the rule of their source's mount; name the mount"
        ));
    }
    if first.starts_with(".status") || first.starts_with(".metrics") {
        let normalized = format!("/{first}");
        return match normalized.as_str() {
            "/.status" | "/.metrics" if path.trim_end_matches('/') == normalized => Ok(normalized),
            _ => Err(format!(
                "`{path}`: use `/.status` (covers /.status, /.status.json and /.status.html) or `/.metrics`"
            )),
        };
    }
    normalize_mount(path)
}

/// A mount is an absolute URL prefix without a trailing slash (`/` itself stays `/`... as ``).
/// Returned form: `""` for the root, otherwise `/a/b`.
fn normalize_mount(mount: &str) -> Result<String, String> {
    if !mount.starts_with('/') {
        return Err(format!("`{mount}` must start with `/`"));
    }
    let segments: Vec<&str> = mount.split('/').filter(|s| !s.is_empty()).collect();
    for segment in &segments {
        if *segment == "." || *segment == ".." || segment.starts_with(".snapshots") {
            return Err(format!("`{mount}` has a reserved segment `{segment}`"));
        }
        if segment
            .chars()
            .any(|c| c.is_control() || c == '%' || c == '?' || c == '#')
        {
            return Err(format!("`{mount}` has a character not allowed in a mount"));
        }
    }
    if segments
        .first()
        .is_some_and(|s| s.starts_with(".status") || s.starts_with(".metrics"))
    {
        return Err(format!("`{mount}` collides with the status pages"));
    }
    Ok(segments.iter().map(|s| format!("/{s}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(text, Path::new("test.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(604800)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert!(parse_duration("2w").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("").is_err());
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
            config.sources[0].follow_symlinks_into,
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
}
