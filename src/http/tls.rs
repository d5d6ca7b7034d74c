//! HTTPS: rustls with ALPN h2 and http/1.1, and a certificate that can be replaced while
//! running (SIGHUP), so a renewed certificate needs no restart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate chain {path}: {message}")]
    Cert { path: PathBuf, message: String },
    #[error("cannot read private key {path}: {message}")]
    Key { path: PathBuf, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The certificate in use, swappable at any time.
pub struct ReloadableCert {
    config: TlsConfig,
    current: ArcSwap<CertifiedKey>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("cert", &self.config.cert)
            .finish()
    }
}

impl ReloadableCert {
    pub fn load(config: &TlsConfig) -> Result<ReloadableCert, TlsError> {
        Ok(ReloadableCert {
            current: ArcSwap::from_pointee(load_key(&config.cert, &config.key)?),
            config: config.clone(),
        })
    }

    /// Reads the files again; on error the old certificate stays in use.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = load_key(&self.config.cert, &self.config.key)?;
        self.current.store(Arc::new(key));
        Ok(())
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn load_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError::Cert {
            path: cert.to_path_buf(),
            message: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Cert {
            path: cert.to_path_buf(),
            message: "no PEM certificate found".into(),
        });
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: e.to_string(),
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&private).map_err(|e| TlsError::Key {
            path: key.to_path_buf(),
            message: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| TlsError::Key {
        path: key.to_path_buf(),
        message: format!("does not match the certificate: {e}"),
    })?;
    Ok(certified)
}

/// A rustls server configuration that offers h2 and http/1.1.
pub fn server_config(cert: Arc<ReloadableCert>) -> Result<rustls::ServerConfig, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
