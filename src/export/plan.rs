//! Which files the medium should hold after this export: every exported source's current
//! snapshot laid out as served (mount, then path), plus what the medium already holds of
//! configured sources that this export leaves alone.

use std::collections::BTreeMap;

use anyhow::{bail, Context};

use crate::config::Config;
use crate::manifest::Manifest;
use crate::store::Store;

use super::medium::{is_medium_path, MediumFile, MediumManifest, MediumSource, FORMAT};

/// The medium's next manifest, and what the person running the export should know.
pub struct Plan {
    pub manifest: MediumManifest,
    /// Paths given up to another source, sources without a snapshot.
    pub warnings: Vec<String>,
}

/// Plans the export of `wanted` (every configured source if empty). Refs are read once per
/// source without the data-dir lock: they are replaced atomically, so each is a whole snapshot.
pub fn plan(
    config: &Config,
    store: &Store,
    wanted: &[String],
    previous: Option<&MediumManifest>,
    created: i64,
) -> anyhow::Result<Plan> {
    let mut warnings = Vec::new();
    let mut sources = Vec::new();
    // Path → file; the first source in config order keeps a path, as the server does.
    let mut files: BTreeMap<String, MediumFile> = BTreeMap::new();
    for source in &config.sources {
        let selected = wanted.is_empty() || wanted.contains(&source.id);
        let current = if selected {
            store.read_refs(&source.id)?.current
        } else {
            None
        };
        if selected && current.is_none() {
            if !wanted.is_empty() {
                bail!("source `{}` has no snapshot yet: sync it first", source.id);
            }
            warnings.push(format!(
                "source `{}` has no snapshot yet: what the medium holds of it stays",
                source.id
            ));
        }
        let Some(snapshot) = current else {
            // Left alone: keep what an earlier export wrote of it.
            let kept = previous.into_iter().flat_map(|p| &p.files);
            for file in kept.filter(|f| f.source == source.id) {
                add(&mut files, file.clone(), &mut warnings);
            }
            if let Some(old) = previous.and_then(|p| p.sources.iter().find(|s| s.id == source.id)) {
                sources.push(old.clone());
            }
            continue;
        };
        let manifest = Manifest::load(store, &snapshot)
            .with_context(|| format!("cannot read the current snapshot of `{}`", source.id))?;
        let prefix = source.mount.trim_start_matches('/');
        for entry in &manifest.entries {
            let path = if prefix.is_empty() {
                entry.path.clone()
            } else {
                format!("{prefix}/{}", entry.path)
            };
            if !is_medium_path(&path) {
                bail!(
                    "snapshot {snapshot} of `{}` names `{}`, which cannot be a file of the medium",
                    source.id,
                    entry.path
                );
            }
            let file = MediumFile {
                path,
                source: source.id.clone(),
                sha256: entry.object,
                size: entry.size,
                mtime: entry.mtime,
            };
            add(&mut files, file, &mut warnings);
        }
        sources.push(MediumSource {
            id: source.id.clone(),
            mount: source.mount.clone(),
            snapshot,
        });
    }
    refuse_file_under_file(&files)?;
    warn_same_but_for_case(&files, &mut warnings);
    Ok(Plan {
        manifest: MediumManifest {
            format: FORMAT,
            created,
            sources,
            files: files.into_values().collect(),
            tainted: Vec::new(),
        },
        warnings,
    })
}

/// Adds `file` unless an earlier source has its path (warning if with other content).
fn add(files: &mut BTreeMap<String, MediumFile>, file: MediumFile, warnings: &mut Vec<String>) {
    match files.get(&file.path) {
        Some(first) if first.sha256 != file.sha256 => warnings.push(format!(
            "`{}` is published by `{}` and `{}` with different content; the medium holds `{}`'s, as the server serves",
            file.path, first.source, file.source, first.source
        )),
        Some(_) => {}
        None => {
            files.insert(file.path.clone(), file);
        }
    }
}

/// A folder cannot also be a file: the server lets the directory win, a medium can hold
/// neither half silently, so the export stops and names both sources.
fn refuse_file_under_file(files: &BTreeMap<String, MediumFile>) -> anyhow::Result<()> {
    for (path, file) in files {
        let mut cut = path.len();
        while let Some(slash) = path[..cut].rfind('/') {
            cut = slash;
            if let Some(parent) = files.get(&path[..cut]) {
                bail!(
                    "`{}` is a file of source `{}` and a folder of source `{}` (which has `{path}`): a medium cannot hold both; change a mount",
                    parent.path,
                    parent.source,
                    file.source
                );
            }
        }
    }
    Ok(())
}

/// FAT and exFAT media ignore case: two paths that differ only in it would be one file there.
fn warn_same_but_for_case(files: &BTreeMap<String, MediumFile>, warnings: &mut Vec<String>) {
    let mut seen: BTreeMap<String, &str> = BTreeMap::new();
    for path in files.keys() {
        if let Some(first) = seen.insert(path.to_lowercase(), path) {
            warnings.push(format!(
                "`{first}` and `{path}` differ only in case: on a FAT or exFAT medium they are one file"
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ObjectId;

    fn file(path: &str, source: &str, byte: u8) -> MediumFile {
        MediumFile {
            path: path.into(),
            source: source.into(),
            sha256: ObjectId([byte; 32]),
            size: 1,
            mtime: 0,
        }
    }

    #[test]
    fn a_file_where_another_source_has_a_folder_names_both() {
        let mut files = BTreeMap::new();
        let mut warnings = Vec::new();
        add(&mut files, file("x/a", "one", 1), &mut warnings);
        add(&mut files, file("x/a/b/c", "two", 2), &mut warnings);
        let error = refuse_file_under_file(&files).unwrap_err().to_string();
        assert!(error.contains("`x/a` is a file of source `one`"), "{error}");
        assert!(error.contains("folder of source `two`"), "{error}");
    }

    #[test]
    fn the_first_source_keeps_a_shared_path() {
        let mut files = BTreeMap::new();
        let mut warnings = Vec::new();
        add(&mut files, file("x/a", "one", 1), &mut warnings);
        add(&mut files, file("x/a", "two", 1), &mut warnings);
        assert!(warnings.is_empty());
        add(&mut files, file("x/a", "three", 2), &mut warnings);
        assert_eq!(files["x/a"].source, "one");
        assert_eq!(warnings.len(), 1);
        assert!(refuse_file_under_file(&files).is_ok());
    }

    #[test]
    fn paths_that_differ_only_in_case_are_warned_of() {
        let mut files = BTreeMap::new();
        let mut warnings = Vec::new();
        add(&mut files, file("m/Packages", "one", 1), &mut warnings);
        add(&mut files, file("m/packages", "one", 2), &mut warnings);
        add(&mut files, file("m/other", "one", 3), &mut warnings);
        warn_same_but_for_case(&files, &mut warnings);
        assert_eq!(
            warnings,
            ["`m/Packages` and `m/packages` differ only in case: on a FAT or exFAT medium they are one file"]
        );
    }
}
