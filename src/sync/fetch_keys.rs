//! The download keys every remote kind takes (`parallel`, `retries`, `bandwidth`, `proxy`,
//! `username`, `password`, `headers`), read once here into [`FetchOptions`].

use std::collections::BTreeMap;

use serde::Deserialize;

use super::fetch::FetchOptions;

/// The keys as written; [`FetchKeys::into_options`] validates them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FetchKeys {
    parallel: Option<usize>,
    retries: Option<u32>,
    bandwidth: Option<String>,
    proxy: Option<String>,
    username: Option<String>,
    password: Option<String>,
    headers: Option<BTreeMap<String, String>>,
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
        ];
        FetchKeys::names()
            .iter()
            .zip(set)
            .filter(|(_, set)| *set)
            .map(|(name, _)| *name)
            .collect()
    }

    /// Validates the keys into download settings.
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
        Ok(fetch)
    }
}
