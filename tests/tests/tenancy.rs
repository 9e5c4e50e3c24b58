//! Tenant-facing limits end to end: `switchyard serve` and `smsc-sim` as real
//! processes over 127.0.0.1.
//!
//! - [`idempotency_key_yields_one_message`]: 50 concurrent identical keyed requests → one
//!   message (list API and simulator), 50 identical answers; same key, other body → 409.
//! - [`batch_of_ten_thousand_with_37_invalid_numbers`]: 9,963 accepted in one request, 37
//!   reported with index and reason, all 9,963 at the simulator, batch progress `completed`.
//! - [`tenant_over_its_rate_does_not_slow_another`]: tenant A over `max_tps` gets 429 with
//!   Retry-After while tenant B's requests all pass.
//! - [`quotas_scopes_and_country_rules`]: daily quota → 429 (also after a restart: it is
//!   counted from the store), read-only key cannot send (403), blocked country (403).
//! - [`expired_before_sent_is_never_submitted`]: a message whose validity ends while the
//!   carrier is down becomes `expired` and never reaches the simulator, both when the bind
//!   comes back and when the gateway restarts after the expiry.
//!
//! - [`a_batch_beyond_the_queues_waits_in_the_store_and_is_delivered_once`]: 2,000 recipients
//!   over a queue of 8 while the carrier is down: the rest waits in the store (backlog gauge),
//!   then each message reaches the simulator once, another tenant's batch not held behind it.
//!
//! Every wait is bounded; the tests share a lock (2-core machine).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::{Client, Response};

const KEY_A: &str = "sk_e2e_tenancy_a_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_A_READ: &str = "sk_e2e_tenancy_a_read_only_rrrrrrrrrrrrrrrrrrrrrrr";
const KEY_B: &str = "sk_e2e_tenancy_b_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A config with tenant "a" (keys A: all scopes, A_READ: read only; `a_extra` lines) and
/// tenant "b" (`b_extra` lines), one carrier on `port`, and `more` TOML at the end.
fn config(port: u16, a_extra: &str, b_extra: &str, more: &str) -> GatewayConfig {
    let tenants = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}, {{ hash = {:?}, scopes = [\"read\"] }}]\n\
         preference = \"cheapest\"\n{a_extra}\n\n\
         [[tenants]]\nname = \"b\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n{b_extra}\n\n{more}\n",
        hash_key(KEY_A).unwrap(),
        hash_key(KEY_A_READ).unwrap(),
        hash_key(KEY_B).unwrap(),
    );
    GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", port, "0.0100", 2, 64)],
        extra: tenants,
        ..GatewayConfig::default()
    }
}

fn number(i: usize) -> String {
    format!("+447911{i:06}")
}

fn sms(i: usize) -> Value {
    json!({"to": number(i), "from": "Acme", "body": format!("hello {i}")})
}

/// Messages of the client's tenant in `status` (all when `None`), through the list pages.
fn count(client: &mut Client, status: Option<&str>) -> usize {
    let mut total = 0;
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/v1/messages?limit=1000".to_owned();
        if let Some(s) = status {
            path.push_str(&format!("&status={s}"));
        }
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = client.get(&path).unwrap();
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        let page = r.json().unwrap();
        total += page["data"].as_array().map_or(0, Vec::len);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return total,
        }
    }
}

fn post_keyed(client: &mut Client, path: &str, key: &str, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap();
    client
        .request(
            "POST",
            path,
            &[
                ("Content-Type", "application/json"),
                ("Idempotency-Key", key),
            ],
            Some(&bytes),
        )
        .unwrap()
}

fn problem_code(r: &Response) -> String {
    r.json()
        .map(|v| v["code"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn idempotency_key_yields_one_message() {
    let _serial = serial();
    let dir = TempDir::new("idempotency").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let cfg = config(sim.port(), "", "", "").write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();

    const N: usize = 50;
    let body = sms(1);
    let barrier = std::sync::Barrier::new(N);
    let answers: Vec<Response> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    let mut c = Client::new(&gw.api).with_bearer(KEY_A);
                    barrier.wait();
                    post_keyed(&mut c, "/v1/messages", "order-42", &body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ids: HashSet<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.text());
            r.json().unwrap()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one id for every answer: {ids:?}");
    let replays = answers
        .iter()
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replays, N - 1);
    // Byte-identical answers.
    assert!(answers.iter().all(|r| r.body == answers[0].body));

    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    assert_eq!(count(&mut a, None), 1);
    wait_for(
        "the message at the simulator",
        Duration::from_secs(10),
        Duration::from_millis(20),
        || Ok((sim.counter("submits_ok")? >= 1).then_some(())),
    )
    .unwrap();
    // Give a stray duplicate time to show up, then check there is none.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sim.counter("submits").unwrap(), 1);

    // Same key, different body: 409, nothing stored.
    let r = post_keyed(&mut a, "/v1/messages", "order-42", &sms(2));
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(problem_code(&r), "idempotency_key_reused");
    // The same key belongs to tenant A only: tenant B may use it for its own request.
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    let r = post_keyed(&mut b, "/v1/messages", "order-42", &sms(2));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(count(&mut a, None), 1);
    assert_eq!(count(&mut b, None), 1);
    println!("idempotency: {N} concurrent identical requests → 1 message, {replays} replays");
}

#[test]
fn batch_of_ten_thousand_with_37_invalid_numbers() {
    let _serial = serial();
    let dir = TempDir::new("batch").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], Some(&dir.join("record.jsonl"))).unwrap();
    let cfg = config(sim.port(), "", "", "").write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();

    const N: usize = 10_000;
    const BAD: usize = 37;
    // Every 270th recipient (37 of them) has a number that cannot exist.
    let bad: Vec<usize> = (0..BAD).map(|k| k * 270 + 5).collect();
    let recipients: Vec<Value> = (0..N)
        .map(|i| {
            let to = if bad.contains(&i) {
                format!("+44123{i}")
            } else {
                number(i)
            };
            json!({"to": to, "variables": {"first_name": format!("N{i}")}})
        })
        .collect();
    let body = json!({"from": "Acme", "body": "Hi {{first_name}}, your code is ready", "recipients": recipients});
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let t = Instant::now();
    let r = post_keyed(&mut a, "/v1/messages/batch", "batch-1", &body);
    let took = t.elapsed();
    assert_eq!(r.status, 202, "{}", r.text());
    let v = r.json().unwrap();
    assert_eq!(v["recipients"], N);
    assert_eq!(v["accepted"], N - BAD);
    let rejected = v["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), BAD);
    for (r, i) in rejected.iter().zip(&bad) {
        assert_eq!(r["index"], *i);
        assert_eq!(r["to"], format!("+44123{i}"));
        assert_eq!(r["code"], "invalid_number");
        assert!(!r["reason"].as_str().unwrap().is_empty());
    }
    assert_eq!(v["messages"].as_array().unwrap().len(), N - BAD);
    let batch_id = v["id"].as_str().unwrap().to_owned();

    // A replay gives the same batch, the very same answer.
    let again = post_keyed(&mut a, "/v1/messages/batch", "batch-1", &body);
    assert_eq!(again.status, 202);
    assert_eq!(again.json().unwrap()["id"], batch_id.as_str());
    assert_eq!(again.text(), r.text());

    wait_for(
        "every accepted message at the simulator",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || Ok((sim.counter("submits_ok")? >= (N - BAD) as u64).then_some(())),
    )
    .unwrap();
    let dests: HashSet<String> = sim
        .recorded()
        .unwrap()
        .iter()
        .map(|s| s["dest"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(dests.len(), N - BAD);
    for i in &bad {
        assert!(!dests.contains(&format!("44123{i}")));
    }
    let progress = wait_for(
        "the batch to complete",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || {
            let r = a.get(&format!("/v1/batches/{batch_id}"))?;
            let v = r.json()?;
            Ok((v["status"] == "completed").then_some(v))
        },
    )
    .unwrap();
    assert_eq!(progress["counts"]["delivered"], N - BAD);
    assert_eq!(progress["rejected"], BAD);
    // Another tenant does not see it.
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    assert_eq!(
        b.get(&format!("/v1/batches/{batch_id}")).unwrap().status,
        404
    );
    println!(
        "batch: {} accepted, {BAD} rejected, answered in {took:?}",
        N - BAD
    );
}

#[test]
fn tenant_over_its_rate_does_not_slow_another() {
    let _serial = serial();
    let dir = TempDir::new("rate").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let cfg = config(sim.port(), "max_tps = 20", "max_tps = 1000", "")
        .write(&dir.path)
        .unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();

    let run = Duration::from_secs(2);
    let start = Instant::now();
    let (a_results, b_results) = std::thread::scope(|s| {
        let a_threads: Vec<_> = (0..4)
            .map(|t| {
                let api = gw.api.clone();
                s.spawn(move || {
                    let mut c = Client::new(&api).with_bearer(KEY_A);
                    let mut out = Vec::new();
                    let mut i = t * 4_000;
                    while start.elapsed() < run && out.len() < 4_000 {
                        out.push(c.post_json("/v1/messages", &sms(i)).unwrap());
                        i += 1;
                    }
                    out
                })
            })
            .collect();
        // Tenant B: 100 messages at 100/s.
        let b = s.spawn(|| {
            let mut c = Client::new(&gw.api).with_bearer(KEY_B);
            let mut out = Vec::new();
            for i in 0..100 {
                let at = start + Duration::from_millis(10 * i as u64);
                if let Some(d) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
                let t = Instant::now();
                let r = c.post_json("/v1/messages", &sms(16_000 + i)).unwrap();
                out.push((r, t.elapsed()));
            }
            out
        });
        let a: Vec<Response> = a_threads
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        (a, b.join().unwrap())
    });
    let elapsed = start.elapsed().as_secs_f64();
    let a_ok = a_results.iter().filter(|r| r.status == 202).count();
    let a_429: Vec<&Response> = a_results.iter().filter(|r| r.status == 429).collect();
    let other = a_results
        .iter()
        .find(|r| r.status != 202 && r.status != 429);
    assert!(
        other.is_none(),
        "only 202 and 429 for A: {:?}",
        other.map(|r| (r.status, r.text()))
    );
    assert!(!a_429.is_empty());
    for r in &a_429 {
        assert_eq!(problem_code(r), "rate_limited");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=2).contains(&retry), "Retry-After {retry}");
    }
    // Burst of 20 plus 20 per second.
    let allowed = 20.0 + 20.0 * elapsed;
    assert!(
        a_ok as f64 <= allowed + 1.0,
        "A got {a_ok} through in {elapsed:.2} s"
    );
    assert!(a_ok >= 20, "A got only {a_ok}");
    let b_ok = b_results.iter().filter(|(r, _)| r.status == 202).count();
    assert_eq!(
        b_ok,
        100,
        "B: {:?}",
        b_results
            .iter()
            .find(|(r, _)| r.status != 202)
            .map(|(r, _)| r.text())
    );
    // B's first request also opens its connection and warms the store up while A's flood
    // starts; the rest show what A's flood costs B.
    let mut b_lat: Vec<Duration> = b_results.iter().skip(1).map(|(_, d)| *d).collect();
    b_lat.sort();
    let (p50, max) = (b_lat[b_lat.len() / 2], b_lat[b_lat.len() - 1]);
    // Loose (debug build, shared machine): B is not queued behind A's refusals.
    assert!(p50 < Duration::from_millis(250), "B's p50 {p50:?}");
    println!(
        "rate: A {} requests, {a_ok} accepted, {} × 429 in {elapsed:.2} s; B 100/100 accepted, \
         p50 {p50:?}, max {max:?} (first request {:?})",
        a_results.len(),
        a_429.len(),
        b_results[0].1
    );
}

#[test]
fn quotas_scopes_and_country_rules() {
    let _serial = serial();
    let dir = TempDir::new("quota").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let cfg = config(
        sim.port(),
        "daily_quota = 5",
        "blocked_countries = [\"GB\"]",
        "",
    )
    .write(&dir.path)
    .unwrap();
    let mut gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    for i in 0..5 {
        let r = a.post_json("/v1/messages", &sms(i)).unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let over = |a: &mut Client| {
        let r = a.post_json("/v1/messages", &sms(9)).unwrap();
        assert_eq!(r.status, 429, "{}", r.text());
        assert_eq!(problem_code(&r), "quota_exceeded");
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=86_400).contains(&retry));
    };
    over(&mut a);
    let batch = json!({"from": "Acme", "body": "x", "recipients": [{"to": number(1)}]});
    let r = a.post_json("/v1/messages/batch", &batch).unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(count(&mut a, None), 5);

    // Counted from the store: a restart does not reset it.
    gw.process.terminate().unwrap();
    gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    over(&mut a);

    // A read-only key reads but cannot send or cancel.
    let mut ro = Client::new(&gw.api).with_bearer(KEY_A_READ);
    let r = ro.post_json("/v1/messages", &sms(1)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(problem_code(&r), "insufficient_scope");
    let r = ro.post_json("/v1/messages/batch", &batch).unwrap();
    assert_eq!(r.status, 403);
    assert_eq!(count(&mut ro, None), 5);

    // Tenant B blocks GB destinations: 403 with a stable code; in a batch, a rejected line.
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    let r = b.post_json("/v1/messages", &sms(1)).unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(problem_code(&r), "country_blocked");
    let r = b.post_json("/v1/messages/batch", &batch).unwrap();
    assert_eq!(r.status, 422, "{}", r.text());
    assert_eq!(problem_code(&r), "no_valid_recipients");
    assert_eq!(count(&mut b, None), 0);
}

#[test]
fn expired_before_sent_is_never_submitted() {
    let _serial = serial();
    let dir = TempDir::new("expired").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10", "--reject-binds"], None).unwrap();
    // The carrier is down for a while: its breaker must not refuse the sends meanwhile.
    let breaker = "[routing.breaker]\nconsecutive_failures = 10000\nmin_requests = 1000000\n";
    let cfg = config(sim.port(), "", "", breaker)
        .write(&dir.path)
        .unwrap();
    let mut gw = Gateway::start(&cfg).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let status = |c: &mut Client, id: &str| -> String {
        let r = c.get(&format!("/v1/messages/{id}")).unwrap();
        r.json().unwrap()["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let send = |c: &mut Client, i: usize, validity: Option<u64>| -> String {
        let mut body = sms(i);
        if let Some(v) = validity {
            body["validity_period"] = json!(v);
        }
        let r = c.post_json("/v1/messages", &body).unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
        r.json().unwrap()["id"].as_str().unwrap().to_owned()
    };

    // 1. Expires in the queue while the bind is down; the bind comes back and drops it.
    let first = send(&mut a, 1, Some(1));
    std::thread::sleep(Duration::from_millis(1500));
    sim.behave(r#"{"reject_binds": false, "dlr_delay": 10}"#)
        .unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    wait_for(
        "the first message to expire",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok((status(&mut a, &first) == "expired").then_some(())),
    )
    .unwrap();

    // 2. Expires while the gateway is stopped; recovery marks it expired.
    sim.behave(r#"{"reject_binds": true}"#).unwrap();
    gw.process.terminate().unwrap();
    gw = Gateway::start(&cfg).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let second = send(&mut a, 2, Some(1));
    gw.process.terminate().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    sim.behave(r#"{"reject_binds": false, "dlr_delay": 10}"#)
        .unwrap();
    gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    wait_for(
        "the second message to expire",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok((status(&mut a, &second) == "expired").then_some(())),
    )
    .unwrap();

    // A message with time left goes through, and is the only one the simulator ever saw.
    let third = send(&mut a, 3, Some(60));
    wait_for(
        "the third message delivered",
        Duration::from_secs(10),
        Duration::from_millis(50),
        || Ok((status(&mut a, &third) == "delivered").then_some(())),
    )
    .unwrap();
    assert_eq!(sim.counter("submits").unwrap(), 1);
    assert_eq!(count(&mut a, Some("expired")), 2);
}

/// With the carrier down and its queue at the tenant's share, a single SMS is refused at the
/// door (503 `queue_full`, Retry-After, counted as shed) while another tenant's still goes in,
/// and a request that is not an SMS is not shed: it reaches the pipeline, which decides.
#[test]
fn a_full_queue_sheds_single_sms_at_the_door() {
    let _serial = serial();
    let dir = TempDir::new("shed").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10", "--reject-binds"], None).unwrap();
    let more = "[queues]\ncapacity = 8\n\n\
                [routing.breaker]\nconsecutive_failures = 10000\nmin_requests = 1000000\n";
    let cfg = config(sim.port(), "", "", more).write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    // Tenant a may fill three quarters of the queue: 6 messages.
    for i in 0..6 {
        let r = a.post_json("/v1/messages", &sms(i)).unwrap();
        assert_eq!(r.status, 202, "{}", r.text());
    }
    let r = a.post_json("/v1/messages", &sms(6)).unwrap();
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(problem_code(&r), "queue_full");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Even a request the pipeline would refuse for another reason is shed first: it is not
    // read at all.
    let r = a
        .post_json("/v1/messages", &json!({"to": "not a number", "body": "x"}))
        .unwrap();
    assert_eq!(problem_code(&r), "queue_full", "{}", r.text());
    // A call is not an SMS: the pipeline reads it (and refuses it for its own reason here).
    let call = json!({"to": number(7), "from": "+447700900001", "body": "x", "channel": "voice"});
    let r = a.post_json("/v1/messages", &call).unwrap();
    assert_eq!(problem_code(&r), "voice_unavailable", "{}", r.text());
    // The other tenant still has its room.
    let r = b.post_json("/v1/messages", &sms(8)).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let metrics = Client::new(&gw.api).get("/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "switchyard_api_shed_total"),
        2.0,
        "{metrics}"
    );
    assert_eq!(count(&mut a, None), 6);
}

/// The value of an unlabelled gauge or counter in a `/metrics` text.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

/// A batch far beyond the carrier queue waits in the store, not in memory (the backlog gauge
/// counts it while the carrier is down, and it is not read back as deferred jobs), and
/// once the carrier is back every message reaches it exactly once; another tenant's small
/// batch accepted after it is not held behind it.
#[test]
fn a_batch_beyond_the_queues_waits_in_the_store_and_is_delivered_once() {
    let _serial = serial();
    let dir = TempDir::new("backlog").unwrap();
    let sim = Sim::start(
        &["--dlr-delay-ms", "10", "--reject-binds"],
        Some(&dir.join("record.jsonl")),
    )
    .unwrap();
    let more = "[queues]\ncapacity = 8\n\n\
                [routing.breaker]\nconsecutive_failures = 10000\nmin_requests = 1000000\n";
    let cfg = config(sim.port(), "", "", more).write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    const N: usize = 2_000;
    let batch = |range: std::ops::Range<usize>| {
        let recipients: Vec<Value> = range.map(|i| json!({"to": number(i)})).collect();
        json!({"from": "Acme", "body": "backlog", "recipients": recipients})
    };
    let r = post_keyed(&mut a, "/v1/messages/batch", "big", &batch(0..N));
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.json().unwrap()["accepted"], N);
    let r = post_keyed(
        &mut b,
        "/v1/messages/batch",
        "small",
        &batch(100_000..100_005),
    );
    assert_eq!(r.status, 202, "{}", r.text());

    let metrics = Client::new(&gw.api).get("/metrics").unwrap().text();
    let in_store = metric(&metrics, "switchyard_dispatch_backlog_messages");
    let deferred = metric(&metrics, "switchyard_dispatch_deferred_messages");
    assert!(in_store >= 1_000.0, "backlog {in_store}: {metrics}");
    assert!(deferred <= 10.0, "deferred {deferred}");

    sim.behave("{}").unwrap();
    wait_for(
        "every message at the simulator",
        Duration::from_secs(120),
        Duration::from_millis(100),
        || Ok((sim.counter("submits_ok")? >= (N + 5) as u64).then_some(())),
    )
    .unwrap_or_else(|e| {
        let metrics = Client::new(&gw.api).get("/metrics").unwrap().text();
        let dispatch: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                l.starts_with("switchyard_dispatch") || l.starts_with("switchyard_smpp_binds")
            })
            .collect();
        panic!("{e}: simulator {:?}; {dispatch:?}", sim.stats());
    });
    wait_for(
        "every message delivered",
        Duration::from_secs(60),
        Duration::from_millis(200),
        || Ok((count(&mut a, Some("delivered")) == N).then_some(())),
    )
    .unwrap();
    assert_eq!(count(&mut b, Some("delivered")), 5);
    let order: Vec<String> = sim
        .recorded()
        .unwrap()
        .iter()
        .map(|s| s["dest"].as_str().unwrap_or_default().to_owned())
        .collect();
    let distinct: HashSet<&String> = order.iter().collect();
    assert_eq!((order.len(), distinct.len()), (N + 5, N + 5), "each once");
    let last_of_b = order
        .iter()
        .rposition(|d| d.starts_with("447911100"))
        .unwrap();
    assert!(last_of_b < N / 2, "b's last message went out {last_of_b}th");
    let metrics = Client::new(&gw.api).get("/metrics").unwrap().text();
    assert_eq!(
        metric(&metrics, "switchyard_dispatch_backlog_messages"),
        0.0
    );
}
