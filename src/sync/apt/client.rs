//! What a client of the mirror writes: the upstream's sources.list line pointed here, with the
//! options apt needs (`arch=`, `signed-by=`), one-line and deb822. The status page and
//! `mirrorbox sources-list` both print these, so they cannot disagree.

use std::path::{Path, PathBuf};

use super::options::AptOptions;

/// Where clients of the mirror keep key files they were handed (apt's documented place for
/// keyrings the administrator manages).
const CLIENT_KEYRINGS: &str = "/etc/apt/keyrings";

/// A source's client instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientLines {
    /// `deb [arch=… signed-by=…] URL SUITE COMPONENT…` (and `deb-src …`).
    pub one_line: Vec<String>,
    /// The same as one `.sources` stanza.
    pub deb822: String,
    /// What the lines assume (which key file, copies to make).
    pub notes: Vec<String>,
}

/// One key file as a client names it in `signed-by`.
struct ClientKey {
    path: String,
    /// Set when the client cannot use the file at the path the server has it.
    copy_note: Option<String>,
}

impl AptOptions {
    /// The lines for a client that reaches this source at `base_url` (the mount's URL).
    pub fn client_lines(&self, base_url: &str) -> ClientLines {
        let repo = &self.repository;
        // apt takes the URL with or without the slash; the upstream's own lines go without.
        let url = match base_url.trim_end_matches('/') {
            bare if bare.ends_with(':') || bare.is_empty() => base_url,
            bare => bare,
        };
        let components = repo.client_components();
        let architectures: Vec<&str> = self
            .architectures
            .iter()
            .map(String::as_str)
            .filter(|a| *a != "all")
            .collect();
        let keys: Vec<ClientKey> = self.keys.iter().map(|k| client_key(k)).collect();
        let signed_by = keys
            .iter()
            .map(|k| k.path.as_str())
            .collect::<Vec<_>>()
            .join(",");

        let mut options = Vec::new();
        if !architectures.is_empty() {
            options.push(format!("arch={}", architectures.join(",")));
        }
        options.push(format!("signed-by={signed_by}"));
        let mut tail = repo.suite.clone();
        for component in &components {
            tail.push(' ');
            tail.push_str(component);
        }
        let mut types = Vec::new();
        if repo.binary {
            types.push("deb");
        }
        if repo.source {
            types.push("deb-src");
        }
        let one_line = types
            .iter()
            .map(|t| format!("{t} [{}] {url} {tail}", options.join(" ")))
            .collect();

        let mut deb822 = format!(
            "Types: {}\nURIs: {url}\nSuites: {}\n",
            types.join(" "),
            repo.suite
        );
        if !components.is_empty() {
            deb822.push_str(&format!("Components: {}\n", components.join(" ")));
        }
        if !architectures.is_empty() {
            deb822.push_str(&format!("Architectures: {}\n", architectures.join(" ")));
        }
        deb822.push_str(&format!("Signed-By: {signed_by}\n"));

        let mut notes = vec![
            "The Release files are the upstream's, signed by its key: signed-by names the key file clients use for the upstream itself."
                .to_string(),
        ];
        notes.extend(keys.into_iter().filter_map(|k| k.copy_note));
        ClientLines {
            one_line,
            deb822,
            notes,
        }
    }
}

/// How a client names key file `key` in `signed-by`: at the same path when that is absolute
/// and named the way apt wants (binary keyrings `.gpg`, armored keys `.asc`: apt skips other
/// names), else a copy in [`CLIENT_KEYRINGS`] under such a name.
fn client_key(key: &Path) -> ClientKey {
    let wanted = if is_armored(key) { "asc" } else { "gpg" };
    let named_right = key.extension().and_then(|e| e.to_str()) == Some(wanted);
    if key.is_absolute() && named_right {
        return ClientKey {
            path: key.display().to_string(),
            copy_note: None,
        };
    }
    let stem = key
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("mirror");
    let copy: PathBuf = Path::new(CLIENT_KEYRINGS).join(format!("{stem}.{wanted}"));
    let why = if named_right {
        "apt wants an absolute path"
    } else if wanted == "asc" {
        "apt reads armored keys only from files named .asc"
    } else {
        "apt reads binary keyrings only from files named .gpg"
    };
    ClientKey {
        copy_note: Some(format!(
            "Copy the key file {} to the clients as {} ({why}).",
            key.display(),
            copy.display()
        )),
        path: copy.display().to_string(),
    }
}

/// Whether the key file holds an armored key (text starting `-----BEGIN PGP`); a file that
/// cannot be read is judged by its name.
fn is_armored(key: &Path) -> bool {
    use std::io::Read;
    let mut start = [0u8; 64];
    match std::fs::File::open(key).and_then(|mut f| f.read(&mut start)) {
        Ok(n) => String::from_utf8_lossy(&start[..n])
            .trim_start()
            .starts_with("-----BEGIN PGP"),
        Err(_) => key.extension().is_some_and(|e| e == "asc"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::kind::KindOptions;

    fn apt(line: &str, keys: &[&str], architectures: &[&str]) -> AptOptions {
        let mut table = toml::Table::new();
        table.insert("repository".into(), line.into());
        table.insert(
            "keys".into(),
            toml::Value::Array(keys.iter().map(|k| (*k).into()).collect()),
        );
        table.insert(
            "architectures".into(),
            toml::Value::Array(architectures.iter().map(|a| (*a).into()).collect()),
        );
        <AptOptions as KindOptions>::parse(table).expect("valid")
    }

    #[test]
    fn the_upstream_line_pointed_here_with_arch_and_signed_by() {
        let source = apt(
            "deb http://deb.debian.org/debian bookworm-updates main",
            &["/nonexistent/debian-archive-keyring.gpg"],
            &["amd64", "all"],
        );
        let lines = source.client_lines("http://127.0.0.1:8080/debian/");
        assert_eq!(
            lines.one_line,
            ["deb [arch=amd64 signed-by=/nonexistent/debian-archive-keyring.gpg] http://127.0.0.1:8080/debian bookworm-updates main"]
        );
        assert_eq!(
            lines.deb822,
            "Types: deb\nURIs: http://127.0.0.1:8080/debian\nSuites: bookworm-updates\nComponents: main\nArchitectures: amd64\nSigned-By: /nonexistent/debian-archive-keyring.gpg\n"
        );
        assert_eq!(lines.notes.len(), 1, "{:?}", lines.notes);
    }

    #[test]
    fn several_keys_sources_and_flat_repositories() {
        let source = apt(
            "deb+deb-src http://example.org/repo ./",
            &["/k/a.gpg", "/k/b.asc"],
            &["all"],
        );
        let lines = source.client_lines("https://mirror.example/");
        assert_eq!(
            lines.one_line,
            [
                "deb [signed-by=/k/a.gpg,/k/b.asc] https://mirror.example ./",
                "deb-src [signed-by=/k/a.gpg,/k/b.asc] https://mirror.example ./"
            ]
        );
        assert!(!lines.deb822.contains("Components"), "{}", lines.deb822);
        assert!(lines.deb822.starts_with("Types: deb deb-src\n"));
    }

    #[test]
    fn a_key_apt_cannot_read_where_it_is_gets_a_copy() {
        let dir = tempfile::tempdir().unwrap();
        let armored = dir.path().join("release.key");
        std::fs::write(&armored, "-----BEGIN PGP PUBLIC KEY BLOCK-----\n").unwrap();
        let source = apt(
            "deb http://example.org/debian bookworm main",
            &[armored.to_str().unwrap(), "keys/local.gpg"],
            &["arm64"],
        );
        let lines = source.client_lines("http://m/debian/");
        assert_eq!(
            lines.one_line,
            ["deb [arch=arm64 signed-by=/etc/apt/keyrings/release.asc,/etc/apt/keyrings/local.gpg] http://m/debian bookworm main"]
        );
        assert_eq!(lines.notes.len(), 3, "{:?}", lines.notes);
        assert!(lines.notes[1].contains("named .asc"), "{:?}", lines.notes);
        assert!(
            lines.notes[2].contains("absolute path"),
            "{:?}",
            lines.notes
        );
    }
}
