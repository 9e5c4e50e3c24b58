//! A minimal Server-Sent Events reader for the tests: opens `GET /v1/events` with an optional
//! `Last-Event-ID`, de-chunks the response and yields events until told to stop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// One event of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `id:`.
    pub id: String,
    /// `event:`.
    pub kind: String,
    /// `data:`.
    pub data: String,
}

/// Reads events from `GET path` on `addr` with `key`, after `last_event_id` if given, until
/// `done` returns true for the events so far or `timeout` passes (then it fails). Returns the
/// events read; the connection is closed on return.
pub fn collect(
    addr: &str,
    key: &str,
    path: &str,
    last_event_id: Option<&str>,
    timeout: Duration,
    mut done: impl FnMut(&[SseEvent]) -> bool,
) -> anyhow::Result<Vec<SseEvent>> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    let mut writer = stream.try_clone()?;
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {key}\r\nAccept: text/event-stream\r\n"
    );
    if let Some(id) = last_event_id {
        head.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    read_line(&mut reader, &mut line, deadline)?;
    if !line.contains(" 200 ") {
        bail!("GET {path}: {line}");
    }
    loop {
        line.clear();
        read_line(&mut reader, &mut line, deadline)?;
        if line.trim().is_empty() {
            break;
        }
    }
    let mut text = String::new();
    let mut events = Vec::new();
    loop {
        if done(&events) {
            return Ok(events);
        }
        // One chunk: size line, bytes, CRLF.
        line.clear();
        read_line(&mut reader, &mut line, deadline)?;
        let size = usize::from_str_radix(line.trim(), 16)
            .with_context(|| format!("bad chunk size {line:?}"))?;
        if size == 0 {
            bail!("the stream ended");
        }
        let mut chunk = vec![0; size + 2];
        read_exact(&mut reader, &mut chunk, deadline)?;
        text.push_str(&String::from_utf8_lossy(&chunk[..size]));
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let mut e = SseEvent {
                id: String::new(),
                kind: String::new(),
                data: String::new(),
            };
            for l in block.lines() {
                if let Some(v) = l.strip_prefix("id:") {
                    e.id = v.trim().to_owned();
                } else if let Some(v) = l.strip_prefix("event:") {
                    e.kind = v.trim().to_owned();
                } else if let Some(v) = l.strip_prefix("data:") {
                    e.data.push_str(v.trim_start());
                }
            }
            // Keep-alive comments have no id.
            if !e.id.is_empty() {
                events.push(e);
            }
        }
    }
}

fn read_line(
    reader: &mut BufReader<TcpStream>,
    line: &mut String,
    deadline: Instant,
) -> anyhow::Result<()> {
    loop {
        match reader.read_line(line) {
            Ok(0) => bail!("connection closed"),
            Ok(_) => return Ok(()),
            Err(e) if read_again(&e) => {
                if Instant::now() >= deadline {
                    bail!("timed out reading the event stream");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

fn read_exact(
    reader: &mut BufReader<TcpStream>,
    buf: &mut [u8],
    deadline: Instant,
) -> anyhow::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => bail!("connection closed"),
            Ok(n) => filled += n,
            Err(e) if read_again(&e) => {
                if Instant::now() >= deadline {
                    bail!("timed out reading the event stream");
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// A read that timed out or was interrupted by a signal: try again until the deadline.
fn read_again(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}
