//! Real apt-get with a throwaway configuration: every directory apt uses points into a temp
//! folder, so tests never touch the host's apt state.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

/// A throwaway apt configuration pointing at one sources.list line.
pub struct AptClient {
    dir: tempfile::TempDir,
}

impl AptClient {
    pub fn new(line: &str) -> AptClient {
        AptClient::with_auth(line, None)
    }

    /// `auth`: one `machine … login … password …` entry for `auth.conf.d` (mode 600, as apt
    /// wants it).
    pub fn with_auth(line: &str, auth: Option<&str>) -> AptClient {
        let dir = tempfile::tempdir().unwrap();
        for sub in [
            "lists/partial",
            "cache/archives/partial",
            "sources.list.d",
            "preferences.d",
            "apt.conf.d",
            "auth.conf.d",
        ] {
            std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("status"), "").unwrap();
        std::fs::write(dir.path().join("sources.list"), format!("{line}\n")).unwrap();
        if let Some(auth) = auth {
            let file = dir.path().join("auth.conf.d/mirror.conf");
            std::fs::write(&file, format!("{auth}\n")).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        AptClient { dir }
    }

    /// `apt-get` with every directory pointed into this client's folder.
    pub fn command(&self) -> Command {
        let d = self.dir.path().display();
        let mut command = Command::new("apt-get");
        for option in [
            format!("Dir::State={d}"),
            format!("Dir::State::Lists={d}/lists"),
            format!("Dir::State::status={d}/status"),
            format!("Dir::Cache={d}/cache"),
            format!("Dir::Cache::archives={d}/cache/archives"),
            format!("Dir::Etc::SourceList={d}/sources.list"),
            format!("Dir::Etc::SourceParts={d}/sources.list.d"),
            format!("Dir::Etc::PreferencesParts={d}/preferences.d"),
            format!("Dir::Etc::Parts={d}/apt.conf.d"),
            format!("Dir::Etc::netrc={d}/auth.conf"),
            format!("Dir::Etc::netrcparts={d}/auth.conf.d"),
            "APT::Architecture=amd64".into(),
            "APT::Architectures=amd64".into(),
            "Debug::NoLocking=1".into(),
            "APT::Sandbox::User=root".into(),
            "Acquire::Retries=0".into(),
            "Acquire::Languages=none".into(),
        ] {
            command.arg("-o").arg(option);
        }
        command
    }

    /// Runs apt-get: success means exit 0 with no warning or error line.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command().args(args).output().expect("apt-get");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (
            out.status.success() && !text.contains("W: ") && !text.contains("E: "),
            text,
        )
    }

    pub fn archive(&self, name: &str) -> PathBuf {
        self.dir.path().join("cache/archives").join(name)
    }
}
