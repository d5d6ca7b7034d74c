//! OpenPGP verification of InRelease (clear-signed) and Release + Release.gpg (detached),
//! against configured keys: binary keyrings (`.gpg`, several certificates concatenated) and
//! armored keys (`.asc`). Any one good signature by a configured key is enough, as for apt.

use std::path::{Path, PathBuf};

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;

/// The keys a source trusts.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    files: Vec<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read key file {0}: {1}")]
    Read(PathBuf, std::io::Error),
    #[error("{0} holds no OpenPGP public key ({1})")]
    NoKey(PathBuf, String),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VerifyError {
    #[error("the signature block cannot be read: {0}")]
    Malformed(String),
    #[error("the file carries no signature")]
    Unsigned,
    #[error(
        "not signed by a configured key: signed by {signers}, configured keys are {configured}"
    )]
    UnknownKey { signers: String, configured: String },
    #[error("bad signature by configured key {0}: the content was changed after signing")]
    BadSignature(String),
}

impl Keyring {
    pub fn load(files: &[PathBuf]) -> Result<Keyring, KeyringError> {
        let mut keys = Vec::new();
        for file in files {
            let bytes = std::fs::read(file).map_err(|e| KeyringError::Read(file.clone(), e))?;
            let found = parse_keys(&bytes).map_err(|e| KeyringError::NoKey(file.clone(), e))?;
            if found.is_empty() {
                return Err(KeyringError::NoKey(file.clone(), "empty".into()));
            }
            keys.extend(found);
        }
        Ok(Keyring {
            keys,
            files: files.to_vec(),
        })
    }

    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Keyring, KeyringError> {
        let keys = parse_keys(bytes).map_err(|e| KeyringError::NoKey(name.to_path_buf(), e))?;
        Ok(Keyring {
            keys,
            files: vec![name.to_path_buf()],
        })
    }

    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Fingerprints of the configured keys (primary keys), for messages.
    pub fn describe(&self) -> String {
        self.keys
            .iter()
            .map(|k| hex::encode_upper(k.fingerprint().as_bytes()))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Verifies a clear-signed InRelease; returns the signed text (what the Release says).
    pub fn verify_clearsigned(&self, text: &str) -> Result<String, VerifyError> {
        let (message, _) = CleartextSignedMessage::from_string(text)
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let signed = message.signed_text();
        self.check(message.signatures(), signed.as_bytes())?;
        // The signed form has CRLF line ends and no final line end; the Release text has LF.
        let mut text = signed.replace("\r\n", "\n");
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }

    /// Verifies `Release` against `Release.gpg` (armored or binary, one or more signatures).
    pub fn verify_detached(&self, content: &[u8], signature: &[u8]) -> Result<(), VerifyError> {
        let signatures: Vec<Signature> = if signature.starts_with(b"-----BEGIN") {
            DetachedSignature::from_armor_many(signature)
                .map_err(|e| VerifyError::Malformed(e.to_string()))?
                .0
                .filter_map(Result::ok)
                .map(|s| s.signature)
                .collect()
        } else {
            DetachedSignature::from_bytes_many(signature)
                .map_err(|e| VerifyError::Malformed(e.to_string()))?
                .filter_map(Result::ok)
                .map(|s| s.signature)
                .collect()
        };
        self.check(&signatures, content)
    }

    fn check(&self, signatures: &[Signature], content: &[u8]) -> Result<(), VerifyError> {
        if signatures.is_empty() {
            return Err(VerifyError::Unsigned);
        }
        let mut bad_by_known = None;
        for signature in signatures {
            for key in &self.keys {
                let primary_ok = signature.verify(&key.primary_key, content).is_ok();
                let subkey_ok = || {
                    key.public_subkeys.iter().any(|sub| {
                        sub.verify_bindings(&key.primary_key).is_ok()
                            && signature.verify(&sub.key, content).is_ok()
                    })
                };
                if primary_ok || subkey_ok() {
                    return Ok(());
                }
                if issued_by(signature, key) {
                    bad_by_known = Some(hex::encode_upper(key.fingerprint().as_bytes()));
                }
            }
        }
        if let Some(fingerprint) = bad_by_known {
            return Err(VerifyError::BadSignature(fingerprint));
        }
        let signers = signatures
            .iter()
            .flat_map(|s| {
                let mut ids: Vec<String> = s
                    .issuer_fingerprint()
                    .iter()
                    .map(|f| hex::encode_upper(f.as_bytes()))
                    .collect();
                if ids.is_empty() {
                    ids = s
                        .issuer_key_id()
                        .iter()
                        .map(|k| hex::encode_upper(k.as_ref()))
                        .collect();
                }
                ids
            })
            .collect::<Vec<_>>()
            .join(", ");
        Err(VerifyError::UnknownKey {
            signers: if signers.is_empty() {
                "an unnamed key".into()
            } else {
                signers
            },
            configured: self.describe(),
        })
    }
}

/// Whether the signature names this key (primary or a subkey) as its issuer.
fn issued_by(signature: &Signature, key: &SignedPublicKey) -> bool {
    let mut ids = vec![key.primary_key.legacy_key_id()];
    ids.extend(key.public_subkeys.iter().map(|s| s.key.legacy_key_id()));
    let mut prints = vec![key.primary_key.fingerprint()];
    prints.extend(key.public_subkeys.iter().map(|s| s.key.fingerprint()));
    signature.issuer_key_id().iter().any(|id| ids.contains(id))
        || signature
            .issuer_fingerprint()
            .iter()
            .any(|f| prints.contains(f))
}

fn parse_keys(bytes: &[u8]) -> Result<Vec<SignedPublicKey>, String> {
    let text_start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if bytes[text_start..].starts_with(b"-----BEGIN") {
        let (keys, _) =
            SignedPublicKey::from_armor_many(&bytes[text_start..]).map_err(|e| e.to_string())?;
        keys.collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())
    } else {
        let keys = SignedPublicKey::from_bytes_many(bytes).map_err(|e| e.to_string())?;
        // A keyring may hold things we cannot read (old v3 keys): keep the readable ones.
        Ok(keys.filter_map(Result::ok).collect())
    }
}
