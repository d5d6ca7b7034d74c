//! What a mirror keeps of an upstream series, decided as a Puavo bootserver decides what stays
//! on its disk: per series the newest `keep_images` images plus the images in use, and for
//! every kept image the rdiffs to it from its `keep_rdiffs_per_image` newest base versions.
//! A school bootserver that mirrors only this needs room for a few images, not the whole
//! upstream history.
//!
//! The images in use come from a file a site script writes (the images devices boot or run
//! now). That file is read before anything is fetched: if it cannot be read the sync fails,
//! because going on without it would drop exactly the images that are in use.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::puavo::meta::ListedImage;

/// The mirror's retention settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retention {
    /// Newest images kept per series (bootservers: 2).
    pub keep_images: usize,
    /// Rdiffs kept per kept image, from its newest base versions (bootservers: 2).
    pub keep_rdiffs_per_image: usize,
    /// A file naming images in use, kept besides the newest ones.
    pub in_use_file: Option<PathBuf>,
}

impl Retention {
    /// One line for `check-config`.
    pub fn describe(&self) -> String {
        let in_use = match &self.in_use_file {
            Some(path) => format!(" and the images listed in {}", path.display()),
            None => String::new(),
        };
        format!(
            "keeps per series the newest {} images{in_use}, and for each kept image the rdiffs to it from its {} newest base versions",
            self.keep_images, self.keep_rdiffs_per_image
        )
    }

    /// The image file names in use (each ending in `.img`); empty without an in-use file.
    pub fn images_in_use(&self) -> Result<Vec<String>, String> {
        match &self.in_use_file {
            None => Ok(Vec::new()),
            Some(path) => read_in_use(path),
        }
    }
}

/// Reads an in-use file: one image name a line, with or without `.img`; blank lines and
/// `#` comments are skipped. A line that is not a plain file name is an error (a typo
/// there would silently stop keeping an image).
pub fn read_in_use(path: &Path) -> Result<Vec<String>, String> {
    let at = || format!("key `keep_images_in_use`: {}", path.display());
    let text = std::fs::read(path).map_err(|e| {
        format!(
            "{}: cannot read it ({e}); nothing is dropped until it can be read",
            at()
        )
    })?;
    let text = String::from_utf8(text).map_err(|_| format!("{}: not UTF-8 text", at()))?;
    let mut names = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let name = line.split('#').next().unwrap_or_default().trim();
        if name.is_empty() {
            continue;
        }
        if !crate::puavo::series::is_plain_name(name) || name.contains(char::is_whitespace) {
            return Err(format!(
                "{}: line {}: `{name}` is not an image name (one image file name a line)",
                at(),
                number + 1
            ));
        }
        let file = if name.ends_with(".img") {
            name.to_string()
        } else {
            format!("{name}.img")
        };
        if !names.contains(&file) {
            names.push(file);
        }
    }
    Ok(names)
}

/// The images of `listing` to keep, in the meta file's order, each with only its kept
/// rdiffs.
pub fn select(
    listing: &[ListedImage],
    retention: &Retention,
    in_use: &[String],
) -> Vec<ListedImage> {
    let newest = newest_versions(listing, retention.keep_images);
    listing
        .iter()
        .filter(|image| {
            newest.contains(image.image.version.as_str()) || in_use.contains(&image.image.filename)
        })
        .map(|image| ListedImage {
            image: image.image.clone(),
            diffs: newest_diffs(image, retention.keep_rdiffs_per_image),
        })
        .collect()
}

/// The versions of the newest `keep` images (images of one version count together).
fn newest_versions(listing: &[ListedImage], keep: usize) -> HashSet<&str> {
    let mut versions: Vec<&str> = listing.iter().map(|i| i.image.version.as_str()).collect();
    versions.sort_unstable();
    versions.dedup();
    versions.into_iter().rev().take(keep).collect()
}

/// The rdiffs of `image` from its `keep` newest base versions (a diff's `version` is its
/// base image's), in the meta file's order.
fn newest_diffs(image: &ListedImage, keep: usize) -> Vec<crate::puavo::meta::Listed> {
    let mut bases: Vec<&str> = image.diffs.iter().map(|d| d.version.as_str()).collect();
    bases.sort_unstable();
    bases.dedup();
    let kept: HashSet<&str> = bases.into_iter().rev().take(keep).collect();
    image
        .diffs
        .iter()
        .filter(|d| kept.contains(d.version.as_str()))
        .cloned()
        .collect()
}

/// True when `kept` is all of `listing`: then the upstream's meta can be published as is.
pub fn is_whole(kept: &[ListedImage], listing: &[ListedImage]) -> bool {
    kept.len() == listing.len()
        && kept
            .iter()
            .zip(listing)
            .all(|(k, l)| k.diffs.len() == l.diffs.len())
}

/// Drops from a meta file's `images` array every image and diff that is not kept; what
/// remains stays as the upstream wrote it.
pub fn trim_meta(images: &mut Vec<Value>, kept: &[ListedImage]) {
    let name = |entry: &Value| {
        entry
            .get("filename")
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    images.retain(|image| {
        let file = name(image);
        kept.iter()
            .any(|k| Some(&k.image.filename) == file.as_ref())
    });
    for image in images.iter_mut() {
        let file = name(image);
        let Some(kept_image) = kept
            .iter()
            .find(|k| Some(&k.image.filename) == file.as_ref())
        else {
            continue;
        };
        if let Some(Value::Array(diffs)) = image.get_mut("diffs") {
            diffs.retain(|diff| {
                let file = name(diff);
                kept_image
                    .diffs
                    .iter()
                    .any(|d| Some(&d.filename) == file.as_ref())
            });
        }
    }
}

/// In-use names no followed series lists: kept nowhere, worth a warning (a renamed image or
/// a series not followed here).
pub fn unlisted<'a>(in_use: &'a [String], listed: &HashSet<String>) -> Vec<&'a String> {
    in_use
        .iter()
        .filter(|name| !listed.contains(*name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::puavo::meta::Listed;

    fn file(filename: String, version: &str) -> Listed {
        Listed {
            filename,
            size: 1,
            cksum: "1".into(),
            sha256: "0".repeat(64),
            sha512: None,
            urls: vec![],
            version: version.into(),
        }
    }

    fn image(version: &str, bases: &[&str]) -> ListedImage {
        ListedImage {
            image: file(format!("p-{version}.img"), version),
            diffs: bases
                .iter()
                .map(|b| file(format!("p-{b}--{version}.rdiff"), b))
                .collect(),
        }
    }

    fn retention(images: usize, rdiffs: usize) -> Retention {
        Retention {
            keep_images: images,
            keep_rdiffs_per_image: rdiffs,
            in_use_file: None,
        }
    }

    fn versions(kept: &[ListedImage]) -> Vec<&str> {
        kept.iter().map(|i| i.image.version.as_str()).collect()
    }

    #[test]
    fn keeps_the_newest_in_order() {
        let listing = vec![image("3", &[]), image("1", &[]), image("2", &[])];
        assert_eq!(
            versions(&select(&listing, &retention(2, 2), &[])),
            ["3", "2"]
        );
        assert_eq!(select(&listing, &retention(5, 2), &[]).len(), 3);
        assert!(is_whole(&select(&listing, &retention(5, 2), &[]), &listing));
    }

    #[test]
    fn keeps_images_in_use_and_the_newest_diffs() {
        let listing = vec![
            image("1", &[]),
            image("2", &["1", "3", "4"]),
            image("3", &["1", "2", "4"]),
            image("4", &["2", "1", "3"]),
        ];
        let kept = select(&listing, &retention(2, 2), &["p-1.img".to_string()]);
        assert_eq!(versions(&kept), ["1", "3", "4"]);
        let bases: Vec<&str> = kept[2].diffs.iter().map(|d| d.version.as_str()).collect();
        assert_eq!(bases, ["2", "3"], "meta order, newest two bases");
        assert!(!is_whole(&kept, &listing));
        let one = select(&listing, &retention(1, 1), &[]);
        assert_eq!(one[0].diffs[0].version, "3");
        let none = select(&listing, &retention(1, 0), &[]);
        assert!(none[0].diffs.is_empty());
    }

    #[test]
    fn in_use_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in-use");
        std::fs::write(&path, "# devices\n\np-1\n  p-2.img  # laptop\np-1.img\n").unwrap();
        assert_eq!(read_in_use(&path).unwrap(), ["p-1.img", "p-2.img"]);
        std::fs::write(&path, "p-1\n../p-2.img\n").unwrap();
        let error = read_in_use(&path).unwrap_err();
        assert!(
            error.contains("line 2") && error.contains("keep_images_in_use"),
            "{error}"
        );
        let missing = dir.path().join("missing");
        let error = read_in_use(&missing).unwrap_err();
        assert!(
            error.contains("keep_images_in_use") && error.contains("missing"),
            "{error}"
        );
    }

    #[test]
    fn meta_lists_only_what_is_kept() {
        let listing = vec![image("1", &[]), image("2", &["1"]), image("3", &["1", "2"])];
        let kept = select(&listing, &retention(2, 1), &[]);
        let mut images: Vec<Value> = listing
            .iter()
            .map(|i| {
                serde_json::json!({
                    "filename": i.image.filename,
                    "extra": 1,
                    "diffs": i.diffs.iter().map(|d| serde_json::json!({"filename": d.filename})).collect::<Vec<_>>(),
                })
            })
            .collect();
        trim_meta(&mut images, &kept);
        assert_eq!(
            Value::Array(images),
            serde_json::json!([
                {"filename": "p-2.img", "extra": 1, "diffs": [{"filename": "p-1--2.rdiff"}]},
                {"filename": "p-3.img", "extra": 1, "diffs": [{"filename": "p-2--3.rdiff"}]},
            ])
        );
    }
}
