//! Mobile-originated traffic from a careless or hostile carrier, and keyword loops.
//!
//! - A part of a multipart MO acknowledged before a crash is not lost: the message completes
//!   when the rest arrives after the restart.
//! - A flood of distinct incomplete long MOs stays under the reassembly byte bound, and every
//!   message given up is stored flagged `partial`, none dropped.
//! - A HELP loop gets a bounded number of replies, per mobile number and per tenant, each
//!   priced; replies count towards the tenant's quota.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{
    hash_key, wait_for, CarrierSpec, Gateway, GatewayConfig, Sim, TempDir,
};
use switchyard_tests::http::Client;
use switchyard_tests::{http_get, http_request};

const KEY: &str = "sk_e2e_mo_security_tenant_0123456789abcdef0123456789";
const NUMBER: &str = "+447000000077";
const MOBILE: &str = "+447400111111";

/// A simulator and a gateway whose tenant `acme` owns [`NUMBER`], with `extra` TOML (tenant
/// keys first, then whole tables).
fn start(
    name: &str,
    tenant_extra: &str,
    tables: &str,
) -> (TempDir, Sim, std::path::PathBuf, Gateway) {
    let dir = TempDir::new(name).unwrap();
    let sim = Sim::start(&["--dlr-delay-ms", "10"], None).unwrap();
    let extra = format!(
        "[[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\nnumbers = [{NUMBER:?}]\n{tenant_extra}\n{tables}",
        hash_key(KEY).unwrap()
    );
    let config = GatewayConfig {
        carriers: vec![CarrierSpec::new("alpha", sim.port(), "0.0100", 1, 16)],
        extra,
        ..GatewayConfig::default()
    }
    .write(&dir.path)
    .unwrap();
    let gw = up(&config, &sim);
    (dir, sim, config, gw)
}

/// Starts the gateway on `config` and waits until it is bound to `sim`.
fn up(config: &std::path::Path, sim: &Sim) -> Gateway {
    let gw = Gateway::start(config).unwrap();
    gw.wait_ready(Duration::from_secs(20)).unwrap();
    wait_for(
        "the bind",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((sim.counter("binds_active")? >= 1).then_some(())),
    )
    .unwrap();
    gw
}

/// Queues an MO at the simulator.
fn mo(sim: &Sim, body: Value) {
    http_request(&sim.control, "POST", "/mo", Some(&body.to_string())).unwrap();
}

/// Every inbound message of the tenant, newest first.
fn inbound(client: &mut Client) -> Vec<Value> {
    let mut all = Vec::new();
    let mut path = "/v1/inbound?limit=1000".to_owned();
    loop {
        let page = client.get(&path).unwrap().json().unwrap();
        all.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/inbound?limit=1000&cursor={c}"),
            None => return all,
        }
    }
}

/// The value of one metric line of `/metrics` (summed over label sets matching `labels`).
fn metric(gw: &Gateway, name: &str, labels: &str) -> f64 {
    let text = http_get(&gw.api, "/metrics").unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(labels))
        .filter(|l| l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A GSM-7 text needing `parts` parts, distinct per `i`.
fn long_text(i: usize, parts: usize) -> String {
    format!("MO {i:04} ")
        .chars()
        .chain(
            "a text long enough to be sent in several parts. "
                .chars()
                .cycle(),
        )
        .take(153 * parts - 20)
        .collect()
}

#[test]
fn a_part_acknowledged_before_a_crash_completes_after_the_restart() {
    let (_dir, sim, config, mut gw) = start("mo-crash", "", "");
    let text = long_text(1, 2);
    mo(
        &sim,
        json!({"system_id": "alpha", "from": MOBILE, "to": NUMBER, "text": text, "parts": [1], "reference": 4242}),
    );
    wait_for(
        "part 1 acknowledged",
        Duration::from_secs(20),
        Duration::from_millis(5),
        || Ok((sim.counter("mo_acked")? == 1).then_some(())),
    )
    .unwrap();
    // kill -9: nothing runs after the acknowledgement.
    gw.process.child.kill().unwrap();
    gw.process.child.wait().unwrap();
    let gw = up(&config, &sim);
    mo(
        &sim,
        json!({"system_id": "alpha", "from": MOBILE, "to": NUMBER, "text": text, "parts": [2], "reference": 4242}),
    );
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let listed = wait_for(
        "the whole message",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let all = inbound(&mut client);
            Ok((!all.is_empty()).then_some(all))
        },
    )
    .unwrap();
    assert_eq!(
        listed.len(),
        1,
        "one message, not two fragments: {listed:?}"
    );
    assert_eq!(listed[0]["body"], text.as_str());
    assert_eq!(listed[0]["from"], MOBILE);
    assert!(listed[0].get("partial").is_none(), "{:?}", listed[0]);
    assert_eq!(sim.counter("mo_acked").unwrap(), 2);
    assert_eq!(
        metric(&gw, "switchyard_mo_reassembly_bytes", "alpha"),
        0.0,
        "nothing left held"
    );
}

#[test]
fn a_flood_of_incomplete_long_mo_stays_within_the_byte_bound_and_loses_none() {
    const BOUND: f64 = 8192.0;
    const N: usize = 120;
    let (_dir, sim, _config, gw) = start(
        "mo-flood",
        "",
        "[inbound]\nreassembly_max_bytes = 8192\nreassembly_timeout_s = 3\n",
    );
    let started = Instant::now();
    // Parts 1 and 2 of 3 of N distinct messages: none can complete.
    for i in 0..N {
        mo(
            &sim,
            json!({"system_id": "alpha", "from": MOBILE, "to": NUMBER, "text": long_text(i, 3), "parts": [1, 2]}),
        );
    }
    let mut highest: f64 = 0.0;
    wait_for(
        "every part acknowledged",
        Duration::from_secs(30),
        Duration::from_millis(5),
        || {
            highest = highest.max(metric(&gw, "switchyard_mo_reassembly_bytes", "alpha"));
            Ok((sim.counter("mo_acked")? == 2 * N as u64).then_some(()))
        },
    )
    .unwrap();
    assert!(highest > 0.0, "the gauge was never sampled above zero");
    assert!(highest <= BOUND, "{highest} bytes held, bound {BOUND}");
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    // The ones evicted for the bound are stored already; the rest time out after 3 s.
    let listed = wait_for(
        "every message stored as partial",
        Duration::from_secs(30),
        Duration::from_millis(50),
        || {
            let all = inbound(&mut client);
            Ok((all.len() >= N).then_some(all))
        },
    )
    .unwrap();
    assert_eq!(listed.len(), N);
    let mut bodies: Vec<String> = Vec::new();
    for m in &listed {
        assert_eq!(m["partial"], json!({"received": [1, 2], "total": 3}), "{m}");
        assert!(m["keyword"].is_null());
        bodies.push(m["body"].as_str().unwrap_or_default().to_owned());
    }
    bodies.sort();
    let expected: Vec<String> = (0..N)
        .map(|i| long_text(i, 3).chars().take(2 * 153).collect())
        .collect();
    assert_eq!(
        bodies, expected,
        "every message once, with the parts that came"
    );
    let evicted = metric(&gw, "switchyard_mo_partial_total", "reason=\"evicted\"");
    let expired = metric(&gw, "switchyard_mo_partial_total", "reason=\"expired\"");
    assert_eq!(evicted + expired, N as f64);
    assert!(evicted >= (N - 20) as f64, "{evicted} evicted");
    assert_eq!(metric(&gw, "switchyard_mo_reassembly_bytes", "alpha"), 0.0);
    println!(
        "mo flood: {N} incomplete messages (2 of 3 parts each) in {:.2?}; at most {highest} \
         bytes held (bound {BOUND}); {evicted} stored partial when evicted, {expired} when \
         timed out; none lost",
        started.elapsed()
    );
}

#[test]
fn a_help_loop_gets_a_bounded_number_of_priced_replies() {
    let (_dir, sim, _config, gw) = start(
        "mo-help",
        "",
        "[inbound]\nkeyword_replies_per_number = 3\nkeyword_replies_window_s = 3600\n\
         keyword_replies_per_tenant_per_minute = 10\n",
    );
    let started = Instant::now();
    for _ in 0..50 {
        mo(
            &sim,
            json!({"system_id": "alpha", "from": MOBILE, "to": NUMBER, "text": "HELP"}),
        );
    }
    let sent = |gw: &Gateway| metric(gw, "switchyard_keyword_replies_total", "outcome=\"sent\"");
    let per_number = |gw: &Gateway| {
        metric(
            gw,
            "switchyard_keyword_replies_total",
            "outcome=\"number_limited\"",
        )
    };
    wait_for(
        "50 HELPs answered or refused",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || Ok((sent(&gw) + per_number(&gw) >= 50.0).then_some(())),
    )
    .unwrap();
    assert_eq!((sent(&gw), per_number(&gw)), (3.0, 47.0));
    wait_for(
        "3 replies at the simulator",
        Duration::from_secs(20),
        Duration::from_millis(10),
        || Ok((sim.counter("submits")? >= 3).then_some(())),
    )
    .unwrap();
    // Then 20 HELPs from 20 numbers: the tenant's 10 a minute hold (3 are spent).
    for i in 0..20 {
        mo(
            &sim,
            json!({"system_id": "alpha", "from": format!("+4474002{i:05}"), "to": NUMBER, "text": "help"}),
        );
    }
    let per_tenant = |gw: &Gateway| {
        metric(
            gw,
            "switchyard_keyword_replies_total",
            "outcome=\"tenant_limited\"",
        )
    };
    wait_for(
        "20 more HELPs answered or refused",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || Ok((sent(&gw) + per_number(&gw) + per_tenant(&gw) >= 70.0).then_some(())),
    )
    .unwrap();
    // 10 a minute, refilled evenly: what the elapsed time allows, no more.
    let refilled = (started.elapsed().as_secs_f64() * 10.0 / 60.0).ceil();
    let total = sent(&gw);
    assert!(
        total >= 10.0 && total <= 10.0 + refilled,
        "{total} replies in {:.1?}",
        started.elapsed()
    );
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let replies = wait_for(
        "every reply at the simulator and in the API",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || {
            let page = client
                .get("/v1/messages?tag=keyword:help&limit=1000")
                .unwrap()
                .json()?;
            let data = page["data"].as_array().cloned().unwrap_or_default();
            Ok(
                (data.len() as f64 >= total && sim.counter("submits")? as f64 >= total)
                    .then_some(data),
            )
        },
    )
    .unwrap();
    assert_eq!(replies.len() as f64, total);
    assert_eq!(sim.counter("submits").unwrap() as f64, total);
    for r in &replies {
        assert_eq!(r["price"], "0.0100", "{r}");
        assert_eq!(r["currency"], "EUR", "{r}");
        assert_eq!(r["from"], NUMBER, "{r}");
    }
    println!(
        "help loop: 50 HELPs from one number → 3 replies; 20 from 20 numbers → {} more \
         (tenant budget 10/min); every reply priced 0.0100 EUR",
        total - 3.0
    );
}

#[test]
fn keyword_replies_count_towards_the_tenants_quota() {
    let (_dir, sim, _config, gw) = start("mo-quota", "daily_quota = 2", "");
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": "+447400900001", "from": NUMBER, "body": "hello"}),
        )
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    for i in 0..3 {
        mo(
            &sim,
            json!({"system_id": "alpha", "from": format!("+4474003{i:05}"), "to": NUMBER, "text": "HELP"}),
        );
    }
    let outcome = |o: &str| {
        metric(
            &gw,
            "switchyard_keyword_replies_total",
            &format!("outcome=\"{o}\""),
        )
    };
    wait_for(
        "3 HELPs answered or refused",
        Duration::from_secs(30),
        Duration::from_millis(20),
        || Ok((outcome("sent") + outcome("tenant_limits") >= 3.0).then_some(())),
    )
    .unwrap();
    assert_eq!((outcome("sent"), outcome("tenant_limits")), (1.0, 2.0));
    // The reply used the last message of the day.
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": "+447400900002", "from": NUMBER, "body": "hello again"}),
        )
        .unwrap();
    assert_eq!(r.status, 429, "{}", r.text());
}

/// Single sends, batches and keyword replies all go through the one accept pipeline, so they
/// meet the same plan (countries), opt-outs (a keyword reply confirming a STOP excepted) and
/// prices.
#[test]
fn every_entry_point_meets_the_same_policy() {
    let (_dir, sim, _config, gw) = start("mo-policy", "allowed_countries = [\"GB\"]", "");
    let mut client = Client::new(&gw.api).with_bearer(KEY);
    let french = "+33612345678";
    let code = |v: &Value| v["code"].as_str().unwrap_or_default().to_owned();

    // The plan: France is not allowed, whichever way the message comes.
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": french, "from": NUMBER, "body": "hi"}),
        )
        .unwrap();
    assert_eq!(
        (r.status, code(&r.json().unwrap())),
        (403, "country_not_allowed".into())
    );
    let batch =
        json!({"from": NUMBER, "body": "hi", "recipients": [{"to": french}, {"to": MOBILE}]});
    let r = client.post_json("/v1/messages/batch", &batch).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let answer = r.json().unwrap();
    assert_eq!(code(&answer["rejected"][0]), "country_not_allowed");
    assert_eq!(answer["accepted"], 1);
    mo(
        &sim,
        json!({"system_id": "alpha", "from": french, "to": NUMBER, "text": "HELP"}),
    );
    let refused = |gw: &Gateway| {
        metric(
            gw,
            "switchyard_keyword_replies_total",
            "outcome=\"tenant_limits\"",
        )
    };
    wait_for(
        "the reply to France refused by the plan",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || Ok((refused(&gw) >= 1.0).then_some(())),
    )
    .unwrap();

    // Opt-outs: after STOP the API refuses the number, the batch lists it as refused, and the
    // reply confirming the STOP is still sent.
    mo(
        &sim,
        json!({"system_id": "alpha", "from": MOBILE, "to": NUMBER, "text": "STOP"}),
    );
    let replies = |c: &mut Client| -> Vec<Value> {
        let page = c
            .get("/v1/messages?tag=keyword:stop")
            .unwrap()
            .json()
            .unwrap();
        page["data"].as_array().cloned().unwrap_or_default()
    };
    let stop_reply = wait_for(
        "the STOP confirmation",
        Duration::from_secs(20),
        Duration::from_millis(20),
        || Ok(replies(&mut client).pop()),
    )
    .unwrap();
    let r = client
        .post_json(
            "/v1/messages",
            &json!({"to": MOBILE, "from": NUMBER, "body": "hi"}),
        )
        .unwrap();
    assert_eq!(
        (r.status, code(&r.json().unwrap())),
        (422, "recipient_opted_out".into())
    );
    let other = "+447400222222";
    let batch =
        json!({"from": NUMBER, "body": "hi", "recipients": [{"to": MOBILE}, {"to": other}]});
    let r = client.post_json("/v1/messages/batch", &batch).unwrap();
    assert_eq!(r.status, 202, "{}", r.text());
    let answer = r.json().unwrap();
    assert_eq!(code(&answer["rejected"][0]), "recipient_opted_out");
    assert_eq!(answer["rejected"][0]["index"], 0);

    // Prices: one segment to the same country costs the same from every entry point.
    let single = client
        .post_json(
            "/v1/messages",
            &json!({"to": other, "from": NUMBER, "body": "hi"}),
        )
        .unwrap()
        .json()
        .unwrap();
    let batch_id = answer["messages"][0]["id"].as_str().unwrap().to_owned();
    let batch_msg = client
        .get(&format!("/v1/messages/{batch_id}"))
        .unwrap()
        .json()
        .unwrap();
    let single_price = single["deliveries"][0]["estimated_cost"].clone();
    assert_eq!(single_price, json!("0.0100"));
    assert_eq!(batch_msg["price"], single_price);
    assert_eq!(stop_reply["price"], single_price);
}
