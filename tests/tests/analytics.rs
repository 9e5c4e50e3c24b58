//! Analytics and exports end to end: `switchyard serve` and `smsc-sim` as real processes over
//! 127.0.0.1.
//!
//! - [`analytics_are_per_tenant_grouped_and_filtered`]: messages of two tenants delivered
//!   through the simulator are counted by `GET /v1/analytics/messages` (grouped by carrier and
//!   sender, filtered, with latency percentiles), each tenant seeing only its own; naming or
//!   grouping by a tenant is refused to tenants, and the operator's endpoints are refused to
//!   them too; the operator sees every tenant, grouped by tenant, and the calls' cost and
//!   margin, which tenants do not.
//! - [`exports_stream_every_page`]: 1,250 messages (more than one page of the store) come back
//!   from `GET /v1/messages.csv` and `.ndjson`, chunked, each once, newest first; another
//!   tenant's export holds only its own; the operator's export holds both, with a tenant
//!   column and without bodies.
//!
//! Every wait is bounded; the tests share a lock (2-core machine).

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir, OPERATOR_KEY as KEY_OP,
};
use switchyard_tests::http::Client;

const KEY_A: &str = "sk_e2e_analytics_a_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "sk_e2e_analytics_b_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Tenants "a" and "b" (and the harness's operator key), one carrier "alpha" on `port`.
fn config(port: u16) -> GatewayConfig {
    let extra = format!(
        "[[tenants]]\nname = \"a\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n\n\
         [[tenants]]\nname = \"b\"\napi_keys = [{:?}]\npreference = \"cheapest\"\n",
        hash_key(KEY_A).unwrap(),
        hash_key(KEY_B).unwrap(),
    );
    GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", port, "0.0100", 2, 64)],
        extra,
        ..GatewayConfig::default()
    }
}

fn send(client: &mut Client, to: &str, from: &str) -> String {
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": to, "from": from, "body": "hello analytics"}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    r.json().unwrap()["id"].as_str().unwrap().to_owned()
}

fn get(client: &mut Client, path: &str) -> (u16, Value) {
    let r = client.get(path).unwrap();
    let v = r.json().unwrap_or(Value::Null);
    (r.status, v)
}

fn delivered(client: &mut Client) -> u64 {
    let (status, v) = get(client, "/v1/analytics/messages?bucket=minute");
    assert_eq!(status, 200, "{v}");
    v["total"]["counts"]["delivered"].as_u64().unwrap()
}

#[test]
fn analytics_are_per_tenant_grouped_and_filtered() {
    let _serial = serial();
    let dir = TempDir::new("analytics").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "20"], None).unwrap();
    let cfg = config(sim.port()).write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    let mut op = Client::new(&gw.api).with_bearer(KEY_OP);

    for i in 0..3 {
        send(&mut a, &format!("+44791100000{i}"), "Acme");
    }
    send(&mut a, "+447911000009", "AcmeAlerts");
    send(&mut b, "+447911000010", "Globex");
    wait_for(
        "a's four messages delivered",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok((delivered(&mut a) == 4).then_some(())),
    )
    .unwrap();
    wait_for(
        "b's message delivered",
        Duration::from_secs(20),
        Duration::from_millis(50),
        || Ok((delivered(&mut b) == 1).then_some(())),
    )
    .unwrap();

    // A's own, grouped by sender, in minute buckets.
    let (status, v) = get(
        &mut a,
        "/v1/analytics/messages?bucket=minute&group_by=sender,carrier",
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["bucket"], "minute");
    assert_eq!(v["group_by"], json!(["sender", "carrier"]));
    let total = &v["total"];
    assert_eq!(total["counts"]["accepted"], 4);
    assert_eq!(total["counts"]["sent"], 4);
    assert_eq!(total["counts"]["delivered"], 4);
    assert_eq!(total["counts"]["undeliverable"], 0);
    assert_eq!(total["delivery_rate"], 1.0);
    for latency in [
        "accepted_to_sent",
        "sent_to_delivered",
        "accepted_to_delivered",
    ] {
        let l = &total["latency_ms"][latency];
        assert_eq!(l["count"], 4, "{latency}: {l}");
        assert!(
            l["p50"].as_u64().unwrap() <= l["p99"].as_u64().unwrap(),
            "{l}"
        );
    }
    let mut by_sender: Vec<(String, u64)> = Vec::new();
    for row in v["data"].as_array().unwrap() {
        assert_eq!(row["group"]["carrier"], "alpha");
        let sender = row["group"]["sender"].as_str().unwrap().to_owned();
        let n = row["counts"]["accepted"].as_u64().unwrap();
        match by_sender.iter_mut().find(|(s, _)| *s == sender) {
            Some((_, m)) => *m += n,
            None => by_sender.push((sender, n)),
        }
    }
    by_sender.sort();
    assert_eq!(
        by_sender,
        vec![("Acme".to_owned(), 3), ("AcmeAlerts".to_owned(), 1)]
    );
    assert!(v["total"].get("cost").is_none(), "no cost for tenants");

    // Filters.
    let (_, v) = get(
        &mut a,
        "/v1/analytics/messages?sender=AcmeAlerts&bucket=day",
    );
    assert_eq!(v["total"]["counts"]["accepted"], 1);
    let (_, v) = get(&mut a, "/v1/analytics/messages?carrier=nobody");
    assert_eq!(v["total"]["counts"]["accepted"], 0);
    assert_eq!(v["data"], json!([]));

    // B sees only its own.
    let (_, v) = get(&mut b, "/v1/analytics/messages?group_by=sender");
    assert_eq!(v["total"]["counts"]["accepted"], 1);
    assert_eq!(v["data"][0]["group"]["sender"], "Globex");

    // Tenants may not reach other tenants' numbers.
    for path in [
        "/v1/analytics/messages?tenant=b",
        "/v1/analytics/messages?group_by=tenant",
        "/v1/analytics/messages?bucket=week",
        "/v1/analytics/calls?group_by=country",
    ] {
        let (status, v) = get(&mut a, path);
        assert_eq!(status, 422, "{path}: {v}");
    }
    for path in [
        "/v1/operator/analytics/messages",
        "/v1/operator/analytics/calls",
        "/v1/operator/messages.csv",
    ] {
        let (status, v) = get(&mut a, path);
        assert_eq!(status, 403, "{path}: {v}");
    }

    // The operator: everyone, by tenant; one tenant with ?tenant=.
    let (status, v) = get(
        &mut op,
        "/v1/operator/analytics/messages?group_by=tenant&bucket=hour",
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"]["counts"]["accepted"], 5);
    let mut tenants: Vec<(String, u64)> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["group"]["tenant"].as_str().unwrap().to_owned(),
                r["counts"]["delivered"].as_u64().unwrap(),
            )
        })
        .collect();
    tenants.sort();
    // Both tenants' messages may straddle an hour boundary: sum per tenant.
    tenants.dedup_by(|x, y| {
        if x.0 == y.0 {
            y.1 += x.1;
            true
        } else {
            false
        }
    });
    assert_eq!(tenants, vec![("a".to_owned(), 4), ("b".to_owned(), 1)]);
    let (_, v) = get(&mut op, "/v1/operator/analytics/messages?tenant=b");
    assert_eq!(v["total"]["counts"]["accepted"], 1);

    // Calls: price for tenants, cost and margin for the operator only.
    let (status, v) = get(&mut a, "/v1/analytics/calls?group_by=carrier");
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["total"]["calls"], 0);
    assert!(v["total"]["price"].is_string());
    assert!(v["total"].get("cost").is_none() && v["total"].get("margin").is_none());
    let (_, v) = get(
        &mut op,
        "/v1/operator/analytics/calls?group_by=tenant,carrier",
    );
    assert!(
        v["total"]["cost"].is_string() && v["total"]["margin"].is_string(),
        "{v}"
    );
}

/// The lines of a successful, chunked export.
fn export(client: &mut Client, path: &str) -> Vec<String> {
    let r = client.get(path).unwrap();
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert_eq!(
        r.header("transfer-encoding"),
        Some("chunked"),
        "{path} is streamed"
    );
    assert!(r.header("content-length").is_none());
    r.text().lines().map(str::to_owned).collect()
}

#[test]
fn exports_stream_every_page() {
    let _serial = serial();
    let dir = TempDir::new("exports").unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let cfg = config(sim.port()).write(&dir.path).unwrap();
    let gw = Gateway::start(&cfg).unwrap();
    gw.wait_ready(Duration::from_secs(10)).unwrap();
    let mut a = Client::new(&gw.api).with_bearer(KEY_A);
    let mut b = Client::new(&gw.api).with_bearer(KEY_B);
    let mut op = Client::new(&gw.api).with_bearer(KEY_OP);

    const N: usize = 1_250;
    let recipients: Vec<Value> = (0..N)
        .map(|i| json!({"to": format!("+447911{i:06}")}))
        .collect();
    let r = a
        .post_json(
            "/v1/messages/batch",
            &json!({"from": "Acme", "body": "export me", "recipients": recipients}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    send(&mut b, "+447911123456", "Globex");

    let csv = export(&mut a, "/v1/messages.csv");
    assert_eq!(csv.len(), N + 1);
    assert!(csv[0].starts_with("id,status,to,from,"), "{}", csv[0]);
    assert!(csv[0].ends_with(",body"), "{}", csv[0]);
    let ids: Vec<&str> = csv[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let unique: HashSet<&&str> = ids.iter().collect();
    assert_eq!(unique.len(), N, "each message once");
    let mut sorted = ids.clone();
    sorted.sort_unstable_by(|x, y| y.cmp(x));
    assert_eq!(ids, sorted, "newest first");
    assert!(csv[1..].iter().all(|l| l.ends_with(",export me")));

    let ndjson = export(&mut a, "/v1/messages.ndjson?to=%2B447911000042");
    assert_eq!(ndjson.len(), 1);
    let one: Value = serde_json::from_str(&ndjson[0]).unwrap();
    assert_eq!(one["to"], "+447911000042");
    assert!(one["batch_id"].is_string());
    let all = export(&mut a, "/v1/messages.ndjson");
    assert_eq!(all.len(), N);

    let theirs = export(&mut b, "/v1/messages.csv");
    assert_eq!(theirs.len(), 2);
    assert!(theirs[1].contains("+447911123456"));

    let everyone = export(&mut op, "/v1/operator/messages.csv");
    assert_eq!(everyone.len(), N + 2);
    assert!(everyone[0].starts_with("tenant,id,"), "{}", everyone[0]);
    assert!(!everyone[0].contains("body"));
    assert!(everyone[1..].iter().all(|l| !l.contains("export me")));
    assert_eq!(
        everyone[1..].iter().filter(|l| l.starts_with("b,")).count(),
        1
    );
    let only_b = export(&mut op, "/v1/operator/messages.ndjson?tenant=b");
    assert_eq!(only_b.len(), 1);
    let row: Value = serde_json::from_str(&only_b[0]).unwrap();
    assert_eq!(row["tenant"], "b");
    assert!(row.get("body").is_none());
}
