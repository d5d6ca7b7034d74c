//! The engine's files under `DATA_DIR/acme/` (mode 700):
//!
//! ```text
//! acme/<directory host[_port]>/account.json              account key and URL (600)
//! acme/<directory host[_port]>/<first domain>/key.pem    certificate key (600)
//! acme/<directory host[_port]>/<first domain>/fullchain.pem
//! ```
//!
//! One folder per ACME directory, so a changed `directory` gets its own account and never
//! serves a certificate of another CA. Whether a stored certificate still fits the
//! configuration is read from the certificate itself (its DNS names must be exactly the
//! configured domains), so there is nothing else to keep in step.
//!
//! Crash safety: each file is written to a temporary name, fsynced, renamed and the folder
//! fsynced. A new pair is first written in full as `key.pem.new` and `fullchain.pem.new`, then
//! the key is renamed into place, then the chain. A kill between the two renames leaves the
//! new key beside the old chain: the reader checks that the key matches the leaf certificate
//! and, if not, completes the swap from `fullchain.pem.new`. A pair that matches neither way
//! is reported and not used (a new order follows), so a key that does not match its
//! certificate is never served.

use std::fs;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::challenge::certified_key;

const ACCOUNT: &str = "account.json";
const KEY: &str = "key.pem";
const CHAIN: &str = "fullchain.pem";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A certificate read back from disk, ready to serve.
pub struct StoredCertificate {
    pub certified: CertifiedKey,
}

/// The folders of one directory URL and one certificate.
#[derive(Debug, Clone)]
pub struct AcmeStore {
    account_dir: PathBuf,
    certificate_dir: PathBuf,
}

impl AcmeStore {
    /// Creates the folders (mode 700) for `directory_url` and the certificate named by
    /// `first_domain`.
    pub fn open(
        data_dir: &Path,
        directory_url: &str,
        first_domain: &str,
    ) -> Result<AcmeStore, StoreError> {
        let account_dir = data_dir.join("acme").join(directory_folder(directory_url));
        let certificate_dir = account_dir.join(first_domain);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&certificate_dir)
            .map_err(io_error(&certificate_dir))?;
        Ok(AcmeStore {
            account_dir,
            certificate_dir,
        })
    }

    pub fn account_file(&self) -> PathBuf {
        self.account_dir.join(ACCOUNT)
    }

    pub fn certificate_dir(&self) -> &Path {
        &self.certificate_dir
    }

    /// The stored account credentials (JSON), `None` before the first account is created.
    pub fn read_account(&self) -> Result<Option<String>, StoreError> {
        let path = self.account_file();
        match fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_error(&path)(e)),
        }
    }

    pub fn write_account(&self, json: &str) -> Result<(), StoreError> {
        write_private(&self.account_file(), json.as_bytes())
    }

    /// Writes a new certificate and its key (see the module doc for the order).
    pub fn write_certificate(&self, chain_pem: &str, key_pem: &str) -> Result<(), StoreError> {
        let key = self.certificate_dir.join(KEY);
        let chain = self.certificate_dir.join(CHAIN);
        let key_new = pending(&key);
        let chain_new = pending(&chain);
        write_private(&key_new, key_pem.as_bytes())?;
        write_private(&chain_new, chain_pem.as_bytes())?;
        fs::rename(&key_new, &key).map_err(io_error(&key))?;
        fs::rename(&chain_new, &chain).map_err(io_error(&chain))?;
        sync_dir(&self.certificate_dir)
    }

    /// The stored certificate if there is one whose key matches it and whose DNS names are
    /// exactly `domains`; `Ok(None)` if there is none or it is for other names; an error if
    /// the files are there but unreadable or damaged (the caller orders anew).
    pub fn read_certificate(
        &self,
        domains: &[String],
    ) -> Result<Option<StoredCertificate>, StoreError> {
        let key = self.certificate_dir.join(KEY);
        let chain = self.certificate_dir.join(CHAIN);
        if !key.exists() && !chain.exists() {
            return Ok(None);
        }
        let certified = match load_pair(&chain, &key) {
            Ok(certified) => certified,
            Err(first) => {
                // Killed between the two renames: the new key is in place, its chain not yet.
                let chain_new = pending(&chain);
                match load_pair(&chain_new, &key) {
                    Ok(certified) => {
                        fs::rename(&chain_new, &chain).map_err(io_error(&chain))?;
                        sync_dir(&self.certificate_dir)?;
                        certified
                    }
                    Err(_) => return Err(first),
                }
            }
        };
        let names = dns_names(&certified.cert[0]).ok_or_else(|| StoreError::Invalid {
            path: chain.clone(),
            message: "cannot read the certificate's names".into(),
        })?;
        if !same_names(&names, domains) {
            tracing::info!(
                target: "mirrorbox::acme",
                file = %chain.display(),
                stored = %names.join(","),
                configured = %domains.join(","),
                "the stored certificate is for other domains; ordering one for the configured domains"
            );
            return Ok(None);
        }
        Ok(Some(StoredCertificate { certified }))
    }
}

/// `acme-v02.api.letsencrypt.org`, or `127.0.0.1_14000` when the URL names a port.
pub fn directory_folder(directory_url: &str) -> String {
    let parsed = reqwest::Url::parse(directory_url).ok();
    let host = parsed
        .as_ref()
        .and_then(|u| u.host_str())
        .unwrap_or("directory")
        .trim_matches(|c| c == '[' || c == ']')
        .replace(':', "_");
    match parsed.and_then(|u| u.port()) {
        Some(port) => format!("{host}_{port}"),
        None => host,
    }
}

fn pending(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

/// The chain and key as rustls serves them, checked to belong together.
fn load_pair(chain: &Path, key: &Path) -> Result<CertifiedKey, StoreError> {
    let invalid = |path: &Path, message: String| StoreError::Invalid {
        path: path.to_path_buf(),
        message,
    };
    let chain_pem = fs::read(chain).map_err(io_error(chain))?;
    let key_pem = fs::read(key).map_err(io_error(key))?;
    let certificates = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(chain, e.to_string()))?;
    if certificates.is_empty() {
        return Err(invalid(chain, "no PEM certificate in it".into()));
    }
    let private =
        PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| invalid(key, e.to_string()))?;
    certified_key(certificates, &private)
        .map_err(|e| invalid(key, format!("does not go with {}: {e}", chain.display())))
}

/// The DNS names of a certificate's subjectAltName, lower case.
pub fn dns_names(der: &[u8]) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let san = cert.subject_alternative_name().ok()??;
    Some(
        san.value
            .general_names
            .iter()
            .filter_map(|name| match name {
                GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
    )
}

fn same_names(names: &[String], domains: &[String]) -> bool {
    let mut a: Vec<String> = names.iter().map(|n| n.to_ascii_lowercase()).collect();
    let mut b: Vec<String> = domains.iter().map(|n| n.to_ascii_lowercase()).collect();
    a.sort();
    a.dedup();
    b.sort();
    b.dedup();
    a == b
}

/// Writes `bytes` to `path` atomically, readable by the owner only (0600 from creation, so no
/// moment exists when another user could read a key).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::atomic_file::replace(path, bytes, 0o600).map_err(io_error(path))
}

fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    crate::atomic_file::sync_dir(dir).map_err(io_error(dir))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
