//! One signature against the configured keys and the policy: is it by a configured key, does
//! it verify, and does it meet every rule (hash, key sizes, times, expiry, revocation)? A
//! refusal names the signing key and the rule, so an operator knows what to fix or relax.

use pgp::composed::{SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{Signature, SignatureType};
use pgp::types::KeyDetails;

use super::validity::{check_primary, check_subkey, key_name};
use crate::sync::apt::policy::{Policy, CLOCK_SKEW_SECS};
use crate::time::http_date;

pub enum Verdict {
    Accepted,
    /// By a configured key but refused: one reason per broken rule.
    Refused(Vec<String>),
    /// Not by a configured key; names the issuer the signature gives.
    Unknown(String),
}

/// Which part of a configured certificate made a signature.
struct Signer<'k> {
    cert: &'k SignedPublicKey,
    subkey: Option<&'k SignedPublicSubKey>,
}

impl Signer<'_> {
    fn key(&self) -> &dyn KeyDetailsDyn {
        match self.subkey {
            Some(sub) => &sub.key,
            None => &self.cert.primary_key,
        }
    }

    /// "signature by key 0x<primary> (subkey 0x<subkey>)".
    fn describe(&self) -> String {
        let primary = key_name(&self.cert.primary_key, "key");
        match self.subkey {
            Some(sub) => format!("signature by {primary} ({})", key_name(&sub.key, "subkey")),
            None => format!("signature by {primary}"),
        }
    }
}

/// The little of `KeyDetails` the judgement needs, object-safe so primary keys and subkeys
/// (different types) go through one path.
trait KeyDetailsDyn {
    fn created_secs(&self) -> u32;
    fn verify(&self, signature: &Signature, content: &[u8]) -> Result<(), String>;
    fn size_check(&self, policy: &Policy, which: &str) -> Result<(), String>;
}

impl<K: KeyDetails + pgp::types::VerifyingKey> KeyDetailsDyn for K {
    fn created_secs(&self) -> u32 {
        self.created_at().as_secs()
    }
    fn verify(&self, signature: &Signature, content: &[u8]) -> Result<(), String> {
        signature.verify(self, content).map_err(|e| e.to_string())
    }
    fn size_check(&self, policy: &Policy, which: &str) -> Result<(), String> {
        policy.check_key_size(self, which)
    }
}

pub fn judge(
    signature: &Signature,
    keys: &[SignedPublicKey],
    policy: &Policy,
    content: &[u8],
    now: i64,
) -> Verdict {
    let candidates = signers(signature, keys);
    let Some(first) = candidates.first() else {
        return Verdict::Unknown(issuer(signature));
    };
    let name = first.describe();
    let hash_rule = policy.check_hash(signature.hash_alg()).err();
    // Hashes never accepted are refused before anything is computed with them.
    if hash_rule.is_some() && policy.never_accepts(signature.hash_alg()) {
        return Verdict::Refused(
            hash_rule
                .into_iter()
                .map(|r| format!("{name} {r}"))
                .collect(),
        );
    }
    let mut failure = String::new();
    let verified = candidates
        .into_iter()
        .find(|c| match c.key().verify(signature, content) {
            Ok(()) => true,
            Err(e) => {
                failure = e;
                false
            }
        });
    let Some(signer) = verified else {
        // A refused hash is reason enough, whatever the check said (the library refuses some
        // weak combinations itself, e.g. SHA-1 with Ed25519).
        if let Some(rule) = hash_rule {
            return Verdict::Refused(vec![format!("{name} {rule}")]);
        }
        return Verdict::Refused(vec![format!(
            "bad signature by configured {}: the content was changed after signing, or the signature is broken ({failure})",
            name.trim_start_matches("signature by ")
        )]);
    };
    let reasons = broken_rules(signature, &signer, policy, now);
    if reasons.is_empty() {
        Verdict::Accepted
    } else {
        Verdict::Refused(reasons)
    }
}

/// Every rule a good signature by `signer` breaks, each a sentence naming the signature.
fn broken_rules(signature: &Signature, signer: &Signer, policy: &Policy, now: i64) -> Vec<String> {
    let name = signer.describe();
    let mut reasons = Vec::new();
    if let Err(rule) = policy.check_hash(signature.hash_alg()) {
        reasons.push(format!("{name} {rule}"));
    }
    if !matches!(
        signature.typ(),
        Some(SignatureType::Binary | SignatureType::Text)
    ) {
        reasons.push(format!("{name} is not a document signature"));
    }
    let Some(made) = signature.created().map(|t| t.as_secs()) else {
        reasons.push(format!("{name} carries no creation time"));
        return reasons;
    };
    if made as i64 > now + CLOCK_SKEW_SECS as i64 {
        reasons.push(format!(
            "{name} was made in the future ({}; this host tolerates clocks {} minutes ahead)",
            http_date(made as i64),
            CLOCK_SKEW_SECS / 60
        ));
    }
    if let Some(lifetime) = signature.signature_expiration_time().map(|d| d.as_secs()) {
        let expires = made as i64 + lifetime as i64;
        if lifetime != 0 && expires <= now {
            reasons.push(format!("{name} expired {}", http_date(expires)));
        }
    }
    if made < signer.key().created_secs() {
        reasons.push(format!(
            "{name} was made {}, before its key was created",
            http_date(made as i64)
        ));
    }
    let primary_name = key_name(&signer.cert.primary_key, "key");
    if let Err(rule) = policy.check_key_size(&signer.cert.primary_key, &primary_name) {
        reasons.push(format!("{name}: {rule}"));
    }
    if let Some(sub) = signer.subkey {
        if let Err(rule) = signer
            .key()
            .size_check(policy, &key_name(&sub.key, "subkey"))
        {
            reasons.push(format!("{name}: {rule}"));
        }
    }
    if let Err(rule) = check_primary(signer.cert, made) {
        reasons.push(format!("{name}: {rule}"));
    }
    if let Some(sub) = signer.subkey {
        if let Err(rule) = check_subkey(signer.cert, sub, made) {
            reasons.push(format!("{name}: {rule}"));
        }
    }
    reasons
}

/// The configured keys (primary or subkey) the signature names as its issuer; every key when
/// it names none (the cryptographic check then finds the one).
fn signers<'k>(signature: &Signature, keys: &'k [SignedPublicKey]) -> Vec<Signer<'k>> {
    let names_none =
        signature.issuer_key_id().is_empty() && signature.issuer_fingerprint().is_empty();
    let named = |key: &dyn Fn() -> (pgp::types::KeyId, pgp::types::Fingerprint)| {
        let (id, fingerprint) = key();
        names_none
            || signature.issuer_key_id().contains(&&id)
            || signature.issuer_fingerprint().contains(&&fingerprint)
    };
    let mut found = Vec::new();
    for cert in keys {
        let primary = &cert.primary_key;
        if named(&|| (primary.legacy_key_id(), primary.fingerprint())) {
            found.push(Signer { cert, subkey: None });
        }
        for sub in &cert.public_subkeys {
            if named(&|| (sub.key.legacy_key_id(), sub.key.fingerprint())) {
                found.push(Signer {
                    cert,
                    subkey: Some(sub),
                });
            }
        }
    }
    found
}

/// The issuer a signature names, for messages: its fingerprint, else its key id.
fn issuer(signature: &Signature) -> String {
    let fingerprints: Vec<String> = signature
        .issuer_fingerprint()
        .iter()
        .map(|f| format!("key 0x{}", hex::encode_upper(f.as_bytes())))
        .collect();
    if !fingerprints.is_empty() {
        return fingerprints.join(", ");
    }
    let ids: Vec<String> = signature
        .issuer_key_id()
        .iter()
        .map(|k| format!("key 0x{}", hex::encode_upper(k.as_ref())))
        .collect();
    if ids.is_empty() {
        "an unnamed key".into()
    } else {
        ids.join(", ")
    }
}
