//! A throwaway GnuPG home with one signing key, made by the real `gpg`.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Gpg {
    pub home: tempfile::TempDir,
    /// The public key, binary (`.gpg`) and armored (`.asc`).
    pub public: PathBuf,
    pub public_armored: PathBuf,
}

impl Gpg {
    /// Generates an ed25519 or RSA key (`algo` as `gpg --quick-gen-key` takes it).
    pub fn new(name: &str, algo: &str) -> Gpg {
        let home = tempfile::tempdir().unwrap();
        let gpg = Gpg {
            public: home.path().join("public.gpg"),
            public_armored: home.path().join("public.asc"),
            home,
        };
        gpg.run(&[
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            &format!("{name} <{name}@example.org>"),
            algo,
            "sign",
            "never",
        ]);
        let out = gpg.command().args(["--export", name]).output().unwrap();
        assert!(!out.stdout.is_empty(), "gpg exported no key");
        std::fs::write(&gpg.public, &out.stdout).unwrap();
        let out = gpg
            .command()
            .args(["--armor", "--export", name])
            .output()
            .unwrap();
        std::fs::write(&gpg.public_armored, &out.stdout).unwrap();
        gpg
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
        self.run(&[
            "--batch",
            "--yes",
            "--digest-algo",
            "SHA512",
            "--clearsign",
            "-o",
            inrelease.to_str().unwrap(),
            release.to_str().unwrap(),
        ]);
        self.run(&[
            "--batch",
            "--yes",
            "--digest-algo",
            "SHA512",
            "--armor",
            "--detach-sign",
            "-o",
            detached.to_str().unwrap(),
            release.to_str().unwrap(),
        ]);
    }
}
