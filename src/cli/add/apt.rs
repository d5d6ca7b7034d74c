//! `mirrorbox add apt "deb URL SUITE COMPONENT…"`: the line as the apt source's
//! `repository` parser reads it, its `[arch=… signed-by=…]` options turned into the source's
//! architectures and keys, the key of a well-known repository found on this host, and a
//! refusal when the suite is already mirrored at the mount (one Release per suite and mount:
//! the components belong in the existing source's line).

use std::path::PathBuf;

use anyhow::{anyhow, bail};

use super::derive::{id_of, UrlParts};
use super::{keyrings, Planned};
use crate::cli::AddCommon;
use crate::config::edit::NewTable;
use crate::config::{normalize_mount, Config, SourceKind};
use crate::sync::apt::repository::Repository;

/// A sources.list line taken apart: the line without its options, and the options that the
/// source's own keys say.
#[derive(Debug, PartialEq, Eq)]
pub struct AptLine {
    pub line: String,
    pub architectures: Vec<String>,
    pub signed_by: Vec<PathBuf>,
}

impl AptLine {
    pub fn parse(text: &str) -> Result<AptLine, String> {
        let mut words: Vec<&str> = text.split_whitespace().collect();
        let mut architectures = Vec::new();
        let mut signed_by = Vec::new();
        if words.get(1).is_some_and(|w| w.starts_with('[')) {
            let end = words
                .iter()
                .position(|w| w.ends_with(']'))
                .ok_or("the `[` of the line's options is not closed by `]`")?;
            let options: Vec<&str> = words[1..=end]
                .iter()
                .map(|w| w.trim_start_matches('[').trim_end_matches(']'))
                .filter(|w| !w.is_empty())
                .collect();
            for option in options {
                let (key, value) = option.split_once('=').unwrap_or((option, ""));
                let values = value.split(',').filter(|v| !v.is_empty());
                match key {
                    "arch" => architectures.extend(values.map(str::to_string)),
                    "signed-by" => {
                        for value in values {
                            if !value.starts_with('/') {
                                return Err(format!(
                                    "signed-by=`{value}` is not a key file: give the keyring file with --key"
                                ));
                            }
                            signed_by.push(PathBuf::from(value));
                        }
                    }
                    // Client-side options (lang=, target=, trusted=…) say nothing about
                    // what the mirror fetches.
                    _ => {}
                }
            }
            words.drain(1..=end);
        }
        let line = words.join(" ");
        Repository::parse(&line)?;
        Ok(AptLine {
            line,
            architectures,
            signed_by,
        })
    }
}

pub fn plan(
    text: &str,
    keys: Vec<PathBuf>,
    arch: Vec<String>,
    common: &AddCommon,
    current: &Config,
) -> anyhow::Result<Planned> {
    let parsed = AptLine::parse(text).map_err(|m| anyhow!("the line `{text}`: {m}"))?;
    let repository = Repository::parse(&parsed.line).map_err(|m| anyhow!(m))?;
    let url = UrlParts::parse(&repository.url).map_err(|m| anyhow!(m))?;
    let id = common
        .id
        .clone()
        .unwrap_or_else(|| id_of(&[&url.last_name(), &repository.suite]));
    let mount = common.mount.clone().unwrap_or_else(|| url.mount());
    refuse_same_release(&repository, &mount, current)?;

    let (keys, keys_comment) = resolve_keys(keys, parsed.signed_by, &url, &repository)?;
    let architectures = if arch.is_empty() {
        parsed.architectures
    } else {
        arch
    };

    let mut table = NewTable::new("an upstream apt repository (added by `mirrorbox add apt`)");
    table.set("id", id.as_str(), Some("`mirrorbox sync <id>` syncs it"));
    table.set("kind", "apt", None);
    table.set(
        "mount",
        mount.as_str(),
        Some("the upstream's path: clients swap the host"),
    );
    table.set("repository", parsed.line.as_str(), None);
    if !architectures.is_empty() {
        table.set_list("architectures", &architectures, None);
    }
    let keys: Vec<String> = keys.iter().map(|k| k.display().to_string()).collect();
    table.set_list("keys", &keys, keys_comment.as_deref());
    table.set(
        "every",
        common.every.as_deref().unwrap_or("6h"),
        Some("sync interval while `mirrorbox serve` runs"),
    );
    Ok(Planned { id, mount, table })
}

/// The keys: `--key`, else the line's signed-by, else the well-known repository's keyring
/// found on this host. Files are checked to exist and named by absolute paths, so the
/// configuration works from any folder. Also a comment on where a found keyring came from.
fn resolve_keys(
    given: Vec<PathBuf>,
    signed_by: Vec<PathBuf>,
    url: &UrlParts,
    repository: &Repository,
) -> anyhow::Result<(Vec<PathBuf>, Option<String>)> {
    let (keys, comment) = if !given.is_empty() {
        (given, None)
    } else if !signed_by.is_empty() {
        (signed_by, Some("from the line's signed-by".to_string()))
    } else {
        let Some(known) = keyrings::known(&url.host, &repository.suite) else {
            bail!(
                "{} is not a repository whose key mirrorbox knows: give the keyring or key file that signs it with --key FILE (the file its sources.list line names in signed-by)",
                url.host
            );
        };
        let found = keyrings::find(&known, &keyrings::search_folders()).map_err(|m| anyhow!(m))?;
        (
            vec![found],
            Some(format!("the {} archive keyring", known.publisher)),
        )
    };
    let mut absolute = Vec::new();
    for key in keys {
        if !key.is_file() {
            bail!(
                "the key file {} does not exist (or is not a file)",
                key.display()
            );
        }
        absolute.push(std::path::absolute(&key).unwrap_or(key));
    }
    // A file that is no keyring would fail every sync: refused now, while the user is here.
    crate::sync::apt::keyring::Keyring::load(&absolute).map_err(|e| anyhow!("keys: {e}"))?;
    Ok((absolute, comment))
}

/// Refuses a second source for a Release directory a source already publishes (the same
/// suite at the same mount, or the same flat directory), pointing at the existing source's
/// line with the new components added.
fn refuse_same_release(
    repository: &Repository,
    mount: &str,
    current: &Config,
) -> anyhow::Result<()> {
    let Ok(mount) = normalize_mount(mount) else {
        // The loader names the problem with the mount when the edited file is checked.
        return Ok(());
    };
    let dir = format!("{mount}/{}", repository.dist_dir());
    for source in &current.sources {
        let SourceKind::Apt(apt) = &source.kind else {
            continue;
        };
        if format!("{}/{}", source.mount, apt.repository.dist_dir()) != dir {
            continue;
        }
        let existing = &apt.repository;
        let mut components = existing.components.clone();
        for component in &repository.components {
            if !components.contains(component) {
                components.push(component.clone());
            }
        }
        let kind = match (
            existing.binary || repository.binary,
            existing.source || repository.source,
        ) {
            (true, true) => "deb+deb-src",
            (false, true) => "deb-src",
            _ => "deb",
        };
        let merged = format!(
            "{kind} {} {} {}",
            existing.url.trim_end_matches('/'),
            existing.suite,
            components.join(" ")
        );
        let what = if existing.is_flat() {
            format!("the flat repository {}", existing.suite)
        } else {
            format!("suite {}", existing.suite)
        };
        bail!(
            "source `{}` in {} already mirrors {what} at mount `{}`: one Release per suite and mount, so add the components to its `repository` line instead:\n  repository = \"{}\"\n(or give this one another --mount)",
            source.id,
            current.file.display(),
            if source.mount.is_empty() { "/" } else { &source.mount },
            merged.trim_end()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_in_the_line_become_keys() {
        let line = AptLine::parse(
            "deb [arch=amd64,arm64 signed-by=/usr/share/keyrings/x.gpg lang=fi] https://h/debian bookworm main contrib",
        )
        .unwrap();
        assert_eq!(line.line, "deb https://h/debian bookworm main contrib");
        assert_eq!(line.architectures, ["amd64", "arm64"]);
        assert_eq!(line.signed_by, [PathBuf::from("/usr/share/keyrings/x.gpg")]);

        let spaced = AptLine::parse("deb-src [ arch=i386 ] http://h/x ./").unwrap();
        assert_eq!(spaced.line, "deb-src http://h/x ./");
        assert_eq!(spaced.architectures, ["i386"]);

        assert!(AptLine::parse("deb [arch=amd64 http://h/x ./").is_err());
        let fingerprint = AptLine::parse("deb [signed-by=ABCDEF] http://h/x a b").unwrap_err();
        assert!(fingerprint.contains("--key"), "{fingerprint}");
        assert!(AptLine::parse("deb http://h/x bookworm").is_err());
    }
}
