//! A throwaway GnuPG home with signing keys, made by the real `gpg`. Besides the everyday key,
//! it makes the weak and aged keys the signature policy refuses: small RSA keys, keys created
//! in the past (`--faked-system-time`) that expire or are revoked afterwards, and signatures
//! with a chosen digest or made at a chosen time.

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Gpg {
    pub home: tempfile::TempDir,
    /// The public key, binary (`.gpg`) and armored (`.asc`).
    pub public: PathBuf,
    pub public_armored: PathBuf,
    name: String,
    signing: RefCell<Signing>,
}

/// How `sign_release` signs: which keys (by user-id name), which digest, at what time.
#[derive(Clone, Debug)]
pub struct Signing {
    /// Names of the keys that sign; each adds one signature (as Debian signs with several).
    pub keys: Vec<String>,
    /// `--digest-algo`.
    pub digest: String,
    /// `--faked-system-time`, in Unix seconds: the signature's creation time.
    pub at: Option<i64>,
}

/// Now, in Unix seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

impl Gpg {
    /// Generates an ed25519 or RSA key (`algo` as `gpg --quick-gen-key` takes it).
    pub fn new(name: &str, algo: &str) -> Gpg {
        Gpg::created_at(name, algo, None)
    }

    /// Generates a key whose creation time is `created` (Unix seconds), or now.
    pub fn created_at(name: &str, algo: &str, created: Option<i64>) -> Gpg {
        let home = tempfile::tempdir().unwrap();
        let gpg = Gpg {
            public: home.path().join("public.gpg"),
            public_armored: home.path().join("public.asc"),
            home,
            name: name.into(),
            signing: RefCell::new(Signing {
                keys: vec![name.into()],
                digest: "SHA512".into(),
                at: None,
            }),
        };
        gpg.generate(name, algo, created);
        gpg.export();
        gpg
    }

    fn generate(&self, name: &str, algo: &str, created: Option<i64>) {
        let user_id = format!("{name} <{name}@example.org>");
        let mut args = faked_time(created);
        args.extend(
            [
                "--batch",
                "--passphrase",
                "",
                "--quick-gen-key",
                &user_id,
                algo,
                "sign",
                "never",
            ]
            .map(String::from),
        );
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// Adds another key to this home; returns its public key file (binary).
    pub fn add_key(&self, name: &str, algo: &str) -> PathBuf {
        self.generate(name, algo, None);
        let file = self.home.path().join(format!("{name}.gpg"));
        std::fs::write(&file, self.exported(name, false)).unwrap();
        file
    }

    /// Rewrites the public key files (after a change to the key).
    fn export(&self) {
        std::fs::write(&self.public, self.exported(&self.name, false)).unwrap();
        std::fs::write(&self.public_armored, self.exported(&self.name, true)).unwrap();
    }

    fn exported(&self, name: &str, armor: bool) -> Vec<u8> {
        let mut command = self.command();
        if armor {
            command.arg("--armor");
        }
        let out = command.args(["--export", name]).output().unwrap();
        assert!(!out.stdout.is_empty(), "gpg exported no key {name}");
        out.stdout
    }

    /// The main key's fingerprint (upper-case hex).
    pub fn fingerprint(&self) -> String {
        self.fingerprints()
            .into_iter()
            .next()
            .expect("gpg lists the key's fingerprint")
    }

    /// The fingerprints of the main key and its subkeys, in gpg's order (primary first).
    fn fingerprints(&self) -> Vec<String> {
        let out = self
            .command()
            .args(["--with-colons", "--list-keys", &self.name])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        text.lines()
            .filter_map(|l| l.strip_prefix("fpr:"))
            .map(|rest| rest.trim_matches(':').to_string())
            .collect()
    }

    /// Gives the main key an expiry by a new self-signature made at `made` (Unix seconds),
    /// expiring `expire` later (`gpg --quick-set-expire` syntax, e.g. `1d`); the public key
    /// files are rewritten.
    pub fn set_expiry(&self, made: i64, expire: &str) {
        let fingerprint = self.fingerprint();
        let mut args = faked_time(Some(made));
        args.extend(["--batch", "--quick-set-expire", &fingerprint, expire].map(String::from));
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.export();
    }

    /// Imports the revocation certificate gpg made with the main key (reason: none given);
    /// the public key files are rewritten and carry the revocation.
    pub fn revoke(&self) {
        let stored = self
            .home
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{}.rev", self.fingerprint()));
        // gpg guards the stored certificate against accidental import with a leading colon.
        let text = std::fs::read_to_string(&stored)
            .unwrap()
            .replace(":-----BEGIN", "-----BEGIN");
        let certificate = self.home.path().join("revocation.asc");
        std::fs::write(&certificate, text).unwrap();
        self.run(&["--batch", "--import", certificate.to_str().unwrap()]);
        self.export();
    }

    /// Adds a signing subkey (ed25519) to the main key, created at `made` (Unix seconds) or
    /// now; returns its fingerprint. The public key files are rewritten.
    pub fn add_signing_subkey(&self, made: Option<i64>) -> String {
        let fingerprint = self.fingerprint();
        let mut args = faked_time(made);
        args.extend(
            [
                "--batch",
                "--passphrase",
                "",
                "--quick-add-key",
                &fingerprint,
                "ed25519",
                "sign",
                "never",
            ]
            .map(String::from),
        );
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.export();
        self.fingerprints().pop().expect("gpg lists the new subkey")
    }

    /// Gives a subkey an expiry, as `set_expiry` does for the main key.
    pub fn set_subkey_expiry(&self, subkey: &str, made: i64, expire: &str) {
        let fingerprint = self.fingerprint();
        let mut args = faked_time(Some(made));
        args.extend(
            [
                "--batch",
                "--quick-set-expire",
                &fingerprint,
                expire,
                subkey,
            ]
            .map(String::from),
        );
        self.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
        self.export();
    }

    /// Revokes the first subkey through gpg's key editor, at `at` (Unix seconds) or now, for
    /// `reason` as gpg's menu numbers it: 1 compromised, 2 superseded, 3 no longer used.
    pub fn revoke_first_subkey(&self, reason: u8, at: Option<i64>) {
        let mut child = self
            .command()
            .args(faked_time(at))
            .args(["--batch", "--yes", "--command-fd", "0", "--edit-key"])
            .arg(self.fingerprint())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        // Select subkey 1, revoke it, give the reason, no description, confirm, save.
        let script = format!("key 1\nrevkey\ny\n{reason}\n\ny\nsave\n");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(script.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "gpg --edit-key revkey: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.export();
    }

    /// How the next `sign_release` signs.
    pub fn set_signing(&self, signing: Signing) {
        *self.signing.borrow_mut() = signing;
    }

    pub fn signing(&self) -> Signing {
        self.signing.borrow().clone()
    }

    fn command(&self) -> Command {
        let mut command = Command::new("gpg");
        command
            .arg("--homedir")
            .arg(self.home.path())
            .arg("--quiet");
        command
    }

    fn run(&self, args: &[&str]) {
        let out = self
            .command()
            .args(args)
            .output()
            .expect("gpg is installed");
        assert!(
            out.status.success(),
            "gpg {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Writes `InRelease` (clear-signed) and `Release.gpg` (detached, armored) beside `release`.
    pub fn sign_release(&self, release: &Path) {
        let dir = release.parent().unwrap();
        let inrelease = dir.join("InRelease");
        let detached = dir.join("Release.gpg");
        let _ = std::fs::remove_file(&inrelease);
        let _ = std::fs::remove_file(&detached);
        let signing = self.signing();
        let mut common = faked_time(signing.at);
        if signing.at.is_some() {
            // Lets gpg sign at a time before the key's creation (a test of that rule).
            common.push("--ignore-time-conflict".into());
        }
        common.extend(["--batch", "--yes", "--digest-algo", &signing.digest].map(String::from));
        for key in &signing.keys {
            common.extend(["--local-user".to_string(), key.clone()]);
        }
        for (mode, out) in [
            (vec!["--clearsign"], &inrelease),
            (vec!["--armor", "--detach-sign"], &detached),
        ] {
            let mut args: Vec<&str> = common.iter().map(String::as_str).collect();
            args.extend(mode);
            args.extend(["-o", out.to_str().unwrap(), release.to_str().unwrap()]);
            self.run(&args);
        }
    }
}

fn faked_time(at: Option<i64>) -> Vec<String> {
    match at {
        Some(at) => vec!["--faked-system-time".into(), format!("{at}!")],
        None => Vec::new(),
    }
}
