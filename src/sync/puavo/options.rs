//! The options of a `puavo` source: where the images come from, and how the published tree
//! names them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::keys::no_userinfo;
use crate::sync::fetch::FetchKeys;
use crate::sync::fetch::FetchOptions;
use crate::sync::kind::ClientUse;

use super::layout::LayoutKeys;
use super::retention::Retention;

/// A Puavo source's validated options.
#[derive(Debug, Clone)]
pub struct PuavoOptions {
    pub mode: PuavoMode,
    /// Base of the `urls` in meta files (images at `<urlbase>/<file>`, rdiffs at
    /// `<urlbase>/rdiffs/<file>`) and of torrent web seeds.
    pub urlbase: Option<String>,
    /// Also publish `torrents/<rdiff>.torrent` (web seed = the rdiff's URL). On unless
    /// `torrents = false`: Puavo laptops fetch rdiffs through torrents by default.
    pub torrents: bool,
    /// Tracker announce URLs written into torrents (none: web seed and peer discovery only).
    pub torrent_trackers: Vec<String>,
    /// Deliberate departures from the layout Puavo clients assume (see [`super::layout`]).
    pub layout: LayoutKeys,
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
        /// Folders outside `image_dir` that its symlinks may point into (see
        /// [`crate::sync::confine`]).
        follow_symlinks_into: Vec<PathBuf>,
    },
    /// Follow another image repository's series.
    Mirror {
        upstream: String,
        series: Vec<String>,
        /// What of each series is kept: the newest images, images in use, their rdiffs.
        retention: Retention,
        /// Point meta `urls` at `urlbase` (this mirror) instead of the upstream.
        rewrite_urls: bool,
        fetch: FetchOptions,
    },
}

/// The keys as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PuavoKeys {
    image_dir: Option<PathBuf>,
    series_config: Option<PathBuf>,
    write_config: Option<bool>,
    rdiff_block_size: Option<usize>,
    /// Read as a plain value so a wrong type is reported with the key's name.
    follow_symlinks_into: Option<toml::Value>,
    upstream: Option<String>,
    series: Option<Vec<String>>,
    keep_images: Option<usize>,
    keep_rdiffs_per_image: Option<usize>,
    keep_images_in_use: Option<PathBuf>,
    rewrite_urls: Option<bool>,
    urlbase: Option<String>,
    torrents: Option<bool>,
    torrent_trackers: Option<Vec<String>>,
    // The layout checks' keys (see `super::layout`).
    allow_mount_below_root: Option<bool>,
    allow_http_urlbase: Option<bool>,
    behind_tls_proxy: Option<bool>,
}

impl PuavoOptions {
    /// Every key a Puavo source takes.
    pub(super) fn keys() -> Vec<&'static str> {
        FetchKeys::keys_with::<PuavoKeys>()
    }

    pub(super) fn parse(table: toml::Table) -> Result<PuavoOptions, String> {
        let (fetch, raw) = FetchKeys::read_with::<PuavoKeys>(table)?;
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
        let torrents_set = raw.torrents;
        let torrents = torrents_set.unwrap_or(true);
        let torrent_trackers = raw.torrent_trackers.clone().unwrap_or_default();
        if !torrents && !torrent_trackers.is_empty() {
            return Err(
                "key `torrent_trackers`: `torrents = false` writes no torrents; drop one of the two"
                    .into(),
            );
        }
        let layout = LayoutKeys {
            allow_mount_below_root: raw.allow_mount_below_root.unwrap_or(false),
            allow_http_urlbase: raw.allow_http_urlbase.unwrap_or(false),
            behind_tls_proxy: raw.behind_tls_proxy.unwrap_or(false),
        };
        let mode = match (&raw.image_dir, &raw.upstream) {
            (Some(_), Some(_)) => {
                return Err("keys `image_dir` and `upstream`: give one (build from a folder, or mirror a repository), not both".into())
            }
            (None, None) => {
                return Err("key `image_dir` or `upstream`: missing (build from a folder of images, or mirror a repository)".into())
            }
            (Some(_), None) => build_mode(raw, &urlbase, &fetch)?,
            (None, Some(_)) => mirror_mode(raw, &urlbase, fetch)?,
        };
        if torrents && urlbase.is_none() {
            return Err(torrents_need_urlbase(torrents_set.is_some()));
        }
        Ok(PuavoOptions {
            mode,
            urlbase,
            torrents,
            torrent_trackers,
            layout,
        })
    }

    /// Where laptops and bootservers find the meta files, CKSUMS and rdiffs, and where the
    /// meta files' urls point. `series`: the meta files published now.
    pub(super) fn client_use(
        &self,
        base_url: &str,
        at_root: bool,
        series: &[String],
        usage: &mut ClientUse,
    ) {
        usage.meta = series
            .iter()
            .map(|name| format!("{base_url}meta/{}", crate::urls::encode_segment(name)))
            .collect();
        usage.cksums = Some(format!("{base_url}CKSUMS"));
        usage.rdiffs = Some(format!("{base_url}rdiffs/"));
        // Below the root, the red `mounted_at_root` check (layout.rs) says what fails and why.
        if at_root {
            usage.notes.push(format!(
                "Mounted at /: Puavo laptops find /rdiffs/ here; point them at {base_url}."
            ));
        }
        let rewrites = match &self.mode {
            PuavoMode::Build { .. } => true,
            PuavoMode::Mirror { rewrite_urls, .. } => *rewrite_urls,
        };
        match (&self.urlbase, rewrites) {
            (Some(urlbase), true) => usage.notes.push(format!(
                "The meta files' urls point at {urlbase}/ (the source's urlbase)."
            )),
            (_, false) => usage
                .notes
                .push("The meta files' urls point at the upstream, as fetched.".into()),
            (None, true) => {}
        }
    }

    /// What `check-config` prints.
    pub(super) fn describe(&self) -> Vec<String> {
        match &self.mode {
            PuavoMode::Build {
                image_dir,
                series_config,
                write_config,
                ..
            } => {
                let mut lines = vec![format!(
                    "images from {}, urls under {}",
                    image_dir.display(),
                    self.urlbase.as_deref().unwrap_or("-")
                )];
                if let Some(path) = series_config {
                    lines.push(format!("series from {}", path.display()));
                    if !write_config {
                        if let Ok(series) = super::build::read_series_config(path) {
                            for s in &series {
                                lines.push(format!("series {}: {} images", s.name, s.images.len()));
                            }
                        }
                    }
                }
                lines
            }
            PuavoMode::Mirror {
                upstream,
                series,
                retention,
                ..
            } => vec![
                format!("mirrors {upstream}: series {}", series.join(" ")),
                retention.describe(),
            ],
        }
    }
}

/// Why `urlbase` is needed when torrents are on: their web seed is `<urlbase>/rdiffs/<rdiff>`.
fn torrents_need_urlbase(asked_for: bool) -> String {
    if asked_for {
        "key `urlbase`: missing (torrents need it for their web seed URL)".into()
    } else {
        "key `urlbase`: missing: torrents are on by default (Puavo laptops fetch rdiffs through torrents/<rdiff>.torrent, whose web seed is <urlbase>/rdiffs/<rdiff>); set urlbase = \"https://<this host>\", or torrents = false".into()
    }
}

/// `image_dir`: build the repository here.
fn build_mode(
    raw: PuavoKeys,
    urlbase: &Option<String>,
    fetch: &FetchKeys,
) -> Result<PuavoMode, String> {
    let mirroring = [
        ("series", raw.series.is_some()),
        ("keep_images", raw.keep_images.is_some()),
        ("keep_rdiffs_per_image", raw.keep_rdiffs_per_image.is_some()),
        ("keep_images_in_use", raw.keep_images_in_use.is_some()),
        ("rewrite_urls", raw.rewrite_urls.is_some()),
    ];
    let set = mirroring
        .iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| *key)
        .chain(fetch.set_names());
    if let Some(key) = set.into_iter().next() {
        return Err(format!(
            "key `{key}`: only applies to mirroring (`upstream`), not to building from `image_dir`"
        ));
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
    Ok(PuavoMode::Build {
        image_dir: raw.image_dir.unwrap_or_default(),
        series_config: raw.series_config,
        write_config,
        block_size,
        follow_symlinks_into: crate::sync::confine::parse_roots(raw.follow_symlinks_into)?,
    })
}

/// `upstream`: follow another repository's series.
fn mirror_mode(
    raw: PuavoKeys,
    urlbase: &Option<String>,
    fetch: FetchKeys,
) -> Result<PuavoMode, String> {
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
    let upstream = raw.upstream.unwrap_or_default();
    no_userinfo("upstream", &upstream, true)?;
    let upstream = upstream.trim_end_matches('/').to_string();
    if !(upstream.starts_with("http://") || upstream.starts_with("https://")) {
        return Err(format!(
            "key `upstream`: `{upstream}` must be an http:// or https:// URL"
        ));
    }
    let series = raw.series.unwrap_or_default();
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
    let retention = Retention {
        keep_images,
        // 0 is allowed: full images only, for a server whose clients never patch.
        keep_rdiffs_per_image: raw.keep_rdiffs_per_image.unwrap_or(2),
        in_use_file: raw.keep_images_in_use,
    };
    if retention
        .in_use_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err(
            "key `keep_images_in_use`: empty path (a file listing the images in use, one a line)"
                .into(),
        );
    }
    let rewrite_urls = raw.rewrite_urls.unwrap_or(false);
    if rewrite_urls && urlbase.is_none() {
        return Err("key `urlbase`: missing (`rewrite_urls` points meta urls at it)".into());
    }
    Ok(PuavoMode::Mirror {
        upstream,
        series,
        retention,
        rewrite_urls,
        fetch: fetch.into_options()?,
    })
}
