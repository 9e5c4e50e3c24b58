//! `batch-load`: throughput of `POST /v1/messages/batch` in accepted messages per second.
//!
//! # Layout
//! - [`Options`] and [`run`]: `--batches` requests of `--recipients` recipients each (one body
//!   template with a `{{first_name}}` variable), built before the clock starts, sent over
//!   `--connections` keep-alive connections (one blocking thread each); one [`Report`] as JSON.
//! - The gateway's CPU time (user + system, from `/proc/<pid>/stat`) is read before and after
//!   when `--gateway-pid` is given, giving CPU µs per accepted message; the load average is
//!   read from `/proc/loadavg` at the end (the machine may be shared).
//!
//! Every 202 means the batch is durable (one group commit for the whole batch), so accepted
//! messages per second is durable throughput.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde::Serialize;

/// Command-line options of `batch-load`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "batch-load",
    version,
    about = "Batch API throughput (accepted messages/s)"
)]
pub struct Options {
    /// The gateway's API, `IP:PORT`.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub api: String,
    /// API key (Bearer).
    #[arg(long)]
    pub key: String,
    /// Batch requests to send.
    #[arg(long, default_value_t = 20)]
    pub batches: usize,
    /// Recipients per batch.
    #[arg(long, default_value_t = 10_000)]
    pub recipients: usize,
    /// Concurrent connections (one request in flight each).
    #[arg(long, default_value_t = 2)]
    pub connections: usize,
    /// First digits of the destination numbers (E.164 without `+`); 6 digits are appended.
    #[arg(long, default_value = "447911")]
    pub prefix: String,
    /// Distinct numbers cycled through (from 0).
    #[arg(long, default_value_t = 20_000)]
    pub numbers: usize,
    /// RFC 3339 `scheduled_at` for every message (measures acceptance alone, without the SMPP
    /// side competing for CPU).
    #[arg(long)]
    pub scheduled_at: Option<String>,
    /// PID of the gateway, to report its CPU time per message.
    #[arg(long)]
    pub gateway_pid: Option<u32>,
}

/// What one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Batch requests sent.
    pub batches: usize,
    /// Answered 202.
    pub batches_accepted: usize,
    /// Messages accepted (sum of `accepted` of the 202 answers).
    pub accepted: u64,
    /// Wall time from the first request to the last answer.
    pub seconds: f64,
    /// `accepted / seconds`.
    pub accepted_per_s: f64,
    /// Median batch latency, ms.
    pub batch_p50_ms: f64,
    /// Slowest batch, ms.
    pub batch_max_ms: f64,
    /// Gateway CPU seconds during the run (user + system), if its PID was given.
    pub gateway_cpu_s: Option<f64>,
    /// Gateway CPU µs per accepted message.
    pub gateway_cpu_us_per_msg: Option<f64>,
    /// This tool's CPU seconds (building bodies excluded).
    pub client_cpu_s: f64,
    /// `/proc/loadavg` at the end (1, 5, 15 min).
    pub loadavg: String,
    /// Non-202 answers, first few: status and body head.
    pub errors: Vec<String>,
}

/// CPU seconds (user + system) of process `pid`.
fn cpu_of(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit(')').next()?;
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the command name: field 14 (utime) and 15 (stime) are at 11 and 12.
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn body(o: &Options, batch: usize) -> String {
    let mut recipients = Vec::with_capacity(o.recipients);
    for r in 0..o.recipients {
        let n = (batch * o.recipients + r) % o.numbers.max(1);
        recipients.push(serde_json::json!({
            "to": format!("+{}{n:06}", o.prefix),
            "variables": {"first_name": format!("N{r}")},
        }));
    }
    let mut b = serde_json::json!({
        "from": "Acme",
        "body": "Hi {{first_name}}, your order has shipped.",
        "recipients": recipients,
    });
    if let Some(at) = &o.scheduled_at {
        b["scheduled_at"] = serde_json::json!(at);
    }
    b.to_string()
}

/// One keep-alive connection.
struct Conn {
    api: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    fn post(&mut self, path: &str, key: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.api)
                .with_context(|| format!("connecting to {}", self.api))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.stream = Some(BufReader::new(s));
        }
        let Some(stream) = self.stream.as_mut() else {
            bail!("no connection")
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.api,
            body.len()
        );
        let w = stream.get_mut();
        w.write_all(head.as_bytes())?;
        w.write_all(body.as_bytes())?;
        let mut line = String::new();
        stream.read_line(&mut line)?;
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let mut length = 0usize;
        loop {
            line.clear();
            stream.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((n, v)) = l.split_once(':') {
                if n.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse()?;
                }
            }
        }
        let mut out = vec![0; length];
        stream.read_exact(&mut out)?;
        Ok((status, out))
    }
}

/// Runs the load and measures it.
pub fn run(o: Options) -> anyhow::Result<Report> {
    let bodies: Vec<String> = (0..o.batches).map(|b| body(&o, b)).collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(u16, u64, Duration, String)>> = Mutex::new(Vec::new());
    let gw_start = o.gateway_pid.and_then(cpu_of);
    let client_start = crate::smpp_load::cpu_seconds();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..o.connections.max(1) {
            s.spawn(|| {
                let mut conn = Conn {
                    api: o.api.clone(),
                    stream: None,
                };
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = bodies.get(i) else { break };
                    let t = Instant::now();
                    let r = conn.post("/v1/messages/batch", &o.key, b);
                    let took = t.elapsed();
                    let entry = match r {
                        Ok((status, body)) => {
                            let accepted = serde_json::from_slice::<serde_json::Value>(&body)
                                .ok()
                                .and_then(|v| v["accepted"].as_u64())
                                .unwrap_or(0);
                            let text =
                                String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
                            (status, accepted, took, text)
                        }
                        Err(e) => {
                            conn.stream = None;
                            (0, 0, took, format!("{e:#}"))
                        }
                    };
                    results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(entry);
                }
            });
        }
    });
    let seconds = started.elapsed().as_secs_f64();
    let client_cpu_s = crate::smpp_load::cpu_seconds() - client_start;
    let gw_cpu = match (gw_start, o.gateway_pid.and_then(cpu_of)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let accepted: u64 = results.iter().filter(|r| r.0 == 202).map(|r| r.1).sum();
    let mut lat: Vec<f64> = results.iter().map(|r| r.2.as_secs_f64() * 1e3).collect();
    lat.sort_by(f64::total_cmp);
    Ok(Report {
        batches: o.batches,
        batches_accepted: results.iter().filter(|r| r.0 == 202).count(),
        accepted,
        seconds,
        accepted_per_s: accepted as f64 / seconds,
        batch_p50_ms: lat.get(lat.len() / 2).copied().unwrap_or(0.0),
        batch_max_ms: lat.last().copied().unwrap_or(0.0),
        gateway_cpu_s: gw_cpu,
        gateway_cpu_us_per_msg: gw_cpu.map(|c| c * 1e6 / accepted.max(1) as f64),
        client_cpu_s,
        loadavg: std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_default(),
        errors: results
            .iter()
            .filter(|r| r.0 != 202)
            .take(5)
            .map(|r| format!("{}: {}", r.0, r.3))
            .collect(),
    })
}
