//! `[server]`: listeners, TLS files and connection limits.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::acme::{parse_acme, Listeners, RawAcme};
use super::{ServerConfig, TlsConfig};
use crate::units::{parse_duration, parse_size};

/// The least `buffer_memory` and `connection_buffer`: a few of the smallest file reads.
const MIN_BUFFER: usize = 64 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    http: Option<Vec<String>>,
    #[serde(default)]
    https: Vec<String>,
    tls: Option<RawTls>,
    acme: Option<RawAcme>,
    header_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_connections: Option<usize>,
    listen_backlog: Option<u32>,
    max_header_bytes: Option<String>,
    max_streams: Option<u32>,
    buffer_memory: Option<String>,
    connection_buffer: Option<String>,
    shutdown_grace: Option<String>,
    access_log: Option<bool>,
    trust_loopback: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert: PathBuf,
    key: PathBuf,
}

pub(super) fn parse_server(raw: RawServer) -> Result<ServerConfig, String> {
    let addresses = |list: Vec<String>, key: &str| -> Result<Vec<SocketAddr>, String> {
        list.iter()
            .map(|a| {
                a.parse().map_err(|_| {
                    format!("[server] key `{key}`: `{a}` is not an address like 127.0.0.1:8080")
                })
            })
            .collect()
    };
    let http = addresses(
        raw.http.unwrap_or_else(|| vec!["127.0.0.1:8080".into()]),
        "http",
    )?;
    let https = addresses(raw.https, "https")?;
    let tls = raw.tls.map(|t| TlsConfig {
        cert: t.cert,
        key: t.key,
    });
    if tls.is_some() && raw.acme.is_some() {
        return Err("[server.tls] and [server.acme] are both set: use one (files you renew yourself, or certificates the server obtains and renews)".into());
    }
    let acme = match raw.acme {
        None => None,
        Some(acme) => {
            if https.is_empty() {
                return Err("[server.acme]: no `https` listener uses it (add e.g. https = [\"0.0.0.0:443\"] to [server], or remove [server.acme])".into());
            }
            let listeners = Listeners {
                has_http: !http.is_empty(),
                has_https: !https.is_empty(),
            };
            Some(parse_acme(acme, &listeners)?)
        }
    };
    if !https.is_empty() && tls.is_none() && acme.is_none() {
        return Err("[server] key `https`: HTTPS listeners need a certificate: a [server.tls] section with `cert` and `key`, or [server.acme] with the `domains` to obtain one for".into());
    }
    if https.is_empty() && tls.is_some() {
        return Err("[server.tls]: no `https` listener uses it (add e.g. https = [\"0.0.0.0:443\"] to [server], or remove [server.tls])".into());
    }
    check_unique_listeners(&http, &https)?;
    let duration = |value: Option<String>, key: &str, default: u64| -> Result<Duration, String> {
        let value = match value {
            None => return Ok(Duration::from_secs(default)),
            Some(v) => parse_duration(&v).map_err(|m| format!("[server] key `{key}`: {m}"))?,
        };
        // A zero grace period means "stop at once", which is meaningful; a zero timeout
        // would close every connection before its first byte.
        if value.is_zero() && key != "shutdown_grace" {
            return Err(format!(
                "[server] key `{key}`: must be longer than 0s (e.g. \"{default}s\", the default)"
            ));
        }
        Ok(value)
    };
    let max_connections = raw.max_connections.unwrap_or(10_000);
    if max_connections == 0 {
        return Err("[server] key `max_connections`: must be at least 1".into());
    }
    let size = |value: Option<String>, key: &str, default: usize| -> Result<usize, String> {
        match value {
            None => Ok(default),
            Some(v) => parse_size(&v).map_err(|m| format!("[server] key `{key}`: {m}")),
        }
    };
    let listen_backlog = raw.listen_backlog.unwrap_or(1024);
    if listen_backlog == 0 {
        return Err("[server] key `listen_backlog`: must be at least 1".into());
    }
    let max_header_bytes = size(raw.max_header_bytes, "max_header_bytes", 64 * 1024)?;
    // hyper's HTTP/1.1 read buffer, which this sets, cannot be smaller than 8 KiB.
    if !(8 * 1024..=16 * 1024 * 1024).contains(&max_header_bytes) {
        return Err("[server] key `max_header_bytes`: must be between 8k and 16M".into());
    }
    let max_streams = raw.max_streams.unwrap_or(100);
    if max_streams == 0 {
        return Err("[server] key `max_streams`: must be at least 1".into());
    }
    let buffer_memory = size(raw.buffer_memory, "buffer_memory", 16 * 1024 * 1024)?;
    let connection_buffer = size(raw.connection_buffer, "connection_buffer", 1024 * 1024)?;
    if !(MIN_BUFFER..=u32::MAX as usize).contains(&buffer_memory) {
        return Err("[server] key `buffer_memory`: must be between 64k and 4G".into());
    }
    if !(MIN_BUFFER..=buffer_memory).contains(&connection_buffer) {
        return Err(
            "[server] key `connection_buffer`: must be at least 64k and at most `buffer_memory`"
                .into(),
        );
    }
    Ok(ServerConfig {
        http,
        https,
        tls,
        acme,
        header_timeout: duration(raw.header_timeout, "header_timeout", 30)?,
        idle_timeout: duration(raw.idle_timeout, "idle_timeout", 75)?,
        max_connections,
        listen_backlog,
        max_header_bytes,
        max_streams,
        buffer_memory,
        connection_buffer,
        shutdown_grace: duration(raw.shutdown_grace, "shutdown_grace", 30)?,
        access_log: raw.access_log.unwrap_or(true),
        trust_loopback: raw.trust_loopback.unwrap_or(true),
    })
}

/// Two listeners on one address would fail at bind time with a bare "address in use";
/// say which keys collide instead. `0.0.0.0:0`-style port 0 addresses never collide.
fn check_unique_listeners(http: &[SocketAddr], https: &[SocketAddr]) -> Result<(), String> {
    let mut seen: Vec<(SocketAddr, &str)> = Vec::new();
    let all = http
        .iter()
        .map(|a| (*a, "http"))
        .chain(https.iter().map(|a| (*a, "https")));
    for (addr, key) in all {
        if addr.port() == 0 {
            continue;
        }
        if let Some((_, first)) = seen.iter().find(|(other, _)| *other == addr) {
            let place = if *first == key {
                format!("twice in `{key}`")
            } else {
                format!("in both `{first}` and `{key}`")
            };
            return Err(format!(
                "[server] key `{key}`: the address {addr} is listed {place} (one listener per address)"
            ));
        }
        seen.push((addr, key));
    }
    Ok(())
}
