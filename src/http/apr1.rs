//! Apache's `$apr1$` password hashes: MD5-crypt (the FreeBSD `$1$` scheme) with Apache's magic
//! string. No maintained pure-Rust crate covers it, and `htpasswd -m` (the default of older
//! Apache tools) still writes it, so it is done here with the RustCrypto `md-5` digest.
//!
//! MD5-crypt is weak by today's standards; it is accepted because existing htpasswd files use
//! it, and `bcrypt` should be preferred for new entries (the README says so).

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

const MAGIC: &[u8] = b"$apr1$";
const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A parsed `$apr1$salt$hash` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apr1 {
    salt: Vec<u8>,
    /// The 22 characters after the salt.
    hash: Vec<u8>,
}

impl Apr1 {
    /// `None` if `text` is not a well-formed `$apr1$` hash.
    pub fn parse(text: &str) -> Option<Apr1> {
        let rest = text.as_bytes().strip_prefix(MAGIC)?;
        let cut = rest.iter().position(|&b| b == b'$')?;
        let (salt, hash) = (&rest[..cut], &rest[cut + 1..]);
        if salt.is_empty() || salt.len() > 8 || hash.len() != 22 {
            return None;
        }
        if !hash.iter().all(|b| ALPHABET.contains(b)) {
            return None;
        }
        Some(Apr1 {
            salt: salt.to_vec(),
            hash: hash.to_vec(),
        })
    }

    /// Whether `password` hashes to this entry (constant-time compare of the result).
    pub fn verify(&self, password: &[u8]) -> bool {
        let computed = hash(password, &self.salt);
        computed.ct_eq(&self.hash).into()
    }
}

/// The 22-character MD5-crypt hash of `password` with `salt` and the `$apr1$` magic.
fn hash(password: &[u8], salt: &[u8]) -> Vec<u8> {
    let alternate = Md5::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut context = Md5::new()
        .chain_update(password)
        .chain_update(MAGIC)
        .chain_update(salt);
    let mut left = password.len();
    while left > 0 {
        let take = left.min(16);
        context.update(&alternate[..take]);
        left -= take;
    }
    let mut bits = password.len();
    while bits > 0 {
        if bits & 1 == 1 {
            context.update([0u8]);
        } else {
            context.update(&password[..1]);
        }
        bits >>= 1;
    }
    let mut digest = context.finalize();
    // 1000 rounds, to make it "slow" (by 1990s measures).
    for round in 0..1000 {
        let mut step = Md5::new();
        if round % 2 == 1 {
            step.update(password);
        } else {
            step.update(digest);
        }
        if round % 3 != 0 {
            step.update(salt);
        }
        if round % 7 != 0 {
            step.update(password);
        }
        if round % 2 == 1 {
            step.update(digest);
        } else {
            step.update(password);
        }
        digest = step.finalize();
    }
    let d = digest;
    let mut out = Vec::with_capacity(22);
    for (a, b, c) in [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)] {
        encode(
            (u32::from(d[a]) << 16) | (u32::from(d[b]) << 8) | u32::from(d[c]),
            4,
            &mut out,
        );
    }
    encode(u32::from(d[11]), 2, &mut out);
    out
}

/// crypt(3)'s base-64: `count` characters, least significant six bits first.
fn encode(mut value: u32, count: usize, out: &mut Vec<u8>) {
    for _ in 0..count {
        out.push(ALPHABET[(value & 0x3f) as usize]);
        value >>= 6;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Made with `openssl passwd -apr1 -salt SALT PASSWORD`.
    #[test]
    fn matches_openssl() {
        for (entry, password) in [
            ("$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0", "secret"),
            ("$apr1$ab$S8K6Sgp3W8c9Jb6LxgywZ.", ""),
            (
                "$apr1$Zx9$pUZzl7fVB/3FM0IEHWGxv.",
                "a much longer password than sixteen bytes",
            ),
        ] {
            let parsed = Apr1::parse(entry).expect(entry);
            assert!(parsed.verify(password.as_bytes()), "{entry}");
            assert!(!parsed.verify(b"wrong"), "{entry}");
        }
    }

    #[test]
    fn malformed_entries_are_refused() {
        for entry in [
            "$apr1$",
            "$apr1$salt",
            "$apr1$$LrttParrLPdxvgutaSXWJ0",
            "$apr1$saltsaltx$LrttParrLPdxvgutaSXWJ0",
            "$apr1$saltsalt$LrttParrLPdxvgutaSXWJ",
            "$apr1$saltsalt$LrttParrLPdxvgutaSXW!0",
            "$1$saltsalt$LrttParrLPdxvgutaSXWJ0",
        ] {
            assert_eq!(Apr1::parse(entry), None, "{entry}");
        }
    }
}
