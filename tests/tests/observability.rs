//! Logs, request ids and metrics of a running gateway.
//!
//! [`request_ids_are_echoed_or_made_and_json_log_lines_carry_them`]: with `[log] format =
//! "json"`, every line the gateway writes on stderr is a JSON object; a caller's sane
//! `X-Request-Id` comes back on the answer and is on the log lines written while its request
//! ran; a missing or unacceptable one is replaced by a new id; the number and the body of a
//! message sent never appear in the log.
//!
//! [`the_grafana_dashboard_queries_only_metrics_the_gateway_exports`]: a gateway with the
//! sandbox SMSC, a webhook endpoint, the SIP proxy (one call refused by a trunk) and the SMPP
//! server (one tenant's bind) carries a little traffic; every metric name the queries of
//! `ops/grafana/switchyard.json` use is then in its `/metrics`.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::json;
use switchyard_tests::esme::TestEsme;
use switchyard_tests::gateway::{hash_key, wait_for, TempDir, ALLOW_LOOPBACK};
use switchyard_tests::sink::Sink;
use switchyard_tests::sip::{invite, sim, sim_addr, uac, until_invite_final};
use switchyard_tests::{binary, http, workspace_root, Process};

/// Longest wait for anything.
const WAIT: Duration = Duration::from_secs(30);
/// Tenant "acme"'s key.
const ACME: &str = "sk_obs_acme_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// The destination and body of the message sent; neither may be logged.
const NUMBER: &str = "+447911123456";
const BODY: &str = "Secret body 8f3c1e";

/// The common part of both configurations: the store in `dir`, tenant acme with `tenant`
/// appended, the sandbox SMS carrier, then `extra`.
fn config(dir: &TempDir, tenant: &str, extra: &str) -> anyhow::Result<PathBuf> {
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n{ALLOW_LOOPBACK}\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n{tenant}\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
         smpp = {{ sandbox = true, system_id = \"acme\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n\n{extra}",
        dir.join("data").display().to_string(),
        hash_key(ACME)?,
    )?;
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, toml)?;
    Ok(path)
}

/// A gateway whose stderr goes to `log`; killed (by its own PID) when dropped.
struct Logged {
    child: Child,
    api: String,
}

impl Drop for Logged {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `switchyard serve` on `config` with stderr into `log`; waits for its address.
fn start_logged(config: &Path, log: &Path) -> anyhow::Result<Logged> {
    let exe = binary("switchyard-gateway", "switchyard")?;
    let mut child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(config)
        // The gateway's debug lines too (each request's "request answered"), nobody else's.
        .env("RUST_LOG", "info,switchyard_gateway=debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .spawn()?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut logged = Logged {
        child,
        api: String::new(),
    };
    let deadline = Instant::now() + WAIT;
    while logged.api.is_empty() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .context("the gateway did not announce its address")?;
        if let Some(addr) = line.strip_prefix("switchyard listening on ") {
            logged.api = addr.trim().to_owned();
        }
    }
    Ok(logged)
}

/// A provider webhook for a carrier that does not exist (a 404 the handler logs a warning
/// for), with `X-Request-Id: id`.
fn unknown_provider_webhook(client: &mut http::Client, id: &str) -> anyhow::Result<http::Response> {
    client.request(
        "POST",
        "/v1/providers/nosuch/webhook",
        &[("X-Request-Id", id), ("Content-Type", "application/json")],
        Some(b"{}"),
    )
}

#[test]
fn request_ids_are_echoed_or_made_and_json_log_lines_carry_them() -> anyhow::Result<()> {
    let dir = TempDir::new("obs-logs")?;
    let config = config(&dir, "", "[log]\nformat = \"json\"\n")?;
    let log = dir.join("stderr.log");
    let gateway = start_logged(&config, &log)?;
    let mut client = http::Client::new(&gateway.api);

    // A sane id comes back as sent, on any answer (here a provider webhook refused: a
    // warning logged by the handler).
    let refused = unknown_provider_webhook(&mut client, "obs-req-42")?;
    assert_eq!(refused.status, 404);
    assert_eq!(refused.header("x-request-id"), Some("obs-req-42"));
    // None, or one that is not acceptable: a new one, 32 hex digits, different each time.
    let mut made = Vec::new();
    for given in [
        None,
        Some("has spaces and \"quotes\""),
        Some(&*"x".repeat(129)),
    ] {
        let headers: Vec<(&str, &str)> = given.map(|g| ("X-Request-Id", g)).into_iter().collect();
        let r = client.request("GET", "/healthz", &headers, None)?;
        let id = r
            .header("x-request-id")
            .context("no x-request-id")?
            .to_owned();
        assert_eq!(id.len(), 32, "{id}");
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
        made.push(id);
    }
    made.dedup();
    assert_eq!(made.len(), 3, "{made:?}");

    // A message: its number and body must stay out of the log.
    let mut acme = http::Client::new(&gateway.api).with_bearer(ACME);
    let sent = acme.post_json(
        "/v1/messages",
        &json!({"to": NUMBER, "from": "Acme", "body": BODY}),
    )?;
    assert_eq!(sent.status, 202, "{}", sent.text());
    let id = sent.json()?["id"].as_str().context("no id")?.to_owned();
    wait_for(
        "the message delivered",
        WAIT,
        Duration::from_millis(50),
        || {
            let r = acme.get(&format!("/v1/messages/{id}"))?;
            Ok((r.json()?["status"] == "delivered").then_some(()))
        },
    )?;

    // The lines are written by now: the answers above came after them.
    let text = std::fs::read_to_string(&log)?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect::<anyhow::Result<_>>()?;
    assert!(lines.len() >= 5, "{text}");
    for line in &lines {
        assert!(
            line["timestamp"].is_string() && line["level"].is_string(),
            "{line}"
        );
    }
    let in_request = |id: &str| {
        lines
            .iter()
            .filter(|l| {
                l["spans"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["request_id"] == id))
            })
            .collect::<Vec<_>>()
    };
    let traced = in_request("obs-req-42");
    assert!(
        traced.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.contains("webhook refused"))),
        "the handler's warning lacks the request id: {text}"
    );
    assert!(
        traced.iter().any(|l| l["message"] == "request answered"
            && l["status"] == 404
            && l["spans"][0]["route"] == "/v1/providers/{carrier}/webhook"),
        "{text}"
    );
    assert!(!in_request(&made[0]).is_empty(), "{text}");
    for secret in [BODY, NUMBER, &NUMBER[1..]] {
        assert!(!text.contains(secret), "{secret:?} is in the log:\n{text}");
    }
    Ok(())
}

/// Every metric name in the expressions of the Grafana dashboard.
/// Text lines written to a file (not a terminal) carry no colour codes, and still the request's
/// span with its id.
#[test]
fn text_log_lines_to_a_file_are_plain() -> anyhow::Result<()> {
    let dir = TempDir::new("obs-plain")?;
    let config = config(&dir, "", "")?;
    let log = dir.join("stderr.log");
    let gateway = start_logged(&config, &log)?;
    let mut client = http::Client::new(&gateway.api);
    let refused = unknown_provider_webhook(&mut client, "obs-plain-7")?;
    assert_eq!(refused.status, 404);
    // The line is written by now: the answer came after it.
    let text = std::fs::read_to_string(&log)?;
    assert!(
        text.lines()
            .any(|l| l.contains("request_id=obs-plain-7") && l.contains("request answered")),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "colour codes in a log file:\n{text}"
    );
    Ok(())
}

fn dashboard_metrics() -> anyhow::Result<Vec<String>> {
    let path = workspace_root().join("ops/grafana/switchyard.json");
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    let mut names = Vec::new();
    for panel in dashboard["panels"].as_array().context("no panels")? {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().context("a target without expr")?;
            let mut rest = expr;
            while let Some(at) = rest.find("switchyard_") {
                let name: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[at + name.len()..];
                names.push(name);
            }
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

#[test]
fn the_grafana_dashboard_queries_only_metrics_the_gateway_exports() -> anyhow::Result<()> {
    let queried = dashboard_metrics()?;
    assert!(queried.len() >= 20, "{queried:?}");

    let dir = TempDir::new("obs-metrics")?;
    let sink = Sink::start()?;
    let trunk = sim(&["--code", "486"]);
    let deck = dir.join("trunk.csv");
    std::fs::write(
        &deck,
        "prefix,rate,currency,effective_date,connection_fee,billing,country,description\n\
         44,0.0100,EUR,2025-01-01,0.0000,60/60,United Kingdom,All\n",
    )?;
    let tenant = format!(
        "webhook_url = {:?}\nwebhook_secrets = [\"whsec_observability_test\"]\n\
         sip_allow = [\"127.0.0.1\"]\n\
         smpp_users = [{{ system_id = \"acme01\", password = \"secret1\" }}]\n",
        sink.url
    );
    let extra = format!(
        "[sip]\nlisten = \"127.0.0.1:0\"\nno_answer_timeout_ms = 2000\n\n\
         [smpp_server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[carriers]]\nname = \"Trunk\"\nchannels = [\"voice\"]\n\n[carriers.sip]\n\
         host = \"127.0.0.1\"\nport = {}\n\n\
         [[decks]]\ncarrier = \"Trunk\"\nchannel = \"voice\"\npath = {:?}\n",
        sim_addr(&trunk).port(),
        deck.display().to_string(),
    );
    let config = config(&dir, &tenant, &extra)?;
    let exe = binary("switchyard-gateway", "switchyard")?;
    let config = config.display().to_string();
    let gateway = Process::start(&exe, &["serve", "--config", &config], 3)?;
    let api = gateway.address("listening")?;
    let sip: std::net::SocketAddr = gateway.address("SIP proxy")?.parse()?;
    let smpp = gateway.address("SMPP server")?;

    // A message, delivered, its webhooks sent.
    let mut acme = http::Client::new(&api).with_bearer(ACME);
    let sent = acme.post_json(
        "/v1/messages",
        &json!({"to": NUMBER, "from": "Acme", "body": "metrics"}),
    )?;
    assert_eq!(sent.status, 202, "{}", sent.text());
    wait_for(
        "webhooks delivered",
        WAIT,
        Duration::from_millis(50),
        || Ok((sink.delivered().len() >= 2).then_some(())),
    )?;
    // A call through the SIP proxy, refused by the trunk (a CDR).
    let pbx = uac("127.0.0.1");
    pbx.send_to(&invite(&pbx, sip, "obs-call-1").to_bytes(), sip)?;
    let answers = until_invite_final(&pbx);
    assert!(!answers.is_empty());
    // A tenant's bind on the SMPP server.
    let mut esme = TestEsme::connect(&smpp)?;
    esme.bind_transceiver("acme01", "secret1")?;

    let deadline = Instant::now() + WAIT;
    let mut client = http::Client::new(&api);
    loop {
        let text = client.get("/metrics")?.text();
        let exported: std::collections::BTreeSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let missing: Vec<&String> = queried
            .iter()
            .filter(|m| !exported.contains(m.as_str()))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the dashboard queries metrics /metrics lacks: {missing:?}\n{text}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
