//! The Release file (the text inside InRelease, or Release): fields and the signed hash lists.

use std::collections::BTreeMap;

/// One file the Release lists: path relative to the Release's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub sha512: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    pub fields: BTreeMap<String, String>,
    /// Unix seconds of `Date`; `None` when the Release has no Date (some third-party
    /// repositories omit it; the sync accepts that only when told to).
    pub date: Option<i64>,
    pub valid_until: Option<i64>,
    pub by_hash: bool,
    /// Every file with a SHA256 (and, if given, SHA512) entry, by path.
    pub files: BTreeMap<String, Listed>,
}

impl Release {
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn parse(text: &str) -> Result<Release, String> {
        let mut fields = BTreeMap::new();
        let mut lists: BTreeMap<String, Vec<(String, u64, String)>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with(' ') || line.starts_with('\t') {
                let Some(name) = &current else {
                    return Err(format!("continuation line without a field: `{line}`"));
                };
                let parts: Vec<&str> = line.split_whitespace().collect();
                if ["md5sum", "sha1", "sha256", "sha512"].contains(&name.as_str()) {
                    if parts.len() != 3 {
                        return Err(format!("bad {name} line `{line}`"));
                    }
                    let size = parts[1]
                        .parse()
                        .map_err(|_| format!("bad size in `{line}`"))?;
                    lists.entry(name.clone()).or_default().push((
                        parts[2].to_string(),
                        size,
                        parts[0].to_ascii_lowercase(),
                    ));
                }
                continue;
            }
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("not a field: `{line}`"))?;
            let name = name.trim().to_ascii_lowercase();
            fields.insert(name.clone(), value.trim().to_string());
            current = Some(name);
        }
        let date = fields
            .get("date")
            .map(|text| parse_date(text).ok_or_else(|| format!("cannot read Date `{text}`")))
            .transpose()?;
        let valid_until = match fields.get("valid-until") {
            Some(text) => {
                Some(parse_date(text).ok_or_else(|| format!("cannot read Valid-Until `{text}`"))?)
            }
            None => None,
        };
        let Some(sha256) = lists.get("sha256") else {
            return Err(
                if lists.contains_key("md5sum") || lists.contains_key("sha1") {
                    "the Release offers only MD5/SHA1 hashes, which are not secure; refusing it"
                        .into()
                } else {
                    "the Release lists no SHA256 hashes".into()
                },
            );
        };
        let sha512: BTreeMap<&str, &str> = lists
            .get("sha512")
            .map(|l| l.iter().map(|(p, _, h)| (p.as_str(), h.as_str())).collect())
            .unwrap_or_default();
        let mut files = BTreeMap::new();
        for (path, size, hash) in sha256 {
            if hash.len() != 64
                || !hash.bytes().all(|b| b.is_ascii_hexdigit())
                || path.split('/').any(|s| s == ".." || s == ".")
                || path.starts_with('/')
            {
                return Err(format!("bad SHA256 entry for `{path}`"));
            }
            files.insert(
                path.clone(),
                Listed {
                    path: path.clone(),
                    size: *size,
                    sha256: hash.clone(),
                    sha512: sha512.get(path.as_str()).map(|h| h.to_string()),
                },
            );
        }
        let by_hash = fields
            .get("acquire-by-hash")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes"));
        Ok(Release {
            fields,
            date,
            valid_until,
            by_hash,
            files,
        })
    }
}

/// Release dates are RFC 2822 (`Sat, 10 Feb 2024 10:12:33 UTC`, sometimes `+0000`).
pub fn parse_date(text: &str) -> Option<i64> {
    let text = text.trim();
    let words: Vec<&str> = text.split_whitespace().collect();
    // [weekday,] day month year hh:mm:ss zone
    let words = if words.first().is_some_and(|w| w.ends_with(',')) {
        &words[1..]
    } else {
        &words[..]
    };
    if words.len() < 4 {
        return None;
    }
    let day: i64 = words[0].parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(words[1]))? as i64
        + 1;
    let year: i64 = words[2].parse().ok()?;
    let time: Vec<i64> = words[3]
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    if time.len() < 2 {
        return None;
    }
    let offset = match words.get(4).copied() {
        None | Some("UTC" | "GMT" | "Z" | "+0000" | "-0000") => 0,
        Some(zone) if zone.len() == 5 && (zone.starts_with('+') || zone.starts_with('-')) => {
            let hours: i64 = zone[1..3].parse().ok()?;
            let minutes: i64 = zone[3..5].parse().ok()?;
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            sign * (hours * 3600 + minutes * 60)
        }
        Some(_) => return None,
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86400 + time[0] * 3600 + time[1] * 60 + time.get(2).copied().unwrap_or(0) - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: &str = "Origin: Debian\nLabel: Debian\nSuite: stable\nCodename: bookworm\nDate: Sat, 10 Feb 2024 10:12:33 UTC\nValid-Until: Sat, 17 Feb 2024 10:12:33 +0100\nAcquire-By-Hash: yes\nArchitectures: all amd64\nComponents: main\nMD5Sum:\n 0123456789abcdef0123456789abcdef 100 main/binary-amd64/Packages\nSHA256:\n 1111111111111111111111111111111111111111111111111111111111111111 100 main/binary-amd64/Packages\n 2222222222222222222222222222222222222222222222222222222222222222 40 main/binary-amd64/Packages.xz\nSHA512:\n 33333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333333 100 main/binary-amd64/Packages\n";

    #[test]
    fn parses_fields_and_hashes() {
        let r = Release::parse(RELEASE).unwrap();
        assert_eq!(r.field("Codename"), Some("bookworm"));
        assert_eq!(r.date, Some(1707559953));
        assert_eq!(r.valid_until, Some(1707559953 + 7 * 86400 - 3600));
        assert!(r.by_hash);
        assert_eq!(r.files.len(), 2);
        let p = &r.files["main/binary-amd64/Packages"];
        assert_eq!(p.size, 100);
        assert!(p.sha512.as_deref().unwrap().starts_with("333"));
        assert!(r.files["main/binary-amd64/Packages.xz"].sha512.is_none());
    }

    #[test]
    fn refuses_weak_or_missing_hashes() {
        let weak = "Date: Sat, 10 Feb 2024 10:12:33 UTC\nMD5Sum:\n 0123456789abcdef0123456789abcdef 100 main/binary-amd64/Packages\n";
        assert!(Release::parse(weak).unwrap_err().contains("only MD5/SHA1"));
        assert!(Release::parse("Date: someday\n")
            .unwrap_err()
            .contains("Date"));
        let undated = "Origin: x\nSHA256:\n 1111111111111111111111111111111111111111111111111111111111111111 1 main/binary-amd64/Packages\n";
        assert_eq!(Release::parse(undated).unwrap().date, None);
        let traversal = "Date: Sat, 10 Feb 2024 10:12:33 UTC\nSHA256:\n 1111111111111111111111111111111111111111111111111111111111111111 1 ../../etc/passwd\n";
        assert!(Release::parse(traversal).is_err());
    }

    #[test]
    fn dates() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Sat, 29 Feb 2020 23:59:59 UTC"),
            Some(1583020799)
        );
        assert_eq!(parse_date("29 Feb 2020 23:59:59 +0000"), Some(1583020799));
        assert_eq!(
            parse_date("Sat, 29 Feb 2020 23:59:59 -0130"),
            Some(1583020799 + 5400)
        );
        assert_eq!(parse_date("garbage"), None);
    }

    /// The signed text of a clear-signed file (no check of the signature: the keyring's job).
    fn signed_text(clearsigned: &str) -> String {
        let body = clearsigned
            .split_once("\n\n")
            .map_or("", |(_, body)| body)
            .split("-----BEGIN PGP SIGNATURE-----")
            .next()
            .unwrap_or("");
        body.lines()
            .map(|l| l.strip_prefix("- ").unwrap_or(l))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// Every Release apt fetched on this machine parses: real Debian (and whatever else the
    /// host uses) rather than only the generated ones. Skipped where apt has no lists.
    #[test]
    fn parses_the_real_inrelease_files_apt_keeps() {
        let Ok(dir) = std::fs::read_dir("/var/lib/apt/lists") else {
            return;
        };
        for entry in dir.flatten() {
            let path = entry.path();
            if !path.to_string_lossy().ends_with("_InRelease") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let release = Release::parse(&signed_text(&text))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let date = release.date.expect("a dated Release");
            assert!(date > 1_000_000_000, "{}", path.display());
            if let Some(until) = release.valid_until {
                assert!(until > date, "{}", path.display());
            }
            assert!(!release.files.is_empty(), "{}", path.display());
            for listed in release.files.values() {
                assert_eq!(listed.sha256.len(), 64, "{}", listed.path);
                if let Some(sha512) = &listed.sha512 {
                    assert_eq!(sha512.len(), 128, "{}", listed.path);
                }
            }
            let suite = release.field("Suite").unwrap_or_default();
            assert!(!suite.is_empty(), "{}", path.display());
        }
    }
}
