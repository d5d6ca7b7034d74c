//! Hides secrets and the host's layout in messages that leave the process.
//!
//! - [`credentials`], for everyone and in logs: a URL's `user:password@` becomes `…@`. Config
//!   refuses credentials in URLs, but a redirect or an older `state.json` may still carry them,
//!   and reqwest errors append the full URL (` for url (…)`).
//! - [`paths`], for clients that are not trusted: sync errors name the files they failed on
//!   (`cannot read /srv/images/x.img: …`), which tells anyone how the host is laid out. Each
//!   absolute path, and each path that starts with a configured folder as written (a relative
//!   `data_dir = "d"` gives `d/objects/ab/cdef`), becomes `…`. URLs (`http://host/path`) are
//!   kept: they are the upstream's public address.

pub use crate::secrets::credentials;

/// Where a path may start: the text's start or after one of these (so the `/` inside a URL,
/// after `:` or another `/`, is not one).
fn starts_path(previous: Option<char>) -> bool {
    match previous {
        None => true,
        Some(c) => c.is_whitespace() || "([{<'\"`=,;".contains(c),
    }
}

/// The closing character that ends a path opened right after `opener`.
fn closer(opener: Option<char>) -> Option<char> {
    Some(match opener? {
        '(' => ')',
        '[' => ']',
        '{' => '}',
        '<' => '>',
        c @ ('\'' | '"' | '`') => c,
        _ => return None,
    })
}

/// Where an unquoted path ends: at the error separator (`: `, ` (os error`), `, `, `; `, a
/// line end, or a `:`/`,`/`;` that ends the text. Spaces inside a path do not end it.
fn ends_path(rest: &str) -> bool {
    rest.starts_with(": ")
        || rest.starts_with(" (os error")
        || rest.starts_with(", ")
        || rest.starts_with("; ")
        || rest.starts_with('\n')
        || rest.starts_with(":\n")
        || matches!(rest, ":" | "," | ";")
}

/// How long the configured folder at the start of `text` is, if one is there as a whole path
/// or its first part.
fn folder_at(text: &str, folders: &[String]) -> Option<usize> {
    folders.iter().find_map(|folder| {
        let folder = folder.trim_end_matches('/');
        let rest = text.strip_prefix(folder)?;
        let whole = rest.is_empty()
            || rest.starts_with('/')
            || ends_path(rest)
            || rest.starts_with(['\'', '"', '`', ')', ']', '}', '>']);
        whole.then_some(folder.len())
    })
}

/// `message` with every absolute path, and every path starting with one of `folders` (the
/// configured folders as written and resolved, longest first; the app makes the list),
/// replaced by `…`. A lone `/` is kept.
pub fn paths(message: &str, folders: &[String]) -> String {
    let mut out = String::with_capacity(message.len());
    let mut previous: Option<char> = None;
    let mut i = 0;
    while i < message.len() {
        let rest = &message[i..];
        let Some(c) = rest.chars().next() else {
            break;
        };
        if starts_path(previous) {
            let start = if c == '/' {
                rest[1..]
                    .chars()
                    .next()
                    .is_some_and(|n| !n.is_whitespace())
                    .then_some(1)
            } else {
                None
            }
            .or_else(|| folder_at(rest, folders));
            if let Some(start) = start {
                let close = closer(previous);
                let mut end = start;
                while end < rest.len() {
                    let tail = &rest[end..];
                    let Some(next) = tail.chars().next() else {
                        break;
                    };
                    let closes = match close {
                        Some(close) => next == close,
                        None => next.is_whitespace() && next != ' ' || ")]}>".contains(next),
                    };
                    if closes || ends_path(tail) {
                        break;
                    }
                    end += next.len_utf8();
                }
                // A trailing full stop ends the sentence, not the path.
                let mut path = &rest[..end];
                while path.len() > 1 && path.ends_with('.') {
                    path = &path[..path.len() - 1];
                }
                out.push('…');
                previous = path.chars().last();
                i += path.len();
                continue;
            }
        }
        out.push(c);
        previous = Some(c);
        i += c.len_utf8();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{credentials, paths};

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
            // Spaces do not end a path; the error separator does.
            (
                "/srv/Private Files/x.iso: Permission denied",
                "…: Permission denied",
            ),
            (
                "cannot open /srv/Private Files/x.iso (os error 13)",
                "cannot open … (os error 13)",
            ),
            (
                "keyring `/etc/apt/my keys/pve.gpg` is empty",
                "keyring `…` is empty",
            ),
            ("(in /srv/a b)", "(in …)"),
        ];
        for (message, expected) in cases {
            assert_eq!(paths(message, &[]), expected, "{message}");
        }
    }

    #[test]
    fn configured_folders_are_redacted_by_value() {
        let folders = ["data dir".to_string(), "d".to_string()];
        let cases = [
            (
                "d/objects/ab/cdef: No space left on device (os error 28)",
                "…: No space left on device (os error 28)",
            ),
            (
                "cannot write data dir/tmp/x: Permission denied",
                "cannot write …: Permission denied",
            ),
            ("d: not a directory", "…: not a directory"),
            // Only whole leading parts: words that start with the same letters stay.
            (
                "disk full, dir d2/x unreadable",
                "disk full, dir d2/x unreadable",
            ),
        ];
        for (message, expected) in cases {
            assert_eq!(paths(message, &folders), expected, "{message}");
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
            assert_eq!(paths(message, &[]), message);
        }
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        let cases = [
            (
                "error sending request for url (https://alice:s3cret@enterprise.proxmox.com/debian/pve/dists/bookworm/InRelease)",
                "error sending request for url (https://…@enterprise.proxmox.com/debian/pve/dists/bookworm/InRelease)",
            ),
            ("GET http://token@h:8080/x: 404", "GET http://…@h:8080/x: 404"),
            ("http://a:b@h http://c@[::1]/", "http://…@h http://…@[::1]/"),
            ("user@example.org wrote //x", "user@example.org wrote //x"),
            ("http://h/a@b", "http://h/a@b"),
        ];
        for (message, expected) in cases {
            assert_eq!(credentials(message), expected, "{message}");
        }
    }
}
