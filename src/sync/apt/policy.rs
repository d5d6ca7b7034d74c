//! The signature policy: which signatures over a Release are strong enough to trust, the rules
//! apt's `sqv` and proxmox-offline-mirror apply, and the named relaxations (`weak_crypto`) an
//! operator can grant one source.

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
