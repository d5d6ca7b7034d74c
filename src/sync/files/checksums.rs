//! Checksum files published beside upstream files (`SHA256SUMS`, `SHA512SUMS`, `<file>.sha256`)
//! and the expectations they set: a file a checksum file names must have that hash after the
//! download, or the sync fails. This is what catches a truncated ISO or an upstream caught
//! half-way through an update before it reaches the mirror's users.

use std::collections::HashMap;

/// The hash a checksum line gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    /// By the length of the hex digest: the only reliable sign, since `*SUMS` files do not
    /// say which hash they hold inside.
    fn from_hex_len(len: usize) -> Option<Algorithm> {
        match len {
            64 => Some(Algorithm::Sha256),
            128 => Some(Algorithm::Sha512),
            _ => None,
        }
    }
}

/// One line of a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sum {
    /// As written, relative to the checksum file's directory (`./` removed).
    pub name: String,
    pub algorithm: Algorithm,
    /// Lowercase hex.
    pub hex: String,
}

/// Whether a file name is a checksum file this sync reads (`SHA256SUMS`, `SHA512SUMS`,
/// `*.sha256`, `*.sha512`, also lowercase and with `sum` suffixes).
pub fn is_checksum_file(name: &str) -> bool {
    let lower = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
    matches!(lower.as_str(), "sha256sums" | "sha512sums")
        || [".sha256", ".sha512", ".sha256sum", ".sha512sum"]
            .iter()
            .any(|suffix| lower.len() > suffix.len() && lower.ends_with(suffix))
}

/// Parses a checksum file named `file_name`. GNU lines (`<hex>  <name>`, `<hex> *<name>`,
/// `\`-escaped names), BSD lines (`SHA256 (<name>) = <hex>`) and, in a `<file>.sha256`, a
/// lone `<hex>` that stands for `<file>`. MD5 and SHA-1 lines are skipped (too weak to
/// prove anything); lines that fit no form are errors, so a garbled file is not taken as
/// an empty one.
pub fn parse(file_name: &str, text: &str) -> Result<Vec<Sum>, String> {
    let base = file_name.rsplit('/').next().unwrap_or(file_name);
    let lone_target = [".sha256sum", ".sha512sum", ".sha256", ".sha512"]
        .iter()
        .find_map(|suffix| {
            let lower = base.to_ascii_lowercase();
            lower
                .ends_with(suffix)
                .then(|| base[..base.len() - suffix.len()].to_string())
        });
    let mut sums = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || {
            format!(
                "line {}: `{}` is not a checksum line",
                number + 1,
                line.trim()
            )
        };
        let (hex, name) = if let Some(rest) = line
            .strip_prefix("SHA256 (")
            .or_else(|| line.strip_prefix("SHA512 ("))
        {
            let (name, hex) = rest.rsplit_once(") = ").ok_or_else(bad)?;
            (hex.trim().to_string(), name.to_string())
        } else {
            let (escaped, line) = match line.strip_prefix('\\') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (hex, name) = match line.split_once(' ') {
                Some((hex, rest)) => {
                    let name = rest
                        .strip_prefix(' ')
                        .or_else(|| rest.strip_prefix('*'))
                        .unwrap_or(rest);
                    (hex.to_string(), name.to_string())
                }
                None => match &lone_target {
                    Some(target) => (line.trim().to_string(), target.clone()),
                    None => return Err(bad()),
                },
            };
            let name = if escaped { unescape(&name) } else { name };
            (hex, name)
        };
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let Some(algorithm) = Algorithm::from_hex_len(hex.len()) else {
            if hex.len() == 32 || hex.len() == 40 {
                continue; // MD5, SHA-1
            }
            return Err(bad());
        };
        let name = name.strip_prefix("./").unwrap_or(&name).to_string();
        if name.is_empty() {
            return Err(bad());
        }
        sums.push(Sum {
            name,
            algorithm,
            hex: hex.to_ascii_lowercase(),
        });
    }
    Ok(sums)
}

/// GNU coreutils escapes `\` and newline in names when the line starts with `\`.
fn unescape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A hash a file must have, and which file said so (for the error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub hex: String,
    pub from: String,
}

/// Every hash the sync's checksum files (and an `aplinfo.dat`) give, by published path.
#[derive(Debug, Default)]
pub struct Expectations {
    by_path: HashMap<String, [Option<Expected>; 2]>,
}

impl Expectations {
    /// Records that `path` must have `hex` under `algorithm`, as `from` says. Two sources that
    /// disagree are an error: one of them is wrong, and the mirror cannot tell which.
    pub fn add(
        &mut self,
        path: &str,
        algorithm: Algorithm,
        hex: &str,
        from: &str,
    ) -> Result<(), String> {
        let slot = &mut self.by_path.entry(path.to_string()).or_default()[algorithm as usize];
        match slot {
            Some(existing) if !existing.hex.eq_ignore_ascii_case(hex) => Err(format!(
                "{path}: {} says {} {}, but {} says {}",
                existing.from,
                algorithm.name(),
                existing.hex,
                from,
                hex
            )),
            Some(_) => Ok(()),
            None => {
                *slot = Some(Expected {
                    hex: hex.to_ascii_lowercase(),
                    from: from.to_string(),
                });
                Ok(())
            }
        }
    }

    /// Adds every line of a parsed checksum file found at `file` (relative path).
    pub fn add_file(&mut self, file: &str, sums: &[Sum]) -> Result<(), String> {
        let dir = file.rsplit_once('/').map(|(dir, _)| dir);
        for sum in sums {
            let path = match dir {
                Some(dir) => format!("{dir}/{}", sum.name),
                None => sum.name.clone(),
            };
            self.add(&path, sum.algorithm, &sum.hex, file)?;
        }
        Ok(())
    }

    pub fn get(&self, path: &str, algorithm: Algorithm) -> Option<&Expected> {
        self.by_path.get(path)?[algorithm as usize].as_ref()
    }

    /// Paths that have an expectation (to find the ones a walk did not see).
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.by_path.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "a665a45920422f9d417e4867efdc4fb8a04a1f3fff1fa07e998e86f7f7a27ae3";

    #[test]
    fn recognizes_checksum_files() {
        for name in [
            "SHA256SUMS",
            "iso/SHA512SUMS",
            "sha256sums",
            "x.iso.sha256",
            "x.iso.SHA512",
            "x.sha256sum",
        ] {
            assert!(is_checksum_file(name), "{name}");
        }
        for name in [
            "SHA256SUMS.asc",
            "SHA256SUMS.gpg",
            "x.iso",
            ".sha256",
            "MD5SUMS",
        ] {
            assert!(!is_checksum_file(name), "{name}");
        }
    }

    #[test]
    fn parses_gnu_bsd_and_lone_forms() {
        let long = "0".repeat(128);
        let text = format!(
            "# comment\n{A}  proxmox-ve_8.2-1.iso\r\n{A} *binary.iso\n{A}  ./dotted.iso\n\\{A}  back\\\\slash\nSHA256 (bsd.iso) = {A}\n{long}  big.iso\nd41d8cd98f00b204e9800998ecf8427e  md5.iso\n{A}  name with  two spaces\n\n"
        );
        let sums = parse("SHA256SUMS", &text).unwrap();
        let names: Vec<_> = sums.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "proxmox-ve_8.2-1.iso",
                "binary.iso",
                "dotted.iso",
                "back\\slash",
                "bsd.iso",
                "big.iso",
                "name with  two spaces"
            ]
        );
        assert_eq!(sums[5].algorithm, Algorithm::Sha512);
        assert_eq!(sums[0].hex, A);

        let lone = parse("iso/x.iso.sha256", &format!("{}\n", A.to_uppercase())).unwrap();
        assert_eq!(lone[0].name, "x.iso");
        assert_eq!(lone[0].hex, A);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("SHA256SUMS", "<html>Not Found</html>\n").is_err());
        assert!(parse("SHA256SUMS", &format!("{A}\n")).is_err());
        assert!(parse("SHA256SUMS", "abc  x\n").is_err());
        assert!(parse("SHA256SUMS", &format!("{A}  \n")).is_err());
    }

    #[test]
    fn expectations_are_relative_to_the_file_and_must_agree() {
        let mut expectations = Expectations::default();
        let sums = parse("SHA256SUMS", &format!("{A}  x.iso\n")).unwrap();
        expectations.add_file("iso/SHA256SUMS", &sums).unwrap();
        assert_eq!(
            expectations
                .get("iso/x.iso", Algorithm::Sha256)
                .unwrap()
                .from,
            "iso/SHA256SUMS"
        );
        assert!(expectations.get("iso/x.iso", Algorithm::Sha512).is_none());
        expectations.add_file("iso/SHA256SUMS", &sums).unwrap();
        let other = "b".repeat(64);
        let message = expectations
            .add("iso/x.iso", Algorithm::Sha256, &other, "iso/x.iso.sha256")
            .unwrap_err();
        assert!(
            message.contains("iso/SHA256SUMS") && message.contains(&other),
            "{message}"
        );
    }
}
