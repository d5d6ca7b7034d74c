//! Hides absolute filesystem paths in messages the status page shows to the public.
//!
//! Sync errors name the files they failed on (`cannot read /srv/images/x.img: …`), which tells
//! anyone how the host is laid out. Clients that are not trusted see `…` in place of each
//! absolute path; URLs (`http://host/path`) are kept, they are the upstream's public address.

/// Where a path may start: the text's start or after one of these (so the `/` inside a URL,
/// after `:` or another `/`, is not one).
fn starts_path(previous: Option<char>) -> bool {
    match previous {
        None => true,
        Some(c) => c.is_whitespace() || "([{<'\"`=,;".contains(c),
    }
}

/// Where a path ends: whitespace, quotes, closing brackets, or `:`/`,`/`;` followed by a space
/// or the end (`cannot open /a/b: No such file`).
fn ends_path(c: char, next: Option<char>) -> bool {
    if c.is_whitespace() || "'\"`)]}>".contains(c) {
        return true;
    }
    ":,;".contains(c) && next.is_none_or(char::is_whitespace)
}

/// `message` with every absolute path replaced by `…`. A lone `/` is kept.
pub fn paths(message: &str) -> String {
    let chars: Vec<char> = message.chars().collect();
    let mut out = String::with_capacity(message.len());
    let mut i = 0;
    while i < chars.len() {
        let previous = i.checked_sub(1).map(|p| chars[p]);
        if chars[i] == '/' && starts_path(previous) {
            let mut end = i + 1;
            while end < chars.len() && !ends_path(chars[end], chars.get(end + 1).copied()) {
                end += 1;
            }
            // A trailing full stop ends the sentence, not the path.
            while end > i + 1 && chars[end - 1] == '.' {
                end -= 1;
            }
            if end > i + 1 {
                out.push('…');
                i = end;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::paths;

    #[test]
    fn absolute_paths_become_ellipses() {
        let cases = [
            (
                "cannot read /srv/images/x.img: No such file or directory (os error 2)",
                "cannot read …: No such file or directory (os error 2)",
            ),
            ("/etc/mirrorbox/mirrorbox.toml: bad key", "…: bad key"),
            (
                "keyring `/etc/apt/keys/pve.gpg` is empty",
                "keyring `…` is empty",
            ),
            ("open(\"/var/lib/x\") failed", "open(\"…\") failed"),
            ("in /data/tmp/abc.", "in …."),
        ];
        for (message, expected) in cases {
            assert_eq!(paths(message), expected, "{message}");
        }
    }

    #[test]
    fn urls_and_lone_slashes_stay() {
        for message in [
            "GET http://download.proxmox.com/debian/pve/dists/bookworm/InRelease: 404",
            "mount / has no files",
            "3/4 files fetched",
            "ratio 1 / 2",
        ] {
            assert_eq!(paths(message), message);
        }
    }
}
