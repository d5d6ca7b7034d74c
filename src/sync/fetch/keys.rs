//! The source keys that set up downloads, parsed here so the fetch module owns its options:
//! the configuration hands over what it read, and gets [`FetchOptions`] or a message back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::FetchOptions;

/// The keys of a remote source that concern downloading, as written. A remote kind takes
/// them out of its table with [`FetchKeys::take`] and reads its own keys from the rest.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchKeys {
    pub parallel: Option<usize>,
    pub retries: Option<u32>,
    pub bandwidth: Option<String>,
    pub proxy: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub headers: Option<BTreeMap<String, String>>,
    /// PEM root CA certificates trusted for the upstream besides the public web roots: an
    /// upstream whose certificate comes from a private CA (a site's Puavo root CA).
    pub ca_file: Option<PathBuf>,
}

impl FetchKeys {
    /// The key names.
    pub fn names() -> &'static [&'static str] {
        crate::keys::fields_of::<FetchKeys>()
    }

    /// Takes the download keys out of a source's table.
    pub fn take(table: &mut toml::Table) -> Result<FetchKeys, String> {
        crate::keys::read(crate::keys::split_off(table, FetchKeys::names()))
    }

    /// Reads a remote kind's table: the download keys, and the kind's own keys (`T`) from
    /// the rest.
    pub fn read_with<T: serde::de::DeserializeOwned>(
        mut table: toml::Table,
    ) -> Result<(FetchKeys, T), String> {
        let fetch = FetchKeys::take(&mut table)?;
        Ok((fetch, crate::keys::read(table)?))
    }

    /// Every key a remote kind whose own keys are `T` takes.
    pub fn keys_with<T: serde::de::DeserializeOwned>() -> Vec<&'static str> {
        let mut keys = crate::keys::fields_of::<T>().to_vec();
        keys.extend(FetchKeys::names());
        keys
    }

    /// The names of the keys that are set (for "only applies to …" messages).
    pub fn set_names(&self) -> Vec<&'static str> {
        let set = [
            self.parallel.is_some(),
            self.retries.is_some(),
            self.bandwidth.is_some(),
            self.proxy.is_some(),
            self.username.is_some(),
            self.password.is_some(),
            self.headers.is_some(),
            self.ca_file.is_some(),
        ];
        FetchKeys::names()
            .iter()
            .zip(set)
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect()
    }

    /// The options these keys ask for. An error names the key and what is wrong with it, for
    /// the configuration to put after the source it is about.
    pub fn into_options(self) -> Result<FetchOptions, String> {
        let mut fetch = FetchOptions::default();
        if let Some(parallel) = self.parallel {
            if parallel == 0 {
                return Err("key `parallel`: must be at least 1".into());
            }
            fetch.parallel = parallel;
        }
        if let Some(retries) = self.retries {
            fetch.retries = retries;
        }
        if let Some(rate) = &self.bandwidth {
            fetch.bandwidth =
                Some(crate::units::parse_rate(rate).map_err(|m| format!("key `bandwidth`: {m}"))?);
        }
        fetch.proxy = self.proxy;
        match (self.username, self.password) {
            (Some(user), Some(password)) => fetch.basic_auth = Some((user, password)),
            (None, None) => {}
            (Some(_), None) => {
                return Err("key `password`: missing (it goes with `username`)".into())
            }
            (None, Some(_)) => {
                return Err("key `username`: missing (it goes with `password`)".into())
            }
        }
        fetch.headers = self.headers.unwrap_or_default().into_iter().collect();
        if let Some(path) = &self.ca_file {
            fetch.root_certificates = read_ca_file(path)?;
        }
        Ok(fetch)
    }
}

/// The certificates of a PEM file, read when the configuration is, so a wrong path or a
/// file with no certificate is reported with the key. The ACME client reads its `ca_file`
/// with it too.
pub(crate) fn read_ca_file(path: &std::path::Path) -> Result<Vec<reqwest::Certificate>, String> {
    let what = |why: String| format!("key `ca_file`: {}: {why}", path.display());
    let pem = std::fs::read(path).map_err(|e| what(e.to_string()))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem)
        .map_err(|e| what(format!("not PEM certificates: {e}")))?;
    if certificates.is_empty() {
        return Err(what("no PEM certificate in it".into()));
    }
    Ok(certificates)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(toml: &str) -> Result<FetchOptions, String> {
        let keys: FetchKeys = toml::from_str(toml).map_err(|e| e.to_string())?;
        keys.into_options()
    }

    #[test]
    fn keys_become_options() {
        let options = keys(
            "parallel = 4\nretries = 2\nbandwidth = \"10M\"\nproxy = \"http://p:3128\"\n\
             username = \"u\"\npassword = \"p\"\nheaders = { X-A = \"1\" }",
        )
        .unwrap();
        assert_eq!(options.parallel, 4);
        assert_eq!(options.retries, 2);
        assert_eq!(options.bandwidth, Some(10 * 1024 * 1024));
        assert_eq!(options.proxy.as_deref(), Some("http://p:3128"));
        assert_eq!(options.basic_auth, Some(("u".into(), "p".into())));
        assert_eq!(options.headers, [("X-A".to_string(), "1".to_string())]);
        let defaults = keys("").unwrap();
        assert_eq!(defaults.parallel, FetchOptions::default().parallel);
    }

    #[test]
    fn bad_keys_are_named() {
        assert_eq!(
            keys("parallel = 0").unwrap_err(),
            "key `parallel`: must be at least 1"
        );
        assert_eq!(
            keys("username = \"u\"").unwrap_err(),
            "key `password`: missing (it goes with `username`)"
        );
        assert_eq!(
            keys("password = \"p\"").unwrap_err(),
            "key `username`: missing (it goes with `password`)"
        );
        assert_eq!(
            keys("bandwidth = \"fast\"").unwrap_err(),
            "key `bandwidth`: `fast` is not a rate like 500k, 10M or 1G (bytes per second)"
        );
        assert_eq!(
            keys("bandwidth = \"0\"").unwrap_err(),
            "key `bandwidth`: must be more than 0"
        );
        assert_eq!(crate::units::parse_rate(" 500k ").unwrap(), 500 * 1024);
    }

    #[test]
    fn a_ca_file_must_hold_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let error = keys(&format!("ca_file = \"{}\"", missing.display())).unwrap_err();
        assert!(
            error.starts_with(&format!("key `ca_file`: {}: ", missing.display())),
            "{error}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let error = keys(&format!("ca_file = \"{}\"", empty.display())).unwrap_err();
        assert!(error.starts_with("key `ca_file`: "), "{error}");
        let ca = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["ca.example".into()]).unwrap();
        std::fs::write(&ca, cert.cert.pem()).unwrap();
        let options = keys(&format!("ca_file = \"{}\"", ca.display())).unwrap();
        assert_eq!(options.root_certificates.len(), 1);
        assert!(keys("").unwrap().root_certificates.is_empty());
    }
}
