//! `mirrorbox import-pom`: turns a proxmox-offline-mirror configuration into mirrorbox `apt`
//! sources, so an admin can switch without retyping every mirror.
//!
//! - `section`: the section-config syntax the file is written in;
//! - `pom`: its `mirror:`, `subscription:` and `medium:` sections, values read as the
//!   original reads them;
//! - `plan`: which mirrors become one source (one repository and suite: one source), ids and
//!   mounts;
//! - `render`: the TOML, with a comment beside everything merged, relaxed or not imported.

mod plan;
mod pom;
mod render;
mod section;

pub use pom::PomConfig;

/// Reads proxmox-offline-mirror's configuration text. Errors name the line.
pub fn parse(text: &str) -> Result<PomConfig, String> {
    pom::parse(text)
}

/// Renders a complete mirrorbox configuration. Errors name the mirror.
pub fn render(config: &PomConfig, data_dir: &str) -> Result<String, String> {
    let sources = plan::plan(&config.mirrors)?;
    Ok(render::render(config, &sources, data_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As the original writes it: sections in order, tab-indented properties in key order,
    /// lists as repeated keys, a blank line between sections.
    const WIZARD: &str = "\
mirror: pve_bookworm_no-subscription
\tarchitectures amd64
\tarchitectures all
\tbase-dir /var/lib/proxmox-offline-mirror/mirrors/
\tignore-errors false
\tkey-path /etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg
\trepository deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription
\tskip-packages {foo,bar}-dbgsym
\tsync true
\tverify true

mirror: pve_bookworm_test
\tarchitectures amd64
\tarchitectures all
\tbase-dir /var/lib/proxmox-offline-mirror/mirrors/
\tignore-errors false
\tkey-path /etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg
\trepository deb http://download.proxmox.com/debian/pve bookworm pvetest
\tskip-packages {foo,bar}-dbgsym
\tsync True
\tverify 1

mirror: pve_bookworm_enterprise
\tarchitectures amd64
\tbase-dir /var/lib/proxmox-offline-mirror/mirrors/
\tignore-errors false
\tkey-path /etc/apt/trusted.gpg.d/proxmox-release-bookworm.gpg
\trepository deb https://enterprise.proxmox.com/debian/pve bookworm pve-enterprise
\tsync off
\tuse-subscription pve
\tverify no
\tweak-crypto allow-sha1=1,min-rsa-key-size=1024

mirror: debian.bookworm.security
\tarchitectures amd64
\tbase-dir /var/lib/proxmox-offline-mirror/mirrors/
\tignore-errors false
\tkey-path /usr/share/keyrings/debian-archive-bookworm-security-automatic.pgp
\trepository deb http://deb.debian.org/debian-security bookworm-security main contrib
\tskip-sections debug
\tskip-sections games
\tsync true
\tverify true

medium: usb
\tmirrors pve_bookworm_no-subscription
\tmirrors debian.bookworm.security
\tmountpoint /mnt/usb
\tsync true
\tverify true

subscription: pve4b-0123456789
\tserver-id 0123456789ABCDEF0123456789ABCDEF
";

    #[test]
    fn the_wizards_file_imports() {
        let config = parse(WIZARD).unwrap();
        assert_eq!(config.mirrors.len(), 4);
        let text = render(&config, "data").unwrap();
        let parsed = crate::config::Config::parse(&text, std::path::Path::new("imported.toml"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let ids: Vec<&str> = parsed.sources.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "pve_bookworm",
                "pve_bookworm_enterprise",
                "debian_bookworm_security"
            ],
            "{text}"
        );
        for want in [
            "repository = \"deb http://download.proxmox.com/debian/pve bookworm pve-no-subscription pvetest\"",
            "skip_packages = [\"{foo,bar}-dbgsym\"]",
            "skip_sections = [\"debug\", \"games\"]",
            "verify_pool = true",
            "weak_crypto = { allow_sha1 = true, min_rsa_bits = 1024 }",
            "username = \"pve4b-0123456789\"",
            "password = \"0123456789ABCDEF0123456789ABCDEF\"",
            "# WARNING: these credentials unlock a licensed repository",
            "mirrorbox export /mnt/usb pve_bookworm debian_bookworm_security",
            "`pve_bookworm_enterprise` had `sync false`",
            "# `sync` (fsync): mirrorbox fsyncs every object",
            "# from `mirror: debian.bookworm.security`",
        ] {
            assert!(text.contains(want), "missing `{want}` in:\n{text}");
        }
        // Enterprise and no-subscription are two hosts in one tree (/debian/pve).
        assert_eq!(parsed.sources[0].mount, "/download.proxmox.com/debian/pve");
        assert_eq!(
            parsed.sources[1].mount,
            "/enterprise.proxmox.com/debian/pve"
        );
        assert_eq!(parsed.sources[2].mount, "/debian-security");
        let crate::config::SourceKind::Apt(apt) = &parsed.sources[0].kind else {
            panic!("not apt")
        };
        assert!(apt.filter.skip_packages.is_match("foo-dbgsym"));
        assert!(apt.filter.skip_packages.is_match("bar-dbgsym"));
        assert!(!apt.filter.skip_packages.is_match("baz-dbgsym"));
        assert_eq!(
            apt.repository.components,
            ["pve-no-subscription", "pvetest"]
        );
        assert!(apt.verify_pool);
        let crate::config::SourceKind::Apt(enterprise) = &parsed.sources[1].kind else {
            panic!("not apt")
        };
        assert!(!enterprise.verify_pool);
        assert_eq!(enterprise.weak_crypto.min_rsa_bits, Some(1024));
        assert_eq!(
            enterprise.fetch.basic_auth,
            Some((
                "pve4b-0123456789".to_string(),
                "0123456789ABCDEF0123456789ABCDEF".to_string()
            ))
        );
    }

    #[test]
    fn a_mirror_without_repository_is_named() {
        let config = parse("mirror: broken\n\tverify true\n").unwrap();
        assert_eq!(
            render(&config, "d").unwrap_err(),
            "mirror `broken`: no `repository`"
        );
    }
}
