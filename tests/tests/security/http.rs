//! The HTTP API listener against slow, greedy and curious clients (`switchyard serve` and
//! `smsc-sim` as real processes on 127.0.0.1):
//!
//! - [`slowloris_clients_are_cut_while_the_api_keeps_answering`]: half-sent headers, a
//!   half-sent HTTP/2 preface, silent sockets and a trickled body are cut within the timeouts;
//!   a normal request is answered during the attack.
//! - [`above_the_connection_cap_new_connections_wait`]: existing connections keep working, a
//!   new one is served only when a slot frees.
//! - [`https_http2_and_client_certificates`]: HTTPS with a test CA, HTTP/2 by ALPN, a client
//!   without a certificate refused, no clear text on the TLS port.
//! - [`route_costs_and_health_are_for_operator_keys_only`]: a tenant's explanation has its
//!   price and the carrier order, no wholesale cost or health; an operator key sees them.
//! - [`oversized_batches_are_refused_before_any_work`]: too many recipients, an oversized
//!   template, a template whose text alone is too long: 422 problem documents, nothing stored.
//! - [`a_tenant_over_quota_is_refused_before_its_recipients_are_checked`]: 429 before the
//!   per-recipient work; refused recipients give their quota back.
//! - [`operator_endpoints_move_to_their_own_listener`]: with `ops_listen`, `/metrics` and
//!   `/readyz` are absent from the public listener; HTTP/2 by prior knowledge on plain TCP.
//!
//! Every wait is bounded.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir, OPERATOR_KEY,
};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, pki, Process};
use tokio::io::{AsyncRead, AsyncWrite};

const KEY: &str = "sk_e2e_http_tenant_tttttttttttttttttttttttttttttttt";
const QUOTA_KEY: &str = "sk_e2e_http_quota_qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tenant "t" (markup 50 %, so its price differs from the carriers' cost) and tenant "q"
/// (daily quota 10), carriers alpha (0.0100) and bravo (0.0200) on `sim`, `server` lines for
/// `[server]`.
fn config(sim: &Sim, server: &str) -> GatewayConfig {
    let tenants = format!(
        "[[tenants]]\nname = \"t\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         markup_percent = 50\n\n\
         [[tenants]]\nname = \"q\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\
         daily_quota = 10\n",
        hash_key(KEY).unwrap(),
        hash_key(QUOTA_KEY).unwrap(),
    );
    GatewayConfig {
        carriers: vec![
            CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 64),
            CarrierSpec::new("bravo", sim.port(), "0.0200", 1, 64),
        ],
        server_extra: server.to_owned(),
        extra: tenants,
        ..GatewayConfig::default()
    }
}

/// A simulator and a gateway with `server` lines, ready (a bind is up).
fn start(name: &str, server: &str) -> (TempDir, Sim, Gateway) {
    let dir = TempDir::new(name).unwrap();
    let sim = Sim::start(&[], None).unwrap();
    let path = config(&sim, server).write(&dir.path).unwrap();
    let gw = Gateway::start(&path).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    (dir, sim, gw)
}

/// Reads from `s` until the peer closes it (or resets it): `Ok` with what arrived, `Err` when
/// it is still open after `limit`.
fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Result<Vec<u8>, String> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "still open after {limit:?} ({} bytes read)",
                got.len()
            ));
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return Ok(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Ok(got),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}

#[test]
fn slowloris_clients_are_cut_while_the_api_keeps_answering() {
    let _serial = serial();
    let (_dir, _sim, gw) = start(
        "http-slowloris",
        "header_read_timeout_s = 1\nrequest_timeout_s = 2\nidle_timeout_s = 20\nmax_connections = 64",
    );
    let attack_at = Instant::now();
    // 30 clients send part of a header line and then nothing, 5 part of the HTTP/2 preface,
    // 5 nothing at all.
    let mut slow: Vec<TcpStream> = (0..40)
        .map(|i| {
            let mut s = TcpStream::connect(&gw.api).unwrap();
            if i < 30 {
                s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: aaa")
                    .unwrap();
            } else if i < 35 {
                s.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
            }
            s
        })
        .collect();
    // A client that sends its headers and starts a body it never finishes.
    let mut trickle = TcpStream::connect(&gw.api).unwrap();
    write!(
        trickle,
        "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {KEY}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"to\": "
    )
    .unwrap();

    // The API answers a normal request during the attack.
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let asked = Instant::now();
    let r = client.get("/healthz").unwrap();
    assert_eq!(r.status, 200);
    let answered_in = asked.elapsed();
    assert!(answered_in < Duration::from_secs(2), "{answered_in:?}");

    // Every slow client is disconnected shortly after the 1 s header timeout.
    for (i, s) in slow.iter_mut().enumerate() {
        let left = Duration::from_secs(5).saturating_sub(attack_at.elapsed());
        let got = read_until_closed(s, left)
            .unwrap_or_else(|e| panic!("slow client {i} was not disconnected: {e}"));
        let text = String::from_utf8_lossy(&got);
        assert!(
            !text.contains("200 OK"),
            "slow client {i} got an answer: {text}"
        );
    }
    let cut_after = attack_at.elapsed();
    // The trickled body gets 408 (a problem document) after the 2 s request timeout.
    let got = read_until_closed(&mut trickle, Duration::from_secs(5)).unwrap_or_else(|e| {
        panic!("a body that never finishes is not cut: {e}");
    });
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("application/problem+json"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    // The API still answers afterwards.
    assert_eq!(client.get("/healthz").unwrap().status, 200);
    println!(
        "slowloris: 40 slow clients cut within {cut_after:.2?} (header timeout 1 s), a normal \
         request answered in {answered_in:.2?} during the attack, a trickled body got 408"
    );
}

#[test]
fn above_the_connection_cap_new_connections_wait() {
    let _serial = serial();
    let (_dir, _sim, gw) = start("http-cap", "max_connections = 4");
    let mut clients: Vec<Client> = (0..4).map(|_| Client::new(&gw.api)).collect();
    for c in &mut clients {
        assert_eq!(c.get("/healthz").unwrap().status, 200);
    }
    // A fifth connection is accepted by the kernel but not served while four are open.
    let mut fifth = TcpStream::connect(&gw.api).unwrap();
    fifth
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    fifth
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut buf = [0u8; 512];
    match fifth.read(&mut buf) {
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a connection above the cap was served: {other:?}"),
    }
    // The four keep working.
    for c in &mut clients {
        assert_eq!(c.get("/healthz").unwrap().status, 200);
    }
    // One closes: the fifth is served.
    let freed = Instant::now();
    clients.remove(0);
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = fifth
        .read(&mut buf)
        .expect("the waiting connection is served");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    println!(
        "connection cap 4: the fifth connection waited, then was served {:.1?} after a slot freed",
        freed.elapsed()
    );
}

/// A rustls client trusting the PEM `ca`, presenting `cert` (chain and key files) if given,
/// offering `alpn`.
fn tls_client(ca: &str, cert: Option<&pki::Pki>, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut config = match cert {
        Some(p) => {
            let chain = CertificateDer::pem_file_iter(&p.cert)
                .unwrap()
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_file(&p.key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// One GET with `key` over `io`, in HTTP/2 when `h2`: status, version and body.
async fn exchange<I>(
    io: I,
    h2: bool,
    uri: &str,
    key: &str,
) -> anyhow::Result<(u16, hyper::Version, String)>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(io);
    let request = hyper::Request::get(uri)
        .header("host", "api.test")
        .header("authorization", format!("Bearer {key}"))
        .body(Empty::<Bytes>::new())?;
    let response = if h2 {
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io).await?;
        tokio::spawn(conn);
        send.send_request(request).await?
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(conn);
        send.send_request(request).await?
    };
    let (status, version) = (response.status().as_u16(), response.version());
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, version, String::from_utf8_lossy(&body).into_owned()))
}

/// GET `path` on `addr` over TLS with `tls` (server name `api.test`), bounded to 10 s.
fn tls_get(
    addr: &str,
    tls: Arc<rustls::ClientConfig>,
    h2: bool,
    path: &str,
) -> anyhow::Result<(u16, hyper::Version, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let uri = format!("https://api.test{path}");
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            let name = ServerName::try_from("api.test")?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await?;
            exchange(stream, h2, &uri, KEY).await
        })
        .await?
    })
}

/// GET `path` on `addr` in clear, HTTP/2 by prior knowledge when `h2`, bounded to 10 s.
fn plain_get(addr: &str, h2: bool, path: &str) -> anyhow::Result<(u16, hyper::Version, String)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let uri = if h2 {
        format!("http://{addr}{path}")
    } else {
        path.to_owned()
    };
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), async {
            let tcp = tokio::net::TcpStream::connect(addr).await?;
            exchange(tcp, h2, &uri, KEY).await
        })
        .await?
    })
}

#[test]
fn https_http2_and_client_certificates() {
    let _serial = serial();
    let dir = TempDir::new("http-tls").unwrap();
    let server = pki::make(&dir.path, "api", &["api.test"]).unwrap();
    let client = pki::make(&dir.path, "client", &["client.test"]).unwrap();
    let sim = Sim::start(&[], None).unwrap();
    let tls_lines = format!(
        "tls_cert = {:?}\ntls_key = {:?}\ntls_client_ca = {:?}",
        server.cert, server.key, client.ca
    );
    let path = config(&sim, &tls_lines).write(&dir.path).unwrap();
    let gw = Gateway::start(&path).unwrap();

    // HTTPS, HTTP/1.1, with a client certificate.
    let h1 = tls_client(&server.ca, Some(&client), &[b"http/1.1"]);
    let (status, version, body) = tls_get(&gw.api, h1, false, "/v1/messages").unwrap();
    assert_eq!((status, version), (200, hyper::Version::HTTP_11), "{body}");
    // HTTP/2 by ALPN.
    let h2 = tls_client(&server.ca, Some(&client), &[b"h2", b"http/1.1"]);
    let (status, version, body) = tls_get(&gw.api, h2, true, "/v1/messages").unwrap();
    assert_eq!((status, version), (200, hyper::Version::HTTP_2), "{body}");
    // No client certificate: refused (the handshake fails, or the first read gets the alert).
    let anonymous = tls_client(&server.ca, None, &[b"http/1.1"]);
    let refused = tls_get(&gw.api, anonymous, false, "/v1/messages");
    assert!(
        refused.is_err(),
        "a client without a certificate was served: {refused:?}"
    );
    // A certificate from another CA (the server's own) is refused too.
    let stranger = pki::Pki {
        ca: server.ca.clone(),
        cert: server.cert.clone(),
        key: server.key.clone(),
    };
    let wrong = tls_client(&server.ca, Some(&stranger), &[b"http/1.1"]);
    assert!(tls_get(&gw.api, wrong, false, "/v1/messages").is_err());
    // Clear text on the TLS port gets no HTTP answer (the write itself may fail: the
    // connection is closed at the first byte that is not TLS).
    let mut plain = TcpStream::connect(&gw.api).unwrap();
    let _ = write!(
        plain,
        "GET /v1/messages HTTP/1.1\r\nHost: api.test\r\nAuthorization: Bearer {KEY}\r\n\r\n"
    );
    let got = read_until_closed(&mut plain, Duration::from_secs(10)).unwrap();
    assert!(
        !got.starts_with(b"HTTP/"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn route_costs_and_health_are_for_operator_keys_only() {
    let _serial = serial();
    let (_dir, _sim, gw) = start("http-explain", "");
    let explain = "/v1/routes/explain?to=%2B447911123456";
    let mut tenant = Client::new(&gw.api).with_bearer(KEY);
    let r = tenant.get(explain).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    let candidates = v["candidates"].as_array().unwrap();
    let order: Vec<&str> = candidates
        .iter()
        .map(|c| c["carrier"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["alpha", "bravo"], "{v}");
    assert_eq!(candidates[0]["price"], "0.0150", "{v}");
    for c in candidates {
        for hidden in [
            "rate",
            "rate_currency",
            "cost",
            "success_rate",
            "throttle_rate",
            "latency_ms",
            "samples",
            "health_score",
            "breaker",
            "score",
            "excluded",
        ] {
            assert!(c.get(hidden).is_none(), "tenant sees {hidden}: {c}");
        }
    }
    for hidden in ["reason", "health_weight"] {
        assert!(v.get(hidden).is_none(), "tenant sees {hidden}: {v}");
    }
    // The wholesale costs appear nowhere in the tenant's answer.
    assert!(
        !r.text().contains("0.0100") && !r.text().contains("0.0200"),
        "{}",
        r.text()
    );
    // Another tenant's plan is not the tenant's to see.
    let r = tenant.get(&format!("{explain}&tenant=q")).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());

    let mut operator = Client::new(&gw.api).with_bearer(OPERATOR_KEY);
    let r = operator.get(&format!("{explain}&tenant=t")).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json().unwrap();
    let first = &v["candidates"][0];
    assert_eq!(first["cost"], "0.0100", "{v}");
    assert_eq!(first["price"], "0.0150", "{v}");
    for shown in ["rate", "success_rate", "breaker", "score"] {
        assert!(first.get(shown).is_some(), "operator lacks {shown}: {v}");
    }
    assert!(v["reason"].is_string(), "{v}");
    // The operator names the tenant; an operator key is no tenant elsewhere.
    let r = operator.get(explain).unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(r.json().unwrap()["code"], "tenant_required");
    let r = operator.get("/v1/messages").unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json().unwrap()["code"], "operator_key");
}

/// Messages of the client's tenant (one list page: the tests store few).
fn stored(client: &mut Client) -> usize {
    let r = client.get("/v1/messages?limit=1000").unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    r.json().unwrap()["data"].as_array().map_or(0, Vec::len)
}

fn recipients(n: usize, valid: impl Fn(usize) -> bool) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let to = if valid(i) {
                format!("+447911{i:06}")
            } else {
                format!("+44{i}")
            };
            json!({"to": to, "variables": {"name": "Ada"}})
        })
        .collect()
}

/// POSTs a batch; asserts a problem document with `status` and `code`; returns its detail and
/// how long the answer took.
fn refused(client: &mut Client, batch: &Value, status: u16, code: &str) -> (String, Duration) {
    let started = Instant::now();
    let r = client.post_json("/v1/messages/batch", batch).unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{}",
        r.text()
    );
    let v = r.json().unwrap();
    assert_eq!(v["code"], code, "{v}");
    (v["detail"].as_str().unwrap_or_default().to_owned(), took)
}

#[test]
fn oversized_batches_are_refused_before_any_work() {
    let _serial = serial();
    let (_dir, _sim, gw) = start("http-batch", "");
    let mut client = Client::new(&gw.api).with_bearer(KEY);

    let too_many =
        json!({"from": "Acme", "body": "Hi {{name}}", "recipients": recipients(10_001, |_| true)});
    let (detail, took) = refused(&mut client, &too_many, 422, "invalid_recipients");
    assert!(detail.contains("10001"), "{detail}");

    let huge_template = json!({"from": "Acme", "body": format!("{{{{name}}}} {}", "x".repeat(9000)),
        "recipients": recipients(100, |_| true)});
    refused(&mut client, &huge_template, 422, "template_too_long");

    // Under the size cap, but its text alone needs more than 10 segments: no rendering fits.
    let long_text = json!({"from": "Acme", "body": format!("{{{{name}}}} {}", "x".repeat(2000)),
        "recipients": recipients(10_000, |_| true)});
    let (_, long_took) = refused(&mut client, &long_text, 422, "body_too_long");
    // The same for a template without placeholders (counted once, not per recipient).
    let constant = json!({"from": "Acme", "body": "y".repeat(2000), "recipients": recipients(10_000, |_| true)});
    refused(&mut client, &constant, 422, "body_too_long");

    assert_eq!(stored(&mut client), 0, "nothing is stored");
    println!(
        "oversized batches: 10,001 recipients refused in {took:.1?}, a 10,000-recipient batch \
         with a too-long template in {long_took:.1?}"
    );
}

#[test]
fn a_tenant_over_quota_is_refused_before_its_recipients_are_checked() {
    let _serial = serial();
    let (_dir, _sim, gw) = start("http-quota", "");
    let mut client = Client::new(&gw.api).with_bearer(QUOTA_KEY);
    let batch = |recipients: Vec<Value>| json!({"from": "Acme", "body": "Hi {{name}}", "recipients": recipients});

    // Quota 10: a batch needs room for every recipient; the 4 refused give theirs back.
    let r = client
        .post_json(
            "/v1/messages/batch",
            &batch(recipients(10, |i| i % 5 != 0 && i % 5 != 1)),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(
        (
            v["accepted"].as_u64(),
            v["rejected"].as_array().map(Vec::len)
        ),
        (Some(6), Some(4)),
        "{v}"
    );
    let r = client
        .post_json("/v1/messages/batch", &batch(recipients(4, |_| true)))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(stored(&mut client), 10);

    // The quota is used up: a 10,000-recipient batch is refused before any recipient is
    // looked at (all of them are invalid: checking them would answer 422).
    let started = Instant::now();
    let r = client
        .post_json("/v1/messages/batch", &batch(recipients(10_000, |_| false)))
        .unwrap();
    let took = started.elapsed();
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert_eq!(r.json().unwrap()["code"], "quota_exceeded");
    assert_eq!(stored(&mut client), 10);
    println!("over quota: a 10,000-recipient batch refused in {took:.1?}");
}

#[test]
fn operator_endpoints_move_to_their_own_listener() {
    let _serial = serial();
    let dir = TempDir::new("http-ops").unwrap();
    let sim = Sim::start(&[], None).unwrap();
    let path = config(&sim, "ops_listen = \"127.0.0.1:0\"")
        .write(&dir.path)
        .unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config_arg = path.display().to_string();
    let process = Process::start(&exe, &["serve", "--config", &config_arg], 2).unwrap();
    let api = process.address("listening").unwrap();
    let ops = process.address("operator").unwrap();
    assert_ne!(api, ops);

    let mut ops_client = Client::new(&ops);
    wait_for(
        "ready on the operator listener",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || Ok((ops_client.get("/readyz")?.status == 200).then_some(())),
    )
    .unwrap();
    let metrics = ops_client.get("/metrics").unwrap();
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("switchyard_"), "{}", metrics.text());

    let mut public = Client::new(&api);
    for path in ["/metrics", "/readyz"] {
        let r = public.get(path).unwrap();
        assert_eq!(r.status, 404, "{path} on the public listener: {}", r.text());
    }
    assert_eq!(public.get("/healthz").unwrap().status, 200);
    // HTTP/2 by prior knowledge on the plain listener.
    let (status, version, body) = plain_get(&api, true, "/v1/messages").unwrap();
    assert_eq!((status, version), (200, hyper::Version::HTTP_2), "{body}");
    let (status, version, _) = plain_get(&api, false, "/v1/messages").unwrap();
    assert_eq!((status, version), (200, hyper::Version::HTTP_11));
}
