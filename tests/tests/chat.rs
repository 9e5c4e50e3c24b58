//! Chat channels end to end, real processes on 127.0.0.1: switchyard with an RCS agent on
//! `provider-sim` (Google RBM as documented: capability check, agent messages, signed Pub/Sub
//! events) and its built-in sandbox SMSC. Every wait is bounded by [`WAIT`].

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchyard_tests::gateway::{hash_key, TempDir};
use switchyard_tests::http::Client;
use switchyard_tests::{binary, Process};

/// Longest wait for a status.
const WAIT: Duration = Duration::from_secs(30);
/// The tenant's key.
const KEY: &str = "acme-chat-key";
/// The key of the tenant that owns the chat accounts (`accounts`): their inbound messages
/// are its, and its WhatsApp and Messenger messages see the windows they open.
const SHOP_KEY: &str = "shop-chat-key";
/// A phone that is RCS-capable (the simulator's default).
const CAPABLE: &str = "+447911123456";
/// A phone that is not.
const NOT_CAPABLE: &str = "+447911123457";

/// provider-sim, the gateway (RCS agent "Rcs" on the simulator, sandbox SMS "Sms"), and a
/// client of each.
struct Setup {
    _sim: Process,
    _gw: Process,
    sim: Client,
    api: Client,
    gw_addr: String,
}

fn start(dir: &TempDir) -> Setup {
    start_with(dir, "")
}

/// [`start`], with `rbm_extra` (TOML lines) added to the RBM agent's table.
fn start_with(dir: &TempDir, rbm_extra: &str) -> Setup {
    let sim_exe = binary("switchyard-bench", "provider-sim").unwrap();
    let sim = Process::start(
        &sim_exe,
        &["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"],
        2,
    )
    .unwrap();
    let sim_api = sim.address("listening").unwrap();
    let mut toml = String::new();
    writeln!(
        toml,
        "[server]\nlisten = \"127.0.0.1:0\"\ndata_dir = {:?}\nshutdown_timeout_s = 2\n\n\
         [store]\ngroup_commit_linger_ms = 1\n\n\
         [[tenants]]\nname = \"acme\"\napi_keys = [{:?}]\n\n\
         [[tenants]]\nname = \"shop\"\napi_keys = [{:?}]\n\
         accounts = [\"Rcs\", \"Wa\", \"Tg\", \"Fb\"]\n\n\
         [[carriers]]\nname = \"Rcs\"\nchannels = [\"rcs\"]\n\n\
         [carriers.rbm]\nbase_url = \"http://{sim_api}\"\nagent_id = \"switchyard-sim-agent\"\n\
         token = \"rbm-access-token\"\nwebhook_token = \"rbm-client-token\"\ntimeout_s = 5\n{}\n\n\
         [[decks]]\ncarrier = \"Rcs\"\nchannel = \"rcs\"\nsandbox = true\n\n\
         [[carriers]]\nname = \"Wa\"\nchannels = [\"whatsapp\"]\n\n\
         [carriers.whatsapp]\nbase_url = \"http://{sim_api}\"\n\
         phone_number_id = \"106540352242922\"\naccess_token = \"whatsapp-token\"\n\
         app_secret = \"whatsapp-app-secret\"\nverify_token = \"let-me-in\"\ntimeout_s = 5\n\n\
         [[decks]]\ncarrier = \"Wa\"\nchannel = \"whatsapp\"\nsandbox = true\n\n\
         [[carriers]]\nname = \"Tg\"\nchannels = [\"telegram\"]\n\n\
         [carriers.telegram]\nbase_url = \"http://{sim_api}\"\n\
         bot_token = \"123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11\"\n\
         webhook_secret = \"telegram-secret-token\"\nprice = \"0.001\"\ntimeout_s = 5\n\n\
         [[carriers]]\nname = \"Fb\"\nchannels = [\"messenger\"]\n\n\
         [carriers.messenger]\nbase_url = \"http://{sim_api}\"\n\
         page_access_token = \"messenger-page-token\"\napp_secret = \"messenger-app-secret\"\n\
         price = \"0.002\"\ntimeout_s = 5\n\n\
         [[carriers]]\nname = \"Sms\"\nchannels = [\"sms\"]\n\
         smpp = {{ sandbox = true, system_id = \"acme\" }}\n\n\
         [[decks]]\ncarrier = \"Sms\"\nchannel = \"sms\"\nsandbox = true\n",
        dir.join("data").display().to_string(),
        hash_key(KEY).unwrap(),
        hash_key(SHOP_KEY).unwrap(),
        rbm_extra,
    )
    .unwrap();
    std::fs::write(dir.join("switchyard.toml"), toml).unwrap();
    let exe = binary("switchyard-gateway", "switchyard").unwrap();
    let config = dir.join("switchyard.toml").display().to_string();
    let gw = Process::start(&exe, &["serve", "--config", &config], 1).unwrap();
    let gw_addr = gw.address("listening").unwrap();
    let mut control = Client::new(&sim.address("control").unwrap());
    // The agent's events go to the gateway.
    let mut rbm = control.get("/rbm/config").unwrap().json().unwrap();
    rbm["webhook_url"] = json!(format!("http://{gw_addr}/v1/providers/Rcs/webhook"));
    let r = put(&mut control, "/rbm/config", &rbm);
    assert_eq!(r, 200);
    let mut wa = control.get("/whatsapp/config").unwrap().json().unwrap();
    wa["webhook_url"] = json!(format!("http://{gw_addr}/v1/providers/Wa/webhook"));
    assert_eq!(put(&mut control, "/whatsapp/config", &wa), 200);
    let mut fb = control.get("/messenger/config").unwrap().json().unwrap();
    fb["webhook_url"] = json!(format!("http://{gw_addr}/v1/providers/Fb/webhook"));
    assert_eq!(put(&mut control, "/messenger/config", &fb), 200);
    let mut tg = control.get("/telegram/config").unwrap().json().unwrap();
    tg["webhook_url"] = json!(format!("http://{gw_addr}/v1/providers/Tg/webhook"));
    assert_eq!(put(&mut control, "/telegram/config", &tg), 200);
    Setup {
        api: Client::new(&gw_addr).with_bearer(KEY),
        sim: control,
        _sim: sim,
        _gw: gw,
        gw_addr,
    }
}

fn put(client: &mut Client, path: &str, body: &Value) -> u16 {
    let bytes = serde_json::to_vec(body).unwrap();
    client
        .request(
            "PUT",
            path,
            &[("content-type", "application/json")],
            Some(&bytes),
        )
        .unwrap()
        .status
}

fn send(client: &mut Client, body: &Value) -> (u16, Value) {
    let r = client.post_json("/v1/messages", body).unwrap();
    (r.status, r.json().unwrap_or(Value::Null))
}

/// Sends a cascade RCS (1 s limit) → SMS to the RCS-capable phone, waits until the flow
/// ended with its RCS step `rcs_status`, checks the SMS step delivered it, and returns the
/// flow's id, the RCS message's id and the RCS message.
fn rcs_step_superseded_by_sms(api: &mut Client, rcs_status: &str) -> (String, String, Value) {
    let (status, body) = send(api, &rcs_then_sms(CAPABLE, 1, "Your table is ready"));
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let flow = until(api, &id, |v| {
        v["status"] != "running" && v["steps"][0]["delivery"]["status"] == rcs_status
    });
    assert_eq!(flow["status"], "succeeded", "{flow:#}");
    assert_eq!(
        flow["steps"][1]["delivery"]["status"], "delivered",
        "{flow:#}"
    );
    let rcs_id = flow["steps"][0]["delivery"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rcs = until(api, &rcs_id, |_| true);
    (id, rcs_id, rcs)
}

/// A cascade to `to`: RCS with `timeout_s`, then SMS.
fn rcs_then_sms(to: &str, timeout_s: u64, body: &str) -> Value {
    json!({
        "to": to,
        "mode": "cascade",
        "body": body,
        "channels": [
            {"channel": "rcs", "timeout_s": timeout_s},
            {"channel": "sms", "from": "Acme"}
        ]
    })
}

/// Polls `id` until `done` holds (at most [`WAIT`]); returns what it read last.
fn until(client: &mut Client, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = client
            .get(&format!("/v1/messages/{id}"))
            .unwrap()
            .json()
            .unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {v:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// A message's statuses, oldest first.
fn statuses(message: &Value) -> Vec<String> {
    message["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["status"].as_str().map(str::to_owned))
        .collect()
}

/// An RCS message to a capable phone: the agent message carries Switchyard's id, and the
/// platform's signed DELIVERED and READ events make it delivered, then read.
#[test]
fn an_rcs_message_is_delivered_by_the_agents_event() {
    let dir = TempDir::new("chat-rcs").unwrap();
    let mut s = start(&dir);
    let (status, body) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "channel": "rcs", "body": "Your table is ready"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deliveries"][0]["channel"], "rcs");
    assert_eq!(body["deliveries"][0]["carrier"], "Rcs");
    let id = body["id"].as_str().unwrap().to_owned();
    let done = until(&mut s.api, &id, |v| v["status"] == "read");
    assert_eq!(done["channel"], "rcs", "{done:#}");
    assert!(
        statuses(&done).ends_with(&["sent".into(), "delivered".into(), "read".into()]),
        "{done:#}"
    );
    let stats: Value = s.sim.get("/stats").unwrap().json().unwrap();
    let text = stats.to_string();
    assert!(
        text.contains(&id),
        "the agent message carries our id: {text}"
    );
}

/// A cascade RCS → SMS to a phone that is not RCS-capable: the RCS step is rejected
/// (`not_rcs_capable`) and the SMS step delivers.
#[test]
fn rcs_falls_back_to_sms_for_a_phone_without_rcs() {
    let dir = TempDir::new("chat-fallback").unwrap();
    let mut s = start(&dir);
    let path = format!("/rbm/behaviour/{}", NOT_CAPABLE.replace('+', "%2B"));
    assert_eq!(put(&mut s.sim, &path, &json!({"capable": false})), 200);
    let (status, body) = send(
        &mut s.api,
        &rcs_then_sms(NOT_CAPABLE, 30, "Your code is 1234"),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let flow = until(&mut s.api, &id, |v| v["status"] != "running");
    assert_eq!(flow["status"], "succeeded", "{flow:#}");
    let delivery = |step: usize| flow["steps"][step]["delivery"].clone();
    assert_eq!(delivery(0)["status"], "rejected", "{flow:#}");
    assert_eq!(delivery(1)["status"], "delivered", "{flow:#}");
    let rcs = until(&mut s.api, delivery(0)["id"].as_str().unwrap(), |_| true);
    assert_eq!(rcs["channel"], "rcs");
    assert!(rcs.to_string().contains("not_rcs_capable"), "{rcs:#}");
    let sms = until(&mut s.api, delivery(1)["id"].as_str().unwrap(), |_| true);
    assert_eq!(sms["channel"], "sms");
    // The agent message's 404 said it, with no capability check before it.
    assert_eq!(
        rbm_requests(&mut s.sim, NOT_CAPABLE),
        [("POST".to_owned(), "agentMessages".to_owned(), 404)]
    );
    // Remembered: the next cascade to that phone falls back without asking RBM again.
    let (status, body) = send(&mut s.api, &rcs_then_sms(NOT_CAPABLE, 30, "Again"));
    assert_eq!(status, 202, "{body}");
    let flow = until(&mut s.api, body["id"].as_str().unwrap(), |v| {
        v["status"] != "running"
    });
    assert_eq!(flow["status"], "succeeded", "{flow:#}");
    assert_eq!(
        flow["steps"][0]["delivery"]["status"], "rejected",
        "{flow:#}"
    );
    assert_eq!(rbm_requests(&mut s.sim, NOT_CAPABLE).len(), 1);
}

/// With `capability_check = true` the agent asks RBM about a phone before its first message:
/// a phone without RCS is refused by the check alone, a capable one gets the message after it.
#[test]
fn an_agent_with_capability_check_asks_before_the_first_message() {
    let dir = TempDir::new("chat-capability-check").unwrap();
    let mut s = start_with(&dir, "capability_check = true");
    let path = format!("/rbm/behaviour/{}", NOT_CAPABLE.replace('+', "%2B"));
    assert_eq!(put(&mut s.sim, &path, &json!({"capable": false})), 200);
    for to in [NOT_CAPABLE, CAPABLE] {
        let (status, body) = send(
            &mut s.api,
            &json!({"to": to, "channel": "rcs", "body": "Your table is ready"}),
        );
        assert_eq!(status, 202, "{body}");
        until(&mut s.api, body["id"].as_str().unwrap(), |v| {
            ["rejected", "delivered", "read"].contains(&v["status"].as_str().unwrap_or(""))
        });
    }
    assert_eq!(
        rbm_requests(&mut s.sim, NOT_CAPABLE),
        [("GET".to_owned(), "capabilities".to_owned(), 404)]
    );
    assert_eq!(
        rbm_requests(&mut s.sim, CAPABLE),
        [
            ("GET".to_owned(), "capabilities".to_owned(), 200),
            ("POST".to_owned(), "agentMessages".to_owned(), 200)
        ]
    );
}

/// The RBM requests the simulator received about phone `to`, oldest first: method, what
/// (`capabilities`, `agentMessages`), status answered.
fn rbm_requests(sim: &mut Client, to: &str) -> Vec<(String, String, u64)> {
    let stats: Value = sim.get("/stats").unwrap().json().unwrap();
    let prefix = format!("/v1/phones/{to}/");
    stats["received"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let what = r["path"].as_str()?.strip_prefix(&prefix)?;
            Some((
                r["method"].as_str().unwrap_or_default().to_owned(),
                what.split('/').next().unwrap_or_default().to_owned(),
                r["status"].as_u64().unwrap_or_default(),
            ))
        })
        .collect()
}

/// Phones without RCS are the recipient's lack, not the agent's failure: after 30 of them in
/// a row (each rejected `not_rcs_capable`, each cascade delivered by SMS), well past the
/// breaker's 20 requests at a 50 % error rate, a phone that has RCS still gets its message
/// over RCS.
#[test]
fn many_phones_without_rcs_leave_the_agent_healthy() {
    let dir = TempDir::new("chat-capability-run").unwrap();
    let mut s = start(&dir);
    assert_eq!(
        put(&mut s.sim, "/rbm/behaviour", &json!({"capable": false})),
        200
    );
    let mut ids = Vec::new();
    for i in 0..30 {
        let (status, body) = send(
            &mut s.api,
            &rcs_then_sms(&format!("+4479112{i:05}"), 30, "Your code is 1234"),
        );
        assert_eq!(status, 202, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        let flow = until(&mut s.api, id, |v| v["status"] != "running");
        assert_eq!(flow["status"], "succeeded", "{flow:#}");
        assert_eq!(
            flow["steps"][0]["delivery"]["status"], "rejected",
            "{flow:#}"
        );
    }
    assert_eq!(
        put(&mut s.sim, "/rbm/behaviour", &json!({"capable": true})),
        200
    );
    let (status, body) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "channel": "rcs", "body": "Still here"}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let done = until(&mut s.api, &id, |v| {
        v["status"] == "delivered" || v["status"] == "read"
    });
    assert_eq!(done["channel"], "rcs", "{done:#}");
}

/// Webhooks that do not verify change nothing: a forged signature and an unknown account are
/// refused; rcs refuses what does not apply to it.
#[test]
fn forged_provider_webhooks_and_bad_requests_are_refused() {
    let dir = TempDir::new("chat-forged").unwrap();
    let mut s = start(&dir);
    let mut anyone = Client::new(&s.gw_addr);
    let event = br#"{"eventType":"DELIVERED","messageId":"msg_1"}"#;
    let data = {
        use std::fmt::Write as _;
        // base64 of the event, by hand to keep the test free of another crate.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in event.chunks(3) {
            let b = [
                chunk[0],
                *chunk.get(1).unwrap_or(&0),
                *chunk.get(2).unwrap_or(&0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.write_char(A[(n >> (18 - 6 * i) & 63) as usize] as char)
                        .unwrap();
                } else {
                    out.push('=');
                }
            }
        }
        out
    };
    let push = serde_json::to_vec(&json!({"message": {"data": data}})).unwrap();
    let r = anyone
        .request(
            "POST",
            "/v1/providers/Rcs/webhook",
            &[("x-goog-signature", "Zm9yZ2Vk")],
            Some(&push),
        )
        .unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    let r = anyone
        .request("POST", "/v1/providers/Nobody/webhook", &[], Some(&push))
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());
    for (bad, field) in [
        (
            json!({"to": CAPABLE, "channel": "rcs", "body": "x", "subject": "s"}),
            "subject",
        ),
        (json!({"to": CAPABLE, "channel": "rcs", "body": ""}), "body"),
        (
            json!({"to": "ana@example.org", "channel": "rcs", "body": "x"}),
            "to",
        ),
        (
            json!({"to": CAPABLE, "channel": "rcs", "body": "x",
                   "template": {"name": "t", "language": "en"}}),
            "template",
        ),
        (
            json!({"to": CAPABLE, "channel": "whatsapp", "body": "x",
                   "template": {"name": "hello_world", "language": "en_US"}}),
            "body",
        ),
    ] {
        let (status, body) = send(&mut s.api, &bad);
        assert_eq!(status, 422, "{bad} → {body}");
        assert!(body.to_string().contains(field), "{bad} → {body}");
    }
}

/// WhatsApp: a template goes at any time and is delivered (signed status webhooks); free text
/// to a person who has not written in 24 hours is refused by the platform, and the message
/// says why. Meta's subscription check is answered only with the verify token.
#[test]
fn whatsapp_templates_go_and_free_text_outside_the_window_is_explained() {
    let dir = TempDir::new("chat-whatsapp").unwrap();
    let mut s = start(&dir);
    let (status, body) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "channel": "whatsapp",
                "template": {"name": "hello_world", "language": "en_US"}}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let done = until(&mut s.api, &id, |v| v["status"] == "read");
    assert_eq!(done["channel"], "whatsapp");
    assert!(
        statuses(&done).contains(&"delivered".to_owned()),
        "{done:#}"
    );
    assert!(
        done.to_string().contains("wamid."),
        "the carrier id is the wamid: {done:#}"
    );
    let (status, body) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "channel": "whatsapp", "body": "Free text, unasked"}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let failed = until(&mut s.api, &id, |v| v["status"] == "undeliverable");
    assert!(
        failed
            .to_string()
            .contains("outside_customer_service_window"),
        "{failed:#}"
    );
    let mut anyone = Client::new(&s.gw_addr);
    let ok = anyone
        .get("/v1/providers/Wa/webhook?hub.mode=subscribe&hub.verify_token=let-me-in&hub.challenge=42")
        .unwrap();
    assert_eq!((ok.status, ok.text().as_str()), (200, "42"));
    let wrong = anyone
        .get("/v1/providers/Wa/webhook?hub.mode=subscribe&hub.verify_token=guess&hub.challenge=42")
        .unwrap();
    assert_eq!(wrong.status, 401);
}

/// Telegram: a message to a chat id ends at `sent` (the Bot API reports nothing later) with
/// `<chat>:<message id>` as its carrier id, priced flat; a chat that blocked the bot refuses
/// the message; the bot's webhook must carry the secret.
#[test]
fn telegram_messages_end_at_sent_and_blocked_chats_refuse() {
    let dir = TempDir::new("chat-telegram").unwrap();
    let mut s = start(&dir);
    let (status, body) = send(
        &mut s.api,
        &json!({"to": {"telegram": "123456789"}, "channel": "telegram", "body": "Hello"}),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["deliveries"][0]["estimated_cost"], "0.0010");
    let id = body["id"].as_str().unwrap().to_owned();
    let sent = until(&mut s.api, &id, |v| v["status"] == "sent");
    assert_eq!(sent["to"], "123456789");
    assert!(sent.to_string().contains("123456789:"), "{sent:#}");
    let blocked = json!({"outcome": "reject", "code": 403});
    assert_eq!(
        put(&mut s.sim, "/telegram/behaviour/987654321", &blocked),
        200
    );
    let (_, body) = send(
        &mut s.api,
        &json!({"to": "987654321", "channel": "telegram", "body": "Hello"}),
    );
    let id = body["id"].as_str().unwrap().to_owned();
    let refused = until(&mut s.api, &id, |v| v["status"] == "rejected");
    assert!(refused.to_string().contains("403"), "{refused:#}");
    let mut anyone = Client::new(&s.gw_addr);
    let update = br#"{"update_id": 1, "message": {"message_id": 1, "text": "hi"}}"#;
    let forged = anyone
        .request(
            "POST",
            "/v1/providers/Tg/webhook",
            &[("x-telegram-bot-api-secret-token", "guess")],
            Some(update),
        )
        .unwrap();
    assert_eq!(forged.status, 401);
    let real = anyone
        .request(
            "POST",
            "/v1/providers/Tg/webhook",
            &[("x-telegram-bot-api-secret-token", "telegram-secret-token")],
            Some(update),
        )
        .unwrap();
    assert_eq!(real.status, 200, "{}", real.text());
}

/// Messenger: outside the 24-hour window an untagged message is refused with the reason; a
/// tagged one goes and the page's signed delivery webhook makes it delivered.
#[test]
fn messenger_needs_a_tag_outside_the_window_and_reports_delivery() {
    let dir = TempDir::new("chat-messenger").unwrap();
    let mut s = start(&dir);
    let psid = "1254477777772919";
    let (status, body) = send(
        &mut s.api,
        &json!({"to": {"messenger": psid}, "channel": "messenger", "body": "Your order shipped"}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let refused = until(&mut s.api, &id, |v| v["status"] == "rejected");
    assert!(
        refused.to_string().contains("outside_messaging_window"),
        "{refused:#}"
    );
    let (status, body) = send(
        &mut s.api,
        &json!({"to": psid, "channel": "messenger", "body": "Your order shipped",
                "tag": "POST_PURCHASE_UPDATE"}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let done = until(&mut s.api, &id, |v| v["status"] == "delivered");
    assert_eq!(done["channel"], "messenger");
    let (status, body) = send(
        &mut s.api,
        &json!({"to": psid, "channel": "messenger", "body": "x", "tag": "WHENEVER"}),
    );
    assert_eq!(status, 422, "{body}");
}

/// `staged` stopping at a read: WhatsApp (success: read), RCS 1 s later, SMS 2 s after that.
/// The WhatsApp message is delivered at once but read only after the RCS stage started: the
/// late read ends the flow, both deliveries stay visible, and the SMS stage never starts.
#[test]
fn staged_stops_at_a_read_that_comes_after_the_next_stage_started() {
    let dir = TempDir::new("chat-staged").unwrap();
    let mut s = start(&dir);
    let phone = "+447911123458";
    let slow_read = json!({"delivered_delay_ms": 20, "read_delay_ms": 1_600});
    let path = format!("/whatsapp/behaviour/{}", phone.trim_start_matches('+'));
    assert_eq!(put(&mut s.sim, &path, &slow_read), 200);
    let never_read = json!({"delivered_delay_ms": 20, "read_delay_ms": null});
    let path = format!("/rbm/behaviour/{}", phone.replace('+', "%2B"));
    assert_eq!(put(&mut s.sim, &path, &never_read), 200);
    let started = Instant::now();
    let (status, body) = send(
        &mut s.api,
        &json!({
            "to": phone,
            "mode": "staged",
            "channels": [
                {"channel": "whatsapp", "success": "read",
                 "template": {"name": "hello_world", "language": "en_US"}},
                {"channel": "rcs", "success": "read", "delay_s": 1,
                 "body": "Your table is ready"},
                {"channel": "sms", "from": "Acme", "delay_s": 2, "body": "Your table is ready"}
            ]
        }),
    );
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["mode"], "staged");
    assert_eq!(body["deliveries"].as_array().unwrap().len(), 1, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let flow = until(&mut s.api, &id, |v| v["status"] != "running");
    assert_eq!(flow["status"], "succeeded", "{flow:#}");
    let delivery = |flow: &Value, step: usize| flow["steps"][step]["delivery"].clone();
    assert_eq!(delivery(&flow, 0)["status"], "read", "{flow:#}");
    assert!(
        delivery(&flow, 1).is_object(),
        "the RCS stage started: {flow:#}"
    );
    assert_eq!(flow["steps"][1]["delay_s"], 1);
    // Past the SMS stage's due time (about 3 s after the start): it never starts.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(started.elapsed()));
    let flow = until(&mut s.api, &id, |_| true);
    assert!(delivery(&flow, 2).is_null(), "{flow:#}");
    let rcs = until(
        &mut s.api,
        delivery(&flow, 1)["id"].as_str().unwrap(),
        |v| v["status"] == "delivered",
    );
    assert_eq!(rcs["channel"], "rcs", "both deliveries stay visible");
}

/// `smart` orders the same steps differently for two recipients with different histories:
/// one reads WhatsApp messages (WhatsApp first), the other's WhatsApp messages fail (SMS
/// first, the order given). The order and the scores are on the flow.
#[test]
fn smart_orders_channels_by_each_recipients_history() {
    let dir = TempDir::new("chat-smart").unwrap();
    let mut s = start(&dir);
    let (reader, failing) = ("+447911123461", "+447911123462");
    let path = format!("/whatsapp/behaviour/{}", failing.trim_start_matches('+'));
    assert_eq!(put(&mut s.sim, &path, &json!({"outcome": "fail"})), 200);
    for (to, end) in [(reader, "read"), (failing, "undeliverable")] {
        for _ in 0..2 {
            let (status, body) = send(
                &mut s.api,
                &json!({"to": to, "channel": "whatsapp",
                        "template": {"name": "hello_world", "language": "en_US"}}),
            );
            assert_eq!(status, 202, "{body}");
            until(&mut s.api, body["id"].as_str().unwrap(), |v| {
                v["status"] == end
            });
        }
    }
    let smart = |to: &str| {
        json!({
            "to": to,
            "mode": "smart",
            "channels": [
                {"channel": "sms", "from": "Acme", "body": "Hello", "timeout_s": 60},
                {"channel": "whatsapp", "timeout_s": 60,
                 "template": {"name": "hello_world", "language": "en_US"}}
            ]
        })
    };
    let mut flows = Vec::new();
    for to in [reader, failing] {
        let (status, body) = send(&mut s.api, &smart(to));
        assert_eq!(status, 202, "{body}");
        assert_eq!(body["mode"], "smart");
        let id = body["id"].as_str().unwrap().to_owned();
        flows.push(until(&mut s.api, &id, |v| v["status"] != "running"));
    }
    let order = |flow: &Value| -> Vec<String> {
        flow["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["channel"].as_str().unwrap().to_owned())
            .collect()
    };
    let (reads, fails) = (&flows[0], &flows[1]);
    assert_eq!(order(reads), ["whatsapp", "sms"], "{reads:#}");
    assert_eq!(order(fails), ["sms", "whatsapp"], "{fails:#}");
    let why = &reads["steps"][0]["smart"];
    assert_eq!(why["given"], 1, "{reads:#}");
    assert_eq!(why["messages"], 2);
    assert_eq!(why["delivery_rate"], 1.0);
    assert_eq!(why["read_rate"], 1.0);
    assert!(
        why["score"].as_f64().unwrap() > reads["steps"][1]["smart"]["score"].as_f64().unwrap(),
        "{reads:#}"
    );
    let why = &fails["steps"][1]["smart"];
    assert_eq!(why["given"], 1, "{fails:#}");
    assert_eq!(why["delivery_rate"], 0.0);
    assert_eq!(fails["steps"][0]["smart"]["messages"], 0);
    // Each ran as a cascade from its first step, which succeeded.
    assert_eq!(reads["status"], "succeeded", "{reads:#}");
    let first = &reads["steps"][0]["delivery"]["status"];
    assert!(first == "delivered" || first == "read", "{reads:#}");
    assert_eq!(fails["status"], "succeeded", "{fails:#}");
    assert_eq!(
        fails["steps"][0]["delivery"]["status"], "delivered",
        "{fails:#}"
    );
    assert!(fails["steps"][1]["delivery"].is_null(), "{fails:#}");
}

/// The simulator's user `from` writes `text` on `provider` (the provider POSTs its webhook).
fn user_writes(sim: &mut Client, provider: &str, from: &str, text: &str) {
    let r = sim
        .post_json(
            &format!("/{provider}/inbound"),
            &json!({"from": from, "text": text}),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Polls `GET /v1/inbound{query}` until it lists `n` messages; returns them.
fn inbound(client: &mut Client, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let v: Value = client
            .get(&format!("/v1/inbound{query}"))
            .unwrap()
            .json()
            .unwrap();
        let rows = v["data"].as_array().cloned().unwrap_or_default();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "gave up waiting for {n} inbound: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// What people send to the chat accounts reaches the tenant that owns them (`accounts`), on
/// `GET /v1/inbound` with its channel; WhatsApp free text and untagged Messenger messages are
/// refused at acceptance until the person has written (the 24-hour windows), then go; a STOP on
/// WhatsApp blocks WhatsApp to that number, not SMS.
#[test]
fn chat_inbound_reaches_the_owner_opens_windows_and_opts_out_per_channel() {
    let dir = TempDir::new("chat-inbound").unwrap();
    let mut s = start(&dir);
    let mut shop = Client::new(&s.gw_addr).with_bearer(SHOP_KEY);
    const WA_USER: &str = "447911123456";
    const PSID: &str = "1254477777772919";
    // Nobody wrote yet: both windows are closed, and the refusal says what to do instead.
    let (status, body) = send(
        &mut shop,
        &json!({"to": CAPABLE, "channel": "whatsapp", "body": "Your order shipped"}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "outside_customer_service_window", "{body}");
    assert_eq!(body["field"], "template", "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("template"),
        "{body}"
    );
    let (status, body) = send(
        &mut shop,
        &json!({"to": {"messenger": PSID}, "channel": "messenger", "body": "Hi"}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "outside_messaging_window", "{body}");
    // A template needs no window.
    let (status, body) = send(
        &mut shop,
        &json!({"to": CAPABLE, "channel": "whatsapp",
                "template": {"name": "hello_world", "language": "en_US"}}),
    );
    assert_eq!(status, 202, "{body}");

    user_writes(&mut s.sim, "whatsapp", WA_USER, "Where is my order?");
    user_writes(&mut s.sim, "messenger", PSID, "hello");
    user_writes(&mut s.sim, "rbm", CAPABLE, "Hi");
    user_writes(&mut s.sim, "telegram", "123456789", "/start");
    let rows = inbound(&mut shop, "", 4);
    let mut channels: Vec<&str> = rows.iter().filter_map(|r| r["channel"].as_str()).collect();
    channels.sort_unstable();
    assert_eq!(
        channels,
        ["messenger", "rcs", "telegram", "whatsapp"],
        "{rows:#?}"
    );
    let wa = inbound(&mut shop, "?channel=whatsapp", 1);
    assert_eq!(wa.len(), 1, "{wa:#?}");
    assert_eq!(wa[0]["from"], WA_USER);
    assert_eq!(wa[0]["carrier"], "Wa");
    assert_eq!(wa[0]["body"], "Where is my order?");
    let rcs = inbound(&mut shop, "?channel=rcs", 1);
    assert_eq!(
        (rcs[0]["from"].as_str(), rcs[0]["body"].as_str()),
        (Some(CAPABLE), Some("Hi"))
    );
    // Their events (webhook, SSE) say the channel too.
    let events = switchyard_tests::sse::collect(
        &s.gw_addr,
        SHOP_KEY,
        "/v1/events?after=evt_0",
        None,
        WAIT,
        |e| e.iter().filter(|e| e.kind == "message.inbound").count() >= 4,
    )
    .unwrap();
    let telegram = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .find(|e| e["data"]["channel"] == "telegram")
        .unwrap();
    assert_eq!(telegram["data"]["from"], "123456789", "{telegram}");
    assert_eq!(telegram["data"]["body"], "/start", "{telegram}");
    let bad = shop.get("/v1/inbound?channel=email").unwrap();
    assert_eq!(bad.status, 422);
    // The accounts are shop's: acme sees none of it.
    let theirs: Value = s.api.get("/v1/inbound").unwrap().json().unwrap();
    assert_eq!(theirs["data"], json!([]), "{theirs}");

    // The windows are open now.
    let (status, body) = send(
        &mut shop,
        &json!({"to": CAPABLE, "channel": "whatsapp", "body": "It ships today"}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    until(&mut shop, &id, |v| v["status"] == "read");
    let (status, body) = send(
        &mut shop,
        &json!({"to": {"messenger": PSID}, "channel": "messenger", "body": "Hi there"}),
    );
    assert_eq!(status, 202, "{body}");

    // STOP on WhatsApp: WhatsApp to that number is refused, SMS still goes.
    user_writes(&mut s.sim, "whatsapp", WA_USER, "STOP");
    let rows = inbound(&mut shop, "?channel=whatsapp", 2);
    assert_eq!(rows[0]["keyword"], "stop", "{rows:#?}");
    let (status, body) = send(
        &mut shop,
        &json!({"to": CAPABLE, "channel": "whatsapp",
                "template": {"name": "hello_world", "language": "en_US"}}),
    );
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "recipient_opted_out", "{body}");
    let list: Value = shop.get("/v1/opt-outs").unwrap().json().unwrap();
    assert_eq!(list["data"][0]["number"], CAPABLE, "{list}");
    assert_eq!(list["data"][0]["from"], "whatsapp:*", "{list}");
    let (status, body) = send(
        &mut shop,
        &json!({"to": CAPABLE, "from": "Shop", "body": "Your order shipped"}),
    );
    assert_eq!(status, 202, "{body}");
    // START on WhatsApp lifts it.
    user_writes(&mut s.sim, "whatsapp", WA_USER, "START");
    inbound(&mut shop, "?channel=whatsapp", 3);
    let (status, body) = send(
        &mut shop,
        &json!({"to": CAPABLE, "channel": "whatsapp", "body": "Welcome back"}),
    );
    assert_eq!(status, 202, "{body}");
}

/// Polls the simulator's `GET /stats` until `done` holds (at most [`WAIT`]); returns them.
fn sim_stats(sim: &mut Client, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v: Value = sim.get("/stats").unwrap().json().unwrap();
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "gave up waiting: {v:#}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Providers send a webhook again when they saw no answer in time: an inbound message POSTed
/// twice by each provider (the same platform id) is acknowledged both times and reaches the
/// tenant once, as a row and as an event; a Telegram STOP update repeated after the person's
/// START is acknowledged and does not opt them out again.
#[test]
fn an_inbound_message_sent_again_reaches_the_tenant_once() {
    let dir = TempDir::new("chat-resend").unwrap();
    let mut s = start(&dir);
    let mut shop = Client::new(&s.gw_addr).with_bearer(SHOP_KEY);
    const PROVIDERS: [&str; 4] = ["whatsapp", "messenger", "rbm", "telegram"];
    for (provider, from) in
        PROVIDERS
            .into_iter()
            .zip(["447911123456", "1254477777772919", CAPABLE, "123456789"])
    {
        let r = s
            .sim
            .post_json(
                &format!("/{provider}/inbound"),
                &json!({"from": from, "text": format!("hello on {provider}"), "resend": 1}),
            )
            .unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json().unwrap()["webhooks"], 2, "{provider}");
    }
    // Both copies of each were answered 2xx.
    let stats = sim_stats(&mut s.sim, |v| {
        PROVIDERS
            .iter()
            .all(|p| v["providers"][p]["events_sent"].as_u64() >= Some(2))
    });
    for p in PROVIDERS {
        assert_eq!(stats["providers"][p]["events_sent"], 2, "{p}: {stats:#}");
        assert_eq!(stats["providers"][p]["events_failed"], 0, "{p}: {stats:#}");
    }
    // The 200s went out after the commits: the rows are there, once each.
    let rows = inbound(&mut shop, "", 4);
    assert_eq!(rows.len(), 4, "{rows:#?}");
    // A later message: the events before it are the four, once each.
    user_writes(&mut s.sim, "whatsapp", "447911123456", "last one");
    let events = switchyard_tests::sse::collect(
        &s.gw_addr,
        SHOP_KEY,
        "/v1/events?after=evt_0",
        None,
        WAIT,
        |e| e.iter().any(|e| e.data.contains("last one")),
    )
    .unwrap();
    let bodies: Vec<String> = events
        .iter()
        .filter(|e| e.kind == "message.inbound")
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["data"]["body"].to_string())
        .collect();
    assert_eq!(bodies.len(), 5, "{bodies:#?}");

    // Telegram: STOP, then START; then the STOP update comes again.
    user_writes(&mut s.sim, "telegram", "123456789", "STOP");
    inbound(&mut shop, "?channel=telegram", 2);
    let list: Value = shop.get("/v1/opt-outs").unwrap().json().unwrap();
    assert_eq!(list["data"][0]["from"], "telegram:*", "{list}");
    user_writes(&mut s.sim, "telegram", "123456789", "START");
    inbound(&mut shop, "?channel=telegram", 3);
    let stats: Value = s.sim.get("/stats").unwrap().json().unwrap();
    let stop = stats["webhooks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["provider"] == "telegram" && w["body"]["message"]["text"] == "STOP")
        .unwrap_or_else(|| panic!("no STOP update: {stats:#}"));
    let again = serde_json::to_vec(&stop["body"]).unwrap();
    let r = Client::new(&s.gw_addr)
        .request(
            "POST",
            "/v1/providers/Tg/webhook",
            &[
                ("content-type", "application/json"),
                ("x-telegram-bot-api-secret-token", "telegram-secret-token"),
            ],
            Some(&again),
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let list: Value = shop.get("/v1/opt-outs").unwrap().json().unwrap();
    assert_eq!(list["data"], json!([]), "{list}");
    let (status, body) = send(
        &mut shop,
        &json!({"to": {"telegram": "123456789"}, "channel": "telegram", "body": "Welcome back"}),
    );
    assert_eq!(status, 202, "{body}");
    let rows: Value = shop
        .get("/v1/inbound?channel=telegram")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(rows["data"].as_array().unwrap().len(), 3, "{rows:#}");
}

/// A tenant opts a Telegram chat and a Messenger PSID out through `/v1/opt-outs` with their
/// channel: messages on that channel to them are refused, other channels to the same person
/// still go; the list names the channel; removing the entry lets them go again.
#[test]
fn chat_opt_outs_are_added_listed_and_removed_through_the_api() {
    let dir = TempDir::new("chat-opt-outs").unwrap();
    let mut s = start(&dir);
    const CHAT: &str = "123456789";
    const PSID: &str = "1254477777772919";
    for (number, channel) in [
        (CHAT, "telegram"),
        (PSID, "messenger"),
        (CAPABLE, "whatsapp"),
    ] {
        let r = s
            .api
            .post_json(
                "/v1/opt-outs",
                &json!({"number": number, "channel": channel}),
            )
            .unwrap();
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json().unwrap();
        assert_eq!(v["channel"], channel, "{v}");
        assert_eq!(v["from"], format!("{channel}:*"), "{v}");
    }
    let refused = [
        (
            json!({"to": {"telegram": CHAT}, "channel": "telegram", "body": "Hello"}),
            "recipient_opted_out",
        ),
        (
            json!({"to": {"messenger": PSID}, "channel": "messenger", "body": "Hello",
                   "tag": "POST_PURCHASE_UPDATE"}),
            "recipient_opted_out",
        ),
        (
            json!({"to": CAPABLE, "channel": "whatsapp",
                   "template": {"name": "hello_world", "language": "en_US"}}),
            "recipient_opted_out",
        ),
    ];
    for (body, code) in &refused {
        let (status, answer) = send(&mut s.api, body);
        assert_eq!(status, 422, "{body} → {answer}");
        assert_eq!(answer["code"], *code, "{body} → {answer}");
    }
    // The WhatsApp entry blocks WhatsApp only: SMS and RCS to the same number still go.
    let (status, answer) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "from": "Acme", "body": "By SMS"}),
    );
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "channel": "rcs", "body": "By RCS"}),
    );
    assert_eq!(status, 202, "{answer}");
    let list: Value = s.api.get("/v1/opt-outs").unwrap().json().unwrap();
    let mut entries: Vec<(String, String)> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["number"].as_str().unwrap().into(),
                e["channel"].as_str().unwrap().into(),
            )
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        [
            (CAPABLE.to_owned(), "whatsapp".to_owned()),
            (CHAT.to_owned(), "telegram".to_owned()),
            (PSID.to_owned(), "messenger".to_owned()),
        ],
        "{list:#}"
    );
    let telegram: Value = s
        .api
        .get("/v1/opt-outs?channel=telegram")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        telegram["data"].as_array().unwrap().len(),
        1,
        "{telegram:#}"
    );
    assert_eq!(telegram["data"][0]["number"], CHAT, "{telegram:#}");
    let sms: Value = s
        .api
        .get("/v1/opt-outs?channel=sms")
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(sms["data"], json!([]), "{sms:#}");
    assert_eq!(s.api.get("/v1/opt-outs?channel=email").unwrap().status, 422);
    // Addresses are checked as the channel's messages are; a chat entry names no sender.
    for bad in [
        json!({"number": "@no", "channel": "telegram"}),
        json!({"number": "not-a-psid", "channel": "messenger"}),
        json!({"number": "12345", "channel": "whatsapp"}),
        json!({"number": CHAT, "channel": "email"}),
        json!({"number": CHAT, "channel": "telegram", "from": "+15550001111"}),
    ] {
        let r = s.api.post_json("/v1/opt-outs", &bad).unwrap();
        assert_eq!(r.status, 422, "{bad} → {}", r.text());
    }
    // Removing the Telegram and Messenger entries lets their messages go again.
    for (number, channel) in [(CHAT, "telegram"), (PSID, "messenger")] {
        let path = format!("/v1/opt-outs/{number}?channel={channel}");
        let r = s.api.request("DELETE", &path, &[], None).unwrap();
        assert_eq!(r.status, 204, "{path}: {}", r.text());
        let r = s.api.request("DELETE", &path, &[], None).unwrap();
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    for (body, _) in &refused[..2] {
        let (status, answer) = send(&mut s.api, body);
        assert_eq!(status, 202, "{body} → {answer}");
    }
    let list: Value = s.api.get("/v1/opt-outs").unwrap().json().unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1, "{list:#}");
}

/// RCS with SMS fallback when the phone stays offline: the RCS step's time limit passes
/// without `delivered`, the SMS starts, and the agent message is revoked (the platform never
/// delivers it); the flow succeeds by the SMS and says so in its own event.
#[test]
fn an_rcs_step_whose_time_limit_passes_is_revoked_and_the_sms_goes() {
    let dir = TempDir::new("chat-revoke").unwrap();
    let mut s = start(&dir);
    let path = format!("/rbm/behaviour/{}", CAPABLE.replace('+', "%2B"));
    assert_eq!(
        put(
            &mut s.sim,
            &path,
            &json!({"delivered_delay_ms": null, "read_delay_ms": null})
        ),
        200
    );
    let (id, rcs_id, rcs) = rcs_step_superseded_by_sms(&mut s.api, "expired");
    assert!(rcs.to_string().contains("revoked"), "{rcs:#}");
    let stats: Value = s.sim.get("/stats").unwrap().json().unwrap();
    assert_eq!(stats["providers"]["rbm"]["revoked"], 1, "{stats:#}");
    let deleted = stats["received"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == "DELETE")
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        deleted["path"],
        format!("/v1/phones/{CAPABLE}/agentMessages/{rcs_id}"),
        "{stats:#}"
    );
    // Every delivery's events name the flow and step; the flow's outcome is one event of its
    // own, naming the step that succeeded.
    let events = switchyard_tests::sse::collect(
        &s.gw_addr,
        KEY,
        "/v1/events?after=evt_0",
        None,
        WAIT,
        |e| e.iter().any(|e| e.kind == "message.flow_succeeded"),
    )
    .unwrap();
    let flow_events: Vec<Value> = events
        .iter()
        .filter(|e| e.kind == "message.flow_succeeded" || e.kind == "message.flow_failed")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    assert_eq!(flow_events.len(), 1, "{events:#?}");
    assert_eq!(flow_events[0]["data"]["message_id"], id.as_str());
    assert_eq!(flow_events[0]["data"]["flow"]["step"], 1);
    let sms_delivered = events
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .find(|e| e["type"] == "message.delivered")
        .unwrap();
    assert_eq!(sms_delivered["data"]["flow"]["step"], 1, "{sms_delivered}");
}

/// An RCS step whose message the gateway still holds when its time limit passes (the agent
/// throttled the first attempt and the gateway waits out the pause) is withdrawn when the SMS
/// starts: `cancelled`, never sent to the platform, even once the pause is over.
#[test]
fn an_rcs_step_still_queued_when_superseded_is_withdrawn_and_never_sent() {
    let dir = TempDir::new("chat-withdraw").unwrap();
    let mut s = start(&dir);
    let path = format!("/rbm/behaviour/{}", CAPABLE.replace('+', "%2B"));
    assert_eq!(
        put(
            &mut s.sim,
            &path,
            &json!({"outcome": "throttle", "retry_after_s": 4})
        ),
        200
    );
    let (_, rcs_id, rcs) = rcs_step_superseded_by_sms(&mut s.api, "cancelled");
    assert!(rcs.to_string().contains("withdrawn"), "{rcs:#}");
    // The pause ends: another RCS message to the phone goes, the withdrawn one does not.
    assert_eq!(put(&mut s.sim, &path, &json!({})), 200);
    let (status, body) = send(
        &mut s.api,
        &json!({"to": CAPABLE, "channel": "rcs", "body": "Still there?"}),
    );
    assert_eq!(status, 202, "{body}");
    let later = body["id"].as_str().unwrap().to_owned();
    until(&mut s.api, &later, |v| {
        v["status"] == "delivered" || v["status"] == "read"
    });
    let stats: Value = s.sim.get("/stats").unwrap().json().unwrap();
    assert_eq!(stats["providers"]["rbm"]["accepted"], 1, "{stats:#}");
    let taken = |id: &str| {
        stats["received"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| {
                r["method"] == "POST" && r["query"]["messageId"] == id && r["status"] == 200
            })
            .count()
    };
    assert_eq!(taken(&rcs_id), 0, "{stats:#}");
    assert_eq!(taken(&later), 1, "{stats:#}");
    let rcs = until(&mut s.api, &rcs_id, |_| true);
    assert_eq!(rcs["status"], "cancelled", "{rcs:#}");
}

/// A batch with `mode` and `channels`: each recipient gets the flow (its body rendered with
/// its variables): RCS for the capable phone, SMS fallback for the other; a recipient whose
/// flow cannot start is listed as rejected; the batch counts its first deliveries.
#[test]
fn a_batch_of_flows_gives_each_recipient_the_flow() {
    let dir = TempDir::new("chat-batch-flows").unwrap();
    let mut s = start(&dir);
    let path = format!("/rbm/behaviour/{}", NOT_CAPABLE.replace('+', "%2B"));
    assert_eq!(put(&mut s.sim, &path, &json!({"capable": false})), 200);
    let r = s
        .api
        .post_json(
            "/v1/messages/batch",
            &json!({
                "mode": "cascade",
                "body": "Hello {{name}}",
                "channels": [
                    {"channel": "rcs", "timeout_s": 30},
                    {"channel": "sms", "from": "Acme"}
                ],
                "recipients": [
                    {"to": CAPABLE, "variables": {"name": "Ana"}},
                    {"to": {"phone": NOT_CAPABLE}, "variables": {"name": "Bo"}},
                    {"to": "not a number", "variables": {"name": "Cy"}},
                    {"to": CAPABLE}
                ]
            }),
        )
        .unwrap();
    let body: Value = r.json().unwrap();
    assert_eq!(r.status, 202, "{body}");
    assert_eq!(
        (body["recipients"].as_u64(), body["accepted"].as_u64()),
        (Some(4), Some(2)),
        "{body}"
    );
    let rejected: Vec<(u64, &str)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["index"].as_u64().unwrap(), r["code"].as_str().unwrap()))
        .collect();
    assert_eq!(rejected[0].0, 2, "{body}");
    assert_eq!(rejected[1], (3, "missing_variable"), "{body}");
    let flow = |i: usize| body["messages"][i]["id"].as_str().unwrap().to_owned();
    let ana = until(&mut s.api, &flow(0), |v| v["status"] == "succeeded");
    assert_eq!(ana["mode"], "cascade");
    let rcs = ana["steps"][0]["delivery"]["status"]
        .as_str()
        .unwrap_or_default();
    assert!(rcs == "delivered" || rcs == "read", "{ana:#}");
    let bo = until(&mut s.api, &flow(1), |v| v["status"] == "succeeded");
    assert_eq!(bo["steps"][0]["delivery"]["status"], "rejected", "{bo:#}");
    assert_eq!(bo["steps"][1]["delivery"]["status"], "delivered", "{bo:#}");
    // Each recipient's own text went to the agent.
    let stats: Value = s.sim.get("/stats").unwrap().json().unwrap();
    assert!(stats.to_string().contains("Hello Ana"), "{stats:#}");
    let batch: Value = s
        .api
        .get(&format!("/v1/batches/{}", body["id"].as_str().unwrap()))
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(batch["accepted"], 2, "{batch}");
}
