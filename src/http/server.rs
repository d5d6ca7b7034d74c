//! Listeners and connections: plain HTTP and HTTPS side by side, one task per connection, a
//! connection cap, timeouts, and a graceful shutdown that lets downloads finish within a bound.
//!
//! Memory per connection is bounded: request heads by `max_header_bytes`, HTTP/2 streams by
//! `max_streams`, and response data waiting for a slow client by the buffer budget
//! ([`budget`](super::budget)), per connection and for the whole server.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

use super::activity::{Activity, Expired, Tracked};
use super::budget::Budget;
use super::certificates::{Certificates, ACME_TLS_ALPN};
use super::idle::IdleTimeout;
use super::settings::ServerSettings;
use super::tls;
use super::zerocopy::{Sender, ZeroCopyStream};
use super::State;

/// Bound listeners, ready to serve. Binding is separate so start-up errors (port in use)
/// surface before anything else starts.
pub struct Listeners {
    bound: Vec<(TcpListener, Option<TlsAcceptor>)>,
}

impl Listeners {
    pub async fn bind(
        config: &ServerSettings,
        certificates: Option<&Certificates>,
    ) -> anyhow::Result<Listeners> {
        let mut bound = Vec::new();
        for addr in &config.http {
            let listener = listen(*addr, config.listen_backlog)
                .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
            bound.push((listener, None));
        }
        if !config.https.is_empty() {
            let certificates = certificates.context("HTTPS listeners need a certificate")?;
            let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(certificates)?));
            for addr in &config.https {
                let listener = listen(*addr, config.listen_backlog)
                    .with_context(|| format!("cannot listen for HTTPS on {addr}"))?;
                bound.push((listener, Some(acceptor.clone())));
            }
        }
        for (listener, tls) in &bound {
            let scheme = if tls.is_some() { "https" } else { "http" };
            if let Ok(addr) = listener.local_addr() {
                tracing::info!("listening on {scheme}://{addr}/");
            }
        }
        Ok(Listeners { bound })
    }
}

/// Binds with the configured accept queue length (the standard library's `bind` asks for 128),
/// which is where connections over `max_connections` wait.
fn listen(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// How long a stalled connection gets to send its GOAWAY before it is dropped.
const STALLED_GOODBYE: Duration = Duration::from_secs(1);

/// What one HTTP/2 stream may have queued in h2 beyond what it has sent; the chunk being
/// handed over comes on top. Small, so a stream whose client does not read holds little.
const H2_SEND_BUFFER: usize = 64 * 1024;

fn builder(config: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        // Bounds the request head (over it: 431) and what hyper queues for writing.
        .max_buf_size(config.max_header_bytes)
        // Queue body chunks instead of copying them into one growing buffer, so the bytes
        // waiting for the socket are the budgeted chunks themselves. Required by `zerocopy`
        // too: its placeholder chunks must reach the connection's writer uncopied (hyper
        // copying one would read an unreadable mapping), so never turn this off nor set
        // `pipeline_flush`, which copies.
        .writev(true)
        // apt pipelines up to 10 requests; hyper answers them in order. (No `pipeline_flush`:
        // it buffers bodies without bound before writing, which costs memory and a copy.)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.max_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .initial_connection_window_size(4 * 1024 * 1024)
        .initial_stream_window_size(1024 * 1024)
        .max_send_buf_size(H2_SEND_BUFFER)
        // Rapid reset (CVE-2023-44487): streams the client cancels before they are served
        // count, and 20 of them pending at once end the connection (GOAWAY ENHANCE_YOUR_CALM).
        // Streams the server resets for the client's errors, 1024 per connection at most.
        // These are h2's and hyper's defaults, set here so a dependency update cannot drop them.
        .max_pending_accept_reset_streams(20)
        .max_local_error_reset_streams(1024)
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Serves until `shutdown` turns true, then stops accepting, asks every connection to finish
/// its current responses, and waits up to `shutdown_grace` for them.
pub async fn serve(
    state: Arc<State>,
    config: ServerSettings,
    listeners: Listeners,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let shared_config = Arc::new(config.clone());
    let plain = builder(&config);
    let builder = Arc::new(Builders {
        h1: plain.clone().http1_only(),
        h2: plain.clone().http2_only(),
        plain,
    });
    // Measure the store now, so the first status page or scrape need not wait for it.
    state.metrics.store.prime();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let budget = Budget::new(config.buffer_memory, config.connection_buffer);
    let mut accept_loops = tokio::task::JoinSet::new();
    for (listener, tls) in listeners.bound {
        accept_loops.spawn(accept_loop(
            listener,
            tls,
            Shared {
                state: state.clone(),
                config: shared_config.clone(),
                builder: builder.clone(),
                budget: budget.clone(),
            },
            slots.clone(),
            shutdown.clone(),
        ));
    }
    accept_loops.spawn(super::memory::trim_after_bursts(budget));
    let _ = shutdown.wait_for(|stop| *stop).await;
    accept_loops.shutdown().await;
    let open = config.max_connections - slots.available_permits();
    tracing::info!(open, grace = ?config.shutdown_grace, "shutting down: finishing open connections");
    let all = u32::try_from(config.max_connections).unwrap_or(u32::MAX);
    match tokio::time::timeout(config.shutdown_grace, slots.acquire_many(all)).await {
        Ok(_) => tracing::info!("all connections finished"),
        Err(_) => tracing::warn!("shutdown grace period over; closing the remaining connections"),
    }
    Ok(())
}

/// Plain connections sniff whether they speak HTTP/1 or HTTP/2; on TLS connections ALPN has
/// already said which, so they skip the sniffing (and its read-ahead wrapper).
struct Builders {
    plain: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

/// What every connection of a listener shares.
#[derive(Clone)]
struct Shared {
    state: Arc<State>,
    config: Arc<ServerSettings>,
    builder: Arc<Builders>,
    budget: Budget,
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Shared,
    slots: Arc<Semaphore>,
    shutdown: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        // Over the cap, wait here: the kernel's accept queue holds the newcomers.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => {
                backoff = Duration::from_millis(10);
                accepted
            }
            Err(e) => {
                // EMFILE and friends: wait a little instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let accepted = Instant::now();
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = shared.state.metrics.connection_opened();
            let server = &*shared.config;
            let idle = server.idle_timeout;
            let connection = Connection {
                peer,
                accepted,
                shared: &shared,
            };
            match tls {
                None => {
                    let (stream, sender) = ZeroCopyStream::new(stream);
                    let io = IdleTimeout::new(stream, idle);
                    // Sendfile bodies need hyper to hand body chunks through untouched, which
                    // it does only when the whole stack writes vectored.
                    let sender = io.is_write_vectored().then_some(sender);
                    connection
                        .serve(io, &shared.builder.plain, shutdown, false, sender)
                        .await
                }
                Some(acceptor) => {
                    // The handshake counts against the time to the first request.
                    let deadline = accepted + server.header_timeout;
                    let handshake =
                        tokio::time::timeout_at(deadline, acceptor.accept(stream)).await;
                    match handshake {
                        Ok(Ok(mut tls_stream)) => {
                            let alpn = tls_stream.get_ref().1.alpn_protocol();
                            if alpn == Some(ACME_TLS_ALPN) {
                                // A TLS-ALPN-01 validation: the handshake was the answer, and
                                // such a connection never carries HTTP (RFC 8737 §3).
                                tracing::debug!(%peer, "ACME TLS-ALPN-01 validation answered");
                                let _ = tokio::time::timeout(
                                    STALLED_GOODBYE,
                                    tokio::io::AsyncWriteExt::shutdown(&mut tls_stream),
                                )
                                .await;
                                return;
                            }
                            let h2 = alpn == Some(b"h2");
                            let builder = if h2 {
                                &shared.builder.h2
                            } else {
                                &shared.builder.h1
                            };
                            connection
                                .serve(
                                    IdleTimeout::new(tls_stream, idle),
                                    builder,
                                    shutdown,
                                    true,
                                    None,
                                )
                                .await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
}

/// One accepted connection.
struct Connection<'a> {
    peer: SocketAddr,
    accepted: Instant,
    shared: &'a Shared,
}

impl Connection<'_> {
    /// Serves requests until the client leaves, a time limit ([`Activity`]) runs out, or the
    /// server shuts down.
    /// `zero_copy`: the connection's sendfile channel (plain HTTP/1 only, see `zerocopy`).
    async fn serve<IO>(
        self,
        io: IO,
        builder: &auto::Builder<TokioExecutor>,
        mut shutdown: watch::Receiver<bool>,
        tls: bool,
        zero_copy: Option<Sender>,
    ) where
        IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            peer,
            accepted,
            shared,
        } = self;
        let config = &*shared.config;
        let activity = Activity::new();
        let service = {
            let state = shared.state.clone();
            let budget = shared.budget.connection();
            let activity = activity.clone();
            service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
                if let Some(sender) = &zero_copy {
                    req.extensions_mut().insert(sender.clone());
                }
                let state = state.clone();
                let budget = budget.clone();
                let in_flight = activity.request_started(req.version());
                async move {
                    let req = super::drain::without_body(req).await;
                    let response = super::handle(state, req, peer, tls).await;
                    Ok::<_, Infallible>(
                        response.map(|body| Tracked::new(body.budgeted(budget), in_flight)),
                    )
                }
            })
        };
        let connection = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(connection);
        let expired = activity.watch(accepted, config.header_timeout, config.idle_timeout);
        let result = tokio::select! {
            result = connection.as_mut() => result,
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
                connection.as_mut().graceful_shutdown();
                connection.await
            }
            why = expired => match why {
                Expired::NoRequest => {
                    // Still in the middle of a request head (or of the HTTP/2 preface): there
                    // is no clean way to say goodbye, so just close.
                    tracing::debug!(%peer, "no request within header_timeout; closing");
                    return;
                }
                Expired::Idle => {
                    // HTTP/2: GOAWAY, then close; HTTP/1.1: close between requests.
                    tracing::debug!(%peer, "idle; closing");
                    connection.as_mut().graceful_shutdown();
                    connection.await
                }
                Expired::Stalled => {
                    // GOAWAY, then close without waiting for the stalled streams.
                    tracing::debug!(%peer, "no response progress; closing");
                    connection.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(STALLED_GOODBYE, connection).await;
                    return;
                }
            },
        };
        if let Err(e) = result {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
    }
}
