//! Plain settings the HTTP server is started with: listeners, limits and the TLS files. They
//! live here, not with the configuration file's parser, so the server does not depend on how
//! its settings are read (the parser builds them and re-exports them under its own names).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Listeners and connection limits.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub http: Vec<SocketAddr>,
    pub https: Vec<SocketAddr>,
    pub tls: Option<TlsSettings>,
    /// `[server.acme]`: certificates obtained and renewed by the server itself (never set
    /// together with `tls`).
    pub acme: Option<crate::acme::AcmeSettings>,
    /// How long a client may take to send a request's headers; for the first request, counted
    /// from the accept (TLS handshake and protocol detection included).
    pub header_timeout: Duration,
    /// How long a connection may stay open with no request in flight (whatever else it sends),
    /// how long an HTTP/2 one with requests in flight may produce no response data, and how
    /// long one may move no bytes at all before it is closed.
    pub idle_timeout: Duration,
    /// Open connections above this wait in the accept queue.
    pub max_connections: usize,
    /// Length of the kernel's accept queue (`listen(2)` backlog), where connections over
    /// `max_connections` wait.
    pub listen_backlog: u32,
    /// Cap on one request's header block (HTTP/1.1: answered 431; HTTP/2: the advertised
    /// `SETTINGS_MAX_HEADER_LIST_SIZE`, over it 431).
    pub max_header_bytes: usize,
    /// HTTP/2 streams a client may have open at once on one connection.
    pub max_streams: u32,
    /// File bytes read for responses but not yet handed to the kernel, all connections
    /// together. Reads wait for room rather than allocate past it.
    pub buffer_memory: usize,
    /// The same, for one connection (so a few stalled clients cannot take all of it).
    pub connection_buffer: usize,
    /// On SIGTERM, how long running downloads may take to finish.
    pub shutdown_grace: Duration,
    /// One tracing line per request, target `access`.
    pub access_log: bool,
    /// Loopback clients see full status messages (filesystem paths). Off behind a reverse
    /// proxy on the same host, where every client arrives from loopback.
    pub trust_loopback: bool,
}

/// Where the HTTPS certificate chain and its private key are read from (PEM files).
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
}
