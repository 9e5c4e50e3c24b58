//! `http-load`: an HTTP/1.1 load generator for whole-system benchmarks.
//!
//! # Layout
//! - [`Options`] and [`run`]: N keep-alive connections share one request schedule (a global
//!   sequence number; paced to `--rate` or as fast as the server answers), bounded by `--count`
//!   and `--duration-s`; one [`Report`] as JSON at the end.
//! - [`Template`]: the request line, headers and body with `{seq}` / `{seqN}` placeholders,
//!   compiled once and rendered per request into a reused buffer.
//! - [`ResponseReader`]: a minimal HTTP/1.1 response reader (status, `Content-Length` or chunked
//!   body, `Connection: close`) over a raw tokio TCP stream.
//!
//! Raw TCP instead of hyper's client: one request in flight per connection needs no pooling,
//! header maps or body streams, and the load generator must cost far less CPU than the gateway it
//! measures (its own CPU time is in the report).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use futures::StreamExt;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Command-line options of `http-load`.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "http-load",
    version,
    about = "HTTP/1.1 load generator (keep-alive)"
)]
pub struct Options {
    /// Target, `http://IP:PORT/path?query`; the path and query may hold placeholders:
    /// `{seq}` is the request's sequence number, `{seqN}` (N = 1..9) its last N digits,
    /// zero-padded.
    #[arg(long)]
    pub url: String,
    /// Request method.
    #[arg(long, default_value = "GET")]
    pub method: String,
    /// Extra header, `Name: value` (repeatable).
    #[arg(long = "header")]
    pub headers: Vec<String>,
    /// Request body template (same placeholders as the URL); sent with `Content-Length`.
    #[arg(long)]
    pub body: Option<String>,
    /// Keep-alive connections, each with one request in flight.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Requests to send in total.
    #[arg(long, default_value_t = 100_000)]
    pub count: u64,
    /// Stop starting requests after this many seconds even if `count` is not reached.
    #[arg(long, default_value_t = 60.0)]
    pub duration_s: f64,
    /// Pace request starts to this many per second overall (unpaced when absent).
    #[arg(long)]
    pub rate: Option<f64>,
    /// First sequence number (so consecutive runs make distinct requests).
    #[arg(long, default_value_t = 0)]
    pub seq_start: u64,
    /// Runtime worker threads; 1 runs everything on the current thread.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// A request without a complete response after this many seconds counts as an I/O error
    /// (its connection is closed and opened again).
    #[arg(long, default_value_t = 30.0)]
    pub timeout_s: f64,
    /// Connections opened at once before the load starts (servers with a short listen backlog
    /// drop SYNs when hundreds arrive together, and the retransmissions would show as latency).
    #[arg(long, default_value_t = 16)]
    pub connect_parallelism: usize,
    /// Free text copied into the report.
    #[arg(long, default_value = "")]
    pub label: String,
    /// Write the `{seq}` of every request answered 2xx to this file, one per line, sorted (a
    /// soak checks that each accepted message arrived).
    #[arg(long)]
    pub accepted_log: Option<std::path::PathBuf>,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// `--label`.
    pub label: String,
    /// `--rate`, when paced.
    pub target_rate: Option<f64>,
    /// Requests written.
    pub sent: u64,
    /// Requests answered with a complete response.
    pub completed: u64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Responses by status code.
    pub by_status: BTreeMap<u16, u64>,
    /// Requests lost to connection errors (refused, reset, malformed response).
    pub io_errors: u64,
    /// When the first request was due (after the connections were opened), Unix seconds: the
    /// start of the load for whoever correlates it with other counters.
    pub started_at_unix_s: f64,
    /// Seconds from the first scheduled request to the last response.
    pub seconds: f64,
    /// `ok / seconds`.
    pub ok_per_s: f64,
    /// Latency of the requests answered 2xx, from writing the request to reading the whole
    /// response.
    pub latency_us: Percentiles,
    /// The same for the requests answered otherwise (refusals: 429, 503 …), measured apart so
    /// fast refusals do not flatter the accepted requests' percentiles.
    pub refused_latency_us: Percentiles,
    /// Non-2xx responses that carried a `Retry-After` header.
    pub refused_with_retry_after: u64,
    /// Latency from the request's scheduled start (paced runs; includes time spent waiting
    /// for a free connection, so a stalled server is not hidden — "coordinated omission").
    pub scheduled_latency_us: Percentiles,
    /// CPU seconds this process used (user + system).
    pub cpu_s: f64,
    /// CPU microseconds per completed request.
    pub cpu_us_per_request: f64,
    /// A few non-2xx response bodies (truncated), to see why requests were refused.
    pub samples: Vec<String>,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest.
    pub max: u64,
    /// Mean.
    pub mean: f64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Self {
        Self {
            p50: h.value_at_quantile(0.5),
            p90: h.value_at_quantile(0.9),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: h.mean(),
        }
    }
}

/// Runs the load and reports.
pub async fn run(opts: Options) -> anyhow::Result<Report> {
    let target = Target::parse(&opts.url)?;
    let template = Arc::new(Template::new(&opts, &target)?);
    if opts.connections == 0 {
        bail!("--connections must be at least 1");
    }
    if let Some(rate) = opts.rate {
        if rate.is_nan() || rate <= 0.0 {
            bail!("--rate must be above 0");
        }
    }
    // Open every connection before the clock starts.
    let streams: Vec<Option<TcpStream>> =
        futures::stream::iter((0..opts.connections).map(|_| connect(target.addr)))
            .buffer_unordered(opts.connect_parallelism.max(1))
            .collect()
            .await;
    let connect_errors = streams.iter().filter(|s| s.is_none()).count() as u64;
    let lead = Duration::from_millis(5);
    let started_at_unix_s = (std::time::SystemTime::now() + lead)
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    let shared = Arc::new(Schedule {
        next: AtomicU64::new(0),
        count: opts.count,
        start: Instant::now() + lead,
        timeout: Duration::from_secs_f64(opts.timeout_s.max(0.001)),
        deadline: Duration::from_secs_f64(opts.duration_s.max(0.0)),
        interval: opts.rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        seq_start: opts.seq_start,
        log_accepted: opts.accepted_log.is_some(),
    });
    let cpu_start = crate::smpp_load::cpu_seconds();
    let mut tasks = Vec::with_capacity(opts.connections);
    for stream in streams {
        let (shared, template) = (shared.clone(), template.clone());
        let addr = target.addr;
        tasks.push(tokio::spawn(async move {
            connection(addr, stream, shared, template).await
        }));
    }
    let mut total = ConnStats::new();
    total.io_errors += connect_errors;
    for t in tasks {
        let stats = t.await.context("connection task panicked")?;
        total.merge(stats)?;
    }
    let seconds = total
        .last_done
        .map(|t| t.saturating_duration_since(shared.start).as_secs_f64())
        .unwrap_or(0.0);
    let cpu_s = crate::smpp_load::cpu_seconds() - cpu_start;
    if let Some(path) = &opts.accepted_log {
        total.accepted.sort_unstable();
        let mut text = String::with_capacity(total.accepted.len() * 8);
        for seq in &total.accepted {
            text.push_str(&seq.to_string());
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let ok = total
        .by_status
        .iter()
        .filter(|(s, _)| (200..300).contains(*s))
        .map(|(_, n)| n)
        .sum();
    Ok(Report {
        label: opts.label,
        target_rate: opts.rate,
        sent: total.sent,
        completed: total.completed,
        ok,
        by_status: total.by_status,
        io_errors: total.io_errors,
        started_at_unix_s,
        seconds,
        ok_per_s: ok as f64 / seconds.max(1e-9),
        latency_us: Percentiles::of(&total.latency),
        refused_latency_us: Percentiles::of(&total.refused),
        refused_with_retry_after: total.retry_after,
        scheduled_latency_us: Percentiles::of(&total.scheduled),
        cpu_s,
        cpu_us_per_request: cpu_s * 1e6 / total.completed.max(1) as f64,
        samples: total.samples,
    })
}

/// The schedule every connection draws its next request from.
#[derive(Debug)]
struct Schedule {
    /// Next request index (0-based); a connection takes one with `fetch_add`.
    next: AtomicU64,
    /// `--count`.
    count: u64,
    /// When request 0 is due.
    start: Instant,
    /// No request starts later than `start + deadline`.
    deadline: Duration,
    /// Time between request starts when paced.
    interval: Option<Duration>,
    /// Added to the index to make the `{seq}` placeholder.
    seq_start: u64,
    /// `--timeout-s`.
    timeout: Duration,
    /// Whether `--accepted-log` asks for the accepted sequence numbers.
    log_accepted: bool,
}

/// What one connection measured; merged at the end so the hot path shares nothing but the
/// schedule counter.
#[derive(Debug)]
struct ConnStats {
    sent: u64,
    completed: u64,
    io_errors: u64,
    by_status: BTreeMap<u16, u64>,
    /// 2xx responses.
    latency: Histogram<u64>,
    /// Other responses.
    refused: Histogram<u64>,
    /// Other responses with a `Retry-After`.
    retry_after: u64,
    scheduled: Histogram<u64>,
    last_done: Option<Instant>,
    samples: Vec<String>,
    /// `{seq}` of the requests answered 2xx (with `--accepted-log` only).
    accepted: Vec<u64>,
}

const MAX_SAMPLES: usize = 3;

impl ConnStats {
    fn new() -> Self {
        // 1 µs to 10 min, 3 significant digits: constant bounds that new_with_bounds accepts
        // (low >= 1, high >= 2 * low, sigfig <= 5), so it cannot fail.
        let h = Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds");
        Self {
            sent: 0,
            completed: 0,
            io_errors: 0,
            by_status: BTreeMap::new(),
            latency: h.clone(),
            refused: h.clone(),
            retry_after: 0,
            scheduled: h,
            last_done: None,
            samples: Vec::new(),
            accepted: Vec::new(),
        }
    }

    fn merge(&mut self, other: ConnStats) -> anyhow::Result<()> {
        self.sent += other.sent;
        self.completed += other.completed;
        self.io_errors += other.io_errors;
        for (s, n) in other.by_status {
            *self.by_status.entry(s).or_default() += n;
        }
        self.latency.add(&other.latency)?;
        self.refused.add(&other.refused)?;
        self.retry_after += other.retry_after;
        self.scheduled.add(&other.scheduled)?;
        self.last_done = self.last_done.max(other.last_done);
        self.accepted.extend(other.accepted);
        for s in other.samples {
            if self.samples.len() < MAX_SAMPLES {
                self.samples.push(s);
            }
        }
        Ok(())
    }
}

/// One keep-alive connection: take the next request from the schedule, wait for its time,
/// write it, read the response; reconnect when the server closes or an error occurs.
async fn connection(
    addr: SocketAddr,
    mut stream: Option<TcpStream>,
    schedule: Arc<Schedule>,
    template: Arc<Template>,
) -> ConnStats {
    let mut stats = ConnStats::new();
    let mut reader = ResponseReader::default();
    let mut request = Vec::with_capacity(1024);
    loop {
        let index = schedule.next.fetch_add(1, Relaxed);
        if index >= schedule.count {
            break;
        }
        let due = match schedule.interval {
            Some(iv) => schedule.start + iv.mul_f64(index as f64),
            None => schedule.start,
        };
        if due.saturating_duration_since(schedule.start) > schedule.deadline
            || Instant::now().saturating_duration_since(schedule.start) > schedule.deadline
        {
            break;
        }
        tokio::time::sleep_until(due).await;
        template.render(schedule.seq_start + index, &mut request);
        let conn = match stream.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Some(s) => {
                    reader.clear();
                    stream.insert(s)
                }
                None => {
                    stats.io_errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let sent_at = Instant::now();
        stats.sent += 1;
        let exchange = async {
            conn.write_all(&request).await?;
            reader.read(conn).await
        };
        let result = match tokio::time::timeout(schedule.timeout, exchange).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("timed out")),
        };
        let done = Instant::now();
        match result {
            Ok(resp) => {
                stats.completed += 1;
                *stats.by_status.entry(resp.status).or_default() += 1;
                let accepted = (200..300).contains(&resp.status);
                let histogram = if accepted {
                    &mut stats.latency
                } else {
                    stats.retry_after += u64::from(resp.retry_after);
                    &mut stats.refused
                };
                let _ = histogram.record(micros(done.saturating_duration_since(sent_at)));
                let _ = stats
                    .scheduled
                    .record(micros(done.saturating_duration_since(due)));
                stats.last_done = Some(done);
                if schedule.log_accepted && accepted {
                    stats.accepted.push(schedule.seq_start + index);
                }
                if !accepted && stats.samples.len() < MAX_SAMPLES {
                    let body = String::from_utf8_lossy(reader.body(&resp));
                    stats
                        .samples
                        .push(format!("{} {}", resp.status, truncate(&body, 300)));
                }
                reader.consume(&resp);
                if resp.close {
                    stream = None;
                }
            }
            Err(_) => {
                stats.io_errors += 1;
                stream = None;
            }
        }
    }
    stats
}

/// Opens a connection (with TCP_NODELAY), or None after a failure or 10 s.
async fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let s = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
        .await
        .ok()?
        .ok()?;
    let _ = s.set_nodelay(true);
    Some(s)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Host and path of an `http://` URL (IP literals only: benchmarks stay on loopback and need
/// no resolver).
#[derive(Debug)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = url
            .strip_prefix("http://")
            .context("only http:// URLs are supported")?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let addr: SocketAddr = host
            .parse()
            .with_context(|| format!("{host:?} is not IP:PORT"))?;
        Ok(Self {
            addr,
            host: host.to_owned(),
            path: path.to_owned(),
        })
    }
}

/// A request with placeholders, compiled into literal bytes and sequence-number slots.
#[derive(Debug)]
pub struct Template {
    /// Request line up to the path, then the path.
    head: Vec<Part>,
    /// Headers after the request line, including Host, ending before Content-Length.
    headers: Vec<u8>,
    /// The body, if any.
    body: Option<Vec<Part>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(Vec<u8>),
    /// The sequence number; `Some(n)`: its last n digits, zero-padded.
    Seq(Option<u8>),
}

impl Template {
    fn new(opts: &Options, target: &Target) -> anyhow::Result<Self> {
        let mut head = vec![Part::Lit(format!("{} ", opts.method).into_bytes())];
        head.extend(parse_placeholders(&target.path));
        head.push(Part::Lit(b" HTTP/1.1\r\n".to_vec()));
        let mut headers = format!("Host: {}\r\n", target.host).into_bytes();
        for h in &opts.headers {
            let Some((name, value)) = h.split_once(':') else {
                bail!("header {h:?} is not `Name: value`");
            };
            headers.extend_from_slice(format!("{}: {}\r\n", name.trim(), value.trim()).as_bytes());
        }
        if opts.body.is_some()
            && !opts
                .headers
                .iter()
                .any(|h| h.to_ascii_lowercase().starts_with("content-type:"))
        {
            headers.extend_from_slice(b"Content-Type: application/json\r\n");
        }
        Ok(Self {
            head: head
                .into_iter()
                .filter(|p| p != &Part::Lit(vec![]))
                .collect(),
            headers,
            body: opts.body.as_deref().map(parse_placeholders),
        })
    }

    /// Writes request `seq` into `out` (cleared first).
    pub fn render(&self, seq: u64, out: &mut Vec<u8>) {
        out.clear();
        render_parts(&self.head, seq, out);
        out.extend_from_slice(&self.headers);
        match &self.body {
            Some(body) => {
                let mut b = Vec::with_capacity(256);
                render_parts(body, seq, &mut b);
                out.extend_from_slice(b"Content-Length: ");
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.extend_from_slice(b"\r\n\r\n");
                out.extend_from_slice(&b);
            }
            None => out.extend_from_slice(b"\r\n"),
        }
    }
}

fn parse_placeholders(s: &str) -> Vec<Part> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("{seq") {
        let after = &rest[i + 4..];
        let (width, len) = match after.as_bytes() {
            [b'}', ..] => (None, 1),
            [d @ b'1'..=b'9', b'}', ..] => (Some(d - b'0'), 2),
            _ => {
                lit.push_str(&rest[..i + 4]);
                rest = after;
                continue;
            }
        };
        lit.push_str(&rest[..i]);
        parts.push(Part::Lit(std::mem::take(&mut lit).into_bytes()));
        parts.push(Part::Seq(width));
        rest = &after[len..];
    }
    lit.push_str(rest);
    parts.push(Part::Lit(lit.into_bytes()));
    parts.retain(|p| p != &Part::Lit(vec![]));
    parts
}

fn render_parts(parts: &[Part], seq: u64, out: &mut Vec<u8>) {
    for p in parts {
        match p {
            Part::Lit(b) => out.extend_from_slice(b),
            Part::Seq(None) => out.extend_from_slice(seq.to_string().as_bytes()),
            Part::Seq(Some(n)) => {
                let m = 10u64.pow(u32::from(*n));
                let s = format!("{:0width$}", seq % m, width = usize::from(*n));
                out.extend_from_slice(s.as_bytes());
            }
        }
    }
}

/// The parts of one response the load generator needs.
#[derive(Debug, Clone, Copy)]
struct Response {
    status: u16,
    /// Bytes of the buffer taken by this response (head and body).
    len: usize,
    /// Where the body starts and ends in the buffer (chunked bodies: the raw chunk stream).
    body: (usize, usize),
    /// The server will close the connection (or already did).
    close: bool,
    /// The response carried a `Retry-After` header.
    retry_after: bool,
}

/// Reads HTTP/1.1 responses from a stream, keeping bytes that arrive early.
#[derive(Debug, Default)]
struct ResponseReader {
    buf: Vec<u8>,
}

const MAX_RESPONSE: usize = 1 << 20;

impl ResponseReader {
    fn clear(&mut self) {
        self.buf.clear();
    }

    fn body(&self, r: &Response) -> &[u8] {
        self.buf.get(r.body.0..r.body.1).unwrap_or_default()
    }

    fn consume(&mut self, r: &Response) {
        self.buf.drain(..r.len.min(self.buf.len()));
    }

    async fn read(&mut self, stream: &mut TcpStream) -> anyhow::Result<Response> {
        loop {
            if let Some(r) = self.parse(false)? {
                return Ok(r);
            }
            if self.buf.len() > MAX_RESPONSE {
                bail!("response larger than {MAX_RESPONSE} bytes");
            }
            self.buf.reserve(4096);
            let n = stream.read_buf(&mut self.buf).await?;
            if n == 0 {
                // EOF: a body delimited by the close is complete now.
                return self.parse(true)?.context("connection closed mid-response");
            }
        }
    }

    /// A complete response at the start of the buffer, if there is one.
    fn parse(&self, eof: bool) -> anyhow::Result<Option<Response>> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let head_len = match resp.parse(&self.buf)? {
            httparse::Status::Complete(n) => n,
            httparse::Status::Partial => return Ok(None),
        };
        let status = resp.code.unwrap_or(0);
        let mut close = resp.version == Some(0);
        let mut length = None;
        let mut chunked = false;
        let mut retry_after = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok());
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h.value.to_ascii_lowercase().ends_with(b"chunked");
            } else if h.name.eq_ignore_ascii_case("retry-after") {
                retry_after = true;
            } else if h.name.eq_ignore_ascii_case("connection") {
                let v = h.value.to_ascii_lowercase();
                if v.starts_with(b"close") {
                    close = true;
                } else if v.starts_with(b"keep-alive") {
                    close = false;
                }
            }
        }
        let body_end = if chunked {
            match chunked_end(self.buf.get(head_len..).unwrap_or_default())? {
                Some(n) => head_len + n,
                None => return Ok(None),
            }
        } else if let Some(n) = length {
            if self.buf.len() < head_len + n {
                return Ok(None);
            }
            head_len + n
        } else if status == 204 || status == 304 || (100..200).contains(&status) {
            head_len
        } else if eof {
            close = true;
            self.buf.len()
        } else {
            return Ok(None);
        };
        Ok(Some(Response {
            status,
            len: body_end,
            body: (head_len, body_end),
            close: close || eof,
            retry_after,
        }))
    }
}

/// Length of a complete chunked body (through the final CRLF), or None if more is needed.
fn chunked_end(b: &[u8]) -> anyhow::Result<Option<usize>> {
    let mut pos = 0;
    loop {
        let Some(line_end) = find_crlf(b.get(pos..).unwrap_or_default()) else {
            return Ok(None);
        };
        let line = b.get(pos..pos + line_end).unwrap_or_default();
        let size_str = std::str::from_utf8(line)?
            .split(';')
            .next()
            .unwrap_or("")
            .trim();
        let size = usize::from_str_radix(size_str, 16).context("bad chunk size")?;
        pos += line_end + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(e) = find_crlf(b.get(pos..).unwrap_or_default()) else {
                    return Ok(None);
                };
                pos += e + 2;
                if e == 0 {
                    return Ok(Some(pos));
                }
            }
        }
        pos += size + 2;
        if pos > b.len() {
            return Ok(None);
        }
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(bytes: &[u8]) -> ResponseReader {
        ResponseReader {
            buf: bytes.to_vec(),
        }
    }

    #[test]
    fn placeholders_render_sequence_numbers() {
        let parts = parse_placeholders("a{seq}b{seq6}c{seqx}{seq0}");
        let mut out = Vec::new();
        render_parts(&parts, 1_234_567, &mut out);
        assert_eq!(out, b"a1234567b234567c{seqx}{seq0}");
    }

    #[test]
    fn template_writes_a_request() {
        let opts = <Options as clap::Parser>::parse_from([
            "http-load",
            "--url",
            "http://127.0.0.1:1/x?n={seq}",
            "--method",
            "POST",
            "--header",
            "Authorization: Bearer k",
            "--body",
            "{\"to\":\"+44{seq3}\"}",
        ]);
        let target = Target::parse(&opts.url).unwrap();
        let t = Template::new(&opts, &target).unwrap();
        let mut out = Vec::new();
        t.render(42, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /x?n=42 HTTP/1.1\r\nHost: 127.0.0.1:1\r\nAuthorization: Bearer k\r\n\
             Content-Type: application/json\r\nContent-Length: 15\r\n\r\n{\"to\":\"+44042\"}"
        );
    }

    #[test]
    fn reads_content_length_and_pipelined_bytes() {
        let mut r = reader(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nokHTTP/1.1 4");
        let resp = r.parse(false).unwrap().unwrap();
        assert_eq!((resp.status, resp.close), (202, false));
        assert_eq!(r.body(&resp), b"ok");
        r.consume(&resp);
        assert_eq!(r.buf, b"HTTP/1.1 4");
        assert!(r.parse(false).unwrap().is_none());
    }

    #[test]
    fn reads_chunked_and_close() {
        let r =
            reader(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        let resp = r.parse(false).unwrap().unwrap();
        assert_eq!(resp.len, r.buf.len());
        let r = reader(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n");
        assert!(r.parse(false).unwrap().is_none());
        let r = reader(b"HTTP/1.0 202 Accepted\r\n\r\n0: Accepted");
        assert!(r.parse(false).unwrap().is_none());
        let resp = r.parse(true).unwrap().unwrap();
        assert!(resp.close);
        assert_eq!(r.body(&resp), b"0: Accepted");
    }
}
