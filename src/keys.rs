//! Reading one part of the configuration into typed keys, with messages an administrator can
//! act on.
//!
//! Each part that takes keys (a source kind, the downloader, the server) owns a serde struct
//! with `deny_unknown_fields`; this module reads a TOML table into it, names the key of a type
//! error and says what was expected in words, and lists a struct's keys (so a key meant for
//! another kind gets "does not apply to …" rather than "unknown").

use serde::de::{DeserializeOwned, Visitor};

/// Reads `table` into `T`; a type error names its key (`key `keep`: expected a whole number…`).
pub fn read<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| key_message(&e))
}

/// A type error inside one table: the key and the expected type in words.
pub fn key_message(error: &serde_path_to_error::Error<toml::de::Error>) -> String {
    let message = humanize(error.inner().message());
    let path = error.path().to_string();
    if path.is_empty() || path == "." {
        message
    } else {
        format!("key `{path}`: {message}")
    }
}

/// serde names Rust types (`expected usize`); an administrator needs words and a hint.
pub fn humanize(message: &str) -> String {
    let mut message = message.trim().to_string();
    for (rust, words) in [
        ("expected usize", "expected a whole number, without quotes"),
        ("expected u64", "expected a whole number, without quotes"),
        ("expected u32", "expected a whole number, without quotes"),
        (
            "expected a boolean",
            "expected true or false, without quotes",
        ),
        ("expected a string", "expected a string in quotes"),
        ("expected a sequence", "expected a list like [\"a\", \"b\"]"),
    ] {
        if let Some(at) = message.find(rust) {
            message.replace_range(at..at + rust.len(), words);
            break;
        }
    }
    message
}

/// Moves the entries of `table` whose key is in `keys` into a table of their own.
pub fn split_off(table: &mut toml::Table, keys: &[&str]) -> toml::Table {
    let mut taken = toml::Table::new();
    for key in keys {
        if let Some(value) = table.remove(*key) {
            taken.insert((*key).to_string(), value);
        }
    }
    taken
}

/// The keys a `#[derive(Deserialize)]` struct takes, as serde's derive lists them (so the list
/// can never disagree with the struct).
pub fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(FieldProbe) {
        Err(Probed(Some(fields))) => fields,
        _ => &[],
    }
}

/// A deserializer that only asks a struct for its field list.
struct FieldProbe;

/// The probe's "error": the fields, when the type was a struct.
#[derive(Debug)]
struct Probed(Option<&'static [&'static str]>);

impl std::fmt::Display for Probed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("field probe")
    }
}

impl std::error::Error for Probed {}

impl serde::de::Error for Probed {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Probed(None)
    }
}

impl<'de> serde::Deserializer<'de> for FieldProbe {
    type Error = Probed;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Probed> {
        Err(Probed(None))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Probed> {
        Err(Probed(Some(fields)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// Refuses a URL with a user name or password in it (`https://user:pass@host/`): URLs show in
/// error messages, logs and on `/.status`, so credentials in them would be shown to anyone.
/// `credential_keys`: whether the source kind takes `username`/`password` keys instead.
pub fn no_userinfo(key: &str, url: &str, credential_keys: bool) -> Result<(), String> {
    let authority = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = authority.split(['/', '?', '#']).next().unwrap_or(authority);
    if !authority.contains('@') {
        return Ok(());
    }
    let shown = crate::secrets::credentials(url);
    Err(if credential_keys {
        format!(
            "key `{key}`: `{shown}` has a user name or password in the URL, which would show in messages and on /.status; put them in the `username` and `password` keys instead"
        )
    } else {
        format!(
            "key `{key}`: `{shown}` has a user name or password in the URL; `{key}` is handed to clients and has no `username`/`password` keys: leave them out"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        one: Option<u32>,
        two: String,
    }

    #[test]
    fn fields_of_a_struct() {
        assert_eq!(fields_of::<Sample>(), ["one", "two"]);
    }

    #[test]
    fn type_errors_name_the_key() {
        let table: toml::Table = toml::from_str("one = \"x\"\ntwo = \"y\"").unwrap();
        let message = read::<Sample>(table).err().unwrap();
        assert!(message.starts_with("key `one`: "), "{message}");
        assert!(message.contains("expected a whole number"), "{message}");
    }

    #[test]
    fn split_off_moves_only_named_keys() {
        let mut table: toml::Table = toml::from_str("one = 1\ntwo = \"y\"").unwrap();
        let taken = split_off(&mut table, &["one", "three"]);
        assert_eq!(taken.len(), 1);
        assert_eq!(table.len(), 1);
    }
}
