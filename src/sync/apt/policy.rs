//! The signature policy: which signatures over a Release are strong enough to trust, the rules
//! apt's `sqv` and proxmox-offline-mirror apply, and the named relaxations (`weak_crypto`) an
//! operator can grant one source. This module holds the rules about algorithms and time; the
//! keyring applies them to each signature and to the key that made it.

use pgp::crypto::hash::HashAlgorithm;
use pgp::types::{KeyDetails, PublicParams};
use serde::Deserialize;

/// Relaxations of the signature policy, each naming the rule it relaxes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WeakCrypto {
    /// Accept SHA-1 signature hashes (MD5 is never accepted).
    #[serde(default)]
    pub allow_sha1: bool,
    /// The smallest RSA key accepted, in bits (default 2048).
    pub min_rsa_bits: Option<u32>,
    /// The smallest DSA key accepted, in bits (default 2048).
    pub min_dsa_bits: Option<u32>,
}

impl WeakCrypto {
    /// The rules this source relaxes, as `check-config` prints them (empty: none).
    pub fn relaxations(&self) -> Vec<String> {
        let mut relaxed = Vec::new();
        if self.allow_sha1 {
            relaxed.push("SHA-1 signatures accepted".to_string());
        }
        for (name, bits) in [("RSA", self.min_rsa_bits), ("DSA", self.min_dsa_bits)] {
            match bits {
                Some(bits) if bits < DEFAULT_MIN_KEY_BITS => {
                    relaxed.push(format!("{name} keys from {bits} bits"))
                }
                _ => {}
            }
        }
        relaxed
    }
}

/// The smallest RSA and DSA keys accepted unless `weak_crypto` says otherwise: what sequoia's
/// standard policy (behind `sqv` and proxmox-offline-mirror) accepts today.
pub const DEFAULT_MIN_KEY_BITS: u32 = 2048;

/// How far ahead of this host's clock a signature's creation time may be: clocks of signing
/// hosts and of this host drift. Sequoia (behind `sqv`) tolerates the same 30 minutes.
pub const CLOCK_SKEW_SECS: u32 = 30 * 60;

/// The rules in force for one source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    allow_sha1: bool,
    min_rsa_bits: u32,
    min_dsa_bits: u32,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy::new(&WeakCrypto::default())
    }
}

impl Policy {
    pub fn new(weak: &WeakCrypto) -> Policy {
        Policy {
            allow_sha1: weak.allow_sha1,
            min_rsa_bits: weak.min_rsa_bits.unwrap_or(DEFAULT_MIN_KEY_BITS),
            min_dsa_bits: weak.min_dsa_bits.unwrap_or(DEFAULT_MIN_KEY_BITS),
        }
    }

    /// The rules in force, as one line: recorded with each snapshot, so a policy tightened
    /// (or relaxed) since makes the next sync judge the current Release again.
    pub fn describe(&self) -> String {
        format!(
            "sha1 {}, rsa >= {}, dsa >= {}",
            if self.allow_sha1 {
                "allowed"
            } else {
                "refused"
            },
            self.min_rsa_bits,
            self.min_dsa_bits
        )
    }

    /// Whether a signature may use this hash; the refusal says which rule, and whether a
    /// `weak_crypto` key relaxes it.
    pub fn check_hash(&self, hash: Option<HashAlgorithm>) -> Result<(), String> {
        match hash {
            Some(HashAlgorithm::Md5) => Err("uses MD5 (never accepted)".into()),
            Some(HashAlgorithm::Sha1) if !self.allow_sha1 => {
                Err("uses SHA-1 (weak_crypto.allow_sha1 relaxes this rule)".into())
            }
            Some(HashAlgorithm::Ripemd160) => Err("uses RIPEMD-160 (never accepted)".into()),
            Some(
                HashAlgorithm::Sha1
                | HashAlgorithm::Sha224
                | HashAlgorithm::Sha256
                | HashAlgorithm::Sha384
                | HashAlgorithm::Sha512
                | HashAlgorithm::Sha3_256
                | HashAlgorithm::Sha3_512,
            ) => Ok(()),
            Some(other) => Err(format!("uses the unknown hash algorithm {other}")),
            None => Err("names no hash algorithm".into()),
        }
    }

    /// Hashes no `weak_crypto` key relaxes.
    pub fn never_accepts(&self, hash: Option<HashAlgorithm>) -> bool {
        self.check_hash(hash).is_err() && hash != Some(HashAlgorithm::Sha1)
    }

    /// Whether a key is large enough; `which` names it in the refusal ("key 0x…").
    pub fn check_key_size(&self, key: &impl KeyDetails, which: &str) -> Result<(), String> {
        let (family, bits, min, relaxed_by) = match key.public_params() {
            PublicParams::RSA(_) => ("RSA", modulus_bits(key), self.min_rsa_bits, "min_rsa_bits"),
            PublicParams::DSA(_) => ("DSA", modulus_bits(key), self.min_dsa_bits, "min_dsa_bits"),
            // Elliptic curves come in fixed, strong sizes.
            _ => return Ok(()),
        };
        match bits {
            Some(bits) if bits >= min => Ok(()),
            Some(bits) => Err(format!(
                "{which} is {family} of {bits} bits, less than {min} (weak_crypto.{relaxed_by} relaxes this rule)"
            )),
            None => Err(format!("{which} is {family} of a size that cannot be read")),
        }
    }
}

/// The size of an RSA modulus or DSA prime, read from the first MPI of the key's public
/// parameters (an MPI starts with its length in bits, two bytes big-endian).
fn modulus_bits(key: &impl KeyDetails) -> Option<u32> {
    use pgp::ser::Serialize;
    let mut bytes = Vec::new();
    key.public_params().to_writer(&mut bytes).ok()?;
    let header: [u8; 2] = bytes.get(..2)?.try_into().ok()?;
    Some(u16::from_be_bytes(header) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_description_changes_with_every_rule_and_only_with_the_effective_ones() {
        let default = Policy::default().describe();
        let explicit = WeakCrypto {
            min_rsa_bits: Some(DEFAULT_MIN_KEY_BITS),
            ..WeakCrypto::default()
        };
        assert_eq!(default, Policy::new(&explicit).describe());
        for weak in [
            WeakCrypto {
                allow_sha1: true,
                ..WeakCrypto::default()
            },
            WeakCrypto {
                min_rsa_bits: Some(1024),
                ..WeakCrypto::default()
            },
            WeakCrypto {
                min_dsa_bits: Some(1024),
                ..WeakCrypto::default()
            },
        ] {
            assert_ne!(default, Policy::new(&weak).describe(), "{weak:?}");
        }
    }

    #[test]
    fn relaxations_name_only_what_is_weaker_than_the_defaults() {
        assert!(WeakCrypto::default().relaxations().is_empty());
        let stricter = WeakCrypto {
            min_rsa_bits: Some(4096),
            ..WeakCrypto::default()
        };
        assert!(stricter.relaxations().is_empty());
        let weak = WeakCrypto {
            allow_sha1: true,
            min_rsa_bits: Some(1024),
            min_dsa_bits: None,
        };
        assert_eq!(
            weak.relaxations(),
            ["SHA-1 signatures accepted", "RSA keys from 1024 bits"]
        );
    }

    #[test]
    fn md5_stays_refused_when_sha1_is_allowed() {
        let policy = Policy::new(&WeakCrypto {
            allow_sha1: true,
            min_rsa_bits: Some(1024),
            min_dsa_bits: Some(1024),
        });
        assert!(policy.check_hash(Some(HashAlgorithm::Sha1)).is_ok());
        let refusal = policy.check_hash(Some(HashAlgorithm::Md5)).unwrap_err();
        assert!(refusal.contains("never accepted"), "{refusal}");
        let strict = Policy::default();
        let refusal = strict.check_hash(Some(HashAlgorithm::Sha1)).unwrap_err();
        assert!(refusal.contains("weak_crypto.allow_sha1"), "{refusal}");
        assert!(strict.check_hash(Some(HashAlgorithm::Sha256)).is_ok());
    }
}
