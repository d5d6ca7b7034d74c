//! `meta/<series>.json` and `CKSUMS`, in the shapes Puavo clients read.
//!
//! Laptops run `jq '.[][][]'` over every meta file, bootservers check `id`, `version`,
//! `size`, `urls`, `sha256`; old clients compare `CKSUMS` lines whole. Key order follows
//! puavo-os's make-rdiffs so the files look the same as the ones it writes.

use serde::Serialize;
use serde_json::{Map, Value};

/// What is known of one published file.
#[derive(Debug, Clone)]
pub struct FileFacts {
    pub size: u64,
    pub cksum: u32,
    pub sha256: String,
    pub sha512: String,
}

#[derive(Serialize)]
struct ImageMeta<'a> {
    diffs: Vec<DiffMeta<'a>>,
    filename: &'a str,
    id: &'a str,
    #[serde(rename = "puavo-conf")]
    puavo_conf: &'a Map<String, Value>,
    size: u64,
    urls: Vec<String>,
    version: String,
    cksum: String,
    sha256: &'a str,
    sha512: &'a str,
}

#[derive(Serialize)]
struct DiffMeta<'a> {
    filename: &'a str,
    urls: Vec<String>,
    version: String,
    size: u64,
    cksum: String,
    sha256: &'a str,
    sha512: &'a str,
}

/// One image of a series, as it goes into the meta file.
pub struct ImageEntry<'a> {
    pub filename: &'a str,
    /// 14 digits.
    pub version: String,
    pub facts: &'a FileFacts,
    pub puavo_conf: &'a Map<String, Value>,
    /// (rdiff file name, source image version, facts)
    pub diffs: Vec<(String, String, &'a FileFacts)>,
}

/// The compact meta file of a series: `{"<series>":{"images":[…]}}`.
pub fn render(series: &str, urlbase: &str, images: &[ImageEntry]) -> Vec<u8> {
    let images: Vec<ImageMeta> = images
        .iter()
        .map(|image| ImageMeta {
            diffs: image
                .diffs
                .iter()
                .map(|(file, version, facts)| DiffMeta {
                    filename: file,
                    urls: vec![format!("{urlbase}/rdiffs/{file}")],
                    version: version.clone(),
                    size: facts.size,
                    cksum: facts.cksum.to_string(),
                    sha256: &facts.sha256,
                    sha512: &facts.sha512,
                })
                .collect(),
            filename: image.filename,
            id: image
                .filename
                .strip_suffix(".img")
                .unwrap_or(image.filename),
            puavo_conf: image.puavo_conf,
            size: image.facts.size,
            urls: vec![format!("{urlbase}/{}", image.filename)],
            version: image.version.clone(),
            cksum: image.facts.cksum.to_string(),
            sha256: &image.facts.sha256,
            sha512: &image.facts.sha512,
        })
        .collect();
    #[derive(Serialize)]
    struct Images<'a> {
        images: Vec<ImageMeta<'a>>,
    }
    let mut top = std::collections::BTreeMap::new();
    top.insert(series, Images { images });
    serde_json::to_vec(&top).unwrap_or_default()
}

/// A published file as a meta file lists it (image or diff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub filename: String,
    pub size: u64,
    pub cksum: String,
    pub sha256: String,
    pub sha512: Option<String>,
    pub urls: Vec<String>,
    pub version: String,
}

/// An image of a meta file with its diffs.
#[derive(Debug, Clone)]
pub struct ListedImage {
    pub image: Listed,
    pub diffs: Vec<Listed>,
}

/// Reads the images of `series` from a meta file, checking what clients rely on.
pub fn parse(series: &str, text: &[u8]) -> Result<Vec<ListedImage>, String> {
    let value: Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
    let images = value
        .get(series)
        .and_then(|s| s.get("images"))
        .and_then(Value::as_array)
        .ok_or_else(|| format!("no `{series}.images` array"))?;
    images
        .iter()
        .map(|image| {
            let entry = listed(image)?;
            let diffs = match image.get("diffs") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(diffs)) => diffs.iter().map(listed).collect::<Result<_, _>>()?,
                Some(_) => return Err(format!("{}: `diffs` is not an array", entry.filename)),
            };
            for diff in &diffs {
                if !diff.filename.ends_with(".rdiff") {
                    return Err(format!("diff `{}` is not an .rdiff file", diff.filename));
                }
            }
            if !entry.filename.ends_with(".img") {
                return Err(format!("image `{}` is not an .img file", entry.filename));
            }
            Ok(ListedImage {
                image: entry,
                diffs,
            })
        })
        .collect()
}

fn listed(entry: &Value) -> Result<Listed, String> {
    let text = |key: &str| entry.get(key).and_then(Value::as_str).map(str::to_string);
    let filename = text("filename").ok_or("an entry without `filename`")?;
    if !crate::puavo::series::is_plain_name(&filename) {
        return Err(format!("`{filename}` is not a plain file name"));
    }
    let missing = |key: &str| format!("{filename}: missing or invalid `{key}`");
    let sha256 = text("sha256").ok_or_else(|| missing("sha256"))?;
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(missing("sha256"));
    }
    Ok(Listed {
        size: entry
            .get("size")
            .and_then(Value::as_u64)
            .ok_or_else(|| missing("size"))?,
        cksum: text("cksum").ok_or_else(|| missing("cksum"))?,
        sha256: sha256.to_ascii_lowercase(),
        sha512: text("sha512").map(|s| s.to_ascii_lowercase()),
        urls: entry
            .get("urls")
            .and_then(Value::as_array)
            .map(|u| {
                u.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default(),
        version: text("version").ok_or_else(|| missing("version"))?,
        filename,
    })
}

/// `CKSUMS` lines of one series: per image, its line and then its diffs' lines.
pub fn cksums(images: &[ListedImage]) -> String {
    let mut out = String::new();
    for image in images {
        for file in std::iter::once(&image.image).chain(&image.diffs) {
            out.push_str(&format!("{} {} {}\n", file.cksum, file.size, file.filename));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_then_parse() {
        let facts = FileFacts {
            size: 10,
            cksum: 42,
            sha256: "a".repeat(64),
            sha512: "b".repeat(128),
        };
        let conf = Map::new();
        let images = [ImageEntry {
            filename: "p-2024-01-01-000000-x.img",
            version: "20240101000000".into(),
            facts: &facts,
            puavo_conf: &conf,
            diffs: vec![("d.rdiff".into(), "20231231000000".into(), &facts)],
        }];
        let text = render("p-x", "https://h/p", &images);
        let text = String::from_utf8(text).unwrap();
        assert!(text.starts_with(r#"{"p-x":{"images":[{"diffs":[{"filename":"d.rdiff","urls":["https://h/p/rdiffs/d.rdiff"],"version":"20231231000000","size":10,"cksum":"42","#), "{text}");
        assert!(text.contains(r#""filename":"p-2024-01-01-000000-x.img","id":"p-2024-01-01-000000-x","puavo-conf":{},"size":10,"urls":["https://h/p/p-2024-01-01-000000-x.img"],"version":"20240101000000","cksum":"42""#), "{text}");
        let parsed = parse("p-x", text.as_bytes()).unwrap();
        assert_eq!(parsed[0].diffs[0].version, "20231231000000");
        assert_eq!(
            cksums(&parsed),
            "42 10 p-2024-01-01-000000-x.img\n42 10 d.rdiff\n"
        );
        assert!(parse("other", text.as_bytes()).is_err());
    }
}
