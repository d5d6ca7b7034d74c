//! OpenPGP verification of InRelease (clear-signed) and Release + Release.gpg (detached),
//! against configured keys: binary keyrings (`.gpg`, several certificates concatenated) and
//! armored keys (`.asc`). Any one acceptable signature by a configured key is enough, as for
//! apt: good, and allowed by the signature policy (`super::policy`, `judge`, `validity`). When
//! none is, the error lists why each signature was refused.

mod judge;
pub mod packaged;
mod validity;

use std::path::{Path, PathBuf};

use pgp::composed::{CleartextSignedMessage, Deserializable, DetachedSignature, SignedPublicKey};
use pgp::packet::Signature;
use pgp::types::KeyDetails;

use super::policy::{Policy, WeakCrypto};
use judge::Verdict;

/// The keys a source trusts, and the policy its signatures must meet.
pub struct Keyring {
    keys: Vec<SignedPublicKey>,
    files: Vec<PathBuf>,
    /// Digests of the key files' bytes: a revocation or a new subkey in a file changes them
    /// without changing a primary fingerprint.
    material: Vec<String>,
    policy: Policy,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("cannot read key file {}: {}{}", .0.display(), .1, packaged::advice(.0, .1))]
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
    /// No signature was acceptable; one line per refused rule or signature.
    #[error("no acceptable signature by a configured key: {}", .0.join("; "))]
    Refused(Vec<String>),
}

impl Keyring {
    pub fn load(files: &[PathBuf]) -> Result<Keyring, KeyringError> {
        let mut keys = Vec::new();
        let mut material = Vec::new();
        for file in files {
            let bytes = std::fs::read(file).map_err(|e| KeyringError::Read(file.clone(), e))?;
            material.push(digest(&bytes));
            let found = parse_keys(&bytes).map_err(|e| KeyringError::NoKey(file.clone(), e))?;
            if found.is_empty() {
                return Err(KeyringError::NoKey(file.clone(), "empty".into()));
            }
            keys.extend(found);
        }
        Ok(Keyring {
            keys,
            files: files.to_vec(),
            material,
            policy: Policy::default(),
        })
    }

    pub fn from_bytes(bytes: &[u8], name: &Path) -> Result<Keyring, KeyringError> {
        let keys = parse_keys(bytes).map_err(|e| KeyringError::NoKey(name.to_path_buf(), e))?;
        Ok(Keyring {
            keys,
            files: vec![name.to_path_buf()],
            material: vec![digest(bytes)],
            policy: Policy::default(),
        })
    }

    /// The same keys under the default policy relaxed by `weak` (a source's `weak_crypto`).
    pub fn with_weak_crypto(mut self, weak: &WeakCrypto) -> Keyring {
        self.policy = Policy::new(weak);
        self
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

    /// What this keyring trusts, as one line independent of the order of the configured files:
    /// the keys' fingerprints and key material, sorted, and the signature policy. Recorded
    /// with each snapshot, so removing a key, revoking it or tightening the policy makes the
    /// next sync verify the current Release again, even when the upstream did not change.
    pub fn trust(&self) -> String {
        let mut fingerprints: Vec<String> = self
            .keys
            .iter()
            .map(|k| hex::encode_upper(k.fingerprint().as_bytes()))
            .collect();
        fingerprints.sort();
        fingerprints.dedup();
        let mut material = self.material.clone();
        material.sort();
        material.dedup();
        let material = digest(material.join(" ").as_bytes());
        format!(
            "keys [{}] (key files {}); policy {}",
            fingerprints.join(" "),
            &material[..16],
            self.policy.describe()
        )
    }

    /// Verifies a clear-signed InRelease; returns the signed text (what the Release says).
    pub fn verify_clearsigned(&self, text: &str) -> Result<String, VerifyError> {
        let (message, _) = CleartextSignedMessage::from_string(text)
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let signed = message.signed_text();
        self.check(message.signatures(), signed.as_bytes())?;
        Ok(release_text(&signed))
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
        let now = crate::time::unix_now();
        let mut refusals = Vec::new();
        let mut unknown = Vec::new();
        for signature in signatures {
            match judge::judge(signature, &self.keys, &self.policy, content, now) {
                Verdict::Accepted => return Ok(()),
                Verdict::Refused(reasons) => refusals.extend(reasons),
                Verdict::Unknown(signer) => unknown.push(signer),
            }
        }
        if refusals.is_empty() {
            return Err(VerifyError::UnknownKey {
                signers: if unknown.is_empty() {
                    "an unnamed key".into()
                } else {
                    unknown.join(", ")
                },
                configured: self.describe(),
            });
        }
        refusals.extend(
            unknown
                .into_iter()
                .map(|signer| format!("signature by {signer} is not by a configured key")),
        );
        Err(VerifyError::Refused(refusals))
    }
}

fn digest(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(bytes))
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

/// The text of an InRelease this mirror already verified when it stored it, read without
/// judging its signatures again: replay protection compares against its Date even if the
/// policy would refuse that signature today (a key revoked since must not switch the check off).
pub fn verified_earlier(text: &str) -> Option<String> {
    let (message, _) = CleartextSignedMessage::from_string(text).ok()?;
    Some(release_text(&message.signed_text()))
}

/// The signed form has CRLF line ends and no final line end; the Release text has LF.
fn release_text(signed: &str) -> String {
    let mut text = signed.replace("\r\n", "\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}
