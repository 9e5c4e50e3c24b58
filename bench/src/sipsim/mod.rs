//! `sip-uas-sim`: a SIP user agent server over UDP built on `switchyard_protocols::sip`, for
//! tests and benchmarks of the voice path. It answers INVITEs with configurable provisional
//! and final responses and delays, negotiates PCMU/PCMA, counts the RTP it receives (and
//! decodes DTMF; sends DTMF as RFC 4733 events when told to), hangs up or waits for BYE, and answers OPTIONS, CANCEL, re-INVITE and
//! malformed requests.
//!
//! # Layout
//! - this file: command-line options, the state shared with the control port, the tokio
//!   loop that moves datagrams between two UDP sockets (SIP, RTP) and the [`uas::Uas`].
//! - [`uas`]: the UAS itself, sans-IO (datagrams and `now` in, datagrams and deadlines out)
//!   over the protocols crate's transaction layer.
//! - [`call`]: one call's dialog and the messages built in it.
//! - [`behaviour`]: how calls are answered (CLI, `PUT /behaviour`).
//! - [`media`]: received RTP per call, DTMF.
//! - [`counters`]: what happened; [`control`]: the HTTP control port.

pub mod behaviour;
pub mod call;
pub mod control;
pub mod counters;
pub mod media;
pub mod uas;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::net::UdpSocket;

use behaviour::Behaviour;
use counters::Counters;
use media::CallMedia;

/// Command-line options of `sip-uas-sim`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "sip-uas-sim",
    version,
    about = "SIP UAS simulator (UDP) for Switchyard's tests and benchmarks"
)]
pub struct Options {
    /// Address for SIP over UDP (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:5060")]
    pub listen: SocketAddr,
    /// UDP port for RTP on the same IP (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    pub rtp_port: u16,
    /// HTTP control port (stats, behaviour). Off when absent.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Final response code for INVITEs (200 answers; 486, 503, 404, … reject).
    #[arg(long, default_value_t = 200)]
    pub code: u16,
    /// Retry-After seconds on a non-2xx final response.
    #[arg(long)]
    pub retry_after: Option<u32>,
    /// Delay before the final response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub final_delay_ms: u64,
    /// Do not send 180 Ringing.
    #[arg(long)]
    pub no_ring: bool,
    /// Send 183 Session Progress with SDP before the final response.
    #[arg(long)]
    pub early_media: bool,
    /// Delay before 180/183, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub provisional_delay_ms: u64,
    /// Answer 2xx without SDP.
    #[arg(long)]
    pub no_sdp: bool,
    /// Hang up (BYE) this many milliseconds after answering (default: wait for the caller).
    #[arg(long)]
    pub hangup_after_ms: Option<u64>,
    /// Do not decode RFC 4733 DTMF in received RTP.
    #[arg(long)]
    pub no_dtmf: bool,
    /// Send these digits as RFC 4733 events after answering (e.g. `1`, `123#`).
    #[arg(long)]
    pub send_dtmf: Option<String>,
    /// Delay between the answer and the first digit sent, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub dtmf_delay_ms: u64,
}

impl Options {
    /// The initial behaviour from the flags.
    pub fn behaviour(&self) -> Behaviour {
        Behaviour {
            final_code: self.code,
            retry_after_s: self.retry_after,
            final_delay_ms: self.final_delay_ms,
            ring: !self.no_ring,
            early_media: self.early_media,
            provisional_delay_ms: self.provisional_delay_ms,
            answer_sdp: !self.no_sdp,
            hangup_after_ms: self.hangup_after_ms,
            decode_dtmf: !self.no_dtmf,
            send_dtmf: self.send_dtmf.clone(),
            dtmf_delay_ms: self.dtmf_delay_ms,
        }
    }
}

/// State shared by the SIP loop and the control port.
#[derive(Debug)]
pub struct Shared {
    /// What happened so far.
    pub counters: Counters,
    /// How new calls are answered; replaced whole by `PUT /behaviour`.
    pub behaviour: ArcSwap<Behaviour>,
    /// Received RTP per call, by Call-ID.
    pub calls: Mutex<BTreeMap<String, CallMedia>>,
}

impl Shared {
    /// Fresh state with this behaviour.
    pub fn new(behaviour: Behaviour) -> Shared {
        Shared {
            counters: Counters::default(),
            behaviour: ArcSwap::from_pointee(behaviour),
            calls: Mutex::new(BTreeMap::new()),
        }
    }
}

/// Runs the simulator until SIGTERM or Ctrl-C, then prints the counters as JSON.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let behaviour = options.behaviour();
    behaviour.validate().map_err(anyhow::Error::msg)?;
    let sip = UdpSocket::bind(options.listen).await?;
    let rtp = UdpSocket::bind(SocketAddr::new(options.listen.ip(), options.rtp_port)).await?;
    let control = match options.control {
        Some(addr) => Some(control::bind(addr).await?),
        None => None,
    };
    let local = sip.local_addr()?;
    println!("sip-uas-sim listening on {local}");
    if let Some(c) = &control {
        println!("sip-uas-sim control on {}", c.local_addr()?);
    }
    println!("sip-uas-sim rtp port {}", rtp.local_addr()?.port());
    let shared = Arc::new(Shared::new(behaviour));
    if let Some(c) = control {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            if let Err(e) = control::serve(c, shared).await {
                tracing::error!("control port failed: {e:#}");
            }
        });
    }
    let mut uas = uas::Uas::new(Arc::clone(&shared), local, rtp.local_addr()?);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    let mut buf = vec![0u8; 65_535];
    let mut rtp_buf = vec![0u8; 65_535];
    loop {
        while let Some((packet, to)) = uas.poll_rtp() {
            if let Err(e) = rtp.send_to(&packet, to).await {
                tracing::debug!("RTP send to {to} failed: {e}");
            }
        }
        while let Some(t) = uas.poll_transmit() {
            if let Err(e) = sip.send_to(&t.message, t.destination).await {
                tracing::debug!("send to {} failed: {e}", t.destination);
                if let Some(id) = t.transaction {
                    uas.transport_error(id);
                }
            }
        }
        let deadline = uas.poll_timeout();
        let sleep =
            tokio::time::sleep_until(deadline.map(tokio::time::Instant::from_std).unwrap_or_else(
                || tokio::time::Instant::now() + std::time::Duration::from_secs(3600),
            ));
        tokio::select! {
            r = sip.recv_from(&mut buf) => match r {
                Ok((n, from)) => {
                    let datagram = Bytes::copy_from_slice(buf.get(..n).unwrap_or_default());
                    uas.handle_datagram(datagram, from, std::time::Instant::now());
                }
                // ICMP port unreachable from an earlier send surfaces here on Linux.
                Err(e) => tracing::debug!("SIP receive failed: {e}"),
            },
            r = rtp.recv_from(&mut rtp_buf) => match r {
                Ok((n, from)) => {
                    let datagram = Bytes::copy_from_slice(rtp_buf.get(..n).unwrap_or_default());
                    uas.handle_rtp(datagram, from);
                }
                Err(e) => tracing::debug!("RTP receive failed: {e}"),
            },
            () = sleep => uas.handle_timeout(std::time::Instant::now()),
            r = &mut shutdown => {
                r?;
                break;
            }
        }
    }
    println!("{}", serde_json::to_string(&shared.counters.snapshot())?);
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
