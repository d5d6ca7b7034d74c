//! `mirrorbox init`: a commented starter configuration, so that a new user's next commands
//! are `mirrorbox add`, `sync` and `serve` rather than reading the configuration reference.

use std::path::{Path, PathBuf};

use super::ConfigArg;
use crate::config::edit::{create_new, EditError};
use crate::config::Config;

/// The starter configuration; `@DATA_DIR@` becomes the data folder (a TOML string).
const TEMPLATE: &str = include_str!("init_template.toml");

/// Where `init` writes when no FILE is given: `$MIRRORBOX_CONFIG`, else the system-wide file
/// the other commands fall back to.
fn default_file() -> PathBuf {
    std::env::var_os("MIRRORBOX_CONFIG")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/mirrorbox/mirrorbox.toml"))
}

/// The data folder when none is given: /var/lib/mirrorbox for a system configuration (under
/// /etc), else `data` next to the file, as an absolute path so that commands run from any
/// folder find it.
fn default_data_dir(file: &Path) -> PathBuf {
    if file.starts_with("/etc") {
        return PathBuf::from("/var/lib/mirrorbox");
    }
    let folder = file.parent().unwrap_or(Path::new(""));
    let data = folder.join("data");
    std::path::absolute(&data).unwrap_or(data)
}

/// The starter text for `data_dir`, checked by the real loader.
pub fn starter_text(file: &Path, data_dir: &Path) -> anyhow::Result<String> {
    let quoted = toml_edit::Value::from(data_dir.to_string_lossy().as_ref()).to_string();
    let text = TEMPLATE.replace("@DATA_DIR@", quoted.trim());
    Config::parse(&text, file)?;
    Ok(text)
}

pub fn run(file: Option<PathBuf>, data_dir: Option<PathBuf>) -> anyhow::Result<i32> {
    let file = file.unwrap_or_else(default_file);
    let data_dir = data_dir.unwrap_or_else(|| default_data_dir(&file));
    let text = starter_text(&file, &data_dir)?;
    match create_new(&file, &text) {
        Ok(()) => {}
        Err(e @ EditError::Exists { .. }) => {
            eprintln!("mirrorbox: {e}");
            return Ok(1);
        }
        Err(e) => return Err(e.into()),
    }
    // Name the file in the next commands unless they find it on their own.
    let found = ConfigArg { config: None }.resolve();
    let config = if found == file {
        String::new()
    } else {
        format!(" --config {}", shell_word(&file.to_string_lossy()))
    };
    println!("wrote {} (data in {})", file.display(), data_dir.display());
    println!("next:");
    println!(
        "  mirrorbox add{config} apt \"deb http://deb.debian.org/debian bookworm-updates main\"   # what to mirror (or: add files URL, add dir PATH)"
    );
    println!("  mirrorbox sync{config}                 # fetch it");
    println!("  mirrorbox serve{config}                # serve it at http://127.0.0.1:8080/");
    Ok(0)
}

/// `word` as one shell word: quoted when it holds anything but plain path characters.
pub fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=,@".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_config_loads_with_any_data_dir() {
        for data in [
            "/var/lib/mirrorbox",
            "data",
            "/srv/with \"quotes\" and \\ back",
        ] {
            let text = starter_text(Path::new("m.toml"), Path::new(data)).unwrap();
            let config = Config::parse(&text, Path::new("m.toml")).unwrap();
            assert_eq!(config.data_dir, Path::new(data));
            assert!(config.sources.is_empty());
        }
    }

    #[test]
    fn default_data_dirs() {
        assert_eq!(
            default_data_dir(Path::new("/etc/mirrorbox/mirrorbox.toml")),
            Path::new("/var/lib/mirrorbox")
        );
        assert_eq!(
            default_data_dir(Path::new("/srv/m/mirrorbox.toml")),
            Path::new("/srv/m/data")
        );
        assert!(default_data_dir(Path::new("m.toml")).is_absolute());
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/etc/m.toml"), "/etc/m.toml");
        assert_eq!(shell_word("my file"), "'my file'");
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }
}
