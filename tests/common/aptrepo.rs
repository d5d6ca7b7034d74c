//! Generated apt repositories for sync tests, made with the real tools: `dpkg-deb` builds the
//! packages, `apt-ftparchive` writes Packages and Release, `gzip`/`xz` compress, `gpg` signs.
//! Debian layout (`pool/<comp>/…`) and Proxmox layout (`dists/<suite>/<comp>/binary-amd64/…`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::gpg::Gpg;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    Debian,
    Proxmox,
}

#[derive(Clone, Debug)]
pub struct Pkg {
    pub name: String,
    pub version: String,
    pub section: String,
    /// Bytes of (incompressible) payload.
    pub size: usize,
}

impl Pkg {
    pub fn new(name: &str, version: &str, size: usize) -> Pkg {
        Pkg {
            name: name.into(),
            version: version.into(),
            section: "utils".into(),
            size,
        }
    }

    pub fn file_name(&self) -> String {
        format!("{}_{}_amd64.deb", self.name, self.version)
    }
}

pub struct AptRepo {
    pub dir: tempfile::TempDir,
    pub gpg: Gpg,
    pub layout: Layout,
}

fn run(command: &mut Command) -> Vec<u8> {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

impl AptRepo {
    pub fn new(layout: Layout) -> AptRepo {
        AptRepo {
            dir: tempfile::tempdir().unwrap(),
            gpg: Gpg::new("archive", "ed25519"),
            layout,
        }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where a package of `suite`/`component` lives, relative to the root.
    pub fn deb_path(&self, suite: &str, component: &str, pkg: &Pkg) -> String {
        match self.layout {
            Layout::Debian => format!(
                "pool/{component}/{}/{}/{}",
                &pkg.name[..1],
                pkg.name,
                pkg.file_name()
            ),
            Layout::Proxmox => {
                format!("dists/{suite}/{component}/binary-amd64/{}", pkg.file_name())
            }
        }
    }

    fn build_deb(&self, target: &Path, pkg: &Pkg) {
        if target.exists() {
            return;
        }
        let work = tempfile::tempdir().unwrap();
        let tree = work.path().join("tree");
        std::fs::create_dir_all(tree.join("DEBIAN")).unwrap();
        std::fs::create_dir_all(tree.join("usr/share").join(&pkg.name)).unwrap();
        std::fs::write(
            tree.join("DEBIAN/control"),
            format!(
                "Package: {}\nVersion: {}\nArchitecture: amd64\nSection: {}\nPriority: optional\nMaintainer: Test <test@example.org>\nDescription: test package {}\n",
                pkg.name, pkg.version, pkg.section, pkg.name
            ),
        )
        .unwrap();
        let seed = pkg
            .name
            .bytes()
            .chain(pkg.version.bytes())
            .fold(7u64, |h, b| h.wrapping_mul(31).wrapping_add(b as u64));
        std::fs::write(
            tree.join("usr/share").join(&pkg.name).join("data.bin"),
            super::pattern(pkg.size, seed),
        )
        .unwrap();
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        run(Command::new("dpkg-deb")
            .args(["--root-owner-group", "-Znone", "--build"])
            .arg(&tree)
            .arg(target));
    }

    /// Builds (or rebuilds) a suite with one component. `by_hash` adds `Acquire-By-Hash: yes`
    /// and the by-hash copies; `date` replaces the Release's Date (RFC 2822) if given.
    pub fn suite(
        &self,
        suite: &str,
        component: &str,
        packages: &[Pkg],
        by_hash: bool,
        date: Option<&str>,
    ) {
        let root = self.root();
        for pkg in packages {
            self.build_deb(&root.join(self.deb_path(suite, component, pkg)), pkg);
        }
        let binary = format!("dists/{suite}/{component}/binary-amd64");
        std::fs::create_dir_all(root.join(&binary)).unwrap();
        let scan = match self.layout {
            Layout::Debian => format!("pool/{component}"),
            Layout::Proxmox => binary.clone(),
        };
        let all = String::from_utf8(run(Command::new("apt-ftparchive")
            .current_dir(root)
            .args(["packages", &scan])))
        .unwrap();
        // Keep the stanzas of this suite's packages (the Debian pool is shared by suites).
        let wanted: Vec<String> = packages.iter().map(|p| p.file_name()).collect();
        let stanzas: Vec<&str> = all
            .split("\n\n")
            .filter(|s| !s.trim().is_empty())
            .filter(|s| wanted.iter().any(|w| s.contains(&format!("/{w}\n"))))
            .collect();
        let packages_text = stanzas
            .iter()
            .map(|s| format!("{}\n", s.trim_end()))
            .collect::<Vec<_>>()
            .join("\n");
        let index = root.join(&binary).join("Packages");
        for ext in ["", ".gz", ".xz"] {
            let _ = std::fs::remove_file(root.join(&binary).join(format!("Packages{ext}")));
        }
        std::fs::write(&index, &packages_text).unwrap();
        run(Command::new("gzip").args(["-9nk"]).arg(&index));
        run(Command::new("xz").args(["-k"]).arg(&index));
        let dist = root.join("dists").join(suite);
        let _ = std::fs::remove_dir_all(dist.join(component).join("binary-amd64/by-hash"));
        for name in ["Release", "InRelease", "Release.gpg"] {
            let _ = std::fs::remove_file(dist.join(name));
        }
        let components: Vec<String> = std::fs::read_dir(&dist)
            .unwrap()
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let release = run(Command::new("apt-ftparchive").current_dir(root).args([
            "-o",
            &format!("APT::FTPArchive::Release::Suite={suite}"),
            "-o",
            &format!("APT::FTPArchive::Release::Codename={suite}"),
            "-o",
            "APT::FTPArchive::Release::Origin=Test",
            "-o",
            "APT::FTPArchive::Release::Label=Test",
            "-o",
            "APT::FTPArchive::Release::Architectures=amd64",
            "-o",
            &format!(
                "APT::FTPArchive::Release::Components={}",
                components.join(" ")
            ),
            "release",
            &format!("dists/{suite}"),
        ]));
        let mut release = String::from_utf8(release).unwrap();
        if let Some(date) = date {
            let start = release.find("Date: ").unwrap();
            let end = start + release[start..].find('\n').unwrap();
            release.replace_range(start..end, &format!("Date: {date}"));
        }
        if by_hash {
            release = release.replacen("Date: ", "Acquire-By-Hash: yes\nDate: ", 1);
            for ext in ["", ".gz", ".xz"] {
                let file = root.join(&binary).join(format!("Packages{ext}"));
                let bytes = std::fs::read(&file).unwrap();
                let dir = root.join(&binary).join("by-hash/SHA256");
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join(super::sha256_hex(&bytes)), bytes).unwrap();
            }
        }
        let release_path = dist.join("Release");
        std::fs::write(&release_path, release).unwrap();
        self.gpg.sign_release(&release_path);
    }

    pub fn key(&self) -> PathBuf {
        self.gpg.public.clone()
    }
}

/// The fields of a Release written by [`AptRepo::sign_dist`].
pub struct ReleaseFields<'a> {
    pub origin: &'a str,
    pub label: &'a str,
    pub suite: &'a str,
    pub codename: &'a str,
    pub architectures: &'a str,
    pub components: &'a str,
    /// File names listed besides apt-ftparchive's defaults (`SHA256SUMS`, `MD5SUMS`).
    pub patterns: &'a [&'a str],
    /// `Acquire-By-Hash: yes` and a `by-hash/SHA256/<hash>` copy of every listed file.
    pub by_hash: bool,
}

impl AptRepo {
    /// Writes a file under the root (directories made as needed).
    pub fn put(&self, path: &str, bytes: &[u8]) {
        let target = self.root().join(path);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::write(target, bytes).unwrap();
    }

    /// Writes an index under the root with `.gz` and `.xz` copies beside it.
    pub fn put_index(&self, path: &str, text: &[u8]) {
        self.put(path, text);
        let file = self.root().join(path);
        for ext in ["gz", "xz"] {
            let _ = std::fs::remove_file(self.root().join(format!("{path}.{ext}")));
        }
        run(Command::new("gzip").args(["-9nk"]).arg(&file));
        run(Command::new("xz").args(["-k"]).arg(&file));
    }

    /// Builds the packages into `pool_dir/<initial>/<name>/` and returns their Packages
    /// stanzas as apt-ftparchive writes them (`Filename: pool_dir/…`).
    pub fn pool(&self, pool_dir: &str, packages: &[Pkg]) -> String {
        for pkg in packages {
            let target = format!(
                "{pool_dir}/{}/{}/{}",
                &pkg.name[..1],
                pkg.name,
                pkg.file_name()
            );
            self.build_deb(&self.root().join(target), pkg);
        }
        String::from_utf8(run(Command::new("apt-ftparchive")
            .current_dir(self.root())
            .args(["packages", pool_dir])))
        .unwrap()
    }

    /// (Re)writes `dists/<dist>/Release` with apt-ftparchive over everything under it (symbolic
    /// links are not followed), and signs it (InRelease and Release.gpg).
    pub fn sign_dist(&self, dist: &str, fields: &ReleaseFields) {
        let dir = self.root().join("dists").join(dist);
        for name in ["Release", "InRelease", "Release.gpg"] {
            let _ = std::fs::remove_file(dir.join(name));
        }
        let mut command = Command::new("apt-ftparchive");
        command.current_dir(self.root());
        for (field, value) in [
            ("Origin", fields.origin),
            ("Label", fields.label),
            ("Suite", fields.suite),
            ("Codename", fields.codename),
            ("Architectures", fields.architectures),
            ("Components", fields.components),
        ] {
            command
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::{field}={value}"));
        }
        for pattern in fields.patterns {
            command
                .arg("-o")
                .arg(format!("APT::FTPArchive::Release::Patterns::={pattern}"));
        }
        command.args(["release", &format!("dists/{dist}")]);
        let mut release = String::from_utf8(run(&mut command)).unwrap();
        if fields.by_hash {
            release = release.replacen("Date: ", "Acquire-By-Hash: yes\nDate: ", 1);
            let sha256 = release.split("SHA256:\n").nth(1).unwrap_or("");
            for line in sha256.lines().take_while(|l| l.starts_with(' ')) {
                let parts: Vec<&str> = line.split_whitespace().collect();
                let file = dir.join(parts[2]);
                let by_hash = file.parent().unwrap().join("by-hash/SHA256");
                std::fs::create_dir_all(&by_hash).unwrap();
                std::fs::copy(&file, by_hash.join(parts[0])).unwrap();
            }
        }
        std::fs::write(dir.join("Release"), release).unwrap();
        self.gpg.sign_release(&dir.join("Release"));
    }

    /// A suite laid out like Debian's security archive (`bookworm-security`): the Release
    /// says `Label: Debian-Security` and `Components: updates/main updates/contrib` but lists
    /// `main/…` and `contrib/…`; the packages live in `pool/updates/main/`; by-hash is on;
    /// `dists/<suite>/updates` is a link to `.` (as the archive's own tree has it).
    pub fn debian_security(&self, suite: &str, packages: &[Pkg]) {
        let stanzas = self.pool("pool/updates/main", packages);
        let dist = format!("dists/{suite}");
        self.put_index(
            &format!("{dist}/main/binary-amd64/Packages"),
            stanzas.as_bytes(),
        );
        self.put_index(&format!("{dist}/contrib/binary-amd64/Packages"), b"");
        self.sign_dist(
            suite,
            &ReleaseFields {
                origin: "Debian",
                label: "Debian-Security",
                suite: "stable-security",
                codename: suite,
                architectures: "amd64 arm64",
                components: "updates/main updates/contrib",
                patterns: &[],
                by_hash: true,
            },
        );
        let link = self.root().join(&dist).join("updates");
        if !link.exists() {
            std::os::unix::fs::symlink(".", link).unwrap();
        }
    }

    /// A debian-installer tree for `arch` as Debian publishes it:
    /// `dists/<suite>/main/installer-<arch>/<version>/images/` with the `images` (path, bytes)
    /// and their `SHA256SUMS` and `MD5SUMS`, and `current` a link to `<version>`. The Release
    /// lists both `current/…` and `<version>/…` (Debian's archive follows the link).
    pub fn installer(&self, suite: &str, arch: &str, version: &str, images: &[(&str, &[u8])]) {
        let base = format!("dists/{suite}/main/installer-{arch}");
        let mut sha256 = String::new();
        let mut md5 = String::new();
        for (name, bytes) in images {
            self.put(&format!("{base}/{version}/images/{name}"), bytes);
            sha256.push_str(&format!("{}  ./{name}\n", super::sha256_hex(bytes)));
            let sum = run(Command::new("md5sum")
                .arg(self.root().join(format!("{base}/{version}/images/{name}"))));
            let hex = String::from_utf8(sum).unwrap();
            md5.push_str(&format!("{}  ./{name}\n", &hex[..32]));
        }
        for (name, text) in [("SHA256SUMS", &sha256), ("MD5SUMS", &md5)] {
            self.put(&format!("{base}/{version}/images/{name}"), text.as_bytes());
            // A real directory while the Release is written, so both names are listed.
            self.put(&format!("{base}/current/images/{name}"), text.as_bytes());
        }
        self.sign_dist(
            suite,
            &ReleaseFields {
                origin: "Test",
                label: "Test",
                suite,
                codename: suite,
                architectures: arch,
                components: "main",
                patterns: &["SHA256SUMS", "MD5SUMS"],
                by_hash: false,
            },
        );
        let current = self.root().join(&base).join("current");
        std::fs::remove_dir_all(&current).unwrap();
        std::os::unix::fs::symlink(version, current).unwrap();
    }
}
