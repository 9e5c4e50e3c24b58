//! Serving a [`Router`] on a TCP listener: HTTP/1.1 and HTTP/2 (hyper-util's auto builder;
//! h2 by ALPN on TLS, by prior knowledge on plain TCP), optional TLS, and the limits that keep
//! slow or idle clients from holding the gateway's sockets.
//!
//! Per listener:
//! - **Connection cap** (`server.max_connections`): a semaphore permit is taken *before*
//!   `accept`, so above the cap new connections wait in the kernel's listen backlog until one
//!   closes, while every connection already accepted keeps being served.
//! - **Header read timeout** (`server.header_read_timeout_s`): hyper closes an HTTP/1
//!   connection whose request headers do not arrive in time, idle keep-alive time included
//!   (slowloris). The TLS handshake has the same bound.
//! - **Idle timeout** (`server.idle_timeout_s`, [`Idle`]): a connection on which no byte moves
//!   either way for this long is closed: an idle HTTP/2 connection, a client that stops
//!   reading its response. Until a connection has sent its first [`OPENING_BYTES`] (enough to
//!   tell HTTP/1 from HTTP/2; hyper's header timer starts after that), the header read timeout
//!   applies instead: a silent socket or a half-sent HTTP/2 preface is cut as fast as slow
//!   headers.
//! - The request timeout (`server.request_timeout_s`) is a layer of the router
//!   ([`super::timeout`]), so it answers with a problem document.
//!
//! On shutdown the listener stops accepting, asks every connection to finish its in-flight
//! requests (HTTP/2 GOAWAY, HTTP/1 close after the response) and waits at most `drain`.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use switchyard_ops::config::{Config, ServerConfig, ServerTls};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;
use tokio_util::either::Either;

use super::AppState;

/// Bytes a client must send within the header read timeout before the idle timeout applies:
/// the length of the HTTP/2 connection preface (an HTTP/1 request line with its headers is
/// longer, and is timed by hyper from there).
pub(crate) const OPENING_BYTES: u64 = 24;

/// How one listener treats its connections.
#[derive(Clone)]
pub(crate) struct Limits {
    /// Connections served at once; more wait in the listen backlog.
    pub(crate) max_connections: usize,
    /// Request headers (and keep-alive gaps, and the TLS handshake) must arrive within this.
    pub(crate) header_read_timeout: Duration,
    /// A connection with no byte moving either way for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// TLS (with ALPN `h2`, `http/1.1`); `None`: plain TCP.
    pub(crate) tls: Option<TlsAcceptor>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("max_connections", &self.max_connections)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

/// The HTTP listeners of a running gateway.
#[derive(Debug)]
pub(crate) struct Listeners {
    /// Where the API listens (`server.listen`).
    pub(crate) api: SocketAddr,
    /// Where `/metrics` and `/readyz` are served, when `server.ops_listen` is set.
    pub(crate) ops: Option<SocketAddr>,
    /// The accept loops; they end once shutdown was signalled and connections drained.
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Listeners {
    /// Waits until every listener has stopped and drained (after the shutdown signal).
    pub(crate) async fn closed(self) {
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Binds `server.listen` (and `server.ops_listen`) and serves the API (and the operator's
/// endpoints, in plain HTTP) until `shutdown` turns true. TLS files are relative to
/// `base_dir`.
pub(crate) async fn start(
    server: &ServerConfig,
    base_dir: &Path,
    state: AppState,
    extra: Router,
    shutdown: &watch::Receiver<bool>,
) -> anyhow::Result<Listeners> {
    let listener = TcpListener::bind(server.listen)
        .await
        .with_context(|| format!("listening on {}", server.listen))?;
    let api = listener.local_addr()?;
    let tls = match &server.tls {
        Some(tls) => {
            let tls = ServerTls {
                cert: Config::resolve(base_dir, &tls.cert),
                key: Config::resolve(base_dir, &tls.key),
                client_ca: tls
                    .client_ca
                    .as_ref()
                    .map(|ca| Config::resolve(base_dir, ca)),
            };
            Some(tls_acceptor(&tls).context("server.tls_cert")?)
        }
        None => None,
    };
    let limits = Limits {
        max_connections: server.max_connections,
        header_read_timeout: server.header_read_timeout,
        idle_timeout: server.idle_timeout,
        tls,
    };
    let drain = server.shutdown_timeout + Duration::from_secs(5);
    let app = super::router(state.clone(), server, extra);
    let mut tasks = vec![tokio::spawn(serve(
        listener,
        app,
        limits.clone(),
        shutdown.clone(),
        drain,
    ))];
    // The operator's endpoints: plain HTTP on their own (usually private) address.
    let ops = match server.ops_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr)
                .await
                .with_context(|| format!("listening on {addr} (server.ops_listen)"))?;
            let ops = listener.local_addr()?;
            let limits = Limits {
                max_connections: OPS_MAX_CONNECTIONS,
                tls: None,
                ..limits
            };
            let app = super::ops_router(state, server);
            tasks.push(tokio::spawn(serve(
                listener,
                app,
                limits,
                shutdown.clone(),
                drain,
            )));
            Some(ops)
        }
        None => None,
    };
    Ok(Listeners { api, ops, tasks })
}

/// Connections at once on the operator's listener (scrapers and probes: a handful).
const OPS_MAX_CONNECTIONS: usize = 64;

/// The rustls configuration of the API listener: the certificate chain and key of
/// `server.tls_cert`/`tls_key`, client certificates verified against `tls_client_ca` when it
/// is set, ALPN offering HTTP/2 then HTTP/1.1.
pub(crate) fn tls_acceptor(tls: &ServerTls) -> anyhow::Result<TlsAcceptor> {
    let mut config =
        crate::tls::server_config_with_clients(&tls.cert, &tls.key, tls.client_ca.as_deref())?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves `app` on `listener` until `shutdown` turns true, then drains for at most `drain`.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(128);
    let builder = Arc::new(builder);
    let stopping = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    tokio::pin!(stopping);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            () = &mut stopping => break,
        };
        // The semaphore is never closed, so `acquire_owned` cannot fail.
        let Ok(permit) = permit else { break };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            () = &mut stopping => break,
        };
        let _ = stream.set_nodelay(true);
        let watcher = graceful.watcher();
        let (builder, app, limits) = (builder.clone(), app.clone(), limits.clone());
        tokio::spawn(async move {
            // Held until the connection ends: the slot frees when the socket closes.
            let _permit = permit;
            let Some(io) = handshake(stream, peer, &limits).await else {
                return;
            };
            let io = Idle::new(io, limits.idle_timeout)
                .opening(OPENING_BYTES, limits.header_read_timeout);
            let io = TokioIo::new(io);
            let service = TowerToHyperService::new(WithPeer { app, peer });
            let conn = builder.serve_connection(io, service).into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(%peer, "HTTP connection ended: {e}");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open after {drain:?}; closing them");
    }
}

/// The address of the client a request came from (its connection's TCP peer), in every
/// request's extensions: what the dashboard's sign-in limit counts by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Peer(pub(crate) SocketAddr);

/// The router, with the connection's [`Peer`] added to each request.
#[derive(Clone)]
struct WithPeer {
    /// The routes.
    app: Router,
    /// The connection's peer.
    peer: SocketAddr,
}

impl<B> tower_service::Service<axum::http::Request<B>> for WithPeer
where
    Router: tower_service::Service<axum::http::Request<B>>,
{
    type Response = <Router as tower_service::Service<axum::http::Request<B>>>::Response;
    type Error = <Router as tower_service::Service<axum::http::Request<B>>>::Error;
    type Future = <Router as tower_service::Service<axum::http::Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<axum::http::Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(Peer(self.peer));
        self.app.call(request)
    }
}

/// The connection as HTTP sees it: plain TCP or TLS over TCP.
type Stream = Either<TcpStream, tokio_rustls::server::TlsStream<TcpStream>>;

/// Runs the TLS handshake (bounded by the header read timeout) when the listener has TLS.
async fn handshake(stream: TcpStream, peer: SocketAddr, limits: &Limits) -> Option<Stream> {
    let Some(acceptor) = &limits.tls else {
        return Some(Either::Left(stream));
    };
    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(Either::Right(tls)),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

/// An `accept` that failed. Errors about one connection (reset before accept) are skipped;
/// running out of file descriptors or memory waits a little so the loop does not spin.
async fn accept_error(e: io::Error) {
    use io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::warn!("accepting an HTTP connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// A stream that fails with [`io::ErrorKind::TimedOut`] once no byte has been read or written
/// for `timeout` while a read or write waits (or for the shorter opening limit while the peer
/// has sent fewer than the opening bytes). The deadline moves lazily: each transfer only
/// records the time, and the timer is re-armed when it fires early.
#[derive(Debug)]
pub(crate) struct Idle<S> {
    /// The connection.
    inner: S,
    /// How long the connection may be silent.
    timeout: Duration,
    /// Until this many bytes were read, `opening_timeout` applies instead of `timeout`.
    opening_bytes: u64,
    /// The silence allowed before the opening bytes arrived.
    opening_timeout: Duration,
    /// Bytes read so far (counted up to `opening_bytes`).
    read: u64,
    /// When a byte last moved.
    last: Instant,
    /// Fires at `last + limit` (or earlier, then it is re-armed).
    timer: Pin<Box<Sleep>>,
}

impl<S> Idle<S> {
    /// Wraps `inner`; the silence starts now.
    pub(crate) fn new(inner: S, timeout: Duration) -> Self {
        let last = Instant::now();
        Idle {
            inner,
            timeout,
            opening_bytes: 0,
            opening_timeout: timeout,
            read: 0,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + timeout)),
        }
    }

    /// Allows only `timeout` of silence until the peer has sent `bytes` bytes.
    pub(crate) fn opening(mut self, bytes: u64, timeout: Duration) -> Self {
        self.opening_bytes = bytes;
        self.opening_timeout = timeout;
        let deadline = self.last + self.limit();
        self.timer.as_mut().reset(deadline);
        self
    }

    /// The silence allowed now.
    fn limit(&self) -> Duration {
        if self.read < self.opening_bytes {
            self.opening_timeout
        } else {
            self.timeout
        }
    }

    /// Called when a read or write is pending: `Ready` with an error once the connection has
    /// been silent for too long.
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            ready!(self.timer.as_mut().poll(cx));
            let deadline = self.last + self.limit();
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "connection idle for too long",
                ));
            }
            self.timer.as_mut().reset(deadline);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    this.last = Instant::now();
                    if this.read < this.opening_bytes {
                        this.read = this.read.saturating_add(n as u64);
                    }
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_expired(cx).map(Err),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_expired(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.poll_expired(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.poll_expired(cx).map(Err),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_times_out_and_traffic_keeps_it_open() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_secs(10));
        let mut buf = [0u8; 8];
        // Traffic every 6 s keeps it open past the 10 s mark.
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            b.write_all(b"x").await.unwrap();
            assert_eq!(idle.read(&mut buf).await.unwrap(), 1);
        }
        // Then silence: the pending read fails 10 s after the last byte.
        let start = Instant::now();
        let err = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(start.elapsed(), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn the_opening_bytes_must_come_within_the_shorter_limit() {
        // Silent from the start: cut after the opening limit.
        let (a, _b) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_secs(60)).opening(24, Duration::from_secs(2));
        let start = Instant::now();
        let mut buf = [0u8; 64];
        assert_eq!(
            idle.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // A half-sent HTTP/2 preface: still the opening limit.
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_secs(60)).opening(24, Duration::from_secs(2));
        b.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
        assert_eq!(idle.read(&mut buf).await.unwrap(), 16);
        let start = Instant::now();
        assert_eq!(
            idle.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(start.elapsed(), Duration::from_secs(2));

        // Once the opening bytes are in, the idle limit applies.
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_secs(60)).opening(24, Duration::from_secs(2));
        b.write_all(&[b'x'; 24]).await.unwrap();
        assert_eq!(idle.read(&mut buf).await.unwrap(), 24);
        let start = Instant::now();
        assert_eq!(
            idle.read(&mut buf).await.unwrap_err().kind(),
            io::ErrorKind::TimedOut
        );
        assert_eq!(start.elapsed(), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_out_the_writer() {
        let (a, _b) = tokio::io::duplex(16);
        let mut idle = Idle::new(a, Duration::from_secs(5));
        let err = idle.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
    }
}
