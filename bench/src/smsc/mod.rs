//! `smsc-sim`: an SMSC simulator built on the protocols crate's SMSC session.
//!
//! # Layout
//! - this file: command-line configuration, the state shared by connections, the accept loop.
//! - [`connection`]: one task per TCP connection, driving a sans-IO SMSC [`Session`].
//! - [`policy`]: receipt outcomes and fault injection (throttling, errors, drops, disconnects).
//! - [`mailbox`]: receipts and MO messages waiting for a bind that can receive them.
//! - [`counters`]: what happened, as JSON.
//! - [`control`]: the HTTP control port.
//!
//! [`Session`]: switchyard_protocols::smpp::session::Session

pub mod connection;
pub mod control;
pub mod counters;
pub mod mailbox;
pub mod policy;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;
use switchyard_protocols::smpp::pdu::{Address, SubmitSm};
use switchyard_protocols::text::{
    binary, encode_message_behind, EncodeOptions, Encoding, EncodingPreference,
};

use counters::Counters;
use mailbox::{Delivery, Kind, Mailboxes};
use policy::{Behaviour, DlrStyle, ErrorRates, IdFormat, IdStyle, OutcomeMix};

/// Command-line options of `smsc-sim`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "smsc-sim",
    version,
    about = "SMSC simulator for Switchyard's tests and benchmarks"
)]
pub struct Options {
    /// Address to accept SMPP connections on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub listen: SocketAddr,
    /// Serve SMPP over TLS with this PEM certificate chain (needs `--tls-key`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// Accept only this system_id (any when absent).
    #[arg(long)]
    pub system_id: Option<String>,
    /// Accept only this password (any when absent).
    #[arg(long)]
    pub password: Option<String>,
    /// The system_id the simulator reports in bind responses.
    #[arg(long, default_value = "smsc-sim")]
    pub smsc_id: String,
    /// HTTP control port (stats, behaviour, MO). Off when absent.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Delay between a submit and its receipt, in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub dlr_delay_ms: u64,
    /// Receipt outcomes and weights, e.g. DELIVRD=90,UNDELIV=5,EXPIRED=3,REJECTD=2.
    #[arg(long, default_value = "DELIVRD=100")]
    pub dlr_mix: OutcomeMix,
    /// How receipts are encoded.
    #[arg(long, value_enum, default_value = "both")]
    pub dlr_style: DlrStyle,
    /// How the receipt's message id relates to the submit_sm_resp's.
    #[arg(long, value_enum, default_value = "same")]
    pub dlr_id_format: IdFormat,
    /// How submit_sm_resp ids are numbered.
    #[arg(long, value_enum, default_value = "clock")]
    pub id_style: IdStyle,
    /// Answer ESME_RTHROTTLED above this many submits per second per bind.
    #[arg(long)]
    pub throttle_tps: Option<u32>,
    /// Error statuses and their rates, e.g. 0x45=0.01,0x8=0.005.
    #[arg(long, default_value = "")]
    pub error_rates: ErrorRates,
    /// Delay before each submit response, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub response_delay_ms: u64,
    /// Fraction of submit responses never sent (0..=1).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Per received submit, the probability of dropping the connection (0..=1).
    #[arg(long, default_value_t = 0.0)]
    pub disconnect_rate: f64,
    /// Refuse every bind with ESME_RBINDFAIL.
    #[arg(long)]
    pub reject_binds: bool,
    /// How many deliver_sm may await their response per bind.
    #[arg(long, default_value_t = 100)]
    pub window: usize,
    /// Send enquire_link after this many seconds without traffic (0: never).
    #[arg(long, default_value_t = 0)]
    pub enquire_link_s: u64,
    /// Append every received submit_sm to this file as a JSON line.
    #[arg(long)]
    pub record: Option<std::path::PathBuf>,
    /// Count submits per destination address (costs a lock per submit).
    #[arg(long)]
    pub count_destinations: bool,
    /// Print the counters to stderr every this many seconds (0: only at exit).
    #[arg(long, default_value_t = 0)]
    pub stats_interval_s: u64,
    /// Seed for the fault-injection random source.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

impl Options {
    /// The initial behaviour from the flags.
    pub fn behaviour(&self) -> Behaviour {
        Behaviour {
            dlr_delay: Duration::from_millis(self.dlr_delay_ms),
            dlr_mix: self.dlr_mix.clone(),
            dlr_style: self.dlr_style,
            dlr_id_format: self.dlr_id_format,
            throttle_tps: self.throttle_tps,
            error_rates: self.error_rates.clone(),
            response_delay: Duration::from_millis(self.response_delay_ms),
            drop_rate: self.drop_rate,
            disconnect_rate: self.disconnect_rate,
            reject_binds: self.reject_binds,
        }
    }
}

/// State shared by every connection and the control port.
#[derive(Debug)]
pub struct Shared {
    /// The command line.
    pub options: Options,
    /// What happened so far.
    pub counters: Counters,
    /// Faults and receipt settings; replaced whole by `PUT /behaviour`.
    pub behaviour: ArcSwap<Behaviour>,
    /// Deliveries waiting for a receiving bind, per system_id.
    pub mailboxes: Mailboxes,
    /// Next message id (unique across restarts: starts from the clock).
    next_id: AtomicU64,
    /// Connections accepted, to seed each one's random source differently.
    next_conn: AtomicU64,
    /// `--record` output.
    record: Option<Mutex<std::io::LineWriter<std::fs::File>>>,
    /// MO concatenation references.
    next_mo_ref: AtomicU64,
    /// Bumped by `POST /disconnect`: every connection open then is dropped.
    pub kick: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    /// Shared state for these options (opens the record file).
    pub fn new(options: Options) -> anyhow::Result<Self> {
        let record = match &options.record {
            Some(path) => Some(Mutex::new(std::io::LineWriter::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            ))),
            None => None,
        };
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let first_id = options.id_style.first(start);
        Ok(Shared {
            behaviour: ArcSwap::from_pointee(options.behaviour()),
            options,
            counters: Counters::default(),
            mailboxes: Mailboxes::default(),
            next_id: AtomicU64::new(first_id),
            next_conn: AtomicU64::new(0),
            record,
            next_mo_ref: AtomicU64::new(0),
            kick: tokio::sync::watch::Sender::new(0),
        })
    }

    /// A fresh message id: its number and its text in submit_sm_resp (`--id-style`).
    pub fn message_id(&self) -> (u64, String) {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        (n, self.options.id_style.text(n))
    }

    /// Appends one line to the record file, if recording.
    pub fn record(&self, line: &serde_json::Value) {
        if let Some(w) = &self.record {
            let mut w = w.lock();
            let _ = serde_json::to_writer(&mut *w, line);
            let _ = w.write_all(b"\n");
        }
    }

    /// True when `--record` is on.
    pub fn recording(&self) -> bool {
        self.record.is_some()
    }

    /// Queues an MO message (split into parts if long) for a receiving bind.
    pub fn inject_mo(&self, req: control::MoRequest) -> anyhow::Result<()> {
        let mailbox = self
            .mailboxes
            .find(req.system_id.as_deref().map(str::as_bytes))
            .map_err(anyhow::Error::msg)?;
        let reference = req
            .reference
            .unwrap_or_else(|| self.next_mo_ref.fetch_add(1, Ordering::Relaxed) as u16);
        let mut opts = EncodeOptions {
            reference,
            ..EncodeOptions::default()
        };
        let ies = match &req.udh {
            Some(hex) => binary::decode(hex)?.get(1..).unwrap_or_default().to_vec(),
            None => Vec::new(),
        };
        let encoded = match &req.octets {
            Some(octets) => {
                opts.encoding = EncodingPreference::Force(Encoding::Binary);
                let mut m = encode_message_behind(octets, &ies, &opts)?;
                m.data_coding = req.data_coding.unwrap_or(m.data_coding);
                m
            }
            None => encode_message_behind(&req.text, &ies, &opts)?,
        };
        for (i, segment) in encoded.segments.into_iter().enumerate() {
            let number = u8::try_from(i + 1).unwrap_or(u8::MAX);
            if req.parts.as_ref().is_some_and(|p| !p.contains(&number)) {
                continue;
            }
            let esm_class = if segment.udh_len > 0 {
                SubmitSm::ESM_CLASS_UDHI
            } else {
                0
            };
            mailbox.push(Delivery {
                kind: Kind::Mo,
                pdu: SubmitSm {
                    source: address(&req.from),
                    dest: address(&req.to),
                    esm_class,
                    data_coding: encoded.data_coding,
                    short_message: segment.short_message,
                    ..SubmitSm::default()
                },
            });
        }
        Ok(())
    }
}

/// An address with TON/NPI guessed the way SMSCs do: digits → international E.164,
/// otherwise alphanumeric.
fn address(s: &str) -> Address {
    let digits = s.trim_start_matches('+');
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if digits.len() <= 8 {
            // A short code: national, unknown plan.
            Address {
                ton: 3,
                npi: 0,
                addr: Bytes::copy_from_slice(digits.as_bytes()).into(),
            }
        } else {
            Address::international(Bytes::copy_from_slice(digits.as_bytes()))
        }
    } else {
        Address::alphanumeric(Bytes::copy_from_slice(s.as_bytes()))
    }
}

/// A TLS acceptor for `--tls-cert`/`--tls-key` (rustls, ring provider).
fn tls_acceptor(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    use anyhow::Context as _;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let chain = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("reading {}", cert.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing {}", cert.display()))?;
    let key =
        PrivateKeyDer::from_pem_file(key).with_context(|| format!("reading {}", key.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("TLS certificate and key")?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// Runs the simulator until SIGINT/SIGTERM; prints the final counters on stdout.
pub async fn run(options: Options) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let control = match options.control {
        Some(addr) => Some(control::bind(addr).await?),
        None => None,
    };
    let tls = match (&options.tls_cert, &options.tls_key) {
        (Some(cert), Some(key)) => Some(tls_acceptor(cert, key)?),
        _ => None,
    };
    let shared = Arc::new(Shared::new(options)?);
    // Scripts and tests read these lines to find the ports.
    println!("smsc-sim listening on {}", listener.local_addr()?);
    if let Some(c) = &control {
        println!("smsc-sim control on {}", c.local_addr()?);
    }
    std::io::stdout().flush()?;

    if let Some(c) = control {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(e) = control::serve(c, shared).await {
                tracing::error!("control port failed: {e:#}");
            }
        });
    }
    if shared.options.stats_interval_s > 0 {
        let shared = shared.clone();
        let every = Duration::from_secs(shared.options.stats_interval_s);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await;
            loop {
                tick.tick().await;
                let s = shared.counters.snapshot();
                eprintln!(
                    "smsc-sim: binds {} submits {} ok {} throttled {} errors {} dlrs {}/{} mo {}",
                    s.binds_active,
                    s.submits,
                    s.submits_ok,
                    s.throttled,
                    s.submit_errors,
                    s.dlrs_acked,
                    s.dlrs_sent,
                    s.mo_sent
                );
            }
        });
    }

    let accept = {
        let shared = shared.clone();
        async move {
            loop {
                let (stream, peer) = listener.accept().await?;
                let _ = stream.set_nodelay(true);
                let conn = shared.next_conn.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let served = match tls {
                        None => {
                            let (rd, wr) = stream.into_split();
                            connection::serve(rd, wr, shared, conn).await
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let (rd, wr) = tokio::io::split(stream);
                                connection::serve(rd, wr, shared, conn).await
                            }
                            Err(e) => {
                                Counters::inc(&shared.counters.tls_failures);
                                Err(anyhow::anyhow!("TLS handshake failed: {e}"))
                            }
                        },
                    };
                    if let Err(e) = served {
                        tracing::debug!(%peer, "connection ended: {e:#}");
                    }
                });
            }
            #[allow(unreachable_code)]
            Ok::<(), anyhow::Error>(())
        }
    };
    tokio::select! {
        r = accept => r?,
        r = shutdown_signal() => r?,
    }
    shared
        .counters
        .dlrs_pending
        .store(shared.mailboxes.pending() as u64, Ordering::Relaxed);
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
