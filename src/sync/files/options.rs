//! The `files` kind as the rest of the program sees it: its options (which upstream tree,
//! which of its files, and how to find them), its check-config lines and its [`Kind`] impl;
//! the sync itself is in the module's other files.

use serde::Deserialize;

use super::filter::PathFilter;
use super::sync;
use crate::manifest::Entry;
use crate::sync::fetch::FetchKeys;
use crate::sync::fetch::FetchOptions;
use crate::sync::kind::{Kind, KindOptions, Run};
use crate::sync::SyncError;

/// A `files` source's validated options.
#[derive(Debug, Clone)]
pub struct FilesOptions {
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

/// The keys as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesKeys {
    url: Option<String>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    index: Option<String>,
}

impl FilesOptions {
    /// Every key a `files` source takes.
    pub(super) fn keys() -> Vec<&'static str> {
        FetchKeys::keys_with::<FilesKeys>()
    }

    pub(super) fn parse(table: toml::Table) -> Result<FilesOptions, String> {
        let (fetch, raw) = FetchKeys::read_with::<FilesKeys>(table)?;
        let url = raw
            .url
            .as_deref()
            .ok_or("key `url`: missing (the upstream directory to mirror, e.g. \"http://download.proxmox.com/iso/\")")?
            .trim();
        crate::keys::no_userinfo("url", url, true)?;
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
        let patterns = |list: Option<Vec<String>>, key: &str| -> Result<Vec<String>, String> {
            let list = list.unwrap_or_default();
            for pattern in &list {
                PathFilter::check_pattern(pattern).map_err(|m| format!("key `{key}`: {m}"))?;
            }
            Ok(list)
        };
        let filter = PathFilter::new(
            patterns(raw.include, "include")?,
            patterns(raw.exclude, "exclude")?,
        )?;
        let index = match raw.index.as_deref().map(str::trim) {
            None | Some("listing") => FilesIndex::Listing,
            Some("aplinfo") => FilesIndex::Aplinfo,
            Some(name) => FilesIndex::Checksums(checksum_index(name)?),
        };
        Ok(FilesOptions {
            url,
            filter,
            index,
            fetch: fetch.into_options()?,
        })
    }

    /// What `check-config` prints.
    pub(super) fn describe(&self) -> Vec<String> {
        let index = match &self.index {
            FilesIndex::Listing => "directory listings",
            FilesIndex::Aplinfo => "aplinfo.dat",
            FilesIndex::Checksums(name) => name,
        };
        let mut lines = vec![format!("from {} (files found by {index})", self.url)];
        if !self.filter.include.is_empty() {
            lines.push(format!("include: {}", self.filter.include.join(" ")));
        }
        if !self.filter.exclude.is_empty() {
            lines.push(format!("exclude: {}", self.filter.exclude.join(" ")));
        }
        lines
    }
}

/// `index = "<path>"`: the relative path of a checksum file below the root.
fn checksum_index(name: &str) -> Result<String, String> {
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
    if !super::checksums::is_checksum_file(name) {
        return Err(format!(
            "key `index`: `{name}` is not `listing`, `aplinfo` or a checksum file (`SHA256SUMS`, `SHA512SUMS`, `*.sha256`, `*.sha512`)"
        ));
    }
    Ok(name.to_string())
}

impl KindOptions for FilesOptions {
    fn keys() -> Vec<&'static str> {
        FilesOptions::keys()
    }

    fn parse(table: toml::Table) -> Result<Self, String> {
        FilesOptions::parse(table)
    }
}

impl Kind for FilesOptions {
    fn upstream_key(&self) -> Option<&'static str> {
        Some("url")
    }

    fn sync(&self, run: Run<'_>) -> Result<Vec<Entry>, SyncError> {
        sync(run.store, run.source, self, run.previous, run.report)
    }

    /// A plain tree's files mean nothing in particular: names of package pools and images
    /// say.
    fn is_immutable(&self, path: &str) -> bool {
        crate::sync::kind::name_pins_content(path)
    }

    fn describe(&self) -> Vec<String> {
        FilesOptions::describe(self)
    }
}
