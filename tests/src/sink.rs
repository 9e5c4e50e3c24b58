//! A webhook receiver for the tests: an HTTP/1.1 server (plain or TLS) on 127.0.0.1 (one thread per
//! connection, keep-alive) that records every request and answers 200, or 500 while told to
//! fail, or the statuses scripted for a path ([`Sink::script`]). Signatures are checked by the
//! test, with [`verify_signature`].

use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The request target, e.g. `/hook`.
    pub path: String,
    /// `X-Switchyard-Event-Id`.
    pub event_id: String,
    /// `Idempotency-Key`, if sent.
    pub idempotency_key: Option<String>,
    /// `X-Switchyard-Signature`, if sent.
    pub signature: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// What the sink answered.
    pub status: u16,
    /// When it arrived.
    pub at: std::time::Instant,
}

/// What the sink's threads share.
#[derive(Debug, Default)]
pub struct SinkState {
    /// Answer 500 while true.
    pub fail: AtomicBool,
    /// Every request, in arrival order.
    pub received: Mutex<Vec<Received>>,
    /// Path → the statuses its next requests are answered with, in order.
    pub scripts: Mutex<HashMap<String, VecDeque<u16>>>,
    /// Seconds in the `Retry-After` header of 429 and 503 answers (none when 0).
    pub retry_after_s: std::sync::atomic::AtomicU64,
}

/// A running sink; its threads end with the test process.
#[derive(Debug)]
pub struct Sink {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    /// Shared state.
    pub state: Arc<SinkState>,
}

impl Sink {
    /// Starts a sink on an ephemeral port.
    pub fn start() -> anyhow::Result<Sink> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        let state = Arc::new(SinkState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = serve(stream, &shared);
                });
            }
        });
        Ok(Sink { url, state })
    }

    /// Starts a sink serving HTTPS with the PEM certificate chain `cert` and key `key`
    /// (`https://127.0.0.1:PORT/hook`: give the certificate that IP address as a name).
    pub fn start_tls(cert: &str, key: &str) -> anyhow::Result<Sink> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let chain = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(key)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()?
                .with_no_client_auth()
                .with_single_cert(chain, key)?,
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let url = format!("https://{}/hook", listener.local_addr()?);
        let state = Arc::new(SinkState::default());
        let shared = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let shared = shared.clone();
                let config = config.clone();
                std::thread::spawn(move || {
                    let _ = serve_tls(stream, config, &shared);
                });
            }
        });
        Ok(Sink { url, state })
    }

    /// Requests answered 200 so far, copied.
    pub fn delivered(&self) -> Vec<Received> {
        let all = self
            .state
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|r| r.status == 200).cloned().collect()
    }

    /// Requests received so far (any answer).
    pub fn requests(&self) -> usize {
        self.state
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Requests to `path` so far (any answer), copied.
    pub fn requests_to(&self, path: &str) -> Vec<Received> {
        let all = self
            .state
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        all.iter().filter(|r| r.path == path).cloned().collect()
    }

    /// Answers the next requests to `path` with `statuses`, in order (then as usual).
    pub fn script(&self, path: &str, statuses: &[u16]) {
        self.state
            .scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(path.to_owned())
            .or_default()
            .extend(statuses);
    }

    /// Adds `Retry-After: secs` to the 429 and 503 answers (0: no header).
    pub fn set_retry_after(&self, secs: u64) {
        self.state.retry_after_s.store(secs, Ordering::SeqCst);
    }

    /// Makes the sink answer 500 (`true`) or 200 (`false`).
    pub fn set_failing(&self, fail: bool) {
        self.state.fail.store(fail, Ordering::SeqCst);
    }
}

fn serve(stream: TcpStream, state: &SinkState) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    // One small write per response: without this, Nagle and delayed ACKs cost 40 ms each.
    stream.set_nodelay(true)?;
    exchange(stream, state)
}

fn serve_tls(
    stream: TcpStream,
    config: Arc<rustls::ServerConfig>,
    state: &SinkState,
) -> anyhow::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    stream.set_nodelay(true)?;
    let conn = rustls::ServerConnection::new(config)?;
    exchange(rustls::StreamOwned::new(conn, stream), state)
}

/// Reads requests and answers them until the connection closes.
fn exchange<S: Read + Write>(stream: S, state: &SinkState) -> anyhow::Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split(' ').nth(1).unwrap_or_default().to_owned();
        let mut length = 0usize;
        let mut event_id = String::new();
        let mut idempotency_key = None;
        let mut signature = None;
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((name, value)) = l.split_once(':') {
                let value = value.trim().to_owned();
                match name.trim().to_ascii_lowercase().as_str() {
                    "content-length" => length = value.parse().unwrap_or(0),
                    "x-switchyard-event-id" => event_id = value,
                    "x-switchyard-signature" => signature = Some(value),
                    "idempotency-key" => idempotency_key = Some(value),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        let scripted = state
            .scripts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&path)
            .and_then(VecDeque::pop_front);
        let status = match scripted {
            Some(s) => s,
            None if state.fail.load(Ordering::SeqCst) => 500,
            None => 200,
        };
        state
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Received {
                path,
                event_id,
                idempotency_key,
                signature,
                body,
                status,
                at: std::time::Instant::now(),
            });
        let reason = match status {
            200 => "OK",
            404 => "Not Found",
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Internal Server Error",
        };
        let wait = state.retry_after_s.load(Ordering::SeqCst);
        let retry_after = if wait > 0 && matches!(status, 429 | 503) {
            format!("Retry-After: {wait}\r\n")
        } else {
            String::new()
        };
        let response =
            format!("HTTP/1.1 {status} {reason}\r\n{retry_after}Content-Length: 0\r\n\r\n");
        let writer = reader.get_mut();
        writer.write_all(response.as_bytes())?;
        writer.flush()?;
    }
}

/// Checks an `X-Switchyard-Signature` value the way a receiver would (see docs/webhooks.md):
/// one of the `v1` entries is the hex HMAC-SHA256 of `"<t>.<body>"` with `secret`.
pub fn verify_signature(header: &str, secret: &str, body: &[u8]) -> bool {
    let mut t = None;
    let mut candidates = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => candidates.push(v.to_owned()),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    let expected = hex::encode(mac.finalize().into_bytes());
    candidates.contains(&expected)
}
