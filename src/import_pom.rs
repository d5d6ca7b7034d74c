//! `mirrorbox import-pom`: turns a proxmox-offline-mirror configuration (its section-config
//! file: `mirror: <id>` headers followed by indented `key value` lines, repeated keys for
//! lists) into mirrorbox `apt` sources, so an admin can switch without retyping every mirror.
//!
//! What has no equivalent is said in a comment beside the source instead of dropped silently:
//! `base-dir` (the store is content-addressed), `verify false` (mirrorbox always verifies),
//! `sync false`, subscriptions (enterprise repositories need `username`/`password`), media.

use std::fmt::Write as _;

/// One `mirror:` section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PomMirror {
    pub id: String,
    pub repository: Option<String>,
    pub architectures: Vec<String>,
    pub key_path: Option<String>,
    pub verify: Option<bool>,
    pub sync: Option<bool>,
    pub skip_packages: Vec<String>,
    pub skip_sections: Vec<String>,
    pub ignore_errors: Option<bool>,
    pub base_dir: Option<String>,
    pub use_subscription: Option<String>,
    /// Keys this importer does not know, kept for a comment.
    pub other: Vec<(String, String)>,
}

/// What the file held besides mirrors (reported as comments).
#[derive(Debug, Default)]
pub struct PomConfig {
    pub mirrors: Vec<PomMirror>,
    pub skipped_sections: Vec<String>,
}

/// Parses the section-config text. Errors name the line.
pub fn parse(text: &str) -> Result<PomConfig, String> {
    let mut config = PomConfig::default();
    let mut current: Option<PomMirror> = None;
    let mut in_other = false;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let line = raw.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let indented = line.starts_with(' ') || line.starts_with('\t');
        if !indented {
            let (kind, id) = line
                .split_once(':')
                .ok_or_else(|| format!("line {number}: expected `<type>: <id>`, got `{line}`"))?;
            if let Some(done) = current.take() {
                config.mirrors.push(done);
            }
            let (kind, id) = (kind.trim(), id.trim());
            if id.is_empty() {
                return Err(format!("line {number}: section `{kind}` has no id"));
            }
            if kind == "mirror" {
                current = Some(PomMirror {
                    id: id.to_string(),
                    ..PomMirror::default()
                });
                in_other = false;
            } else {
                config.skipped_sections.push(format!("{kind}: {id}"));
                in_other = true;
            }
            continue;
        }
        if in_other {
            continue;
        }
        let mirror = current
            .as_mut()
            .ok_or_else(|| format!("line {number}: a property outside any section"))?;
        let line = line.trim();
        let (key, value) = match line.split_once(char::is_whitespace) {
            Some((k, v)) => (k, v.trim()),
            None => (line, ""),
        };
        let boolean = |v: &str| match v {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" => Ok(false),
            other => Err(format!(
                "line {number}: `{key}` must be true or false, not `{other}`"
            )),
        };
        let list = |v: &str| -> Vec<String> {
            v.split(|c: char| c == ',' || c.is_whitespace())
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        };
        match key {
            "repository" => mirror.repository = Some(value.to_string()),
            "architectures" => mirror.architectures.extend(list(value)),
            "key-path" => mirror.key_path = Some(value.to_string()),
            "verify" => mirror.verify = Some(boolean(value)?),
            "sync" => mirror.sync = Some(boolean(value)?),
            "ignore-errors" => mirror.ignore_errors = Some(boolean(value)?),
            "skip-packages" => mirror.skip_packages.extend(list(value)),
            "skip-sections" => mirror.skip_sections.extend(list(value)),
            "base-dir" => mirror.base_dir = Some(value.to_string()),
            "use-subscription" => mirror.use_subscription = Some(value.to_string()),
            other => mirror.other.push((other.to_string(), value.to_string())),
        }
    }
    if let Some(done) = current.take() {
        config.mirrors.push(done);
    }
    if config.mirrors.is_empty() {
        return Err("no `mirror:` sections found".into());
    }
    Ok(config)
}

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn quoted_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

/// A mirrorbox source id from a POM id (letters, digits, `_`, `-`).
fn source_id(id: &str) -> String {
    id.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The mount that mirrors the upstream's layout: the repository URL's path (`/debian/pve`),
/// so suites of one upstream share one tree as they do upstream.
fn mount_for(repository: &str, id: &str) -> String {
    let url = repository
        .split_whitespace()
        .find(|w| w.contains("://"))
        .unwrap_or("");
    let path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path.trim_matches('/'))
        .unwrap_or("");
    let clean: Vec<&str> = path
        .split('/')
        .filter(|s| !s.is_empty() && *s != "." && *s != ".." && !s.starts_with('.'))
        .collect();
    if clean.is_empty() {
        format!("/{id}")
    } else {
        format!("/{}", clean.join("/"))
    }
}

/// Renders a complete mirrorbox configuration with one `apt` source per mirror.
pub fn render(config: &PomConfig, data_dir: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# mirrorbox configuration imported from a proxmox-offline-mirror configuration.\n# Review the comments, then: mirrorbox check-config --config <this file>\n"
    );
    let _ = writeln!(out, "data_dir = {}\n", quoted(data_dir));
    let _ = writeln!(out, "[server]\nhttp = [\"0.0.0.0:8080\"]\n");
    for skipped in &config.skipped_sections {
        let _ = writeln!(
            out,
            "# not imported: `{skipped}` (media and subscription keys have no mirrorbox equivalent;\n# clients fetch from this server over HTTP instead of a medium)"
        );
    }
    if !config.skipped_sections.is_empty() {
        out.push('\n');
    }
    for mirror in &config.mirrors {
        let id = source_id(&mirror.id);
        let repository = mirror.repository.clone().unwrap_or_default();
        let _ = writeln!(
            out,
            "[[source]]                              # from `mirror: {}`",
            mirror.id
        );
        let _ = writeln!(out, "id = {}", quoted(&id));
        let _ = writeln!(out, "kind = \"apt\"");
        let _ = writeln!(out, "mount = {}", quoted(&mount_for(&repository, &id)));
        let _ = writeln!(out, "repository = {}", quoted(&repository));
        if !mirror.architectures.is_empty() {
            let _ = writeln!(
                out,
                "architectures = {}",
                quoted_list(&mirror.architectures)
            );
        }
        match &mirror.key_path {
            Some(key) => {
                let _ = writeln!(out, "keys = {}", quoted_list(std::slice::from_ref(key)));
            }
            None => {
                let _ = writeln!(
                    out,
                    "keys = []                               # FIXME: the mirror had no key-path; list the repository's signing keys"
                );
            }
        }
        if !mirror.skip_packages.is_empty() {
            let _ = writeln!(
                out,
                "skip_packages = {}",
                quoted_list(&mirror.skip_packages)
            );
        }
        if !mirror.skip_sections.is_empty() {
            let _ = writeln!(
                out,
                "skip_sections = {}",
                quoted_list(&mirror.skip_sections)
            );
        }
        if let Some(ignore) = mirror.ignore_errors {
            let _ = writeln!(out, "ignore_errors = {ignore}");
        }
        let _ = writeln!(
            out,
            "every = \"2h\"\njitter = \"10m\"\nverify_every = \"7d\"\nkeep = 3"
        );
        if mirror.verify == Some(false) {
            let _ = writeln!(
                out,
                "# was `verify false`: mirrorbox always checks the Release signature against `keys`"
            );
        }
        if mirror.sync == Some(false) {
            let _ = writeln!(
                out,
                "# was `sync false`: mirrorbox always mirrors the package files the indices name"
            );
        }
        if let Some(dir) = &mirror.base_dir {
            let _ = writeln!(
                out,
                "# was `base-dir {dir}`: all sources share mirrorbox's content-addressed store in data_dir"
            );
        }
        if let Some(product) = &mirror.use_subscription {
            let _ = writeln!(
                out,
                "# was `use-subscription {product}`: enterprise repositories need the subscription's\n# credentials: username = \"<subscription key>\", password = \"<server id>\""
            );
        }
        for (key, value) in &mirror.other {
            let _ = writeln!(out, "# not imported: `{key} {value}`");
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "mirror: pve_bookworm\n\tarchitectures amd64\n\tarchitectures all\n\tbase-dir /var/lib/pom\n\tkey-path /etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg\n\trepository deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription\n\tskip-packages *-dbgsym\n\tskip-sections debug\n\tsync true\n\tverify true\n\nmedium: usb\n\tmountpoint /mnt/usb\n\tmirrors pve_bookworm\n\nmirror: debian.security\n\trepository deb http://deb.debian.org/debian-security bookworm-security main\n\tkey-path /k.gpg\n\tverify false\n";

    #[test]
    fn parses_sections_and_lists() {
        let config = parse(SAMPLE).unwrap();
        assert_eq!(config.mirrors.len(), 2);
        let pve = &config.mirrors[0];
        assert_eq!(pve.architectures, vec!["amd64", "all"]);
        assert_eq!(pve.skip_packages, vec!["*-dbgsym"]);
        assert_eq!(pve.verify, Some(true));
        assert_eq!(config.skipped_sections, vec!["medium: usb"]);
        assert!(parse("nothing here\n").is_err());
        assert!(parse("\tkey value\n").is_err());
        assert!(parse("mirror: a\n\tverify maybe\n")
            .unwrap_err()
            .contains("line 2"));
    }

    #[test]
    fn renders_a_valid_config() {
        let text = render(&parse(SAMPLE).unwrap(), "data");
        let config = crate::config::Config::parse(&text, std::path::Path::new("imported.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(config.sources.len(), 2);
        assert_eq!(config.sources[0].mount, "/debian/pve");
        assert_eq!(config.sources[1].id, "debian_security");
        assert_eq!(config.sources[1].mount, "/debian-security");
        assert!(text.contains("was `verify false`"));
    }
}
