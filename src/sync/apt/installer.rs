//! debian-installer images (`installer = true`): `<component>/installer-<arch>/current/images/`
//! for each configured architecture, so netboot and CD kernels come with the mirror.
//!
//! The chain of trust: the signed Release lists `…/images/SHA256SUMS` (and `MD5SUMS`) with
//! their hashes, so those files are checked against the Release; every image is then checked
//! against its line in `SHA256SUMS`. Debian's Release lists the same files twice: under
//! `current/` and under the dated directory `current` links to (`20230607+deb12u11/`); the
//! dated directory whose `SHA256SUMS` is byte-identical to current's is carried too (same
//! objects, no extra download), older dated directories are not.

use std::collections::{BTreeMap, HashMap};

use futures_util::stream::{FuturesUnordered, StreamExt};

use super::release::{Listed, Release};
use super::selection::component_dir;
use super::{apt_error, Mirror, Planned};
use crate::store::{IngestMethod, ObjectId};
use crate::sync::fetch::{Expected, FetchError};
use crate::sync::files::checksums::{self, Algorithm};
use crate::sync::{SyncError, SyncReport};

/// One `…/installer-<arch>/<version>/images/` directory the Release vouches for.
#[derive(Debug, PartialEq, Eq)]
struct ImageDir<'r> {
    /// Relative to the Release, with a trailing `/`.
    dir: String,
    /// Its `SHA256SUMS`, as listed.
    sums: &'r Listed,
    /// Every file the Release lists in the directory (`SHA256SUMS`, `MD5SUMS`, …).
    listed: Vec<&'r Listed>,
}

/// The image directories to carry for one architecture: `current` of every configured
/// component that has one, plus the dated directory it links to. An error when no component
/// has `current/images/SHA256SUMS` for the architecture.
fn image_dirs<'r>(
    release: &'r Release,
    component_dirs: &[String],
    arch: &str,
) -> Result<Vec<ImageDir<'r>>, String> {
    let mut found = Vec::new();
    for component in component_dirs {
        let base = format!("{component}/installer-{arch}/");
        let Some(current) = release
            .files
            .get(&format!("{base}current/images/SHA256SUMS"))
        else {
            continue;
        };
        // Every listed `<base><version>/images/SHA256SUMS` with current's bytes.
        let versions = release.files.values().filter(|listed| {
            listed
                .path
                .strip_prefix(&base)
                .and_then(|rest| rest.strip_suffix("/images/SHA256SUMS"))
                .is_some_and(|version| !version.contains('/'))
                && listed.sha256 == current.sha256
        });
        for sums in versions {
            let dir = sums.path.trim_end_matches("SHA256SUMS").to_string();
            let listed = release
                .files
                .values()
                .filter(|l| {
                    l.path
                        .strip_prefix(&dir)
                        .is_some_and(|name| !name.contains('/'))
                })
                .collect();
            found.push(ImageDir { dir, sums, listed });
        }
    }
    if found.is_empty() {
        let expected: Vec<String> = component_dirs
            .iter()
            .map(|c| format!("{c}/installer-{arch}/current/images/SHA256SUMS"))
            .collect();
        return Err(format!(
            "installer = true, but the Release lists no {} for architecture {arch}",
            expected.join(" or ")
        ));
    }
    Ok(found)
}

/// The images a `SHA256SUMS` names, as (path relative to its directory, sha256). Names that
/// climb out of the directory are refused rather than skipped: the file is signed, so such a
/// line is a broken upstream, not something to mirror around.
fn images(file: &str, text: &str) -> Result<Vec<(String, ObjectId)>, String> {
    let sums = checksums::parse(file, text).map_err(|e| format!("{file}: {e}"))?;
    let mut images = Vec::with_capacity(sums.len());
    for sum in sums {
        if sum.algorithm != Algorithm::Sha256 {
            continue;
        }
        let name = sum.name;
        if name.starts_with('/')
            || name
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
        {
            return Err(format!(
                "{file}: `{name}` is not a path inside the directory"
            ));
        }
        let id = sum
            .hex
            .parse()
            .map_err(|_| format!("{file}: bad sha256 for `{name}`"))?;
        images.push((name, id));
    }
    Ok(images)
}

impl Mirror<'_> {
    /// Fetches the installer images of every configured architecture (`all` has none).
    pub(super) async fn installer_images(
        &self,
        release: &Release,
        report: &mut SyncReport,
    ) -> Result<Vec<Planned>, SyncError> {
        if self.config.repository.is_flat() {
            return Err(apt_error(
                "installer = true: a flat repository has no components, so no installer-<arch>/ tree",
            ));
        }
        let components: Vec<String> = self
            .config
            .repository
            .components
            .iter()
            .map(|c| component_dir(release, c))
            .collect();
        let mut dirs = Vec::new();
        for arch in self.config.architectures.iter().filter(|a| *a != "all") {
            dirs.extend(image_dirs(release, &components, arch).map_err(apt_error)?);
        }
        let mut planned = Vec::new();
        // Image path (relative to the Release) → its sha256, from every SHA256SUMS.
        let mut wanted: BTreeMap<String, ObjectId> = BTreeMap::new();
        for dir in &dirs {
            for listed in &dir.listed {
                planned.push(self.listed_file(listed).await?);
            }
            // Fetched just above as a listed file: its object id is its signed sha256.
            let sums: ObjectId = dir
                .sums
                .sha256
                .parse()
                .expect("Release::parse checks hashes");
            let bytes = self.store.read(&sums)?;
            let text = String::from_utf8(bytes)
                .map_err(|_| apt_error(format!("{}{} is not text", self.dist, dir.sums.path)))?;
            let file = format!("{}{}", self.dist, dir.sums.path);
            for (name, id) in images(&file, &text).map_err(apt_error)? {
                wanted.insert(format!("{}{name}", dir.dir), id);
            }
        }
        planned.extend(self.fetch_images(&wanted, report).await?);
        Ok(planned)
    }

    /// One file the Release lists, checked against it (a mismatch means the upstream changed
    /// under the sync: start again from InRelease).
    async fn listed_file(&self, listed: &Listed) -> Result<Planned, SyncError> {
        let path = format!("{}{}", self.dist, listed.path);
        let sha256: ObjectId = listed.sha256.parse().expect("Release::parse checks hashes");
        let expected = Expected {
            size: Some(listed.size),
            sha256,
        };
        if !self.store.contains(&sha256) {
            match self
                .fetcher
                .object(self.store, &self.url(&path), expected)
                .await
            {
                Ok(_) => {}
                Err(e @ (FetchError::Hash { .. } | FetchError::Size { .. })) => {
                    return Err(SyncError::Restart(e.to_string()))
                }
                Err(e) => return Err(apt_error(format!("installer file {path}: {e}"))),
            }
        }
        Ok(Planned {
            path,
            object: sha256,
            size: listed.size,
        })
    }

    /// Downloads the images the store lacks (each object once, however many directories name
    /// it); every image must match its `SHA256SUMS` line.
    async fn fetch_images(
        &self,
        wanted: &BTreeMap<String, ObjectId>,
        report: &mut SyncReport,
    ) -> Result<Vec<Planned>, SyncError> {
        let mut sizes: HashMap<ObjectId, u64> = HashMap::new();
        let mut first_path: HashMap<ObjectId, &str> = HashMap::new();
        let mut tasks = FuturesUnordered::new();
        // A shared image is fetched once, under its `current/` name (the one users know).
        let mut order: Vec<(&String, &ObjectId)> = wanted.iter().collect();
        order.sort_by_key(|(path, _)| !path.contains("/current/"));
        for (path, id) in order {
            if let Ok(meta) = std::fs::metadata(self.store.object_path(id)) {
                sizes.insert(*id, meta.len());
                continue;
            }
            if first_path.insert(*id, path.as_str()).is_some() {
                continue;
            }
            self.fetcher
                .stats
                .planned_files
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let url = self.url(&format!("{}{path}", self.dist));
            let expected = Expected {
                size: None,
                sha256: *id,
            };
            tasks.push(async move {
                let result = self.fetcher.payload(self.store, &url, expected).await;
                (path, *id, result)
            });
        }
        let mut failures = Vec::new();
        while let Some((path, id, result)) = tasks.next().await {
            match result {
                Ok(stored) => {
                    if stored.method != IngestMethod::Existing {
                        report.counts.files_stored += 1;
                        report.counts.bytes_stored += stored.size;
                    }
                    sizes.insert(id, stored.size);
                }
                Err(FetchError::Store(e)) => return Err(SyncError::Store(e)),
                Err(e) => failures.push(format!("installer image {}{path}: {e}", self.dist)),
            }
        }
        if !failures.is_empty() {
            failures.sort();
            return Err(apt_error(format!(
                "{} installer image(s) could not be fetched or do not match SHA256SUMS; first: {}",
                failures.len(),
                failures[0]
            )));
        }
        Ok(wanted
            .iter()
            .map(|(path, id)| Planned {
                path: format!("{}{path}", self.dist),
                object: *id,
                size: sizes[id],
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(lines: &[(&str, char)]) -> Release {
        let mut text = String::from("Date: Sat, 10 Feb 2024 10:12:33 UTC\nSHA256:\n");
        for (path, digit) in lines {
            text.push_str(&format!(" {} 10 {path}\n", digit.to_string().repeat(64)));
        }
        Release::parse(&text).unwrap()
    }

    #[test]
    fn current_and_the_dated_directory_it_links_to() {
        let release = release(&[
            ("main/installer-amd64/current/images/SHA256SUMS", '1'),
            ("main/installer-amd64/current/images/MD5SUMS", '2'),
            (
                "main/installer-amd64/20230607+deb12u11/images/SHA256SUMS",
                '1',
            ),
            ("main/installer-amd64/20230607+deb12u11/images/MD5SUMS", '2'),
            (
                "main/installer-amd64/20230607+deb12u10/images/SHA256SUMS",
                '3',
            ),
            ("main/installer-arm64/current/images/SHA256SUMS", '4'),
        ]);
        let components = ["main".to_string(), "contrib".to_string()];
        let dirs = image_dirs(&release, &components, "amd64").unwrap();
        let names: Vec<(&str, usize)> = dirs
            .iter()
            .map(|d| (d.dir.as_str(), d.listed.len()))
            .collect();
        assert_eq!(
            names,
            [
                ("main/installer-amd64/20230607+deb12u11/images/", 2),
                ("main/installer-amd64/current/images/", 2),
            ]
        );
        let error = image_dirs(&release, &components, "armhf").unwrap_err();
        assert!(
            error.contains("main/installer-armhf/current/images/SHA256SUMS")
                && error.contains("architecture armhf"),
            "{error}"
        );
    }

    #[test]
    fn sums_name_paths_inside_their_directory() {
        let hash = "a".repeat(64);
        let good = format!("{hash}  ./netboot/netboot.tar.gz\n{hash}  cdrom/vmlinuz\n");
        let names: Vec<String> = images("S", &good)
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["netboot/netboot.tar.gz", "cdrom/vmlinuz"]);
        for bad in ["../../../etc/passwd", "/etc/passwd", "a//b"] {
            let error = images("SHA256SUMS", &format!("{hash}  {bad}\n")).unwrap_err();
            assert!(
                error.contains("SHA256SUMS") && error.contains(bad),
                "{error}"
            );
        }
        assert!(images("SHA256SUMS", "garbage\n").is_err());
    }
}
