//! `http-sink`: counts the HTTP requests it receives and answers each with an empty 200, so a
//! benchmark can count a gateway's callbacks (e.g. Kannel's `dlr-url` requests).
//!
//! `GET /stats` is not counted; it answers
//! `{"requests": N, "by_param": {"<value>": N, …}, "by_field": {"<value>": N, …}, "last_ms": T}`,
//! where `by_param` groups the requests by the value of the query parameter named by
//! `--count-param` (e.g. Kannel's DLR type, `dlr-url=…?t=%d`), `by_field` groups JSON bodies by
//! the string value of their top-level field named by `--count-field` (e.g. Switchyard's event
//! `type`, `message.delivered`; a body that is a JSON array counts each of its objects), and `last_ms` is when the last counted request arrived, in
//! milliseconds since the sink started; `distinct` counts the different values of the JSON
//! field named by `--distinct-field` (e.g. Switchyard's event `id`) and `repeats` the bodies
//! whose value was seen before (an at-least-once sender's duplicates). Keep-alive, one task per connection, only raw tokio,
//! `httparse` and `serde_json`.

use std::collections::{BTreeMap, HashSet};
use std::hash::{BuildHasher, RandomState};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Command-line options of `http-sink`.
#[derive(Debug, Parser)]
#[command(
    name = "http-sink",
    version,
    about = "Counts HTTP requests (callback sink)"
)]
struct Options {
    /// Address to listen on (port 0 picks one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Count requests by the value of this query parameter.
    #[arg(long, default_value = "t")]
    count_param: String,
    /// Count JSON bodies by the string value of this top-level field.
    #[arg(long, default_value = "type")]
    count_field: String,
    /// Count the distinct string values of this top-level JSON field (and the repeats).
    #[arg(long, default_value = "id")]
    distinct_field: String,
}

/// What the sink has seen.
#[derive(Debug, Default)]
struct Counts {
    /// Requests counted (everything but `GET /stats`).
    requests: u64,
    /// Requests per value of `--count-param` (absent: `""`).
    by_param: BTreeMap<String, u64>,
    /// JSON bodies per value of `--count-field` (bodies without it are not counted here).
    by_field: BTreeMap<String, u64>,
    /// Milliseconds since start at the last counted request.
    last_ms: u64,
    /// 64-bit hashes of the `--distinct-field` values seen (collisions are negligible for
    /// the millions of values a soak sends: ~n²/2⁶⁵).
    seen: HashSet<u64>,
    /// Bodies whose `--distinct-field` value was seen before.
    repeats: u64,
}

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    switchyard_ops::logging::init("warn");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(options))
}

async fn serve(options: Options) -> anyhow::Result<()> {
    let listener = TcpListener::bind(options.listen).await?;
    println!("http-sink listening on {}", listener.local_addr()?);
    let counts = Arc::new(Mutex::new(Counts::default()));
    let names = Arc::new(Names {
        param: options.count_param,
        field: options.count_field,
        distinct: options.distinct_field,
        hasher: RandomState::new(),
    });
    let start = Instant::now();
    loop {
        let (stream, _) = listener.accept().await?;
        let (counts, names) = (counts.clone(), names.clone());
        tokio::spawn(async move {
            let _ = connection(stream, counts, names, start).await;
        });
    }
}

/// What requests are counted by.
struct Names {
    /// `--count-param`.
    param: String,
    /// `--count-field`.
    field: String,
    /// `--distinct-field`.
    distinct: String,
    /// Hashes `--distinct-field` values.
    hasher: RandomState,
}

/// The string values of the top-level fields `a` and `b` of a JSON object body.
fn json_fields(body: &[u8], a: &str, b: &str) -> Vec<(Option<String>, Option<String>)> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let fields = |v: &serde_json::Value| {
        let get = |name: &str| v.get(name)?.as_str().map(str::to_owned);
        (get(a), get(b))
    };
    match &value {
        serde_json::Value::Array(items) => items.iter().map(fields).collect(),
        v => vec![fields(v)],
    }
}

async fn connection(
    mut stream: TcpStream,
    counts: Arc<Mutex<Counts>>,
    names: Arc<Names>,
    start: Instant,
) -> anyhow::Result<()> {
    let _ = stream.set_nodelay(true);
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    loop {
        // Answer every complete request in the buffer, then read more.
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut req = httparse::Request::new(&mut headers);
            let head_len = match req.parse(&buf)? {
                httparse::Status::Complete(n) => n,
                httparse::Status::Partial => break,
            };
            let body_len = req
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if buf.len() < head_len + body_len {
                break;
            }
            let close = req.version == Some(0)
                || req.headers.iter().any(|h| {
                    h.name.eq_ignore_ascii_case("connection")
                        && h.value.eq_ignore_ascii_case(b"close")
                });
            let path = req.path.unwrap_or("/");
            out.clear();
            if req.method == Some("GET") && path == "/stats" {
                let body = {
                    let c = counts.lock();
                    serde_json::json!({
                        "requests": c.requests, "by_param": c.by_param,
                        "by_field": c.by_field, "last_ms": c.last_ms,
                        "distinct": c.seen.len(), "repeats": c.repeats,
                    })
                    .to_string()
                };
                out.extend_from_slice(
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    )
                    .as_bytes(),
                );
            } else {
                let value = query_param(path, &names.param).unwrap_or("").to_owned();
                let items = json_fields(
                    &buf[head_len..head_len + body_len],
                    &names.field,
                    &names.distinct,
                );
                let mut c = counts.lock();
                for (kind, key) in items {
                    if let Some(key) = key.map(|k| names.hasher.hash_one(k)) {
                        if !c.seen.insert(key) {
                            c.repeats += 1;
                        }
                    }
                    if let Some(kind) = kind {
                        *c.by_field.entry(kind).or_default() += 1;
                    }
                }
                c.requests += 1;
                *c.by_param.entry(value).or_default() += 1;
                c.last_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
                drop(c);
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
            }
            buf.drain(..head_len + body_len);
            stream.write_all(&out).await?;
            if close {
                return Ok(());
            }
        }
        if buf.len() > 1 << 20 {
            anyhow::bail!("request too large");
        }
        buf.reserve(4096);
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(());
        }
    }
}

/// The raw value of query parameter `name` in `path`.
fn query_param<'a>(path: &'a str, name: &str) -> Option<&'a str> {
    let query = path.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::json_fields;

    #[test]
    fn an_array_body_counts_each_of_its_objects() {
        let one = br#"{"type":"message.sent","id":"evt_1"}"#;
        assert_eq!(
            json_fields(one, "type", "id"),
            [(Some("message.sent".into()), Some("evt_1".into()))]
        );
        let many = br#"[{"type":"message.sent","id":"evt_1"},{"type":"message.delivered"}]"#;
        assert_eq!(
            json_fields(many, "type", "id"),
            [
                (Some("message.sent".into()), Some("evt_1".into())),
                (Some("message.delivered".into()), None)
            ]
        );
        assert!(json_fields(b"not json", "type", "id").is_empty());
    }
}
