//! proxmox-offline-mirror's three section types, typed the way it types them: `mirror:`
//! (one repository), `medium:` (a disk filled for an offline site) and `subscription:` (a
//! key with the server id it is bound to).
//!
//! Values are read as the original reads them: booleans in any case as
//! `true/false/1/0/yes/no/on/off`, list properties as repeated keys with each value one item,
//! `weak-crypto` as a property string (`allow-sha1=1,min-rsa-key-size=1024`). A property the
//! original would refuse twice (a second `verify`) is an error here too.

use super::section::{Property, Section};
use crate::sync::apt::policy::WeakCrypto;

/// One `mirror:` section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PomMirror {
    pub id: String,
    pub repository: Option<String>,
    pub architectures: Vec<String>,
    pub key_path: Option<String>,
    /// Re-hash pool files before re-using them.
    pub verify: Option<bool>,
    /// fsync what is written.
    pub sync: Option<bool>,
    /// Globs, each kept whole.
    pub skip_packages: Vec<String>,
    pub skip_sections: Vec<String>,
    pub ignore_errors: Option<bool>,
    pub base_dir: Option<String>,
    /// The product (`pve`, `pbs`, `pmg`) whose subscription key unlocks the repository.
    pub use_subscription: Option<String>,
    pub weak_crypto: Option<WeakCrypto>,
    /// Properties this importer does not know, kept for a comment.
    pub other: Vec<(String, String)>,
    /// Things worth a comment beside the source (values read differently than written).
    pub notes: Vec<String>,
}

/// One `subscription:` section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PomSubscription {
    pub key: String,
    pub server_id: Option<String>,
    /// `active`, `expired`, … from the last refresh (`info`), if it could be read.
    pub status: Option<String>,
}

impl PomSubscription {
    /// The product a key is for, by its prefix (`pve4b-…` → `pve`), as the original decides.
    pub fn product(&self) -> &str {
        self.key.get(..3).unwrap_or("")
    }
}

/// One `medium:` section.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PomMedium {
    pub id: String,
    pub mountpoint: Option<String>,
    pub mirrors: Vec<String>,
}

/// The whole file.
#[derive(Debug, Default)]
pub struct PomConfig {
    pub mirrors: Vec<PomMirror>,
    pub subscriptions: Vec<PomSubscription>,
    pub media: Vec<PomMedium>,
    /// Sections of a type the original does not have either (`type: id`), for a comment.
    pub unknown_sections: Vec<String>,
}

/// Reads the file's text. Errors name the line.
pub fn parse(text: &str) -> Result<PomConfig, String> {
    let mut config = PomConfig::default();
    for section in super::section::sections(text)? {
        match section.kind.as_str() {
            "mirror" => config.mirrors.push(mirror(&section)?),
            "subscription" => config.subscriptions.push(subscription(&section)?),
            "medium" => config.media.push(medium(&section)?),
            other => config
                .unknown_sections
                .push(format!("{other}: {}", section.id)),
        }
    }
    if config.mirrors.is_empty() {
        return Err("no `mirror:` sections found".into());
    }
    Ok(config)
}

/// A boolean as the original's schema reads one.
pub fn boolean(property: &Property) -> Result<bool, String> {
    match property.value.to_ascii_lowercase().as_str() {
        "1" | "on" | "yes" | "true" => Ok(true),
        "0" | "off" | "no" | "false" => Ok(false),
        other => Err(format!(
            "line {}: `{}` must be a boolean (true/false, 1/0, yes/no, on/off), not `{other}`",
            property.line, property.key
        )),
    }
}

/// Properties that are not lists must appear at most once.
fn once<'a>(section: &'a Section, key: &str) -> Result<Option<&'a Property>, String> {
    match section.all(key).as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        [_, second, ..] => Err(format!(
            "line {}: `{key}` is given twice in `{}: {}`",
            second.line, section.kind, section.id
        )),
    }
}

fn once_bool(section: &Section, key: &str) -> Result<Option<bool>, String> {
    once(section, key)?.map(boolean).transpose()
}

fn once_text(section: &Section, key: &str) -> Result<Option<String>, String> {
    Ok(once(section, key)?.map(|p| p.value.clone()))
}

fn values(section: &Section, key: &str) -> Vec<String> {
    section.all(key).iter().map(|p| p.value.clone()).collect()
}

fn mirror(section: &Section) -> Result<PomMirror, String> {
    let mut mirror = PomMirror {
        id: section.id.clone(),
        repository: once_text(section, "repository")?,
        key_path: once_text(section, "key-path")?,
        verify: once_bool(section, "verify")?,
        sync: once_bool(section, "sync")?,
        ignore_errors: once_bool(section, "ignore-errors")?,
        base_dir: once_text(section, "base-dir")?,
        use_subscription: once_text(section, "use-subscription")?,
        skip_packages: values(section, "skip-packages"),
        skip_sections: values(section, "skip-sections"),
        weak_crypto: once(section, "weak-crypto")?.map(weak_crypto).transpose()?,
        ..PomMirror::default()
    };
    // One architecture per line, as written; a line listing several (`amd64,all`) names no
    // architecture the original could find, and is read here as the list it was meant to be.
    for property in section.all("architectures") {
        let parts: Vec<&str> = property
            .value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect();
        if parts.len() > 1 {
            mirror.notes.push(format!(
                "`architectures {}` read as {} architectures (write one per line)",
                property.value,
                parts.len()
            ));
        }
        mirror
            .architectures
            .extend(parts.iter().map(|s| s.to_string()));
    }
    const KNOWN: [&str; 11] = [
        "repository",
        "architectures",
        "key-path",
        "verify",
        "sync",
        "ignore-errors",
        "base-dir",
        "use-subscription",
        "skip-packages",
        "skip-sections",
        "weak-crypto",
    ];
    for property in &section.properties {
        if !KNOWN.contains(&property.key.as_str()) {
            mirror
                .other
                .push((property.key.clone(), property.value.clone()));
        }
    }
    Ok(mirror)
}

/// `weak-crypto`: a property string `allow-sha1=1,min-rsa-key-size=1024,min-dsa-key-size=…`
/// (values may be double-quoted).
pub fn weak_crypto(property: &Property) -> Result<WeakCrypto, String> {
    let at = |message: String| format!("line {}: `weak-crypto`: {message}", property.line);
    let mut policy = WeakCrypto::default();
    for item in property.value.split(',').filter(|s| !s.trim().is_empty()) {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| at(format!("`{item}` is not `key=value`")))?;
        let value = value.trim().trim_matches('"');
        let bits = || -> Result<Option<u32>, String> {
            value
                .parse::<u32>()
                .map(Some)
                .map_err(|_| at(format!("`{key}` must be a number of bits, not `{value}`")))
        };
        match key.trim() {
            "allow-sha1" => {
                policy.allow_sha1 = boolean(&Property {
                    key: "weak-crypto allow-sha1".into(),
                    value: value.to_string(),
                    line: property.line,
                })?
            }
            "min-rsa-key-size" => policy.min_rsa_bits = bits()?,
            "min-dsa-key-size" => policy.min_dsa_bits = bits()?,
            other => {
                return Err(at(format!(
                    "unknown key `{other}` (allow-sha1, min-rsa-key-size, min-dsa-key-size)"
                )))
            }
        }
    }
    Ok(policy)
}

fn subscription(section: &Section) -> Result<PomSubscription, String> {
    let status = once(section, "info")?.and_then(|p| info_status(&p.value));
    Ok(PomSubscription {
        key: section.id.clone(),
        server_id: once_text(section, "server-id")?,
        status,
    })
}

/// The `status` of a subscription's `info` (base64 of the JSON the shop answered).
fn info_status(info: &str) -> Option<String> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(info.trim())
        .ok()?;
    let json: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    json.get("status")?.as_str().map(str::to_ascii_lowercase)
}

fn medium(section: &Section) -> Result<PomMedium, String> {
    Ok(PomMedium {
        id: section.id.clone(),
        mountpoint: once_text(section, "mountpoint")?,
        mirrors: values(section, "mirrors"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn property(value: &str) -> Property {
        Property {
            key: "verify".into(),
            value: value.into(),
            line: 4,
        }
    }

    #[test]
    fn booleans_as_the_original_reads_them() {
        for yes in ["true", "TRUE", "True", "1", "on", "ON", "yes", "Yes"] {
            assert_eq!(boolean(&property(yes)), Ok(true), "{yes}");
        }
        for no in ["false", "False", "0", "off", "Off", "no", "NO"] {
            assert_eq!(boolean(&property(no)), Ok(false), "{no}");
        }
        assert!(boolean(&property("maybe"))
            .unwrap_err()
            .starts_with("line 4:"));
    }

    #[test]
    fn weak_crypto_property_strings() {
        let mut p = property("allow-sha1=1,min-rsa-key-size=1024");
        assert_eq!(
            weak_crypto(&p).unwrap(),
            WeakCrypto {
                allow_sha1: true,
                min_rsa_bits: Some(1024),
                min_dsa_bits: None
            }
        );
        p.value = "min-dsa-key-size=\"1024\",allow-sha1=off".into();
        assert_eq!(weak_crypto(&p).unwrap().min_dsa_bits, Some(1024));
        p.value = "allow-md5=1".into();
        assert!(weak_crypto(&p)
            .unwrap_err()
            .contains("unknown key `allow-md5`"));
        p.value = "min-rsa-key-size=big".into();
        assert!(weak_crypto(&p).unwrap_err().contains("number of bits"));
    }

    #[test]
    fn a_repeated_single_property_is_refused() {
        let err = parse("mirror: a\n\tverify true\n\tverify false\n").unwrap_err();
        assert_eq!(err, "line 3: `verify` is given twice in `mirror: a`");
    }

    #[test]
    fn subscription_status_comes_from_info() {
        use base64::Engine as _;
        let info = base64::engine::general_purpose::STANDARD
            .encode(br#"{"status":"active","serverid":"x"}"#);
        let text = format!(
            "mirror: m\n\trepository deb http://h/x s c\n\nsubscription: pve4b-0123456789\n\tinfo {info}\n\tserver-id 0123456789ABCDEF0123456789ABCDEF\n"
        );
        let config = parse(&text).unwrap();
        let key = &config.subscriptions[0];
        assert_eq!(key.product(), "pve");
        assert_eq!(key.status.as_deref(), Some("active"));
        assert_eq!(
            key.server_id.as_deref(),
            Some("0123456789ABCDEF0123456789ABCDEF")
        );
    }
}
