//! The layout real Puavo clients assume, checked against how a source is served.
//!
//! Laptops ignore the meta files' `urls`: they fetch `/<image>`, `/rdiffs/<rdiff>` and
//! `/torrents/<rdiff>.torrent` at the root of the image server they found (DNS SRV or
//! `puavo.image.servers`), over HTTPS only. Bootservers follow the meta files' `urls` but
//! force TLS on them, so an `http://` urlbase fails every download. Both trust only the
//! Puavo root CA file they are given. A source that breaks one of these is accepted (a
//! bootserver-only mirror below the root is a real setup), but never silently: each check
//! is a pass or fail line on the status page, and a failure is a warning of `check-config`
//! and `serve` until an `allow_…` key on the source says it is deliberate.

use super::options::{PuavoMode, PuavoOptions};
use crate::sync::kind::{ClientCheck, Serving};

/// The keys that acknowledge a layout Puavo clients do not expect, or tell how HTTPS is
/// served.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LayoutKeys {
    /// `allow_mount_below_root`: a mount other than `/` is deliberate (bootservers only).
    pub allow_mount_below_root: bool,
    /// `allow_http_urlbase`: an `http://` urlbase is deliberate (no Puavo client uses it).
    pub allow_http_urlbase: bool,
    /// `behind_tls_proxy`: a TLS proxy in front serves this source over HTTPS.
    pub behind_tls_proxy: bool,
}

/// The keys as they appear in the configuration, for messages.
pub const ALLOW_MOUNT_BELOW_ROOT: &str = "allow_mount_below_root";
pub const ALLOW_HTTP_URLBASE: &str = "allow_http_urlbase";
pub const BEHIND_TLS_PROXY: &str = "behind_tls_proxy";

/// Every check, in a fixed order: mounted at `/`, served over HTTPS, urlbase is https (if
/// clients are handed the urlbase), torrents on.
pub fn checks(options: &PuavoOptions, at: &Serving<'_>) -> Vec<ClientCheck> {
    let keys = options.layout;
    let mut out = vec![
        mounted_at_root(at.mount, keys),
        served_over_https(at.https_listener, keys),
    ];
    // A mirror that neither rewrites the meta files' urls nor makes torrents hands its
    // urlbase to no client.
    let urlbase_in_use = options.torrents
        || match &options.mode {
            PuavoMode::Build { .. } => true,
            PuavoMode::Mirror { rewrite_urls, .. } => *rewrite_urls,
        };
    if let Some(urlbase) = options.urlbase.as_deref().filter(|_| urlbase_in_use) {
        out.push(urlbase_https(urlbase, keys));
    }
    out.push(torrents(options.torrents));
    out
}

fn mounted_at_root(mount: &str, keys: LayoutKeys) -> ClientCheck {
    let pass = mount.is_empty();
    let text = if pass {
        "mounted at /: Puavo laptops find /<image>, /rdiffs/ and /torrents/ at the server root"
            .to_string()
    } else {
        format!(
            "key `mount`: \"{mount}\" is not /: Puavo laptops fetch /<image>, /rdiffs/ and /torrents/ at the server root and cannot use this source (bootservers follow the meta files' urls and can); set mount = \"/\" (and the urlbase's path to match), or {ALLOW_MOUNT_BELOW_ROOT} = true for a bootserver-only mirror"
        )
    };
    check(
        "mounted_at_root",
        pass,
        (!pass && keys.allow_mount_below_root).then_some(ALLOW_MOUNT_BELOW_ROOT),
        true,
        text,
    )
}

fn served_over_https(https_listener: bool, keys: LayoutKeys) -> ClientCheck {
    let (pass, text) = if https_listener {
        (true, "served over HTTPS ([server] https)".to_string())
    } else if keys.behind_tls_proxy {
        (
            true,
            format!("served over HTTPS by the TLS proxy in front ({BEHIND_TLS_PROXY} = true)"),
        )
    } else {
        (
            false,
            format!(
                "not served over HTTPS: no [server] https listener, and Puavo laptops (aria2c, wget) and bootservers (Net::HTTP) download only over HTTPS; add an https listener with a [server.tls] certificate, or set {BEHIND_TLS_PROXY} = true on the source if a TLS proxy in front serves it"
            ),
        )
    };
    check("served_over_https", pass, None, true, text)
}

fn urlbase_https(urlbase: &str, keys: LayoutKeys) -> ClientCheck {
    let pass = urlbase.starts_with("https://");
    let text = if pass {
        format!("urlbase is https: {urlbase}/")
    } else {
        format!(
            "key `urlbase`: {urlbase} is not https://: Puavo bootservers force TLS on the meta files' urls and fail every download, and laptops' torrent web seed points at it; use an https:// urlbase, or {ALLOW_HTTP_URLBASE} = true if no Puavo client uses these urls"
        )
    };
    check(
        "urlbase_https",
        pass,
        (!pass && keys.allow_http_urlbase).then_some(ALLOW_HTTP_URLBASE),
        true,
        text,
    )
}

/// Torrent mode is the laptops' default, and a missing torrent sends them to the next
/// server (no plain download of the rdiff): worth a red line, but a source may well be meant
/// for bootservers or for laptops without torrent mode, so no warning.
fn torrents(on: bool) -> ClientCheck {
    let text = if on {
        "torrents on: laptops in torrent mode (their default) find /torrents/<rdiff>.torrent"
    } else {
        "key `torrents`: off: laptops in torrent mode (their default) find no /torrents/<rdiff>.torrent and move on to the next server or a full image; set torrents = true"
    };
    check("torrents", on, None, false, text.to_string())
}

fn check(
    name: &'static str,
    pass: bool,
    acknowledged_by: Option<&'static str>,
    warns: bool,
    text: String,
) -> ClientCheck {
    let text = match acknowledged_by {
        Some(key) => format!("{text} (acknowledged: {key} = true)"),
        None => text,
    };
    ClientCheck {
        check: name,
        pass,
        acknowledged_by,
        warns,
        text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(mount_keys: &str) -> PuavoOptions {
        let text =
            format!("image_dir = \"i\"\nurlbase = \"http://h/p\"\ntorrents = false\n{mount_keys}");
        PuavoOptions::parse(toml::from_str(&text).unwrap()).unwrap()
    }

    fn summary(checks: &[ClientCheck]) -> Vec<(&str, bool, bool)> {
        checks
            .iter()
            .map(|c| (c.check, c.pass, c.is_warning()))
            .collect()
    }

    #[test]
    fn failures_warn_until_acknowledged() {
        let served = Serving {
            mount: "/puavo",
            https_listener: false,
        };
        let plain = checks(&options(""), &served);
        assert_eq!(
            summary(&plain),
            [
                ("mounted_at_root", false, true),
                ("served_over_https", false, true),
                ("urlbase_https", false, true),
                ("torrents", false, false),
            ]
        );
        let keys =
            "allow_mount_below_root = true\nallow_http_urlbase = true\nbehind_tls_proxy = true";
        let acknowledged = checks(&options(keys), &served);
        assert_eq!(
            summary(&acknowledged),
            [
                ("mounted_at_root", false, false),
                ("served_over_https", true, false),
                ("urlbase_https", false, false),
                ("torrents", false, false),
            ]
        );
        assert_eq!(
            acknowledged[0].acknowledged_by,
            Some(ALLOW_MOUNT_BELOW_ROOT)
        );
        assert!(acknowledged[0].text.contains("acknowledged"));
    }

    #[test]
    fn an_unused_urlbase_is_not_checked() {
        let mirror = |extra: &str| {
            let text = format!(
                "upstream = \"https://u\"\nseries = [\"s\"]\nurlbase = \"http://h\"\n{extra}"
            );
            PuavoOptions::parse(toml::from_str(&text).unwrap()).unwrap()
        };
        let served = Serving {
            mount: "",
            https_listener: true,
        };
        let names = |options: &PuavoOptions| -> Vec<&str> {
            checks(options, &served).iter().map(|c| c.check).collect()
        };
        let all = [
            "mounted_at_root",
            "served_over_https",
            "urlbase_https",
            "torrents",
        ];
        assert_eq!(
            names(&mirror("torrents = false")),
            ["mounted_at_root", "served_over_https", "torrents"]
        );
        assert_eq!(names(&mirror("torrents = false\nrewrite_urls = true")), all);
        // Torrents are on by default, and their web seed is the urlbase.
        assert_eq!(names(&mirror("")), all);
    }

    #[test]
    fn at_the_root_over_https_everything_passes() {
        let text = "image_dir = \"i\"\nurlbase = \"https://h\"\ntorrents = true";
        let options = PuavoOptions::parse(toml::from_str(text).unwrap()).unwrap();
        let served = Serving {
            mount: "",
            https_listener: true,
        };
        let all = checks(&options, &served);
        assert!(all.iter().all(|c| c.pass), "{all:?}");
        assert_eq!(all.len(), 4);
    }
}
