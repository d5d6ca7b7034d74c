//! Puavo image file names: `<prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img`.
//!
//! One parser for every place that reads them: grouping images into series and naming their
//! rdiffs (which need the parts) and the HTTP cache policy (which only asks whether a name
//! carries a build date, since such an image never changes once published).

/// The date part with the dashes around it: `-YYYY-MM-DD-HHMMSS-` (`d` is any ASCII digit).
const DATED: &[u8; 19] = b"-dddd-dd-dd-dddddd-";

/// The parts of an image file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageName {
    pub prefix: String,
    /// `YYYY-MM-DD-HHMMSS`
    pub date: String,
    pub suffix: String,
}

impl ImageName {
    /// Parses `<prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img` (see [`parse`]).
    pub fn parse(file: &str) -> Option<ImageName> {
        parse(file)
    }

    /// The series this image belongs to when series come from names.
    pub fn series(&self) -> String {
        format!("{}-{}", self.prefix, self.suffix)
    }

    /// The distribution (`bookworm` in `puavo-os-opinsys-bookworm`): names the config file.
    pub fn dist(&self) -> &str {
        self.prefix.rsplit('-').next().unwrap_or(&self.prefix)
    }

    /// The 14-digit version puavo-os writes into meta files.
    pub fn version(&self) -> String {
        self.date.chars().filter(char::is_ascii_digit).collect()
    }
}

/// Parses `<prefix>-YYYY-MM-DD-HHMMSS-<suffix>.img`; the prefix is the shortest non-empty one
/// that works, the suffix may be empty (like puavo-os's
/// `^(.*?)-(\d{4}-\d{2}-\d{2}-\d{6})-(.*?).img$`).
pub fn parse(file: &str) -> Option<ImageName> {
    let stem = file.strip_suffix(".img")?;
    let at = (1..stem.len()).find(|&at| dated_at(stem.as_bytes(), at))?;
    // The 19 bytes at `at` are ASCII, so these are all character boundaries.
    Some(ImageName {
        prefix: stem[..at].to_string(),
        date: stem[at + 1..at + DATED.len() - 1].to_string(),
        suffix: stem[at + DATED.len()..].to_string(),
    })
}

/// Whether `name` is an `.img` whose stem holds `-YYYY-MM-DD-HHMMSS-` anywhere (an empty
/// prefix too): a dated image, whose content never changes under that name.
pub fn is_versioned(name: &str) -> bool {
    name.strip_suffix(".img")
        .is_some_and(|stem| (0..stem.len()).any(|at| dated_at(stem.as_bytes(), at)))
}

/// Whether `-YYYY-MM-DD-HHMMSS-` starts at byte `at` of `stem`.
fn dated_at(stem: &[u8], at: usize) -> bool {
    stem.get(at..at + DATED.len()).is_some_and(|part| {
        part.iter().zip(DATED).all(|(c, p)| match p {
            b'd' => c.is_ascii_digit(),
            _ => c == p,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_their_parts() {
        /// (prefix, date, suffix) if the name parses.
        type Parts = Option<(&'static str, &'static str, &'static str)>;
        // name, its parts, whether it counts as versioned
        let table: &[(&str, Parts, bool)] = &[
            (
                "puavo-os-opinsys-bookworm-2024-05-10-123456-amd64.img",
                Some(("puavo-os-opinsys-bookworm", "2024-05-10-123456", "amd64")),
                true,
            ),
            (
                "x-2024-05-10-123456-.img",
                Some(("x", "2024-05-10-123456", "")),
                true,
            ),
            // The shortest prefix wins.
            (
                "a-2024-01-01-000000-b-2025-01-01-000000-c.img",
                Some(("a", "2024-01-01-000000", "b-2025-01-01-000000-c")),
                true,
            ),
            // Only an empty prefix: dated, but not a name that makes a series.
            ("-2024-05-10-123456-amd64.img", None, true),
            ("2024-05-10-123456-amd64.img", None, false),
            ("x-2024-05-10-12345-amd64.img", None, false),
            ("x-2024-05-10-1234567-amd64.img", None, false),
            ("x-2024-5-10-123456-amd64.img", None, false),
            ("x-2024-05-10-123456.img", None, false),
            ("x-2024-05-10-123456-amd64.img.part", None, false),
            ("x-2024-05-10-123456-amd64.iso", None, false),
            ("x-2024-05-1ä-123456-amd64.img", None, false),
            (
                "é-2024-05-10-123456-ü.img",
                Some(("é", "2024-05-10-123456", "ü")),
                true,
            ),
            ("a-1234-12-12-12345é-b.img", None, false),
            ("latest.img", None, false),
            ("notes.txt", None, false),
            (".img", None, false),
            ("", None, false),
        ];
        for &(name, parts, versioned) in table {
            let parsed = parse(name);
            let got = parsed
                .as_ref()
                .map(|n| (n.prefix.as_str(), n.date.as_str(), n.suffix.as_str()));
            assert_eq!(got, parts, "{name}");
            assert_eq!(ImageName::parse(name), parsed, "{name}");
            assert_eq!(is_versioned(name), versioned, "{name}");
        }
    }

    #[test]
    fn derived_names() {
        let name =
            parse("puavo-os-opinsys-bookworm-2024-05-10-123456-amd64.img").expect("an image name");
        assert_eq!(name.series(), "puavo-os-opinsys-bookworm-amd64");
        assert_eq!(name.dist(), "bookworm");
        assert_eq!(name.version(), "20240510123456");
        let plain = parse("p-2024-05-10-123456-x.img").expect("an image name");
        assert_eq!(plain.dist(), "p");
    }
}
