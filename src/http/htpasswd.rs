//! Apache-style htpasswd files: `user:hash` lines, verified without leaking which users exist.
//!
//! Accepted hashes: bcrypt (`$2y$`, `$2b$`, `$2a$`), SHA-crypt (`$5$`, `$6$`) and Apache MD5
//! (`$apr1$`). Plain-text, `{SHA}` and crypt(3) DES entries are refused with a warning naming
//! the file and line: they are either no protection at all or broken in seconds, and accepting
//! them silently would give a false sense of safety.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::apr1::Apr1;

/// A hash that takes as much work as a real one, for users that do not exist. Its password is
/// unknown and its result is never used.
const DUMMY_BCRYPT: &str = "$2b$10$wVEHXsYMmVrCDt.hcJ6kyuBPLPNrZ3hwZ7i9TEJaWQoCEKh0G.bwW";

#[derive(Debug, thiserror::Error)]
pub enum HtpasswdError {
    // `error`, not `source`: the message already carries it, once.
    #[error("cannot read htpasswd file {file}: {error}")]
    Read {
        file: PathBuf,
        error: std::io::Error,
    },
}

/// One user's stored hash.
#[derive(Debug, Clone)]
enum Hash {
    Bcrypt(String),
    Sha256(String),
    Sha512(String),
    Apr1(Apr1),
}

impl Hash {
    fn parse(text: &str) -> Result<Hash, &'static str> {
        if ["$2y$", "$2b$", "$2a$"].iter().any(|p| text.starts_with(p)) {
            // The crate parses cost and salt at verify time; check the shape now (without a
            // slow hashing run) so a broken line is reported at load, not as a wrong password.
            return if well_formed_bcrypt(text) {
                Ok(Hash::Bcrypt(text.to_string()))
            } else {
                Err("malformed bcrypt hash")
            };
        }
        if text.starts_with("$5$") {
            return well_formed_sha(text, 43).map(|_| Hash::Sha256(text.into()));
        }
        if text.starts_with("$6$") {
            return well_formed_sha(text, 86).map(|_| Hash::Sha512(text.into()));
        }
        if text.starts_with("$apr1$") {
            return Apr1::parse(text)
                .map(Hash::Apr1)
                .ok_or("malformed $apr1$ hash");
        }
        if text.starts_with("{SHA}") {
            return Err("unsalted {SHA} hashes are refused (use bcrypt: htpasswd -B)");
        }
        if text.starts_with('$') {
            return Err("unknown hash scheme (use bcrypt: htpasswd -B)");
        }
        Err("plain-text or crypt(3) DES entry refused (use bcrypt: htpasswd -B)")
    }

    fn verify(&self, password: &[u8]) -> bool {
        match self {
            Hash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            Hash::Sha256(hash) => std::str::from_utf8(password)
                .is_ok_and(|p| sha_crypt::sha256_check(p, hash).is_ok()),
            Hash::Sha512(hash) => std::str::from_utf8(password)
                .is_ok_and(|p| sha_crypt::sha512_check(p, hash).is_ok()),
            Hash::Apr1(apr1) => apr1.verify(password),
        }
    }
}

/// `$2y$CC$` then 53 characters of bcrypt's base-64 (22 of salt, 31 of hash).
fn well_formed_bcrypt(text: &str) -> bool {
    let bytes = text.as_bytes();
    let cost = std::str::from_utf8(bytes.get(4..6).unwrap_or_default())
        .ok()
        .and_then(|c| c.parse::<u32>().ok());
    bytes.len() == 60
        && cost.is_some_and(|c| (4..=31).contains(&c))
        && bytes[6] == b'$'
        && bytes[7..]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/')
}

/// `$5$` / `$6$`, an optional `rounds=N$`, a salt of up to 16 characters, then `hash_len`
/// characters of crypt's base-64 (43 for SHA-256, 86 for SHA-512). Checked by shape, without a
/// hashing run, so loading a large file stays fast.
fn well_formed_sha(text: &str, hash_len: usize) -> Result<(), &'static str> {
    let crypt64 = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/')
    };
    let fields: Vec<&str> = text.split('$').skip(2).collect();
    let (rounds, salt, hash) = match fields.as_slice() {
        [rounds, salt, hash] => (Some(*rounds), *salt, *hash),
        [salt, hash] => (None, *salt, *hash),
        _ => return Err("malformed SHA-crypt hash"),
    };
    let rounds_ok = rounds.is_none_or(|r| {
        r.strip_prefix("rounds=")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| (1000..=999_999_999).contains(&n))
    });
    if rounds_ok && salt.len() <= 16 && hash.len() == hash_len && crypt64(hash) {
        Ok(())
    } else {
        Err("malformed SHA-crypt hash")
    }
}

/// A refused line, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub line: usize,
    pub reason: String,
}

/// The users of one htpasswd file.
#[derive(Debug, Clone)]
pub struct Htpasswd {
    users: HashMap<String, Hash>,
    /// Verified for unknown users, so they cost what a known user with a wrong password costs.
    dummy: Hash,
}

impl Htpasswd {
    /// Reads `file`. Lines that cannot be used are returned as [`Refused`], not errors: one bad
    /// line must not lock every other user out.
    pub fn load(file: &Path) -> Result<(Htpasswd, Vec<Refused>), HtpasswdError> {
        let text = std::fs::read_to_string(file).map_err(|error| HtpasswdError::Read {
            file: file.to_path_buf(),
            error,
        })?;
        Ok(Htpasswd::parse(&text))
    }

    pub fn parse(text: &str) -> (Htpasswd, Vec<Refused>) {
        let mut users = HashMap::new();
        let mut refused = Vec::new();
        let mut dummy = None;
        for (index, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let mut refuse = |reason: &str| {
                refused.push(Refused {
                    line: index + 1,
                    reason: reason.to_string(),
                })
            };
            let Some((user, hash)) = line.split_once(':') else {
                refuse("not `user:hash`");
                continue;
            };
            if user.is_empty() {
                refuse("empty user name");
                continue;
            }
            match Hash::parse(hash) {
                Ok(hash) => {
                    if users.contains_key(user) {
                        refuse("user listed twice; the first line counts");
                        continue;
                    }
                    // The first usable entry stands in for unknown users: same scheme, same cost.
                    dummy.get_or_insert_with(|| hash.clone());
                    users.insert(user.to_string(), hash);
                }
                Err(reason) => refuse(reason),
            }
        }
        let dummy = dummy.unwrap_or_else(|| Hash::Bcrypt(DUMMY_BCRYPT.into()));
        (Htpasswd { users, dummy }, refused)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `user` exists and `password` is theirs. Slow by design (bcrypt): call it on the
    /// blocking pool. An unknown user costs one verification too, so timing does not tell
    /// whether a user exists.
    pub fn verify(&self, user: &str, password: &[u8]) -> bool {
        match self.users.get(user) {
            Some(hash) => hash.verify(password),
            None => {
                let _ = self.dummy.verify(password);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_accepted_scheme_verifies() {
        let bcrypt = bcrypt::hash("pw-b", 4).unwrap();
        let text = format!(
            "# comment\n\nbob:{bcrypt}\nsha5:$5$abc$qsg6EHbUzHQzF1POlD7zUwBINSELQxypPaeDcZe6vH0\nsha6:$6$abc$IdWKNKTJEb8LxY7CGg8YBXlvtfZzFw7Mp/r6niK9YB2mdvgY..TKjv1T..8RadRt2qvUHYRLr/TsVArtr91iR1\napr:$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0\n"
        );
        let (file, refused) = Htpasswd::parse(&text);
        assert!(refused.is_empty(), "{refused:?}");
        assert_eq!(file.len(), 4);
        assert!(file.verify("bob", b"pw-b"));
        assert!(!file.verify("bob", b"pw-x"));
        assert!(file.verify("sha5", b"secret"));
        assert!(file.verify("sha6", b"secret"));
        assert!(!file.verify("sha6", b"Secret"));
        assert!(file.verify("apr", b"secret"));
        assert!(!file.verify("nobody", b"secret"));
        // `$2y$` (PHP, Apache) is the same algorithm as `$2b$`.
        let y = bcrypt.replacen("$2b$", "$2y$", 1);
        let (file, _) = Htpasswd::parse(&format!("y:{y}\n"));
        assert!(file.verify("y", b"pw-b"));
    }

    #[test]
    fn weak_and_broken_lines_are_refused_by_line() {
        let text = "plain:secret\ndes:abJnggxhB/yWI\nsha:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\nmd5:$1$abc$xyz\nshort:$6$abc$IdWKNK\nnocolon\n:$apr1$ab$S8K6Sgp3W8c9Jb6LxgywZ.\nbad:$2y$99$x\nok:$apr1$ab$S8K6Sgp3W8c9Jb6LxgywZ.\nok:$apr1$saltsalt$LrttParrLPdxvgutaSXWJ0\n";
        let (file, refused) = Htpasswd::parse(text);
        let lines: Vec<usize> = refused.iter().map(|r| r.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5, 6, 7, 8, 10]);
        assert!(refused[0].reason.contains("plain-text"));
        assert_eq!(file.len(), 1);
        assert!(file.verify("ok", b""));
        assert!(!file.verify("plain", b"secret"));
    }
}
