//! `mirrorbox add files|dir|puavo`: the sources that need no key, each made from the flags
//! that map one to one to its keys.

use std::path::{Path, PathBuf};

use anyhow::anyhow;

use super::derive::{folder_name, id_of, UrlParts};
use super::Planned;
use crate::cli::AddCommon;
use crate::config::edit::NewTable;

/// An upstream file tree: `http://download.proxmox.com/iso/` → `proxmox_iso` at `/iso`.
pub fn files(url: &str, common: &AddCommon) -> anyhow::Result<Planned> {
    let parts = UrlParts::parse(url).map_err(|m| anyhow!(m))?;
    let id = common.id.clone().unwrap_or_else(|| {
        let last = parts.segments.last().map(String::as_str).unwrap_or("");
        id_of(&[&parts.site_name(), last])
    });
    let mount = common.mount.clone().unwrap_or_else(|| parts.mount());
    let mut table = NewTable::new("an upstream HTTP file tree (added by `mirrorbox add files`)");
    table.set("id", id.as_str(), Some("`mirrorbox sync <id>` syncs it"));
    table.set("kind", "files", None);
    table.set(
        "mount",
        mount.as_str(),
        Some("the upstream's path: clients swap the host"),
    );
    table.set("url", url, None);
    table.set(
        "every",
        common.every.as_deref().unwrap_or("6h"),
        Some("sync interval while `mirrorbox serve` runs"),
    );
    Ok(Planned::new(id, mount, table))
}

/// A local folder: `/srv/files` → `files` at `/files`.
pub fn dir(path: &Path, common: &AddCommon) -> anyhow::Result<Planned> {
    let path = absolute(path);
    let name = folder_name(&path);
    let id = common.id.clone().unwrap_or_else(|| id_of(&[&name]));
    let mount = common
        .mount
        .clone()
        .unwrap_or_else(|| format!("/{}", id_of(&[&name])));
    let mut table = NewTable::new("a local directory (added by `mirrorbox add dir`)");
    table.set("id", id.as_str(), Some("`mirrorbox sync <id>` syncs it"));
    table.set("kind", "dir", None);
    table.set("mount", mount.as_str(), None);
    table.set("path", path.display().to_string(), None);
    table.set(
        "every",
        common.every.as_deref().unwrap_or("5m"),
        Some("re-scan (unchanged files cost one stat each)"),
    );
    Ok(Planned::new(id, mount, table))
}

/// The flags of `mirrorbox add puavo`, as its keys.
pub struct PuavoFlags {
    pub image_dir: Option<PathBuf>,
    pub series_config: Option<PathBuf>,
    pub upstream: Option<String>,
    pub series: Vec<String>,
    pub urlbase: Option<String>,
    pub no_torrents: bool,
}

/// A Puavo image repository: built from a folder (`puavo` at `/`) or mirrored from an
/// image server (`puavo_mirror` at `/`); laptops look for it at the root.
pub fn puavo(flags: PuavoFlags, common: &AddCommon) -> anyhow::Result<Planned> {
    let build = flags.image_dir.is_some();
    let id = common.id.clone().unwrap_or_else(|| {
        if build {
            "puavo".into()
        } else {
            "puavo_mirror".into()
        }
    });
    let mount = common.mount.clone().unwrap_or_else(|| "/".into());
    let comment = if build {
        "a Puavo image repository built from a folder of images (added by `mirrorbox add puavo`)"
    } else {
        "a Puavo image repository mirrored from another one (added by `mirrorbox add puavo`)"
    };
    let mut table = NewTable::new(comment);
    table.set("id", id.as_str(), Some("`mirrorbox sync <id>` syncs it"));
    table.set("kind", "puavo", None);
    table.set(
        "mount",
        mount.as_str(),
        Some("laptops fetch <server>/<image>, /rdiffs/… at the root"),
    );
    if let Some(image_dir) = &flags.image_dir {
        table.set("image_dir", absolute(image_dir).display().to_string(), None);
    }
    if let Some(series_config) = &flags.series_config {
        table.set(
            "series_config",
            absolute(series_config).display().to_string(),
            None,
        );
    }
    if let Some(upstream) = &flags.upstream {
        table.set("upstream", upstream.as_str(), None);
    }
    if !flags.series.is_empty() {
        table.set_list("series", &flags.series, None);
    }
    if let Some(urlbase) = &flags.urlbase {
        table.set(
            "urlbase",
            urlbase.as_str(),
            Some("this server as clients reach it"),
        );
    }
    if flags.no_torrents {
        table.set("torrents", false, None);
    }
    let every = if build { "10m" } else { "6h" };
    table.set(
        "every",
        common.every.as_deref().unwrap_or(every),
        Some("sync interval while `mirrorbox serve` runs"),
    );
    Ok(Planned::new(id, mount, table))
}

/// Paths are stored absolute: the configuration's relative paths are taken from the folder
/// `serve` runs in, which is rarely the one `add` ran in.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(planned: &Planned) -> (&str, &str) {
        (planned.id.as_str(), planned.mount.as_str())
    }

    #[test]
    fn names_as_in_the_readme() {
        let none = AddCommon::default();
        let iso = files("http://download.proxmox.com/iso/", &none).unwrap();
        assert_eq!(ids(&iso), ("proxmox_iso", "/iso"));
        let site = dir(Path::new("/srv/files"), &none).unwrap();
        assert_eq!(ids(&site), ("files", "/files"));
        let given = AddCommon {
            id: Some("site".into()),
            mount: Some("/www".into()),
            ..AddCommon::default()
        };
        assert_eq!(
            ids(&dir(Path::new("/srv/files"), &given).unwrap()),
            ("site", "/www")
        );
    }
}
