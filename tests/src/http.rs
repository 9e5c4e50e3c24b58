//! A small blocking HTTP/1.1 client with keep-alive, for driving the gateway's API from many test
//! threads: one [`Client`] per thread holds one connection and reuses it for every request.
//!
//! It reads `Content-Length` and chunked bodies, which is all axum sends. A connection the server
//! closes (its keep-alive timeout) is reopened on the next request; a request that fails is never retried (a POST may
//! have been stored), so the caller sees every failure.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context};

/// How long a request may wait for its response.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// One HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header names (lower case) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .with_context(|| format!("HTTP {} body is not JSON: {}", self.status, self.text()))
    }
}

/// A keep-alive connection to one server.
#[derive(Debug)]
pub struct Client {
    /// `host:port` of the server (also sent as `Host`).
    addr: String,
    /// Sent with every request, e.g. `Authorization`.
    default_headers: Vec<(String, String)>,
    /// The open connection, if any.
    conn: Option<BufReader<TcpStream>>,
}

impl Client {
    /// A client for `addr` (`127.0.0.1:port`); connects on the first request.
    pub fn new(addr: &str) -> Self {
        Client {
            addr: addr.to_owned(),
            default_headers: Vec::new(),
            conn: None,
        }
    }

    /// The server's `host:port`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends `Authorization: Bearer KEY` with every request.
    pub fn with_bearer(mut self, key: &str) -> Self {
        self.default_headers
            .push(("Authorization".into(), format!("Bearer {key}")));
        self
    }

    /// `GET path`.
    pub fn get(&mut self, path: &str) -> anyhow::Result<Response> {
        self.request("GET", path, &[], None)
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&mut self, path: &str, body: &serde_json::Value) -> anyhow::Result<Response> {
        let bytes = serde_json::to_vec(body)?;
        self.request(
            "POST",
            path,
            &[("Content-Type", "application/json")],
            Some(&bytes),
        )
    }

    /// Sends one request and reads its response. On any error the connection is dropped (the
    /// next request opens a new one).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        let result = self.exchange(method, path, headers, body);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn exchange(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> anyhow::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        for (name, value) in self
            .default_headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .chain(headers.iter().copied())
        {
            head.push_str(name);
            head.push_str(": ");
            head.push_str(value);
            head.push_str("\r\n");
        }
        let body = body.unwrap_or_default();
        if !body.is_empty() || method == "POST" || method == "PUT" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(body);

        // A kept connection the server has closed meanwhile (its idle keep-alive timeout) is
        // replaced before the request is sent, not after it failed.
        if self
            .conn
            .as_ref()
            .is_some_and(|c| closed_by_peer(c.get_ref()))
        {
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let addr: SocketAddr = self
                    .addr
                    .parse()
                    .with_context(|| format!("{} is not ip:port", self.addr))?;
                let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                    .with_context(|| format!("connecting to {addr}"))?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(READ_TIMEOUT))?;
                self.conn.insert(BufReader::new(stream))
            }
        };
        conn.get_mut()
            .write_all(&out)
            .with_context(|| format!("sending {method} {path}"))?;
        let response = read_response(conn).with_context(|| format!("reading {method} {path}"))?;
        let delimited = response.header("content-length").is_some()
            || response.header("transfer-encoding").is_some();
        if !delimited
            || response
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close"))
        {
            self.conn = None;
        }
        Ok(response)
    }
}

/// True when the peer has closed `stream` (or sent something unasked): a non-blocking peek
/// finds the end of the stream or bytes where none are due.
fn closed_by_peer(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return true;
    }
    let mut byte = [0u8; 1];
    let closed =
        !matches!(stream.peek(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
    stream.set_nonblocking(false).is_err() || closed
}

fn read_response(conn: &mut BufReader<TcpStream>) -> anyhow::Result<Response> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        bail!("connection closed before the status line");
    }
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        if conn.read_line(&mut line)? == 0 {
            bail!("connection closed inside the headers");
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l
            .split_once(':')
            .with_context(|| format!("bad header line {l:?}"))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let header = |n: &str| {
        headers
            .iter()
            .find(|(name, _)| name == n)
            .map(|(_, v)| v.as_str())
    };
    let mut body = Vec::new();
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let size_text = line.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_text, 16)
                .with_context(|| format!("bad chunk size {line:?}"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if conn.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            conn.read_exact(&mut body[start..])?;
            line.clear();
            conn.read_line(&mut line)?;
        }
    } else if let Some(len) = header("content-length") {
        let len: usize = len.parse().context("bad content-length")?;
        body.resize(len, 0);
        conn.read_exact(&mut body)?;
    } else if status != 204 && status != 304 && !(100..200).contains(&status) {
        // No length: the body runs to the end of the connection.
        conn.read_to_end(&mut body)?;
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}
