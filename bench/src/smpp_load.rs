//! `smpp-load`: an SMPP load generator (ESME side) built on the protocols crate's session.
//!
//! Opens N transceiver binds, keeps each bind's window full of submit_sm (optionally paced to a
//! rate), answers delivery receipts, and reports throughput, response latency percentiles
//! (hdrhistogram) and its own CPU time as one JSON object. Used to measure `smsc-sim`'s ceiling
//! and, later, the gateway's SMPP server side.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::{Bytes, BytesMut};
use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;
use switchyard_protocols::smpp::codec::SmppCodec;
use switchyard_protocols::smpp::pdu::{Address, Bind, Body, MessageIdResp, SubmitSm};
use switchyard_protocols::smpp::session::{BindType, Event, Session, SessionConfig, State};
use switchyard_protocols::smpp::CommandStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::codec::{Decoder, Encoder};

/// Command-line options of `smpp-load`.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "smpp-load", version, about = "SMPP load generator (ESME)")]
pub struct Options {
    /// The SMSC to bind to.
    #[arg(long, default_value = "127.0.0.1:2775")]
    pub connect: SocketAddr,
    /// system_id to bind with.
    #[arg(long, default_value = "load")]
    pub system_id: String,
    /// Password to bind with.
    #[arg(long, default_value = "secret")]
    pub password: String,
    /// Number of transceiver binds.
    #[arg(long, default_value_t = 1)]
    pub binds: usize,
    /// Outstanding submit_sm per bind.
    #[arg(long, default_value_t = 256)]
    pub window: usize,
    /// Total submit_sm to send (across binds).
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Stop after this many seconds even if `count` is not reached.
    #[arg(long, default_value_t = 60)]
    pub max_seconds: u64,
    /// Pace submits to this total rate per second (unpaced when absent).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Ask for delivery receipts and wait (up to `--dlr-wait-s`) until all have arrived.
    #[arg(long)]
    pub dlr: bool,
    /// How long to wait for outstanding receipts after the last response.
    #[arg(long, default_value_t = 10)]
    pub dlr_wait_s: u64,
    /// Destination number (international, digits only).
    #[arg(long, default_value = "447700900123")]
    pub to: String,
    /// Append a line per submit_sm_resp with ESME_ROK (`ok <message_id>`) and per receipt
    /// (`dlr <receipted_message_id>`) to this file, as they arrive (for tests that check every
    /// acknowledged message got its receipt).
    #[arg(long)]
    pub record: Option<std::path::PathBuf>,
    /// Message body (GSM-7 unpacked; ASCII text is sent as is).
    #[arg(
        long,
        default_value = "Your verification code is 123456. It expires in 10 minutes. Do not share it with anyone, including our staff. Thank you for using Switchyard."
    )]
    pub text: String,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// submit_sm sent.
    pub submitted: u64,
    /// submit_sm_resp with ESME_ROK.
    pub ok: u64,
    /// submit_sm_resp with ESME_RTHROTTLED.
    pub throttled: u64,
    /// Other error responses, timeouts and lost requests.
    pub errors: u64,
    /// Receipts received.
    pub dlrs: u64,
    /// Seconds the whole run took (binding, submitting, waiting for receipts, unbinding).
    pub seconds: f64,
    /// Seconds from the start to the last submit_sm_resp.
    pub submit_seconds: f64,
    /// Responses per second over `submit_seconds`.
    pub submits_per_s: f64,
    /// Seconds from the start to the last receipt (0 without receipts).
    pub receipt_seconds: f64,
    /// Receipts per second over `receipt_seconds`.
    pub receipts_per_s: f64,
    /// Response latency percentiles, microseconds.
    pub latency_us_p50: u64,
    /// 99th percentile.
    pub latency_us_p99: u64,
    /// Maximum.
    pub latency_us_max: u64,
    /// CPU seconds this process used (user + system).
    pub cpu_s: f64,
    /// CPU microseconds per submit (this process).
    pub cpu_us_per_submit: f64,
}

#[derive(Default)]
struct Totals {
    submitted: AtomicU64,
    ok: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    dlrs: AtomicU64,
    /// Binds that have every submit they will send answered.
    binds_answered: AtomicU64,
    /// Microseconds from the start to the last response / receipt seen by any bind.
    last_response_us: AtomicU64,
    last_dlr_us: AtomicU64,
}

/// Runs the load and returns its report.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    if opts.binds == 0 || opts.window == 0 {
        bail!("--binds and --window must be at least 1");
    }
    let totals = Arc::new(Totals::default());
    let record = match &opts.record {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ))),
        None => None,
    };
    let histogram = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..opts.binds {
        let share =
            opts.count / opts.binds as u64 + u64::from((i as u64) < opts.count % opts.binds as u64);
        let opts = opts.clone();
        let totals = totals.clone();
        let histogram = histogram.clone();
        let record = record.clone();
        tasks.push(tokio::spawn(async move {
            bind_loop(opts, share, totals, histogram, record, start).await
        }));
    }
    for t in tasks {
        t.await.context("bind task panicked")??;
    }
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_start;
    let h = histogram.lock();
    let submitted = totals.submitted.load(Relaxed);
    let dlrs = totals.dlrs.load(Relaxed);
    let submit_seconds = totals.last_response_us.load(Relaxed) as f64 / 1e6;
    let receipt_seconds = totals.last_dlr_us.load(Relaxed) as f64 / 1e6;
    Ok(Report {
        submitted,
        ok: totals.ok.load(Relaxed),
        throttled: totals.throttled.load(Relaxed),
        errors: totals.errors.load(Relaxed),
        dlrs,
        seconds,
        submit_seconds,
        submits_per_s: submitted as f64 / submit_seconds.max(1e-9),
        receipt_seconds,
        receipts_per_s: dlrs as f64 / receipt_seconds.max(1e-9),
        latency_us_p50: h.value_at_quantile(0.5),
        latency_us_p99: h.value_at_quantile(0.99),
        latency_us_max: h.max(),
        cpu_s: cpu,
        cpu_us_per_submit: cpu * 1e6 / submitted.max(1) as f64,
    })
}

async fn bind_loop(
    opts: Options,
    count: u64,
    totals: Arc<Totals>,
    histogram: Arc<Mutex<Histogram<u64>>>,
    record: Option<Arc<Mutex<std::fs::File>>>,
    start: Instant,
) -> anyhow::Result<()> {
    let since = |t: Instant| t.duration_since(start).as_micros() as u64;
    let note = |line: String| {
        if let Some(file) = &record {
            use std::io::Write;
            let _ = file.lock().write_all(line.as_bytes());
        }
    };
    let stream = tokio::net::TcpStream::connect(opts.connect)
        .await
        .with_context(|| format!("connecting to {}", opts.connect))?;
    stream.set_nodelay(true)?;
    let (mut rd, mut wr) = stream.into_split();
    let credentials = Bind {
        system_id: opts.system_id.clone().into(),
        password: opts.password.clone().into(),
        interface_version: 0x34,
        ..Bind::default()
    };
    let mut config = SessionConfig::esme(BindType::Transceiver, credentials);
    config.window = opts.window;
    config.peer_window = 1 << 16;
    let mut session = Session::new(config, Instant::now());
    session.bind(Instant::now())?;

    let template = SubmitSm {
        source: Address::international("447700900001"),
        dest: Address::international(opts.to.clone()),
        registered_delivery: u8::from(opts.dlr),
        short_message: Bytes::from(opts.text.clone().into_bytes()),
        ..SubmitSm::default()
    };
    let mut codec = SmppCodec::new();
    let mut rbuf = BytesMut::with_capacity(64 * 1024);
    let mut wbuf = BytesMut::with_capacity(64 * 1024);
    // Send times by sequence number: sequence numbers are dense, so a ring indexed by them
    // needs no hashing.
    let ring = opts.window.next_power_of_two() * 4;
    let mut sent_at = vec![None::<Instant>; ring];
    let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let per_bind_rate = opts.rate.map(|r| (r as f64 / opts.binds as f64).max(1.0));
    let deadline = Instant::now() + Duration::from_secs(opts.max_seconds);
    let (mut sent, mut answered) = (0u64, 0u64);
    let mut bound_at = None;
    let mut last_answer = Instant::now();
    let mut counted_answered = false;

    loop {
        let now = Instant::now();
        if let State::Bound(_) = session.state() {
            let started = *bound_at.get_or_insert(now);
            let allowed = match per_bind_rate {
                Some(r) => ((now - started).as_secs_f64() * r) as u64 + 1,
                None => u64::MAX,
            };
            while sent < count && sent < allowed && session.window_available() > 0 && now < deadline
            {
                let seq = session.send_request(Body::SubmitSm(template.clone()), now)?;
                sent_at[seq as usize % ring] = Some(now);
                sent += 1;
            }
        }
        while let Some(event) = session.poll_event() {
            match event {
                Event::Response {
                    sequence_number,
                    status,
                    body,
                    ..
                } => {
                    if let (true, Body::SubmitSmResp(r)) = (status.is_ok(), &body) {
                        note(format!("ok {}\n", r.message_id.to_str_lossy()));
                    }
                    answered += 1;
                    last_answer = now;
                    totals.last_response_us.fetch_max(since(now), Relaxed);
                    if let Some(t) = sent_at[sequence_number as usize % ring].take() {
                        let _ = local.record(now.duration_since(t).as_micros().max(1) as u64);
                    }
                    if status.is_ok() {
                        totals.ok.fetch_add(1, Relaxed);
                    } else if status == CommandStatus::ESME_RTHROTTLED {
                        totals.throttled.fetch_add(1, Relaxed);
                    } else {
                        totals.errors.fetch_add(1, Relaxed);
                    }
                }
                Event::ResponseTimeout { .. } | Event::MalformedResponse { .. } => {
                    answered += 1;
                    totals.errors.fetch_add(1, Relaxed);
                }
                Event::Request {
                    sequence_number,
                    body,
                } => {
                    if let Body::DeliverSm(d) = &body {
                        if let (true, Some(id)) = (d.is_receipt(), d.tlvs.receipted_message_id()) {
                            note(format!("dlr {}\n", String::from_utf8_lossy(id)));
                        }
                    }
                    if matches!(&body, Body::DeliverSm(d) if d.is_receipt()) {
                        totals.last_dlr_us.fetch_max(since(now), Relaxed);
                        totals.dlrs.fetch_add(1, Relaxed);
                    }
                    let resp = Body::DeliverSmResp(MessageIdResp::default());
                    session.respond(sequence_number, CommandStatus::ESME_ROK, resp, now)?;
                }
                Event::Closed { reason, lost } => {
                    totals.errors.fetch_add(lost.len() as u64, Relaxed);
                    if !matches!(session.state(), State::Closed) || answered < sent {
                        tracing::warn!(?reason, "session closed");
                    }
                }
                _ => {}
            }
        }
        while let Some(pdu) = session.poll_transmit() {
            codec.encode(&pdu, &mut wbuf)?;
        }
        if !wbuf.is_empty() {
            wr.write_all(&wbuf).await?;
            wbuf.clear();
        }
        if session.is_closed() {
            break;
        }
        let all_answered = answered >= sent && (sent >= count || now >= deadline);
        if all_answered && !counted_answered {
            counted_answered = true;
            totals.binds_answered.fetch_add(1, Relaxed);
        }
        // A receipt may come over any of the binds (a hub sends a tenant's receipts over
        // whichever receiver it has): every bind stays until the receipts of all are in.
        let dlrs_done = !opts.dlr
            || (totals.binds_answered.load(Relaxed) >= opts.binds as u64
                && totals.dlrs.load(Relaxed) >= totals.ok.load(Relaxed))
            || now.duration_since(last_answer) > Duration::from_secs(opts.dlr_wait_s);
        if all_answered && dlrs_done && session.state() != State::Unbinding {
            session.unbind(now)?;
            continue;
        }
        let mut wake = session
            .poll_timeout()
            .unwrap_or(now + Duration::from_secs(1));
        if let (Some(r), Some(b)) = (per_bind_rate, bound_at) {
            if sent < count && session.window_available() > 0 {
                wake = wake.min(b + Duration::from_secs_f64((sent as f64) / r));
            }
        }
        if opts.dlr && all_answered {
            // Receipts arriving over the other binds wake nothing here: look again soon.
            wake = wake
                .min(last_answer + Duration::from_secs(opts.dlr_wait_s) + Duration::from_millis(1))
                .min(now + Duration::from_millis(20));
        }
        tokio::select! {
            read = rd.read_buf(&mut rbuf) => {
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => session.connection_lost(now),
                    Ok(_) => while let Some(frame) = codec.decode(&mut rbuf)? {
                        match frame {
                            Ok(pdu) => session.handle_pdu(pdu, now),
                            Err(bad) => session.handle_decode_error(&bad, now),
                        }
                    },
                }
            }
            _ = tokio::time::sleep_until(wake.into()) => session.handle_timeout(Instant::now()),
        }
    }
    totals.submitted.fetch_add(sent, Relaxed);
    histogram.lock().add(&local)?;
    Ok(())
}

/// CPU seconds (user + system) this process has used, from getrusage via /proc.
pub fn cpu_seconds() -> f64 {
    // /proc/self/stat fields 14 and 15 are utime and stime in clock ticks (100 Hz on Linux).
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(after) = stat.rsplit(')').next() else {
        return 0.0;
    };
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}
