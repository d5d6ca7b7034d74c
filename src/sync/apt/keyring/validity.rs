//! Whether a configured key could make a signature at the time the signature says it was made:
//! the key's own self-signatures (verified, never taken on trust) give its expiry and its
//! revocations. A signing subkey also needs a valid binding by its primary key, with the
//! subkey's back-signature, and inherits the primary key's expiry and revocation.

use pgp::composed::{SignedPublicKey, SignedPublicSubKey};
use pgp::packet::{RevocationCode, Signature, SignatureType};
use pgp::types::{KeyDetails, Tag};

use crate::time::http_date;

/// The primary key of `cert` was valid (not expired, not revoked) at `when` (Unix seconds).
pub fn check_primary(cert: &SignedPublicKey, when: u32) -> Result<(), String> {
    let primary = &cert.primary_key;
    let name = key_name(primary, "key");
    let mut self_signatures: Vec<&Signature> = cert
        .details
        .users
        .iter()
        .flat_map(|user| {
            user.signatures.iter().filter(|s| {
                is_self_certification(s)
                    && s.verify_certification(primary, Tag::UserId, &user.id)
                        .is_ok()
            })
        })
        .collect();
    self_signatures.extend(
        cert.details
            .direct_signatures
            .iter()
            .filter(|s| s.typ() == Some(SignatureType::Key) && s.verify_key(primary).is_ok()),
    );
    let binding = binding_at(&self_signatures, when)
        .ok_or_else(|| format!("{name} carries no valid self-signature"))?;
    check_expiry(primary.created_at().as_secs(), binding, when, &name)?;
    let revocations =
        cert.details.revocation_signatures.iter().filter(|s| {
            s.typ() == Some(SignatureType::KeyRevocation) && s.verify_key(primary).is_ok()
        });
    check_revocations(revocations, when, &name)
}

/// The subkey `sub` of `cert` was bound for signing and valid at `when`; the primary key's
/// own validity is checked by `check_primary`.
pub fn check_subkey(
    cert: &SignedPublicKey,
    sub: &SignedPublicSubKey,
    when: u32,
) -> Result<(), String> {
    let primary = &cert.primary_key;
    let name = key_name(&sub.key, "subkey");
    let bindings: Vec<&Signature> = sub
        .signatures
        .iter()
        .filter(|s| {
            s.typ() == Some(SignatureType::SubkeyBinding)
                && s.verify_subkey_binding(primary, &sub.key).is_ok()
        })
        .collect();
    let binding = binding_at(&bindings, when)
        .ok_or_else(|| format!("{name} is not bound to its primary key by a valid signature"))?;
    if !binding.key_flags().sign() {
        return Err(format!("{name} is not certified for signing"));
    }
    // The back-signature proves the subkey's owner agreed to the binding.
    let backed = binding
        .embedded_signature()
        .is_some_and(|back| back.verify_primary_key_binding(&sub.key, primary).is_ok());
    if !backed {
        return Err(format!(
            "{name} lacks a valid back-signature to its primary key"
        ));
    }
    check_expiry(sub.key.created_at().as_secs(), binding, when, &name)?;
    let revocations = sub.signatures.iter().filter(|s| {
        s.typ() == Some(SignatureType::SubkeyRevocation)
            && s.verify_subkey_binding(primary, &sub.key).is_ok()
    });
    check_revocations(revocations, when, &name)
}

/// "key 0x<fingerprint>" (or "subkey …"), for messages.
pub fn key_name(key: &impl KeyDetails, what: &str) -> String {
    format!(
        "{what} 0x{}",
        hex::encode_upper(key.fingerprint().as_bytes())
    )
}

fn is_self_certification(signature: &Signature) -> bool {
    matches!(
        signature.typ(),
        Some(
            SignatureType::CertGeneric
                | SignatureType::CertPersona
                | SignatureType::CertCasual
                | SignatureType::CertPositive
        )
    )
}

/// The self-signature in force at `when`: the newest made by then. When every one is newer
/// (a key whose old self-signatures were replaced, checked against an older signature), the
/// newest one stands in: its expiry still counts from the key's creation.
fn binding_at<'s>(signatures: &[&'s Signature], when: u32) -> Option<&'s Signature> {
    let made = |s: &Signature| s.created().map(|t| t.as_secs()).unwrap_or(0);
    signatures
        .iter()
        .filter(|s| made(s) <= when)
        .max_by_key(|s| made(s))
        .or_else(|| signatures.iter().max_by_key(|s| made(s)))
        .copied()
}

fn check_expiry(created: u32, binding: &Signature, when: u32, name: &str) -> Result<(), String> {
    let Some(lifetime) = binding.key_expiration_time().map(|d| d.as_secs()) else {
        return Ok(());
    };
    if lifetime == 0 {
        return Ok(());
    }
    let expires = created as i64 + lifetime as i64;
    if (when as i64) < expires {
        return Ok(());
    }
    Err(format!(
        "{name} expired {}, before the signature was made",
        http_date(expires)
    ))
}

/// Hard revocations (key compromised, or no reason given) void every signature, whenever it
/// says it was made; soft ones (superseded, retired) void signatures made after them.
fn check_revocations<'s>(
    revocations: impl Iterator<Item = &'s Signature>,
    when: u32,
    name: &str,
) -> Result<(), String> {
    for revocation in revocations {
        let made = revocation.created().map(|t| t.as_secs()).unwrap_or(0);
        let (reason, soft) = match revocation.revocation_reason_code() {
            Some(RevocationCode::KeySuperseded) => ("superseded", true),
            Some(RevocationCode::KeyRetired) => ("retired", true),
            Some(RevocationCode::KeyCompromised) => ("compromised", false),
            _ => ("no reason given", false),
        };
        if !soft {
            return Err(format!(
                "{name} is revoked ({reason}, revoked {}; this voids every signature)",
                http_date(made as i64)
            ));
        }
        if made <= when {
            return Err(format!(
                "{name} is revoked ({reason}) since {}, before the signature was made",
                http_date(made as i64)
            ));
        }
    }
    Ok(())
}
