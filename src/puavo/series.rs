//! Image series: which images belong together, in which order, and which rdiffs puavo-os
//! builds between them.
//!
//! Names follow puavo-os: an image is `<prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img`, its series
//! is `<prefix>-<suffix>` (as puavo-update-repository groups them), and an rdiff is
//! `<src prefix>-<src date>--<dst date>-<src suffix>.rdiff`. Image names are parsed in
//! [`super::image_name`].

use serde_json::{Map, Value};

pub use super::image_name::ImageName;

/// The rdiff that turns image `source` into image `target`.
pub fn rdiff_name(source: &ImageName, target: &ImageName) -> String {
    format!(
        "{}-{}--{}-{}.rdiff",
        source.prefix, source.date, target.date, source.suffix
    )
}

/// One series: its images oldest first, and rdiff sources beyond the standard rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    pub name: String,
    pub images: Vec<String>,
    /// target image → extra source images.
    pub extra_rdiffs: Vec<(String, Vec<String>)>,
}

impl Series {
    /// Each of the last three images from every other image of the series, and every image
    /// from its `extra_rdiffs` sources (puavo-os applies those to any image of the list);
    /// `(target, sources)` in series order.
    pub fn rdiff_pairs(&self) -> Vec<(String, Vec<String>)> {
        let first_target = self.images.len().saturating_sub(3);
        let mut pairs = Vec::new();
        for (index, target) in self.images.iter().enumerate() {
            let last_three = index >= first_target;
            let mut sources: Vec<String> = Vec::new();
            let extras = self
                .extra_rdiffs
                .iter()
                .filter(|(t, _)| t == target)
                .flat_map(|(_, s)| s.iter());
            let others = self
                .images
                .iter()
                .enumerate()
                .filter(|(i, _)| last_three && *i != index)
                .map(|(_, s)| s);
            for source in others.chain(extras) {
                if source != target && !sources.contains(source) {
                    sources.push(source.clone());
                }
            }
            if last_three || !sources.is_empty() {
                pairs.push((target.clone(), sources));
            }
        }
        pairs
    }

    /// Every image file this series needs: its list, and the `extra_rdiffs` sources of the
    /// images in that list. Extras of an image that is not in the list are ignored, sources
    /// and all, as puavo-os's make-rdiffs ignores them (it looks extras up only for the
    /// images it builds); a missing source of a listed image is needed, so it fails the
    /// series (see [`crate::sync::puavo::build`]).
    pub fn all_images(&self) -> Vec<String> {
        let mut all = self.images.clone();
        let built = self
            .extra_rdiffs
            .iter()
            .filter(|(target, _)| self.images.contains(target));
        for (_, sources) in built {
            for source in sources {
                if !all.contains(source) {
                    all.push(source.clone());
                }
            }
        }
        all
    }
}

/// Groups image file names into series by name (series sorted by name, images by date).
/// Names that are not image names are returned separately.
pub fn group_by_name(files: &[String]) -> (Vec<Series>, Vec<String>) {
    let mut groups: std::collections::BTreeMap<String, Vec<(String, String)>> = Default::default();
    let mut ignored = Vec::new();
    for file in files {
        match ImageName::parse(file) {
            Some(name) => groups
                .entry(name.series())
                .or_default()
                .push((name.date.clone(), file.clone())),
            None => ignored.push(file.clone()),
        }
    }
    let series = groups
        .into_iter()
        .map(|(name, mut images)| {
            images.sort();
            Series {
                name,
                images: images.into_iter().map(|(_, f)| f).collect(),
                extra_rdiffs: Vec::new(),
            }
        })
        .collect();
    (series, ignored)
}

/// Reads a `config/images/<dist>.json` file, in either form:
/// `{"<series>": {"images": [...], "extra_rdiffs": {"<target>": ["<source>", ...]}}}` or the
/// older `{"<series>": ["a.img", ...]}`. Series keep the file's order.
pub fn parse_config(text: &[u8]) -> Result<Vec<Series>, String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(top) = value else {
        return Err("expected an object of series".into());
    };
    let strings = |value: &Value, what: &str| -> Result<Vec<String>, String> {
        let Value::Array(items) = value else {
            return Err(format!("{what}: expected an array of image file names"));
        };
        items
            .iter()
            .map(|item| match item {
                Value::String(s) if is_plain_image_file(s) => Ok(s.clone()),
                Value::String(s) => Err(format!("{what}: `{s}` is not an image file name")),
                _ => Err(format!("{what}: expected strings")),
            })
            .collect()
    };
    let mut series = Vec::new();
    for (name, body) in top {
        if !is_series_name(&name) {
            return Err(format!("`{name}` is not a usable series name"));
        }
        let (images, extra_rdiffs) = match &body {
            Value::Array(_) => (strings(&body, &format!("series `{name}`"))?, Vec::new()),
            Value::Object(fields) => {
                for key in fields.keys() {
                    if key != "images" && key != "extra_rdiffs" {
                        return Err(format!(
                            "series `{name}`: unknown key `{key}` (expected `images`, `extra_rdiffs`)"
                        ));
                    }
                }
                let images = match fields.get("images") {
                    Some(list) => strings(list, &format!("series `{name}` images"))?,
                    None => return Err(format!("series `{name}`: missing `images`")),
                };
                let mut extras = Vec::new();
                match fields.get("extra_rdiffs") {
                    None | Some(Value::Null) => {}
                    Some(Value::Object(map)) => {
                        for (target, sources) in map {
                            let sources = strings(
                                sources,
                                &format!("series `{name}` extra_rdiffs of `{target}`"),
                            )?;
                            extras.push((target.clone(), sources));
                        }
                    }
                    Some(_) => {
                        return Err(format!(
                            "series `{name}`: `extra_rdiffs` must map target images to lists of sources"
                        ))
                    }
                }
                (images, extras)
            }
            _ => {
                return Err(format!(
                    "series `{name}`: expected a list of images or {{\"images\": [...]}}"
                ))
            }
        };
        series.push(Series {
            name,
            images,
            extra_rdiffs,
        });
    }
    Ok(series)
}

/// Writes series in the current (hash) form, which puavo-os's make-rdiffs accepts.
pub fn render_config(series: &[Series]) -> Vec<u8> {
    let mut top = Map::new();
    for s in series {
        let mut body = Map::new();
        body.insert(
            "images".into(),
            Value::Array(s.images.iter().cloned().map(Value::String).collect()),
        );
        if !s.extra_rdiffs.is_empty() {
            let extras: Map<String, Value> = s
                .extra_rdiffs
                .iter()
                .map(|(target, sources)| {
                    (
                        target.clone(),
                        Value::Array(sources.iter().cloned().map(Value::String).collect()),
                    )
                })
                .collect();
            body.insert("extra_rdiffs".into(), Value::Object(extras));
        }
        top.insert(s.name.clone(), Value::Object(body));
    }
    let mut text = serde_json::to_vec_pretty(&Value::Object(top)).unwrap_or_default();
    text.push(b'\n');
    text
}

/// A file name without directories that ends in `.img`.
pub fn is_plain_image_file(name: &str) -> bool {
    name.ends_with(".img") && is_plain_name(name)
}

/// A name that can be one path segment of a URL and a file in one folder.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.contains('/')
        && !name.chars().any(char::is_control)
}

/// A series name is used as `meta/<series>.json`.
pub fn is_series_name(name: &str) -> bool {
    is_plain_name(name) && !name.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdiff_names() {
        let name = ImageName::parse("puavo-os-opinsys-bookworm-2024-05-10-123456-amd64.img")
            .expect("an image name");
        let older = ImageName::parse("puavo-os-opinsys-bookworm-2024-04-01-000000-amd64.img")
            .expect("an image name");
        assert_eq!(
            rdiff_name(&older, &name),
            "puavo-os-opinsys-bookworm-2024-04-01-000000--2024-05-10-123456-amd64.rdiff"
        );
    }

    #[test]
    fn pairs_follow_puavo_os() {
        let series = Series {
            name: "s".into(),
            images: ["a", "b", "c", "d", "e"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            extra_rdiffs: vec![("e".into(), vec!["old".into(), "a".into()])],
        };
        let pairs = series.rdiff_pairs();
        assert_eq!(pairs.len(), 3);
        assert_eq!(
            pairs[0],
            (
                "c".into(),
                vec!["a", "b", "d", "e"]
                    .into_iter()
                    .map(String::from)
                    .collect()
            )
        );
        assert_eq!(pairs[2].1, vec!["a", "b", "c", "d", "old"]);
        let total: usize = pairs.iter().map(|(_, s)| s.len()).sum();
        assert_eq!(total, 3 * 4 + 1);
        // Extras of an older image count too.
        let mut older = series.clone();
        older.extra_rdiffs = vec![("a".into(), vec!["b".into(), "old".into()])];
        let pairs = older.rdiff_pairs();
        assert_eq!(pairs.len(), 4);
        assert_eq!(
            pairs[0],
            ("a".into(), vec!["b".to_string(), "old".to_string()])
        );
        // Extras of an image not in the list: no pair, no image needed.
        let mut unbuilt = series.clone();
        unbuilt.extra_rdiffs = vec![("gone".into(), vec!["missing".into()])];
        assert_eq!(unbuilt.rdiff_pairs().len(), 3);
        assert_eq!(unbuilt.all_images(), series.images);
        assert_eq!(
            series.all_images(),
            vec!["a", "b", "c", "d", "e", "old"]
                .into_iter()
                .map(String::from)
                .collect::<Vec<_>>()
        );
        let one = Series {
            name: "s".into(),
            images: vec!["a".into()],
            extra_rdiffs: vec![],
        };
        assert_eq!(one.rdiff_pairs(), vec![("a".to_string(), vec![])]);
    }

    #[test]
    fn both_config_forms() {
        let old =
            br#"{"s1": ["a-2020-01-01-000000-x.img", "a-2020-02-01-000000-x.img"], "s0": []}"#;
        let new = br#"{"s1": {"images": ["a-2020-01-01-000000-x.img", "a-2020-02-01-000000-x.img"]}, "s0": {"images": []}}"#;
        assert_eq!(parse_config(old).unwrap(), parse_config(new).unwrap());
        assert_eq!(parse_config(old).unwrap()[0].name, "s1");
        let rendered = render_config(&parse_config(old).unwrap());
        assert_eq!(parse_config(&rendered).unwrap(), parse_config(old).unwrap());
        assert!(parse_config(br#"{"s": {"images": ["../x.img"]}}"#).is_err());
        assert!(parse_config(br#"{"s": {"imgs": []}}"#).is_err());
        assert!(parse_config(br#"["a.img"]"#).is_err());
    }

    #[test]
    fn grouping() {
        let files: Vec<String> = [
            "p-os-c-bookworm-2024-05-10-000000-amd64.img",
            "p-os-c-bookworm-2024-01-10-000000-amd64.img",
            "p-os-c-bullseye-2024-01-10-000000-amd64.img",
            "README",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let (series, ignored) = group_by_name(&files);
        assert_eq!(ignored, vec!["README"]);
        assert_eq!(series.len(), 2);
        assert_eq!(series[0].name, "p-os-c-bookworm-amd64");
        assert_eq!(
            series[0].images,
            vec![
                "p-os-c-bookworm-2024-01-10-000000-amd64.img",
                "p-os-c-bookworm-2024-05-10-000000-amd64.img"
            ]
        );
    }
}
