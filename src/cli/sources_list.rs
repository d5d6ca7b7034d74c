//! `mirrorbox sources-list [SOURCE]`: the lines a client puts in its sources.list to use this
//! server's apt sources, the same as the status page shows (both come from
//! `sync::apt::client`). The server's URL is made from the configuration's first listener, or
//! given with `--url`.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{bail, Context};

use super::ConfigArg;
use crate::config::{Config, SourceConfig};
use crate::sync::SourceKind;

/// How to print: the server's URL as clients reach it (else from the listeners), and whether
/// as deb822 `.sources` stanzas instead of one-line entries.
#[derive(Debug, Default, Clone)]
pub struct Format<'a> {
    pub url: Option<&'a str>,
    pub deb822: bool,
}

/// Prints the entries of every apt source, or of `source`, as `format` says. A source that is
/// not there or not an apt source is an error (exit status 2).
pub fn run(config: &ConfigArg, source: Option<&str>, format: &Format) -> anyhow::Result<u8> {
    let config = config.load()?;
    print!("{}", render(&config, source, format)?);
    Ok(0)
}

/// The whole output, comments and entries.
fn render(config: &Config, source: Option<&str>, format: &Format) -> anyhow::Result<String> {
    let chosen = choose(config, source)?;
    let (base, base_note) = match format.url {
        Some(url) => (checked_url(url)?, None),
        None => listener_url(config)?,
    };
    let mut out = String::new();
    if let Some(note) = base_note {
        writeln!(out, "# {note}")?;
    }
    if chosen.is_empty() {
        writeln!(out, "# {} has no apt source", config.file.display())?;
    }
    for (n, (source, apt)) in chosen.iter().enumerate() {
        if n > 0 || format.deb822 {
            out.push('\n');
        }
        let lines = apt.client_lines(&format!("{base}{}/", source.mount));
        writeln!(
            out,
            "# source `{}`, a mirror of {} {}",
            source.id, apt.repository.url, apt.repository.suite
        )?;
        for note in &lines.notes {
            writeln!(out, "# {note}")?;
        }
        if format.deb822 {
            out.push_str(&lines.deb822);
        } else {
            for line in &lines.one_line {
                writeln!(out, "{line}")?;
            }
        }
    }
    Ok(out)
}

/// The apt sources to print: the named one, or all of them.
fn choose<'c>(
    config: &'c Config,
    name: Option<&str>,
) -> anyhow::Result<Vec<(&'c SourceConfig, &'c crate::sync::apt::options::AptOptions)>> {
    let apt = |source: &'c SourceConfig| match &source.kind {
        SourceKind::Apt(options) => Some((source, options.as_ref())),
        _ => None,
    };
    let all: Vec<_> = config.sources.iter().filter_map(apt).collect();
    let Some(name) = name else {
        return Ok(all);
    };
    let names = || {
        all.iter()
            .map(|(s, _)| format!("`{}`", s.id))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match config.source(name) {
        None => bail!(
            "no source `{name}` in {} (its apt sources: {})",
            config.file.display(),
            if all.is_empty() {
                "none".into()
            } else {
                names()
            }
        ),
        Some(source) => {
            match apt(source) {
                Some(found) => Ok(vec![found]),
                None => {
                    bail!(
                "source `{name}` in {} is a `{}` source: sources-list is for apt sources ({})",
                config.file.display(),
                source.kind.name(),
                if all.is_empty() { "none".into() } else { names() }
            )
                }
            }
        }
    }
}

/// `--url`: an http(s) URL, without a trailing slash (mounts start with one).
fn checked_url(url: &str) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("--url {url}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        bail!("--url {url}: give the server's URL as clients reach it, e.g. http://mirror.example:8080");
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// The server's URL from its first listener, HTTPS when there is one (apt then checks the
/// certificate), and a note when the address is not one a client can use as it is.
fn listener_url(config: &Config) -> anyhow::Result<(String, Option<String>)> {
    let (scheme, addr) = match (config.server.https.first(), config.server.http.first()) {
        (Some(addr), _) => ("https", addr),
        (None, Some(addr)) => ("http", addr),
        (None, None) => bail!(
            "{} has no listener: give the server's URL with --url",
            config.file.display()
        ),
    };
    let default_port = if scheme == "https" { 443 } else { 80 };
    let port = match addr.port() {
        p if p == default_port => String::new(),
        p => format!(":{p}"),
    };
    if addr.ip().is_unspecified() {
        let host = host_name().unwrap_or_else(|| "localhost".into());
        let note = format!(
            "{addr} listens on every address; `{host}` is this machine's name: clients need a name (or address) that reaches it (or give one with --url)"
        );
        return Ok((format!("{scheme}://{host}{port}"), Some(note)));
    }
    let host = match addr {
        SocketAddr::V4(v4) => v4.ip().to_string(),
        SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
    };
    let note = (scheme == "https").then(|| {
        format!("{addr}: apt checks that the certificate names the host it asks; give that name with --url")
    });
    Ok((format!("{scheme}://{host}{port}"), note))
}

/// This machine's host name.
fn host_name() -> Option<String> {
    let mut buffer = [0u8; 256];
    // SAFETY: the pointer and length describe `buffer`, which outlives the call; gethostname
    // writes at most that many bytes.
    let result = unsafe { libc::gethostname(buffer.as_mut_ptr().cast(), buffer.len()) };
    if result != 0 {
        return None;
    }
    let end = buffer.iter().position(|b| *b == 0).unwrap_or(buffer.len());
    let name = String::from_utf8_lossy(&buffer[..end]).trim().to_string();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn config(server: &str) -> Config {
        let text = format!(
            "data_dir = \"/d\"\n[server]\n{server}\n\n[[source]]\nid = \"deb\"\nkind = \"apt\"\nmount = \"/debian\"\nrepository = \"deb http://deb.example.org/debian bookworm main\"\narchitectures = [\"amd64\", \"arm64\", \"all\"]\nkeys = [\"/k/archive.gpg\"]\n\n[[source]]\nid = \"files\"\nkind = \"dir\"\nmount = \"/files\"\npath = \"/p\"\n"
        );
        Config::parse(&text, Path::new("m.toml")).expect("valid")
    }

    #[test]
    fn the_base_url_comes_from_the_first_listener() {
        let plain = config("http = [\"192.0.2.7:8080\", \"127.0.0.1:80\"]");
        let out = render(&plain, None, &Format::default()).unwrap();
        assert!(out.contains("\ndeb [arch=amd64,arm64 signed-by=/k/archive.gpg] http://192.0.2.7:8080/debian bookworm main\n"), "{out}");
        assert!(
            out.starts_with(
                "# source `deb`, a mirror of http://deb.example.org/debian/ bookworm\n"
            ),
            "{out}"
        );

        let every = config("http = [\"[::]:80\"]");
        let out = render(&every, Some("deb"), &Format::default()).unwrap();
        let host = host_name().expect("a host name");
        assert!(
            out.contains(&format!("] http://{host}/debian bookworm main")),
            "{out}"
        );
        assert!(
            out.starts_with("# [::]:80 listens on every address"),
            "{out}"
        );

        let given = Format {
            url: Some("https://mirror.example/"),
            deb822: true,
        };
        let out = render(&every, None, &given).unwrap();
        assert!(
            out.contains("\nURIs: https://mirror.example/debian\n"),
            "{out}"
        );
        assert!(!out.contains("listens on every address"), "{out}");
        assert!(render(
            &every,
            None,
            &Format {
                url: Some("ftp://x"),
                deb822: false
            }
        )
        .is_err());
    }

    #[test]
    fn only_apt_sources_by_name() {
        let plain = config("http = [\"127.0.0.1:8080\"]");
        let message = render(&plain, Some("files"), &Format::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "source `files` in m.toml is a `dir` source: sources-list is for apt sources (`deb`)"
        );
        let message = render(&plain, Some("nope"), &Format::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "no source `nope` in m.toml (its apt sources: `deb`)"
        );
    }
}
