//! Listeners and connections: plain HTTP and HTTPS side by side, one task per connection, a
//! connection cap, timeouts, and a graceful shutdown that lets downloads finish within a bound.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::idle::IdleTimeout;
use super::tls::{self, ReloadableCert};
use super::zerocopy::{Sender, ZeroCopyStream};
use crate::app::App;
use crate::config::ServerConfig;

/// Bound listeners, ready to serve. Binding is separate so start-up errors (port in use)
/// surface before anything else starts.
pub struct Listeners {
    bound: Vec<(TcpListener, Option<TlsAcceptor>)>,
}

impl Listeners {
    pub async fn bind(
        config: &ServerConfig,
        cert: Option<Arc<ReloadableCert>>,
    ) -> anyhow::Result<Listeners> {
        let mut bound = Vec::new();
        for addr in &config.http {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen for HTTP on {addr}"))?;
            bound.push((listener, None));
        }
        if !config.https.is_empty() {
            let cert = cert.context("HTTPS listeners need a certificate")?;
            let acceptor = TlsAcceptor::from(Arc::new(tls::server_config(cert)?));
            for addr in &config.https {
                let listener = TcpListener::bind(addr)
                    .await
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

fn builder(config: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_timeout)
        // apt pipelines up to 10 requests; hyper answers them in order. (No `pipeline_flush`:
        // it buffers bodies without bound before writing, which costs memory and a copy.)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .initial_connection_window_size(4 * 1024 * 1024)
        .initial_stream_window_size(1024 * 1024)
        .max_send_buf_size(1024 * 1024)
        .keep_alive_interval(Some(Duration::from_secs(60)))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Plain connections sniff whether they speak HTTP/1 or HTTP/2; on TLS connections ALPN has
/// already said which, so they skip the sniffing (and its read-ahead wrapper).
struct Builders {
    plain: auto::Builder<TokioExecutor>,
    h1: auto::Builder<TokioExecutor>,
    h2: auto::Builder<TokioExecutor>,
}

/// Serves until `shutdown` turns true, then stops accepting, asks every connection to finish
/// its current responses, and waits up to `shutdown_grace` for them.
pub async fn serve(
    app: Arc<App>,
    listeners: Listeners,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let config = app.config.server.clone();
    let plain = builder(&config);
    let builder = Arc::new(Builders {
        h1: plain.clone().http1_only(),
        h2: plain.clone().http2_only(),
        plain,
    });
    // Measure the store now, so the first status page or scrape need not wait for it.
    app.metrics.store.prime();
    let slots = Arc::new(Semaphore::new(config.max_connections));
    let mut accept_loops = tokio::task::JoinSet::new();
    for (listener, tls) in listeners.bound {
        accept_loops.spawn(accept_loop(
            listener,
            tls,
            app.clone(),
            builder.clone(),
            slots.clone(),
            shutdown.clone(),
        ));
    }
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

async fn accept_loop(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Arc<App>,
    builder: Arc<Builders>,
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
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let builder = builder.clone();
        let tls = tls.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _open = app.metrics.connection_opened();
            let idle = app.config.server.idle_timeout;
            match tls {
                None => {
                    let (stream, sender) = ZeroCopyStream::new(stream);
                    let io = IdleTimeout::new(stream, idle);
                    // Sendfile bodies need hyper to hand body chunks through untouched, which
                    // it does only when the whole stack writes vectored.
                    let sender = io.is_write_vectored().then_some(sender);
                    serve_connection(
                        io,
                        peer,
                        app.clone(),
                        &builder.plain,
                        shutdown,
                        false,
                        sender,
                    )
                    .await
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        app.config.server.header_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls_stream)) => {
                            let h2 = tls_stream.get_ref().1.alpn_protocol() == Some(b"h2");
                            serve_connection(
                                IdleTimeout::new(tls_stream, idle),
                                peer,
                                app.clone(),
                                if h2 { &builder.h2 } else { &builder.h1 },
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

async fn serve_connection<IO>(
    io: IO,
    peer: SocketAddr,
    app: Arc<App>,
    builder: &auto::Builder<TokioExecutor>,
    mut shutdown: watch::Receiver<bool>,
    tls: bool,
    zero_copy: Option<Sender>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        if let Some(sender) = &zero_copy {
            req.extensions_mut().insert(sender.clone());
        }
        let app = app.clone();
        async move { Ok::<_, Infallible>(super::handle(app, req, peer, tls).await) }
    });
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let result = tokio::select! {
        result = connection.as_mut() => result,
        _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
