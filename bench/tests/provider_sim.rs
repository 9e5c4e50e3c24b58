//! `provider-sim` end to end: the binary on 127.0.0.1 (ports picked by the kernel and read
//! from its stdout), driven over HTTP like a connector would, with a webhook receiver in the
//! test that checks every signature. Every wait is bounded (5 s per webhook or request).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::HeaderMap;
use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::{json, Value};
use switchyard_bench::provider::sign;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(5);

/// The simulator process, killed (by its own handle) when dropped.
struct Sim {
    child: Child,
    api: SocketAddr,
    control: SocketAddr,
}

impl Sim {
    fn start(extra: &[&str]) -> Sim {
        let mut child = Command::new(env!("CARGO_BIN_EXE_provider-sim"))
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start provider-sim");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut addr = |prefix: &str| -> SocketAddr {
            let line = lines.next().expect("a line").expect("utf-8");
            line.strip_prefix(prefix)
                .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"))
                .parse()
                .expect("an address")
        };
        let api = addr("provider-sim listening on ");
        let control = addr("provider-sim control on ");
        Sim {
            child,
            api,
            control,
        }
    }

    fn api(&self, path: &str) -> String {
        format!("http://{}{path}", self.api)
    }

    fn control(&self, path: &str) -> String {
        format!("http://{}{path}", self.control)
    }

    async fn stats(&self) -> Value {
        http("GET", &self.control("/stats"), &[], None).await.1
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request; the status and the body as JSON (`Null` when it is not JSON).
async fn http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> (u16, Value) {
    try_http(method, url, headers, body, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

async fn try_http(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
    timeout: Duration,
) -> Result<(u16, Value), String> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut b = hyper::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    if body.is_some() {
        b = b.header("content-type", "application/json");
    }
    let bytes = body
        .map(|v| serde_json::to_vec(v).unwrap())
        .unwrap_or_default();
    let req = b
        .body(Full::new(Bytes::from(bytes)))
        .map_err(|e| e.to_string())?;
    let send = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    };
    tokio::time::timeout(timeout, send)
        .await
        .map_err(|_| "timed out".to_string())?
}

/// A webhook as the receiver got it.
#[derive(Debug)]
struct Hook {
    headers: HeaderMap,
    body: Bytes,
}

impl Hook {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON webhook")
    }
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// A webhook receiver on 127.0.0.1 answering 200; its URL and what it got.
async fn receiver() -> (String, mpsc::UnboundedReceiver<Hook>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(Hook { headers, body });
            "ok"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Hook>) -> Hook {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("a webhook within 5 s")
        .expect("receiver open")
}

/// Polls `GET /stats` until `done` holds (at most 5 s).
async fn stats_until(sim: &Sim, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = sim.stats().await;
        if done(&s) || tokio::time::Instant::now() > deadline {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn put(sim: &Sim, path: &str, body: Value) {
    let (status, answer) = http("PUT", &sim.control(path), &[], Some(&body)).await;
    assert_eq!(status, 200, "PUT {path}: {answer}");
}

async fn post_control(sim: &Sim, path: &str, body: Value) -> (u16, Value) {
    http("POST", &sim.control(path), &[], Some(&body)).await
}

fn wa_status(h: &Hook) -> Value {
    h.json()["entry"][0]["changes"][0]["value"]["statuses"][0].clone()
}

#[tokio::test]
async fn whatsapp_window_statuses_and_signatures() {
    let sim = Sim::start(&[]);
    let (url, mut hooks) = receiver().await;
    put(
        &sim,
        "/whatsapp/config",
        json!({"webhook_url": url, "app_secret": "s3cret", "token": "tok"}),
    )
    .await;
    let auth = [("authorization", "Bearer tok")];
    let send_url = sim.api("/v23.0/106540352242922/messages");
    let text = json!({"messaging_product": "whatsapp", "to": "447700900001", "type": "text", "text": {"body": "hi there"}});

    // Outside the window: accepted, then failed with 131047.
    let (status, answer) = http("POST", &send_url, &auth, Some(&text)).await;
    assert_eq!(status, 200, "{answer}");
    let failed = next(&mut hooks).await;
    assert!(sign::meta_verify(
        "s3cret",
        &failed.body,
        failed.header("x-hub-signature-256")
    ));
    assert!(!sign::meta_verify(
        "not-the-secret",
        &failed.body,
        failed.header("x-hub-signature-256")
    ));
    let s = wa_status(&failed);
    assert_eq!(
        (s["status"].clone(), s["errors"][0]["code"].clone()),
        (json!("failed"), json!(131047))
    );
    assert_eq!(s["id"], answer["messages"][0]["id"]);

    // The user writes: the inbound webhook, then text goes through.
    let (status, _) = post_control(
        &sim,
        "/whatsapp/inbound",
        json!({"from": "447700900001", "text": "hello?"}),
    )
    .await;
    assert_eq!(status, 200);
    let inbound = next(&mut hooks).await;
    assert!(sign::meta_verify(
        "s3cret",
        &inbound.body,
        inbound.header("x-hub-signature-256")
    ));
    assert_eq!(
        inbound.json()["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        "hello?"
    );

    let (status, answer) = http("POST", &send_url, &auth, Some(&text)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["contacts"][0]["wa_id"], "447700900001");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let h = next(&mut hooks).await;
        assert!(sign::meta_verify(
            "s3cret",
            &h.body,
            h.header("x-hub-signature-256")
        ));
        seen.push(wa_status(&h)["status"].clone());
    }
    assert_eq!(seen, [json!("sent"), json!("delivered"), json!("read")]);

    // Stats: what arrived, exactly.
    let stats = stats_until(&sim, |s| s["providers"]["whatsapp"]["events_sent"] == 5).await;
    let w = &stats["providers"]["whatsapp"];
    assert_eq!(
        (
            w["requests"].clone(),
            w["accepted"].clone(),
            w["events_sent"].clone()
        ),
        (json!(2), json!(2), json!(5))
    );
    let last = &stats["received"][1];
    assert_eq!(last["body"], text);
    assert_eq!(last["headers"]["authorization"], "Bearer tok");
    assert_eq!(last["message_id"], answer["messages"][0]["id"]);
    assert_eq!(stats["webhooks"].as_array().unwrap().len(), 5);
}

#[tokio::test]
async fn whatsapp_scripted_failures_and_credentials() {
    let sim = Sim::start(&[]);
    let send_url = sim.api("/v23.0/106540352242922/messages");
    let auth = [("authorization", "Bearer whatsapp-token")];
    let template = |to: &str| json!({"messaging_product": "whatsapp", "to": to, "type": "template", "template": {"name": "hello_world", "language": {"code": "en_US"}}});

    let (status, answer) = http(
        "POST",
        &send_url,
        &[("authorization", "Bearer nope")],
        Some(&template("1")),
    )
    .await;
    assert_eq!((status, answer["error"]["code"].clone()), (401, json!(190)));

    for (to, script, http_status, code) in [
        (
            "10",
            json!({"outcome": "reject", "code": 131026}),
            400,
            131026,
        ),
        (
            "11",
            json!({"outcome": "throttle", "code": 131056}),
            400,
            131056,
        ),
        ("12", json!({"outcome": "throttle"}), 400, 130429),
        ("13", json!({"outcome": "transient"}), 500, 131000),
        ("14", json!({"outcome": "bad_credentials"}), 401, 190),
    ] {
        put(&sim, &format!("/whatsapp/behaviour/{to}"), script).await;
        let (status, answer) = http("POST", &send_url, &auth, Some(&template(to))).await;
        assert_eq!(
            (status, answer["error"]["code"].clone()),
            (http_status, json!(code)),
            "{to}"
        );
        if code != 190 {
            // OAuth errors carry no error_data.
            assert_eq!(
                answer["error"]["error_data"]["messaging_product"],
                "whatsapp"
            );
        }
    }
    let (status, answer) = http("POST", &send_url, &auth, Some(&template("15"))).await;
    assert_eq!(status, 200, "others are still accepted: {answer}");

    // Slower than the client waits: the client gives up, the simulator still counts it.
    put(
        &sim,
        "/whatsapp/behaviour/16",
        json!({"response_delay_ms": 1500}),
    )
    .await;
    let slow = try_http(
        "POST",
        &send_url,
        &auth,
        Some(&template("16")),
        Duration::from_millis(200),
    )
    .await;
    assert_eq!(slow, Err("timed out".into()));
    let stats = stats_until(&sim, |s| s["providers"]["whatsapp"]["accepted"] == 2).await;
    let w = &stats["providers"]["whatsapp"];
    assert_eq!(w["accepted"], 2);
    assert_eq!(
        w["refused"],
        json!({"130429": 1, "131000": 1, "131026": 1, "131056": 1, "190": 2})
    );
    // No callback configured: status webhooks count as failed.
    let stats = stats_until(&sim, |s| s["providers"]["whatsapp"]["events_failed"] == 6).await;
    assert_eq!(stats["providers"]["whatsapp"]["events_failed"], 6);
    assert_eq!(stats["webhooks"][0]["error"], "no webhook_url configured");
}

#[tokio::test]
async fn rbm_capability_send_events_revocation_and_expiry() {
    let sim = Sim::start(&[]);
    let (url, mut hooks) = receiver().await;
    put(
        &sim,
        "/rbm/config",
        json!({"webhook_url": url, "client_token": "ct", "token": "tok", "agent_id": "agent"}),
    )
    .await;
    let auth = [("authorization", "Bearer tok")];
    let phone = "+447700900002";
    let caps = sim.api(&format!(
        "/v1/phones/{phone}/capabilities?requestId=r1&agentId=agent"
    ));
    let (status, answer) = http("GET", &caps, &auth, None).await;
    assert_eq!(status, 200);
    assert!(answer["features"]
        .as_array()
        .unwrap()
        .contains(&json!("RICHCARD_STANDALONE")));
    put(
        &sim,
        "/rbm/behaviour/+447700900009",
        json!({"capable": false}),
    )
    .await;
    let (status, answer) = http(
        "GET",
        &sim.api("/v1/phones/%2B447700900009/capabilities?agentId=agent"),
        &auth,
        None,
    )
    .await;
    assert_eq!(
        (status, answer["error"]["status"].clone()),
        (404, json!("NOT_FOUND"))
    );
    let (status, answer) = http("GET", &caps, &[("authorization", "Bearer wrong")], None).await;
    assert_eq!(
        (status, answer["error"]["status"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );

    let send = |id: &str| {
        sim.api(&format!(
            "/v1/phones/{phone}/agentMessages?messageId={id}&agentId=agent"
        ))
    };
    let text = json!({"contentMessage": {"text": "Your code is 123456", "suggestions": [{"reply": {"text": "OK", "postbackData": "ok"}}]}});
    let (status, answer) = http("POST", &send("m1"), &auth, Some(&text)).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["name"], format!("phones/{phone}/agentMessages/m1"));
    let decode = |h: &Hook| -> Value {
        let push = h.json();
        let data = base64::engine::general_purpose::STANDARD
            .decode(push["message"]["data"].as_str().unwrap())
            .unwrap();
        assert!(
            sign::rbm_verify("ct", &data, h.header("x-goog-signature")),
            "signature"
        );
        assert!(!sign::rbm_verify(
            "other",
            &data,
            h.header("x-goog-signature")
        ));
        serde_json::from_slice(&data).unwrap()
    };
    let delivered = decode(&next(&mut hooks).await);
    let read = decode(&next(&mut hooks).await);
    assert_eq!(
        (
            delivered["eventType"].clone(),
            delivered["messageId"].clone()
        ),
        (json!("DELIVERED"), json!("m1"))
    );
    assert_eq!(
        (read["eventType"].clone(), read["senderPhoneNumber"].clone()),
        (json!("READ"), json!(phone))
    );
    let (status, _) = http(
        "DELETE",
        &sim.api(&format!(
            "/v1/phones/{phone}/agentMessages/m1?agentId=agent"
        )),
        &auth,
        None,
    )
    .await;
    assert_eq!(status, 404, "delivered: too late to revoke");

    // Offline phone: revoked before delivery, then never delivered.
    put(
        &sim,
        "/rbm/behaviour",
        json!({"delivered_delay_ms": 1000, "read_delay_ms": null}),
    )
    .await;
    let (status, _) = http("POST", &send("m2"), &auth, Some(&text)).await;
    assert_eq!(status, 200);
    let (status, answer) = http(
        "DELETE",
        &sim.api(&format!(
            "/v1/phones/{phone}/agentMessages/m2?agentId=agent"
        )),
        &auth,
        None,
    )
    .await;
    assert_eq!((status, answer), (200, json!({})));
    let stats = stats_until(&sim, |s| s["providers"]["rbm"]["events_skipped"] == 1).await;
    assert_eq!(stats["providers"]["rbm"]["events_skipped"], 1);

    // Never delivered, TTL passes: TTL_EXPIRATION_REVOKED.
    put(
        &sim,
        "/rbm/behaviour",
        json!({"delivered_delay_ms": null, "read_delay_ms": null}),
    )
    .await;
    let mut expiring = text.clone();
    expiring["ttl"] = json!("0.2s");
    let (status, _) = http("POST", &send("m3"), &auth, Some(&expiring)).await;
    assert_eq!(status, 200);
    let expired = decode(&next(&mut hooks).await);
    assert_eq!(
        (expired["eventType"].clone(), expired["messageId"].clone()),
        (json!("TTL_EXPIRATION_REVOKED"), json!("m3"))
    );

    // A user message.
    let (status, _) =
        post_control(&sim, "/rbm/inbound", json!({"from": phone, "text": "STOP"})).await;
    assert_eq!(status, 200);
    let msg = decode(&next(&mut hooks).await);
    assert_eq!(
        (msg["text"].clone(), msg["agentId"].clone()),
        (json!("STOP"), json!("agent"))
    );

    // 429 from the script, and the duplicate id.
    put(&sim, "/rbm/behaviour", json!({"outcome": "throttle"})).await;
    let (status, answer) = http("POST", &send("m4"), &auth, Some(&text)).await;
    assert_eq!(
        (status, answer["error"]["status"].clone()),
        (429, json!("RESOURCE_EXHAUSTED"))
    );
    put(&sim, "/rbm/behaviour", json!({})).await;
    let (status, _) = http("POST", &send("m1"), &auth, Some(&text)).await;
    assert_eq!(status, 200);
    let stats = sim.stats().await;
    let r = &stats["providers"]["rbm"];
    assert_eq!(
        (
            r["accepted"].clone(),
            r["duplicates"].clone(),
            r["revoked"].clone()
        ),
        (json!(3), json!(1), json!(1))
    );
}

#[tokio::test]
async fn telegram_updates_and_errors() {
    let sim = Sim::start(&[]);
    let (url, mut hooks) = receiver().await;
    put(&sim, "/telegram/config", json!({"token": "42:abc", "webhook_url": url, "secret_token": "sekret", "known_chats_only": true})).await;
    let send = sim.api("/bot42:abc/sendMessage");
    let body = json!({"chat_id": 777, "text": "hello", "parse_mode": "HTML"});
    let (status, answer) = http("POST", &send, &[], Some(&body)).await;
    assert_eq!(
        (status, answer["description"].clone()),
        (400, json!("Bad Request: chat not found"))
    );

    let (status, _) = post_control(
        &sim,
        "/telegram/inbound",
        json!({"from": "777", "name": "Ann", "text": "/start"}),
    )
    .await;
    assert_eq!(status, 200);
    let update = next(&mut hooks).await;
    assert_eq!(update.header("x-telegram-bot-api-secret-token"), "sekret");
    assert_eq!(update.json()["message"]["chat"]["id"], 777);

    let (status, answer) = http("POST", &send, &[], Some(&body)).await;
    assert_eq!(
        (status, answer["ok"].clone()),
        (200, json!(true)),
        "{answer}"
    );
    assert_eq!(answer["result"]["from"]["id"], 42);
    let (status, answer) = http(
        "POST",
        &sim.api("/bot42:wrong/sendMessage"),
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(
        (status, answer),
        (
            401,
            json!({"ok": false, "error_code": 401, "description": "Unauthorized"})
        )
    );

    put(
        &sim,
        "/telegram/behaviour/777",
        json!({"outcome": "reject", "code": 403}),
    )
    .await;
    let (status, answer) = http("POST", &send, &[], Some(&body)).await;
    assert_eq!(
        (status, answer["description"].clone()),
        (403, json!("Forbidden: bot was blocked by the user"))
    );
    put(
        &sim,
        "/telegram/behaviour/777",
        json!({"outcome": "throttle", "retry_after_s": 3}),
    )
    .await;
    let (status, answer) = http("POST", &send, &[], Some(&body)).await;
    assert_eq!(
        (status, answer["parameters"]["retry_after"].clone()),
        (429, json!(3))
    );

    let stats = sim.stats().await;
    let t = &stats["providers"]["telegram"];
    assert_eq!(
        t["refused"],
        json!({"400": 1, "401": 1, "403": 1, "429": 1})
    );
    assert_eq!(
        (t["accepted"].clone(), t["events_sent"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test]
async fn messenger_window_tags_and_receipts() {
    let sim = Sim::start(&[]);
    let (url, mut hooks) = receiver().await;
    put(
        &sim,
        "/messenger/config",
        json!({"webhook_url": url, "app_secret": "as", "page_access_token": "pt", "page_id": "99"}),
    )
    .await;
    let send = sim.api("/v23.0/me/messages?access_token=pt");
    let response = json!({"recipient": {"id": "psid1"}, "messaging_type": "RESPONSE", "message": {"text": "hi"}});
    let (status, answer) = http("POST", &send, &[], Some(&response)).await;
    assert_eq!(
        (
            status,
            answer["error"]["code"].clone(),
            answer["error"]["error_subcode"].clone()
        ),
        (400, json!(10), json!(2_018_278))
    );
    let tagged = json!({"recipient": {"id": "psid1"}, "messaging_type": "MESSAGE_TAG", "tag": "ACCOUNT_UPDATE", "message": {"text": "your bill"}});
    let (status, _) = http("POST", &send, &[], Some(&tagged)).await;
    assert_eq!(status, 200);
    let mut kinds = Vec::new();
    for _ in 0..2 {
        let h = next(&mut hooks).await;
        assert!(sign::meta_verify(
            "as",
            &h.body,
            h.header("x-hub-signature-256")
        ));
        let m = &h.json()["entry"][0]["messaging"][0];
        kinds.push(if m.get("delivery").is_some() {
            "delivery"
        } else {
            "read"
        });
    }
    assert_eq!(kinds, ["delivery", "read"]);

    let (status, _) = post_control(
        &sim,
        "/messenger/inbound",
        json!({"from": "psid1", "text": "help"}),
    )
    .await;
    assert_eq!(status, 200);
    let h = next(&mut hooks).await;
    assert_eq!(
        h.json()["entry"][0]["messaging"][0]["message"]["text"],
        "help"
    );
    let (status, answer) = http(
        "POST",
        &sim.api("/v23.0/99/messages"),
        &[("authorization", "Bearer pt")],
        Some(&response),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["recipient_id"], "psid1");
    let (status, answer) = http(
        "POST",
        &sim.api("/v23.0/me/messages?access_token=bad"),
        &[],
        Some(&response),
    )
    .await;
    assert_eq!((status, answer["error"]["code"].clone()), (401, json!(190)));
}

#[tokio::test]
async fn control_api_checks_input_and_caps_memory() {
    let sim = Sim::start(&["--max-stored", "3"]);
    let (status, _) = http(
        "PUT",
        &sim.control("/whatsapp/behaviour"),
        &[],
        Some(&json!({"delivered_delay_ms": 50, "read_delay_ms": 10})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = http(
        "PUT",
        &sim.control("/whatsapp/behaviour"),
        &[],
        Some(&json!({"outcome": "explode"})),
    )
    .await;
    assert_eq!(status, 422);
    let (status, _) = http("GET", &sim.control("/signal/config"), &[], None).await;
    assert_eq!(status, 404);
    let (status, config) = http("GET", &sim.control("/rbm/config"), &[], None).await;
    assert_eq!(
        (status, config["agent_id"].clone()),
        (200, json!("switchyard-sim-agent"))
    );
    let (status, _) =
        post_control(&sim, "/telegram/inbound", json!({"from": "not-a-number"})).await;
    assert_eq!(status, 422);
    let (status, _) = http("DELETE", &sim.control("/rbm/behaviour/+1555"), &[], None).await;
    assert_eq!(status, 404);

    let body = json!({"chat_id": 1, "text": "x"});
    for _ in 0..5 {
        http(
            "POST",
            &sim.api("/bot123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11/sendMessage"),
            &[],
            Some(&body),
        )
        .await;
    }
    let (status, _) = http("POST", &sim.api("/nothing/here"), &[], Some(&body)).await;
    assert_eq!(status, 404);
    let stats = sim.stats().await;
    assert_eq!(stats["providers"]["telegram"]["accepted"], 5);
    assert_eq!(stats["received"].as_array().unwrap().len(), 3);
    assert_eq!(stats["received_dropped"], 2);
    assert_eq!(stats["received"][2]["seq"], 5);

    let (status, _) = http("POST", &sim.control("/reset"), &[], None).await;
    assert_eq!(status, 204);
    assert_eq!(sim.stats().await["providers"]["telegram"]["accepted"], 0);
}
