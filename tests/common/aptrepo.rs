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
