//! The transports: one tokio task owns the UDP socket, the TCP (and TLS) listeners and the
//! [`Proxy`]; it reads the clock (`Instant::now()`) for the proxy, sends what it queues and
//! sleeps until its next deadline. Each TCP/TLS connection has its own task that cuts
//! messages out of the stream ([`StreamFramer`]) and writes what the proxy sends to that
//! peer; they talk to the proxy task through channels, so the proxy stays single-threaded.
//!
//! Connections are keyed by [`Peer`] (transport + remote address). A request for a peer with
//! no connection opens one (trunks with `transport = "tcp"`/`"tls"`; a caller whose
//! connection closed), at most `[sip] max_outgoing_connections` at once; if the connect or
//! the TLS handshake fails, or the cap is reached, the transactions queued on it fail like a
//! UDP send error (the proxy fails the branch over). A response never opens a connection: it
//! goes back on the one its request came in on, or nowhere.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use switchyard_ops::config::Config;
use switchyard_protocols::sip::framing::StreamFramer;
use switchyard_protocols::sip::transaction::{TransactionId, Transmit};
use switchyard_routing::Router;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};
use tokio_util::codec::FramedRead;

use super::access::AllowList;
use super::cdr::WallClock;
use super::limits::Limits;
use super::peer::{Peer, Transport};
use super::proxy::{Proxy, ProxySettings, Reconfigure};
use super::trunks::Trunks;
use crate::carrier::backoff::Backoff;
use crate::domain::{now_ms, CallRecord, Update};
use crate::store::Store;
use crate::tls::TlsSettings;

/// Largest datagram read (the UDP maximum).
const MAX_DATAGRAM: usize = 65_535;

/// Call records handed to the store writer and not yet stored, at most (a few seconds of
/// calls at thousands per second; minutes of a store outage at lower rates). Records beyond
/// it are dropped.
const RECORD_QUEUE: usize = 65_536;

/// Records handed to the store writer at once, and written per store request.
const RECORD_BATCH: usize = 512;

/// The longest a finished call's record waits on the proxy thread for its batch to fill.
/// Records handed over one by one would wake the writer task and the store's writer thread
/// for every call: thousands of wake-ups and small commits a second, on the cores the proxy
/// thread needs, and the proxy thread waiting for a core is what its INVITE→200 tail is made
/// of.
const RECORD_LINGER: Duration = Duration::from_millis(200);

/// Messages queued for one connection's writer before sends to it fail.
const CONN_QUEUE: usize = 1024;

/// Messages from all connections waiting for the proxy task.
const INBOUND_QUEUE: usize = 8192;

/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection idle this long (nothing read or written) is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Most TCP/TLS connections at once (further accepts wait).
const MAX_CONNECTIONS: usize = 4096;

/// UDP socket buffers asked for (the kernel caps them at net.core.rmem_max/wmem_max): bursts
/// of thousands of datagrams a second must wait in the kernel, not be dropped, while the
/// proxy task is busy.
const UDP_BUFFER: usize = 4 << 20;

/// Datagrams handled per wake-up (each one's answers sent before the next is read) before the
/// turn ends: records handed over, gauges set, the timer moved.
const RECV_BATCH: usize = 64;

/// The proxy's timers fire on a grid of this step, up to one step late: at thousands of calls
/// per second a transaction's wait state (timers D, I, J, K, L, M) ends every fraction of a
/// millisecond, and following each deadline exactly would wake the thread (and move its
/// timer) thousands of times a second only to forget a transaction. On a grid, one wake-up
/// ends all that came due in the step, and the timer moves at most once per step. SIP's own
/// timers are hundreds of milliseconds (T1 = 500 ms): ten milliseconds late changes nothing.
const TIMER_GRID: Duration = Duration::from_millis(10);

/// A turn of the proxy loop (handling what woke it, then sending what it queued) longer than
/// this is logged as a warning, with what the turn did. Every call in flight waits for the
/// turn to end, so these are the proxy's own share of its INVITE→200 tail.
const SLOW_TURN: Duration = Duration::from_millis(20);

/// The proxy's timer firing this much after its deadline is logged as a warning: the thread
/// did not get a core (or a slow turn ran) in the meantime.
const LATE_TIMER: Duration = Duration::from_millis(20);

/// `at` moved up to the next point of a [`TIMER_GRID`] that starts at `epoch`.
fn on_grid(at: Instant, epoch: Instant) -> Instant {
    let step = TIMER_GRID.as_nanos();
    let since = at.saturating_duration_since(epoch).as_nanos();
    let steps = since.div_ceil(step);
    let nanos = u64::try_from(steps.saturating_mul(step)).unwrap_or(u64::MAX);
    epoch + Duration::from_nanos(nanos)
}

/// The UDP socket, with large buffers (a std socket: the proxy thread's runtime adopts it).
fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = s.set_recv_buffer_size(UDP_BUFFER) {
        tracing::warn!(error = %e, "could not enlarge the SIP UDP receive buffer");
    }
    if let Err(e) = s.set_send_buffer_size(UDP_BUFFER) {
        tracing::warn!(error = %e, "could not enlarge the SIP UDP send buffer");
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// A non-blocking std TCP listener (adopted by the proxy thread's runtime).
fn bind_tcp(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let l = std::net::TcpListener::bind(addr)?;
    l.set_nonblocking(true)?;
    Ok(l)
}

/// What connection tasks tell the proxy task.
#[derive(Debug)]
enum Inbound {
    /// A message cut from the stream.
    Message(Peer, Bytes),
    /// An outgoing connection is up.
    Connected(Peer),
    /// The connection is gone (closed, reset, idle, framing error, failed connect).
    Closed(Peer),
}

/// The proxy task's view of one connection.
#[derive(Debug)]
struct Conn {
    /// Its writer's queue.
    tx: mpsc::Sender<Bytes>,
    /// Transactions whose requests wait for the connect; failed if it fails.
    pending: Vec<TransactionId>,
    /// Whether the connection is established (accepted, or connected).
    up: bool,
    /// We opened it (counted against `max_outgoing_connections`).
    outgoing: bool,
}

/// The running proxy, as the gateway holds it.
#[derive(Debug)]
pub(crate) struct SipHandle {
    /// The UDP (and TCP) address.
    pub(crate) addr: SocketAddr,
    /// The proxy task; it ends when `shutdown` turns true.
    pub(crate) task: tokio::task::JoinHandle<()>,
    /// Reloads for the proxy task.
    pub(crate) reload: mpsc::Sender<Reconfigure>,
}

/// Everything of `config`'s `[sip]` settings a reload can change, resolved and checked
/// (trunk addresses, TLS trust anchors) so that a reload can be refused before anything
/// changes. `None` without `[sip]`.
pub(crate) fn plan(config: &Config, base_dir: &Path) -> anyhow::Result<Option<Reconfigure>> {
    let Some(sip) = &config.sip else {
        return Ok(None);
    };
    Ok(Some(Reconfigure {
        allow: AllowList::from_config(config),
        trunks: Trunks::resolve(config, base_dir)?,
        limits: Limits::from_config(config, Instant::now()),
        no_answer_timeout: sip.no_answer_timeout,
        options_interval: sip.options_interval,
        max_call_duration: sip.max_call_duration,
        unauthenticated_max_rate: rate(sip.unauthenticated_max_rate),
        unauthenticated_max_rate_per_source: rate(sip.unauthenticated_max_rate_per_source),
        max_outgoing_connections: sip.max_outgoing_connections,
    }))
}

/// A configured rate (validated ≥ 1).
fn rate(n: u32) -> std::num::NonZeroU32 {
    std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN)
}

/// The UDP and TCP listeners on `listen` (TCP on the same port as UDP). With port 0 the port
/// UDP got may be taken for TCP (by any process's outgoing connection): then another port is
/// tried, a few times.
fn bind_udp_and_tcp(
    listen: std::net::SocketAddr,
) -> anyhow::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let mut attempts = 0;
    loop {
        let udp = bind_udp(listen)
            .with_context(|| format!("binding the SIP listener on udp {listen}"))?;
        let me = udp.local_addr()?;
        match bind_tcp(me) {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e)
                if listen.port() == 0
                    && attempts < 8
                    && e.kind() == std::io::ErrorKind::AddrInUse =>
            {
                attempts += 1;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("binding the SIP listener on tcp {me}"))
            }
        }
    }
}

/// Binds the `[sip]` listeners (UDP and TCP on `listen`, TLS on `tls_listen`) and spawns the
/// proxy task, whose limits are split over the live nodes `nodes` counts. `None` when there
/// is no `[sip]` table.
pub(crate) async fn start(
    config: &Config,
    base_dir: &Path,
    router: Arc<Router>,
    store: Arc<dyn Store>,
    nodes: Arc<std::sync::atomic::AtomicU32>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<SipHandle>> {
    let Some(sip) = &config.sip else {
        return Ok(None);
    };
    let (udp, tcp) = bind_udp_and_tcp(sip.listen)?;
    let me = udp.local_addr()?;
    let tls = match &sip.tls {
        Some(t) => {
            let cert = Config::resolve(base_dir, &t.cert);
            let key = Config::resolve(base_dir, &t.key);
            let server = crate::tls::server_config(&cert, &key)?;
            let listener = bind_tcp(t.listen)
                .with_context(|| format!("binding the SIP listener on tls {}", t.listen))?;
            tracing::info!(address = %listener.local_addr()?, "SIP proxy listening (TLS)");
            Some((listener, tokio_rustls::TlsAcceptor::from(Arc::new(server))))
        }
        None => None,
    };
    let now = Instant::now();
    let trunks = Trunks::resolve(config, base_dir)?;
    let settings = ProxySettings {
        me,
        no_answer_timeout: sip.no_answer_timeout,
        allow: AllowList::from_config(config),
        trunks: trunks.clone(),
        limits: Limits::from_config(config, now).with_nodes(nodes),
        options_interval: sip.options_interval,
        max_call_duration: sip.max_call_duration,
        clock: WallClock::new(now, now_ms()),
        max_transactions: sip.max_transactions,
        unauthenticated_max_rate: rate(sip.unauthenticated_max_rate),
        unauthenticated_max_rate_per_source: rate(sip.unauthenticated_max_rate_per_source),
    };
    let proxy = Proxy::new(settings, router, now);
    let max_outgoing = sip.max_outgoing_connections;
    // Each batch holds at least one record, so the channel never fills before the count of
    // waiting records reaches RECORD_QUEUE.
    let (records, rx) = mpsc::channel::<Vec<CallRecord>>(RECORD_QUEUE);
    let waiting = Arc::new(AtomicUsize::new(0));
    let writer = tokio::spawn(write_records(store, rx, waiting.clone()));
    let (reload, reloads) = mpsc::channel(4);
    let (done, stopped) = tokio::sync::oneshot::channel::<()>();
    // The proxy is one state machine fed by one loop: it runs on its own thread with a
    // single-threaded runtime (its connection tasks too), so no work-stealing or cross-thread
    // wake-ups sit between a datagram and its answer.
    std::thread::Builder::new()
        .name("sip-proxy".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "SIP proxy runtime could not start");
                    return;
                }
            };
            rt.block_on(async move {
                let adopted = (|| {
                    let socket = UdpSocket::from_std(udp)?;
                    let tcp = TcpListener::from_std(tcp)?;
                    let tls = match tls {
                        Some((l, a)) => Some((TcpListener::from_std(l)?, a)),
                        None => None,
                    };
                    Ok::<_, std::io::Error>((socket, tcp, tls))
                })();
                let (socket, tcp, tls) = match adopted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::error!(error = %e, "SIP proxy sockets could not be adopted");
                        return;
                    }
                };
                let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
                let mut driver = Driver {
                    proxy,
                    socket,
                    conns: HashMap::new(),
                    inbound_tx,
                    trunks,
                    records,
                    waiting,
                    batch: Vec::new(),
                    batch_due: None,
                    max_outgoing,
                    gauges: Gauges::register(),
                };
                driver.run(tcp, tls, inbound, reloads, &mut shutdown).await;
                driver.hand_over_records();
                tracing::info!(
                    calls_in_setup = driver.proxy.calls_in_setup(),
                    "SIP proxy stopped"
                );
            });
            let _ = done.send(());
        })
        .context("starting the SIP proxy thread")?;
    let task = tokio::spawn(async move {
        let _ = stopped.await;
        let _ = writer.await;
    });
    Ok(Some(SipHandle {
        addr: me,
        task,
        reload,
    }))
}

/// The proxy task's state.
struct Driver {
    /// The state machine.
    proxy: Proxy,
    /// UDP.
    socket: UdpSocket,
    /// TCP and TLS connections by peer.
    conns: HashMap<Peer, Conn>,
    /// Handed to connection tasks.
    inbound_tx: mpsc::Sender<Inbound>,
    /// TLS settings of trunks (outgoing TLS connections).
    trunks: Trunks,
    /// Batches of finished calls' records, to the store writer.
    records: mpsc::Sender<Vec<CallRecord>>,
    /// Records handed to the writer and not yet stored (shared with it): with `batch`, kept
    /// under [`RECORD_QUEUE`].
    waiting: Arc<AtomicUsize>,
    /// Records not yet handed to the writer (at most [`RECORD_BATCH`]).
    batch: Vec<CallRecord>,
    /// When `batch` goes to the writer however small it is ([`RECORD_LINGER`] after its
    /// first record); `None` while it is empty.
    batch_due: Option<Instant>,
    /// Outgoing connections open at once at most.
    max_outgoing: usize,
    /// The proxy's gauges, set every turn (handles: no registry lookup per turn).
    gauges: Gauges,
}

/// The gauges the proxy task sets after each turn.
struct Gauges {
    /// `switchyard_sip_dialogs`: established dialogs.
    dialogs: metrics::Gauge,
    /// `switchyard_sip_calls_in_setup`: INVITEs not yet answered.
    calls_in_setup: metrics::Gauge,
    /// `switchyard_sip_transactions`: live transactions.
    transactions: metrics::Gauge,
}

impl Gauges {
    fn register() -> Self {
        Gauges {
            dialogs: metrics::gauge!("switchyard_sip_dialogs"),
            calls_in_setup: metrics::gauge!("switchyard_sip_calls_in_setup"),
            transactions: metrics::gauge!("switchyard_sip_transactions"),
        }
    }
}

impl Driver {
    async fn run(
        &mut self,
        tcp: TcpListener,
        tls: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
        mut inbound: mpsc::Receiver<Inbound>,
        mut reloads: mpsc::Receiver<Reconfigure>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        // One timer, moved to the proxy's next deadline each turn (not a new one per
        // datagram), on the TIMER_GRID so that it moves rarely.
        let epoch = Instant::now();
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let sleep = tokio::time::sleep_until(far());
        tokio::pin!(sleep);
        // What the current turn did, for the slow-turn warning.
        let mut turn = Turn::default();
        loop {
            self.flush().await;
            turn.finish();
            let wake = [self.proxy.poll_timeout(), self.batch_due]
                .into_iter()
                .flatten()
                .min()
                .map_or_else(far, |at| tokio::time::Instant::from_std(on_grid(at, epoch)));
            if sleep.deadline() != wake {
                sleep.as_mut().reset(wake);
            }
            let tls_accept = async {
                match &tls {
                    Some((l, _)) => l.accept().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => {
                        let now = Instant::now();
                        turn.start(now, "datagrams");
                        let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                        self.proxy.handle_datagram(datagram, from, now);
                        turn.datagrams += 1;
                        // Take what else is already queued before the end of the turn. Each
                        // datagram's answers leave at once: if the thread loses its core in
                        // the middle of a batch (a busy machine), only what it has not handled
                        // yet waits, not the answers it already made.
                        for _ in 1..RECV_BATCH {
                            self.send_queued().await;
                            let Ok((n, from)) = self.socket.try_recv_from(&mut buf) else {
                                break;
                            };
                            let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                            self.proxy.handle_datagram(datagram, from, now);
                            turn.datagrams += 1;
                        }
                    }
                    // ICMP port unreachable from an earlier send surfaces here on Linux;
                    // the transaction's timer B/F still fails the branch over.
                    Err(e) => tracing::debug!(error = %e, "SIP socket receive error"),
                },
                r = tcp.accept(), if self.conns.len() < MAX_CONNECTIONS => match r {
                    Ok((stream, from)) => {
                        let peer = Peer { transport: Transport::Tcp, addr: from };
                        let rx = self.register(peer, true);
                        tokio::spawn(serve(stream, peer, rx, self.inbound_tx.clone()));
                    }
                    Err(e) => tracing::warn!(error = %e, "SIP TCP accept failed"),
                },
                r = tls_accept, if self.conns.len() < MAX_CONNECTIONS => match r {
                    Ok((stream, from)) => {
                        let peer = Peer { transport: Transport::Tls, addr: from };
                        let rx = self.register(peer, true);
                        if let Some((_, acceptor)) = &tls {
                            tokio::spawn(accept_tls(acceptor.clone(), stream, peer, rx, self.inbound_tx.clone()));
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "SIP TLS accept failed"),
                },
                Some(event) = inbound.recv() => self.on_inbound(event),
                Some(r) = reloads.recv() => {
                    self.trunks = r.trunks.clone();
                    self.max_outgoing = r.max_outgoing_connections;
                    self.proxy.reconfigure(r, Instant::now());
                    tracing::info!("SIP proxy reconfigured");
                }
                _ = &mut sleep => {
                    let now = Instant::now();
                    turn.start(now, "timers");
                    let late = now.saturating_duration_since(sleep.deadline().into_std());
                    if late > LATE_TIMER {
                        tracing::warn!(late_ms = late.as_millis() as u64, "SIP proxy timer fired late");
                    }
                    self.proxy.handle_timeout(now);
                    // Nothing may be due any more: park the timer until the next turn sets it.
                    sleep.as_mut().reset(far());
                }
                _ = shutdown.wait_for(|s| *s) => break,
            }
        }
    }

    /// A new connection's writer queue: `up` for an accepted one, not yet for one we open.
    fn register(&mut self, peer: Peer, up: bool) -> mpsc::Receiver<Bytes> {
        let (tx, rx) = mpsc::channel(CONN_QUEUE);
        self.conns.insert(
            peer,
            Conn {
                tx,
                pending: Vec::new(),
                up,
                outgoing: !up,
            },
        );
        rx
    }

    fn on_inbound(&mut self, event: Inbound) {
        match event {
            Inbound::Message(peer, bytes) => {
                self.proxy.handle_message(bytes, peer, Instant::now());
            }
            Inbound::Connected(peer) => {
                if let Some(c) = self.conns.get_mut(&peer) {
                    c.up = true;
                    c.pending.clear();
                }
            }
            Inbound::Closed(peer) => {
                if let Some(c) = self.conns.remove(&peer) {
                    if !c.up {
                        tracing::info!(%peer, "SIP connection could not be opened");
                    }
                    let now = Instant::now();
                    for id in c.pending {
                        self.proxy.transport_error(id, now);
                    }
                }
            }
        }
    }

    /// Sends everything the proxy queued, then hands over finished calls' records and sets
    /// the gauges: the end of a turn.
    async fn flush(&mut self) {
        self.send_queued().await;
        let now = Instant::now();
        while let Some(r) = self.proxy.poll_record() {
            metrics::counter!(
                "switchyard_sip_calls_total",
                "disposition" => r.disposition,
                "code" => r.code.to_string()
            )
            .increment(1);
            log_record(&r);
            if self.waiting.load(Ordering::Relaxed) + self.batch.len() >= RECORD_QUEUE {
                tracing::error!("CDR queue full: a call record was dropped");
                continue;
            }
            self.batch_due.get_or_insert(now + RECORD_LINGER);
            self.batch.push(r);
            if self.batch.len() >= RECORD_BATCH {
                self.hand_over_records();
            }
        }
        if self.batch_due.is_some_and(|due| due <= now) {
            self.hand_over_records();
        }
        self.gauges.dialogs.set(self.proxy.dialogs() as f64);
        self.gauges
            .calls_in_setup
            .set(self.proxy.calls_in_setup() as f64);
        self.gauges
            .transactions
            .set(self.proxy.transactions() as f64);
    }

    /// Sends the datagrams and stream messages the proxy queued; a failed send fails its
    /// transaction (failover).
    async fn send_queued(&mut self) {
        while let Some(t) = self.proxy.poll_transmit() {
            match t.destination.transport {
                Transport::Udp => {
                    if let Err(e) = self.socket.send_to(&t.message, t.destination.addr).await {
                        tracing::debug!(error = %e, to = %t.destination, "SIP send failed");
                        if let Some(id) = t.transaction {
                            self.proxy.transport_error(id, Instant::now());
                        }
                    }
                }
                Transport::Tcp | Transport::Tls => self.send_stream(t),
            }
        }
    }

    /// Hands the records collected so far to the store writer, in one message.
    fn hand_over_records(&mut self) {
        self.batch_due = None;
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(RECORD_BATCH));
        let n = batch.len();
        self.waiting.fetch_add(n, Ordering::Relaxed);
        if self.records.try_send(batch).is_err() {
            self.waiting.fetch_sub(n, Ordering::Relaxed);
            tracing::error!(
                records = n,
                "CDR queue full or closed: call records were dropped"
            );
        }
    }

    /// Queues a message on the peer's connection, opening one for a request if there is none
    /// (within `max_outgoing`). A response without its connection is dropped: opening
    /// connections to addresses taken from messages would let anyone make us connect anywhere.
    fn send_stream(&mut self, t: Transmit<Peer>) {
        let peer = t.destination;
        if !self.conns.contains_key(&peer) {
            if is_response(&t.message) {
                tracing::debug!(%peer, "SIP response for a closed connection: dropped");
                return;
            }
            let outgoing = self.conns.values().filter(|c| c.outgoing).count();
            if outgoing >= self.max_outgoing {
                tracing::warn!(%peer, max = self.max_outgoing, "SIP outgoing connections at sip.max_outgoing_connections: request not sent");
                if let Some(id) = t.transaction {
                    self.proxy.transport_error(id, Instant::now());
                }
                return;
            }
            let rx = self.register(peer, false);
            let tls = match peer.transport {
                Transport::Tls => match self.trunks.tls_for(peer) {
                    Some(s) => Some(s),
                    None => {
                        // A TLS caller whose connection closed: we cannot verify who is at
                        // that address, so we do not reconnect to it.
                        self.conns.remove(&peer);
                        if let Some(id) = t.transaction {
                            self.proxy.transport_error(id, Instant::now());
                        }
                        return;
                    }
                },
                _ => None,
            };
            tokio::spawn(connect(peer, tls, rx, self.inbound_tx.clone()));
        }
        let Some(conn) = self.conns.get_mut(&peer) else {
            return;
        };
        if conn.tx.try_send(t.message).is_err() {
            tracing::debug!(%peer, "SIP connection queue full or closed");
            if let Some(id) = t.transaction {
                self.proxy.transport_error(id, Instant::now());
            }
            return;
        }
        if !conn.up {
            if let Some(id) = t.transaction {
                conn.pending.push(id);
            }
        }
    }
}

/// One turn of the proxy loop, timed for the [`SLOW_TURN`] warning.
#[derive(Default)]
struct Turn {
    /// When it started (woken by a datagram or the timer); `None` between turns and for
    /// turns not worth timing (connections, reloads).
    started: Option<Instant>,
    /// What woke it.
    what: &'static str,
    /// Datagrams handled in it.
    datagrams: u32,
}

impl Turn {
    fn start(&mut self, now: Instant, what: &'static str) {
        self.started = Some(now);
        self.what = what;
        self.datagrams = 0;
    }

    /// The turn's work is sent: warns if it took longer than [`SLOW_TURN`].
    fn finish(&mut self) {
        let Some(started) = self.started.take() else {
            return;
        };
        let took = started.elapsed();
        if took > SLOW_TURN {
            tracing::warn!(
                took_ms = took.as_millis() as u64,
                woken_by = self.what,
                datagrams = self.datagrams,
                "slow SIP proxy turn"
            );
        }
    }
}

/// Whether encoded SIP bytes are a response (`SIP/2.0 …`) rather than a request.
fn is_response(message: &[u8]) -> bool {
    message
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case(b"SIP/"))
}

/// Opens an outgoing connection (TLS when `tls` is given) and serves it.
async fn connect(
    peer: Peer,
    tls: Option<Arc<TlsSettings>>,
    rx: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<Inbound>,
) {
    let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
        let stream = TcpStream::connect(peer.addr).await?;
        stream.set_nodelay(true)?;
        Ok::<_, std::io::Error>(stream)
    })
    .await;
    let stream = match opened {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "SIP connect failed");
            let _ = inbound.send(Inbound::Closed(peer)).await;
            return;
        }
        Err(_) => {
            tracing::info!(%peer, "SIP connect timed out");
            let _ = inbound.send(Inbound::Closed(peer)).await;
            return;
        }
    };
    match tls {
        None => {
            let _ = inbound.send(Inbound::Connected(peer)).await;
            serve(stream, peer, rx, inbound).await;
        }
        Some(settings) => {
            match tokio::time::timeout(CONNECT_TIMEOUT, settings.connect(stream)).await {
                Ok(Ok(s)) => {
                    let _ = inbound.send(Inbound::Connected(peer)).await;
                    serve(s, peer, rx, inbound).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(%peer, error = %e, "SIP TLS handshake failed");
                    let _ = inbound.send(Inbound::Closed(peer)).await;
                }
                Err(_) => {
                    tracing::warn!(%peer, "SIP TLS handshake timed out");
                    let _ = inbound.send(Inbound::Closed(peer)).await;
                }
            }
        }
    }
}

/// Completes an accepted TLS connection's handshake, then serves it.
async fn accept_tls(
    acceptor: tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    peer: Peer,
    rx: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<Inbound>,
) {
    match tokio::time::timeout(CONNECT_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => serve(s, peer, rx, inbound).await,
        Ok(Err(e)) => {
            tracing::info!(%peer, error = %e, "SIP TLS handshake with a client failed");
            let _ = inbound.send(Inbound::Closed(peer)).await;
        }
        Err(_) => {
            let _ = inbound.send(Inbound::Closed(peer)).await;
        }
    }
}

/// Reads messages off the stream and writes what the proxy queues, until either side closes,
/// a frame is unreadable (nothing after it can be found) or the connection idles.
async fn serve<S>(
    stream: S,
    peer: Peer,
    mut rx: mpsc::Receiver<Bytes>,
    inbound: mpsc::Sender<Inbound>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    let mut frames = FramedRead::new(read, StreamFramer::default());
    loop {
        tokio::select! {
            frame = tokio::time::timeout(IDLE_TIMEOUT, frames.next()) => match frame {
                Ok(Some(Ok(bytes))) => {
                    if inbound.send(Inbound::Message(peer, bytes)).await.is_err() {
                        break;
                    }
                }
                Ok(Some(Err(e))) => {
                    tracing::info!(%peer, error = %e, "SIP stream unreadable: closing it");
                    break;
                }
                Ok(None) | Err(_) => break,
            },
            out = rx.recv() => match out {
                Some(bytes) => {
                    if let Err(e) = write.write_all(&bytes).await {
                        tracing::debug!(%peer, error = %e, "SIP stream write failed");
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = write.shutdown().await;
    let _ = inbound.send(Inbound::Closed(peer)).await;
}

/// One `cdr` log line per call (numbers masked), next to the stored record.
fn log_record(r: &CallRecord) {
    // Formatting costs per call: skip it when the line would be filtered out anyway.
    if !tracing::enabled!(target: "cdr", tracing::Level::INFO) {
        return;
    }
    let attempts: Vec<String> = r.attempts.iter().map(|(n, c)| format!("{n}:{c}")).collect();
    let callee = switchyard_routing::E164::parse(&r.callee)
        .map(|n| n.masked(6).to_string())
        .unwrap_or_default();
    tracing::info!(
        target: "cdr",
        tenant = %r.tenant,
        to = %callee,
        disposition = r.disposition,
        code = r.code,
        tried = %attempts.join(","),
        duration_ms = r.duration_ms,
        "call"
    );
}

/// Writes call records to the store, one request per batch the proxy thread hands over; a
/// failed write is retried with back-off (batches wait in the queue meanwhile), so a store
/// hiccup loses none. `waiting` counts the records handed over and not yet written.
async fn write_records(
    store: Arc<dyn Store>,
    mut rx: mpsc::Receiver<Vec<CallRecord>>,
    waiting: Arc<AtomicUsize>,
) {
    while let Some(batch) = rx.recv().await {
        let n = batch.len();
        let updates: Vec<Update> = batch
            .into_iter()
            .map(|r| Update::Cdr(Box::new(r)))
            .collect();
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        loop {
            match store.apply(updates.clone()).await {
                Ok(_) => break,
                Err(e) if e.is_retryable() => {
                    tracing::warn!(error = %e, "storing call records failed; retrying");
                    tokio::time::sleep(backoff.fail()).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, records = updates.len(), "call records lost: the store refused them");
                    break;
                }
            }
        }
        waiting.fetch_sub(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_move_up_to_the_timer_grid() {
        let epoch = Instant::now();
        assert_eq!(on_grid(epoch, epoch), epoch);
        let step = TIMER_GRID;
        assert_eq!(
            on_grid(epoch + Duration::from_nanos(1), epoch),
            epoch + step
        );
        assert_eq!(on_grid(epoch + step, epoch), epoch + step);
        assert_eq!(on_grid(epoch + step * 3 / 2, epoch), epoch + step * 2);
        // A deadline already past at the start fires at once.
        let late = epoch.checked_sub(Duration::from_secs(1)).unwrap_or(epoch);
        assert_eq!(on_grid(late, epoch), epoch);
    }
}
