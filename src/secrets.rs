//! Credentials never leave the process: a URL's user name and password are cut out of any
//! text before a log line, an error, `state.json` or the status page shows it.

/// `text` with the user info of every URL in it (`https://alice:pw@host/…`) replaced by `…`.
pub fn credentials(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("//") {
        let (before, after) = rest.split_at(at + 2);
        out.push_str(before);
        // The authority ends where the path, query or fragment starts, or the URL ends.
        // (`[` and `]` belong to it: IPv6 hosts.)
        let authority_end = after
            .find(|c: char| c.is_whitespace() || "/?#\"'`<>(){}".contains(c))
            .unwrap_or(after.len());
        let authority = &after[..authority_end];
        match authority.rfind('@') {
            Some(user_end) if user_end > 0 => {
                out.push('…');
                rest = &after[user_end..];
            }
            _ => rest = after,
        }
    }
    out.push_str(rest);
    out
}
