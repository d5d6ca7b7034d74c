//! Writes the planned sources as a mirrorbox configuration, with a comment beside everything
//! that was read differently, merged, or has no equivalent (see the README's mapping table).

use std::fmt::Write as _;

use super::plan::PlannedSource;
use super::pom::{PomConfig, PomSubscription};
use crate::sync::apt::policy::WeakCrypto;

/// A TOML string literal.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn quoted_list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|i| quoted(i)).collect();
    format!("[{}]", items.join(", "))
}

/// Writes `text` as `# ` comment lines, wrapped at about 95 columns.
fn comment(out: &mut String, text: &str) {
    const WIDTH: usize = 93;
    for line in text.lines() {
        let mut current = String::new();
        for word in line.split(' ') {
            if !current.is_empty() && current.len() + 1 + word.len() > WIDTH {
                let _ = writeln!(out, "# {current}");
                current.clear();
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        let _ = writeln!(out, "# {current}");
    }
}

/// Renders the whole configuration.
pub fn render(config: &PomConfig, sources: &[PlannedSource], data_dir: &str) -> String {
    let mut out = String::new();
    comment(
        &mut out,
        "mirrorbox configuration imported from a proxmox-offline-mirror configuration.\nReview the comments, then: mirrorbox check-config --config <this file>",
    );
    let _ = writeln!(out, "\ndata_dir = {}\n", quoted(data_dir));
    let _ = writeln!(out, "[server]\nhttp = [\"0.0.0.0:8080\"]\n");
    let mut base_dirs: Vec<&str> = Vec::new();
    for dir in config.mirrors.iter().filter_map(|m| m.base_dir.as_deref()) {
        if !base_dirs.contains(&dir) {
            base_dirs.push(dir);
        }
    }
    if !base_dirs.is_empty() {
        comment(
            &mut out,
            &format!(
                "`base-dir {}`: no equivalent; every source shares the content-addressed store in data_dir.",
                base_dirs.join(", ")
            ),
        );
    }
    comment(
        &mut out,
        "`sync` (fsync): mirrorbox fsyncs every object and ref before publishing it, for every source ([store] fsync, on by default).\n",
    );
    for medium in &config.media {
        let ids: Vec<String> = medium
            .mirrors
            .iter()
            .map(|m| {
                sources
                    .iter()
                    .find(|s| s.from.contains(m))
                    .map(|s| s.id.clone())
                    .unwrap_or_else(|| format!("<unknown mirror {m}>"))
            })
            .collect();
        let mut unique: Vec<String> = Vec::new();
        for id in ids {
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        let ids = unique;
        let mountpoint = medium.mountpoint.as_deref().unwrap_or("<mountpoint>");
        comment(
            &mut out,
            &format!(
                "not imported: `medium: {}` (a disk filled for an offline site): mirrorbox serves its sources over HTTP. To fill the medium:\nmirrorbox export {mountpoint} {}",
                medium.id,
                ids.join(" ")
            ),
        );
        out.push('\n');
    }
    for other in &config.unknown_sections {
        comment(
            &mut out,
            &format!("not imported: section `{other}` (unknown type)"),
        );
        out.push('\n');
    }
    for source in sources {
        render_source(&mut out, source, &config.subscriptions);
    }
    out
}

fn render_source(out: &mut String, source: &PlannedSource, keys: &[PomSubscription]) {
    let from: Vec<String> = source
        .from
        .iter()
        .map(|m| format!("`mirror: {m}`"))
        .collect();
    let _ = writeln!(out, "# from {}", from.join(", "));
    for line in &source.comments {
        comment(out, line);
    }
    let _ = writeln!(out, "[[source]]");
    let _ = writeln!(out, "id = {}", quoted(&source.id));
    let _ = writeln!(out, "kind = \"apt\"");
    let _ = writeln!(out, "mount = {}", quoted(&source.mount));
    let _ = writeln!(out, "repository = {}", quoted(&source.repository));
    if !source.architectures.is_empty() {
        let _ = writeln!(
            out,
            "architectures = {}",
            quoted_list(&source.architectures)
        );
    }
    if source.keys.is_empty() {
        let _ = writeln!(
            out,
            "keys = []                               # FIXME: no key-path; list the repository's signing keys"
        );
    } else {
        let _ = writeln!(out, "keys = {}", quoted_list(&source.keys));
    }
    if !source.skip_packages.is_empty() {
        let _ = writeln!(
            out,
            "skip_packages = {}",
            quoted_list(&source.skip_packages)
        );
    }
    if !source.skip_sections.is_empty() {
        let _ = writeln!(
            out,
            "skip_sections = {}",
            quoted_list(&source.skip_sections)
        );
    }
    if source.ignore_errors {
        let _ = writeln!(out, "ignore_errors = true");
    }
    if source.verify_pool {
        let _ = writeln!(
            out,
            "verify_pool = true                      # was `verify true`: re-hash stored pool files before re-using them"
        );
    }
    if let Some(policy) = &source.weak_crypto {
        let _ = writeln!(out, "weak_crypto = {}", weak_crypto(policy));
    }
    if let Some(product) = &source.use_subscription {
        credentials(out, source, product, keys);
    }
    let _ = writeln!(
        out,
        "every = \"2h\"\njitter = \"10m\"\nverify_every = \"7d\"\nkeep = 3\n"
    );
}

fn weak_crypto(policy: &WeakCrypto) -> String {
    let mut parts = Vec::new();
    if policy.allow_sha1 {
        parts.push("allow_sha1 = true".to_string());
    }
    if let Some(bits) = policy.min_rsa_bits {
        parts.push(format!("min_rsa_bits = {bits}"));
    }
    if let Some(bits) = policy.min_dsa_bits {
        parts.push(format!("min_dsa_bits = {bits}"));
    }
    format!("{{ {} }}", parts.join(", "))
}

/// `use-subscription <product>`: the original sends HTTP basic auth with the product's active
/// subscription key as user name and the key's server id as password.
fn credentials(out: &mut String, source: &PlannedSource, product: &str, keys: &[PomSubscription]) {
    let candidates: Vec<&PomSubscription> = keys
        .iter()
        .filter(|k| k.product().eq_ignore_ascii_case(product))
        .collect();
    let chosen = candidates
        .iter()
        .find(|k| k.status.as_deref() == Some("active"))
        .or(candidates.first());
    match chosen {
        Some(key) => {
            match key.status.as_deref() {
                Some("active") => {}
                Some(status) => comment(
                    out,
                    &format!(
                        "FIXME: subscription `{}` was `{status}` when last refreshed; the upstream accepts only an active one",
                        key.key
                    ),
                ),
                None => comment(
                    out,
                    &format!(
                        "FIXME: subscription `{}` was never refreshed (no `info`): check that it is active",
                        key.key
                    ),
                ),
            }
            let _ = writeln!(
                out,
                "username = {}                   # `subscription: {}` (its key) for `use-subscription {product}`",
                quoted(&key.key),
                key.key
            );
            match &key.server_id {
                Some(id) => {
                    let _ = writeln!(out, "password = {}   # its server-id", quoted(id));
                }
                None => {
                    let _ = writeln!(
                        out,
                        "password = \"\"                           # FIXME: the subscription had no server-id"
                    );
                }
            }
        }
        None => comment(
            out,
            &format!(
                "FIXME: `use-subscription {product}` but no `subscription:` key for {product} in the file:\nusername = \"<subscription key>\"\npassword = \"<server id>\""
            ),
        ),
    }
    comment(
        out,
        &format!(
            "WARNING: these credentials unlock a licensed repository, and this mount serves it to\nanyone who can reach the server. Restrict it (README, \"Access control\"), e.g.:\n[[access]]\npath = {}\nallow = [\"10.0.0.0/8\"]\nhtpasswd = \"/etc/mirrorbox/htpasswd\"",
            quoted(&source.mount)
        ),
    );
}
