//! `[[access]]` rules: which addresses and users may read what.

use std::path::PathBuf;

use serde::Deserialize;

use super::{normalize_mount, AccessConfig};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    path: String,
    allow: Option<Vec<String>>,
    deny: Option<Vec<String>>,
    htpasswd: Option<PathBuf>,
    realm: Option<String>,
}

/// Default realm of `[[access]]` rules with `htpasswd`.
pub const DEFAULT_REALM: &str = "mirrorbox";

/// `[[access]]` tables, checked each on its own and for duplicate paths.
pub(super) fn parse_access_rules(tables: Vec<toml::Table>) -> Result<Vec<AccessConfig>, String> {
    let mut rules: Vec<AccessConfig> = Vec::new();
    for (index, table) in tables.into_iter().enumerate() {
        let label = match table.get("path").and_then(|v| v.as_str()) {
            Some(path) => format!("[[access]] #{} (path \"{path}\")", index + 1),
            None => format!("[[access]] #{}", index + 1),
        };
        let rule = parse_access(table, &label).map_err(|m| format!("{label}: {m}"))?;
        if let Some(other) = rules.iter().find(|r| r.path == rule.path) {
            return Err(format!(
                "{label}: key `path`: {} has the same path",
                other.label
            ));
        }
        rules.push(rule);
    }
    Ok(rules)
}

fn parse_access(table: toml::Table, label: &str) -> Result<AccessConfig, String> {
    let raw: RawAccess = toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| e.message().to_string())?;
    let path = access_path(&raw.path).map_err(|m| format!("key `path`: {m}"))?;
    let ranges = |list: Option<Vec<String>>, key: &str| -> Result<Vec<ipnet::IpNet>, String> {
        let list = list.unwrap_or_default();
        list.iter()
            .map(|text| parse_range(text).map_err(|m| format!("key `{key}`: {m}")))
            .collect()
    };
    if raw.allow.as_ref().is_some_and(|a| a.is_empty()) {
        return Err("key `allow`: empty list (leave the key out to allow every address, or deny = [\"0.0.0.0/0\", \"::/0\"] to refuse all)".into());
    }
    let allow = ranges(raw.allow, "allow")?;
    let deny = ranges(raw.deny, "deny")?;
    if raw.realm.is_some() && raw.htpasswd.is_none() {
        return Err("key `realm`: only applies with `htpasswd`".into());
    }
    let realm = raw.realm.unwrap_or_else(|| DEFAULT_REALM.to_string());
    if realm.is_empty()
        || realm.len() > 200
        || realm
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
    {
        return Err(format!(
            "key `realm`: `{realm}` must be 1 to 200 characters without quotes, backslashes or control characters"
        ));
    }
    if raw
        .htpasswd
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err("key `htpasswd`: empty path".into());
    }
    Ok(AccessConfig {
        path,
        allow,
        deny,
        htpasswd: raw.htpasswd,
        realm,
        label: label.to_string(),
    })
}

/// `10.0.0.0/8`, `2001:db8::/32`, or a single address (`192.0.2.7` means `/32`). Host bits
/// are cleared: `10.1.2.3/8` is `10.0.0.0/8`.
///
/// IPv4-mapped ranges (`::ffff:203.0.113.5`, anything within `::ffff:0:0/96`) become the IPv4
/// range they stand for: clients on a dual-stack listener are matched by their IPv4 address,
/// so the mapped form would never match anyone.
fn parse_range(text: &str) -> Result<ipnet::IpNet, String> {
    let text = text.trim();
    let net = if let Ok(net) = text.parse::<ipnet::IpNet>() {
        net.trunc()
    } else if let Ok(addr) = text.parse::<std::net::IpAddr>() {
        ipnet::IpNet::from(addr)
    } else {
        return Err(format!(
            "`{text}` is not an address range like 10.0.0.0/8 or 2001:db8::/32"
        ));
    };
    Ok(unmapped(net))
}

/// `::ffff:a.b.c.d/(96+n)` → `a.b.c.d/n`; every other range as it is.
fn unmapped(net: ipnet::IpNet) -> ipnet::IpNet {
    let ipnet::IpNet::V6(v6) = net else {
        return net;
    };
    match (
        v6.network().to_ipv4_mapped(),
        v6.prefix_len().checked_sub(96),
    ) {
        (Some(v4), Some(prefix)) => ipnet::Ipv4Net::new(v4, prefix).map_or(net, ipnet::IpNet::V4),
        _ => net,
    }
}

/// An `[[access]]` path: like a mount, or `/.status` / `/.metrics`. `/.snapshots/…` is refused:
/// snapshots follow the rule of their source's mount.
fn access_path(path: &str) -> Result<String, String> {
    if !path.starts_with('/') {
        return Err(format!("`{path}` must start with `/`"));
    }
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or("");
    if first.starts_with(".snapshots") {
        return Err(format!(
            "`{path}`: snapshots are covered by the rule of their source's mount; name the mount"
        ));
    }
    if first.starts_with(".status") || first.starts_with(".metrics") {
        let normalized = format!("/{first}");
        return match normalized.as_str() {
            "/.status" | "/.metrics" if path.trim_end_matches('/') == normalized => Ok(normalized),
            _ => Err(format!(
                "`{path}`: use `/.status` (covers /.status, /.status.json and /.status.html) or `/.metrics`"
            )),
        };
    }
    normalize_mount(path)
}
