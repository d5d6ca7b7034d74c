//! Proxmox `aplinfo.dat`: the index `pveam` reads to list container templates. Paragraphs of
//! `Key: value` lines (Debian control style, keys in any case, continuation lines start with
//! a space), one per template, each with a `Location` relative to the index and its hashes.

/// One template the index lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// As written: normally relative to the directory of `aplinfo.dat`.
    pub location: String,
    pub sha512: Option<String>,
    /// Listed by older indices; not checked (MD5 proves nothing), kept for messages.
    pub md5: Option<String>,
}

/// The templates of an `aplinfo.dat`. A paragraph without `Location` is skipped (some
/// indices carry a header paragraph); a malformed hash is an error, because it would make
/// the check that protects the download silently vanish.
pub fn parse(text: &str) -> Result<Vec<Template>, String> {
    let mut templates = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    let mut start_line = 1;
    let mut finish = |fields: &mut Vec<(String, String)>, line: usize| -> Result<(), String> {
        if fields.is_empty() {
            return Ok(());
        }
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.trim().to_string())
        };
        let Some(location) = get("location").filter(|l| !l.is_empty()) else {
            fields.clear();
            return Ok(());
        };
        let hash = |key: &str, len: usize| -> Result<Option<String>, String> {
            match get(key) {
                None => Ok(None),
                Some(hex) if hex.len() == len && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    Ok(Some(hex.to_ascii_lowercase()))
                }
                Some(hex) => Err(format!(
                    "paragraph at line {line} ({location}): `{key}: {hex}` is not a {} hex digest",
                    len * 4
                )),
            }
        };
        templates.push(Template {
            sha512: hash("sha512sum", 128)?,
            md5: hash("md5sum", 32)?,
            location,
        });
        fields.clear();
        Ok(())
    };
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            finish(&mut current, start_line)?;
            start_line = number + 2;
            continue;
        }
        if line.starts_with([' ', '\t']) {
            // A continuation (descriptions); the keys we read are single-line.
            if let Some(last) = current.last_mut() {
                last.1.push('\n');
                last.1.push_str(line.trim());
            }
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(format!(
                "line {}: `{line}` is neither `Key: value` nor a continuation",
                number + 1
            ));
        };
        current.push((key.trim().to_string(), value.trim().to_string()));
    }
    finish(&mut current, start_line)?;
    Ok(templates)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxmox_paragraphs() {
        let sha = "ab".repeat(64);
        let text = format!(
            "Package: debian-12-standard\nVersion: 12.2-1\nType: lxc\nOS: debian-12\nSection: system\nMaintainer: Proxmox Support Team <support@proxmox.com>\nArchitecture: amd64\nLocation: system/debian-12-standard_12.2-1_amd64.tar.zst\nmd5sum: 0123456789abcdef0123456789ABCDEF\nsha512sum: {sha}\nInfopage: https://pve.proxmox.com/wiki/Linux_Container#pct_supported_distributions\nDescription: Debian 12 Bookworm (standard)\n A small Debian Bookworm system including all standard packages.\n\n\nPackage: turnkey-core\nlocation: turnkey/core.tar.gz\nmd5sum: 0123456789abcdef0123456789abcdef\n\nHeadline: no location here\n"
        );
        let templates = parse(&text).unwrap();
        assert_eq!(templates.len(), 2);
        assert_eq!(
            templates[0].location,
            "system/debian-12-standard_12.2-1_amd64.tar.zst"
        );
        assert_eq!(templates[0].sha512.as_deref(), Some(sha.as_str()));
        assert_eq!(
            templates[0].md5.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(templates[1].location, "turnkey/core.tar.gz");
        assert_eq!(templates[1].sha512, None);
    }

    #[test]
    fn bad_hashes_and_lines_are_errors() {
        assert!(parse("Location: a\nsha512sum: 1234\n").is_err());
        assert!(parse("Location: a\nthis is no field\n").is_err());
        assert_eq!(parse("").unwrap(), vec![]);
    }
}
