//! The configuration file: parsed once, validated in one place, then handed to everything else.
//!
//! Every error names the file, the source id (when there is one) and the key, because an
//! administrator reading a log at 3 a.m. must be able to fix a typo without guessing.
//! Unknown keys are errors: a misspelled `kepp = 3` must not silently keep the default.
//!
//! This module reads the file and composes the parts: `[server]` (`server`), `[[access]]`
//! (`access`), `[store]`, and each `[[source]]`: the keys every source has here, the rest
//! read by the source's kind (see [`crate::sync::kind`]), which owns its options.

mod access;
mod acme;
pub(crate) mod collisions;
pub mod edit;
mod messages;
mod server;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use crate::http::access::{access_rules_differ, AccessRule as AccessConfig};
pub use crate::http::settings::{ServerSettings as ServerConfig, TlsSettings as TlsConfig};
pub use crate::sync::SourceKind;
pub use access::DEFAULT_REALM;

use crate::units::parse_duration;
use access::parse_access_rules;
use messages::top_level_message;
use server::{parse_server, RawServer};

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

pub use crate::store::{IngestMode, StoreOptions as StoreConfig};

/// One source: something to keep a mirror of, published under `mount`.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub id: String,
    pub mount: String,
    pub every: Option<Duration>,
    pub jitter: Duration,
    pub verify_every: Option<Duration>,
    pub keep: usize,
    /// The kind with its own options.
    pub kind: SourceKind,
}

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

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    fsync: Option<bool>,
    ingest: Option<String>,
}

/// The keys every `[[source]]` has, whatever its kind.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonKeys {
    id: String,
    kind: String,
    mount: String,
    every: Option<String>,
    jitter: Option<String>,
    verify_every: Option<String>,
    keep: Option<usize>,
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

fn parse_source(mut table: toml::Table) -> Result<SourceConfig, String> {
    let common = crate::keys::split_off(&mut table, crate::keys::fields_of::<CommonKeys>());
    let raw: CommonKeys = crate::keys::read(common)?;
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
    let kind = SourceKind::parse(&raw.kind, table)?;
    Ok(SourceConfig {
        id: raw.id,
        mount,
        every,
        jitter,
        verify_every,
        keep,
        kind,
    })
}

/// A mount is an absolute URL prefix without a trailing slash (`/` itself stays `/`... as ``).
/// Returned form: `""` for the root, otherwise `/a/b`.
pub(crate) fn normalize_mount(mount: &str) -> Result<String, String> {
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
