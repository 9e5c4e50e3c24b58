use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::*;
use crate::provider::exchange::{Inbound, Request, Scheduled, Verdict};
use crate::provider::script::{Behaviour, Outcome};
use crate::provider::shape::{assert_conforms, fixture};
use crate::provider::sign;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn send(body: &Value) -> Request {
    Request {
        method: "POST".into(),
        path: "/v23.0/106540352242922/messages".into(),
        headers: vec![("authorization".into(), "Bearer whatsapp-token".into())],
        body: serde_json::to_vec(body).unwrap(),
        ..Request::default()
    }
}

fn setup() -> (State, StdRng) {
    (State::default(), StdRng::seed_from_u64(7))
}

fn open_window(state: &mut State, rng: &mut StdRng, user: &str, age_s: u64) -> Vec<Scheduled> {
    let msg: Inbound =
        serde_json::from_value(json!({"from": user, "text": "hi", "age_s": age_s})).unwrap();
    inbound(state, rng, &msg, now())
}

fn statuses(state: &State, reply: &Reply) -> Vec<(Duration, Value, Webhook)> {
    reply
        .scheduled
        .iter()
        .map(|s| {
            let Action::Whatsapp(e) = &s.action else {
                panic!("not a WhatsApp event")
            };
            let w = fire(state, e, now() + s.after);
            (s.after, serde_json::from_slice(&w.body).unwrap(), w)
        })
        .collect()
}

#[test]
fn documented_text_in_the_window_is_sent_delivered_and_read() {
    let (mut state, mut rng) = setup();
    open_window(&mut state, &mut rng, "16505551234", 3600);
    let reply = handle(
        &mut state,
        &mut rng,
        &send(&fixture("whatsapp/send_text_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_conforms(&reply.body, &fixture("whatsapp/send_response.json"), &[]);
    let wamid = reply.body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert!(wamid.starts_with("wamid."));
    assert_eq!(
        reply.verdict,
        Verdict::Accepted {
            message_id: wamid.clone()
        }
    );
    let events = statuses(&state, &reply);
    let kinds: Vec<_> = events
        .iter()
        .map(|(_, b, _)| b["entry"][0]["changes"][0]["value"]["statuses"][0]["status"].clone())
        .collect();
    assert_eq!(kinds, [json!("sent"), json!("delivered"), json!("read")]);
    for (_, body, w) in &events {
        assert_conforms(
            body,
            &fixture("whatsapp/webhook_status_sent.json"),
            &["conversation", "pricing"],
        );
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["id"], json!(wamid));
        assert_eq!(status["recipient_id"], "16505551234");
        let (name, sig) = &w.headers[0];
        assert_eq!(name, sign::META_HEADER);
        assert!(sign::meta_verify("whatsapp-app-secret", &w.body, sig));
    }
}

#[test]
fn text_outside_the_window_is_accepted_then_fails_with_131047() {
    let (mut state, mut rng) = setup();
    // Never wrote, then wrote 24 h and 1 s ago: both outside.
    for age in [None, Some(86_401)] {
        if let Some(age) = age {
            open_window(&mut state, &mut rng, "16505551234", age);
        }
        let reply = handle(
            &mut state,
            &mut rng,
            &send(&fixture("whatsapp/send_text_request.json")),
            now(),
        );
        assert_eq!(reply.status, 200);
        let events = statuses(&state, &reply);
        assert_eq!(events.len(), 1);
        let body = &events[0].1;
        assert_conforms(body, &fixture("whatsapp/webhook_status_failed.json"), &[]);
        let status = &body["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["status"], "failed");
        assert_eq!(status["errors"][0]["code"], 131047);
    }
}

#[test]
fn templates_are_allowed_outside_the_window() {
    let (mut state, mut rng) = setup();
    let reply = handle(
        &mut state,
        &mut rng,
        &send(&fixture("whatsapp/send_template_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.scheduled.len(), 3);
}

#[test]
fn unknown_template_is_132001() {
    let (mut state, mut rng) = setup();
    let mut body = fixture("whatsapp/send_template_request.json");
    body["template"]["name"] = json!("no_such_template");
    let reply = handle(&mut state, &mut rng, &send(&body), now());
    assert_eq!(reply.status, 404);
    assert_conforms(
        &reply.body,
        &fixture("whatsapp/error_response.json"),
        &["error_subcode"],
    );
    assert_eq!(reply.body["error"]["code"], 132001);
    assert_eq!(reply.verdict, Verdict::Refused("132001".into()));
}

#[test]
fn credentials_path_and_body_are_checked() {
    let (mut state, mut rng) = setup();
    let good = fixture("whatsapp/send_text_request.json");
    let mut r = send(&good);
    r.headers = vec![("authorization".into(), "Bearer wrong".into())];
    let reply = handle(&mut state, &mut rng, &r, now());
    assert_eq!(
        (reply.status, reply.body["error"]["code"].clone()),
        (401, json!(190))
    );
    assert_conforms(
        &reply.body,
        &fixture("whatsapp/error_response.json"),
        &["error_subcode", "error_data"],
    );

    let mut r = send(&good);
    r.path = "/v23.0/999/messages".into();
    let reply = handle(&mut state, &mut rng, &r, now());
    assert_eq!(
        (reply.status, reply.body["error"]["error_subcode"].clone()),
        (400, json!(33))
    );

    let cases = [
        json!({"to": "1", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "type": "text", "text": {"body": "x"}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": ""}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "text", "text": {"body": "x".repeat(4097)}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "template", "template": {"name": "hello_world"}}),
        json!({"messaging_product": "whatsapp", "to": "1", "type": "image", "image": {"id": "1"}}),
    ];
    for body in cases {
        let reply = handle(&mut state, &mut rng, &send(&body), now());
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.body["error"]["code"], 100, "{body}");
    }
}

#[test]
fn scripted_outcomes() {
    let (mut state, mut rng) = setup();
    open_window(&mut state, &mut rng, "16505551234", 0);
    let body = fixture("whatsapp/send_text_request.json");
    let cases = [
        (Outcome::Reject, Some(131026), 400, 131026),
        (Outcome::Reject, Some(131056), 400, 131056),
        (Outcome::Throttle, None, 400, 130429),
        (Outcome::Transient, None, 500, 131000),
        (Outcome::BadCredentials, None, 401, 190),
    ];
    for (outcome, code, http, expected) in cases {
        state.script.default = Behaviour {
            outcome,
            code,
            response_delay_ms: 250,
            ..Behaviour::default()
        };
        let reply = handle(&mut state, &mut rng, &send(&body), now());
        assert_eq!(reply.status, http, "{outcome:?}");
        assert_eq!(reply.body["error"]["code"], expected, "{outcome:?}");
        assert_eq!(reply.delay, Duration::from_millis(250));
        assert!(reply.scheduled.is_empty());
    }
    // Per recipient: fail is accepted, then reported failed.
    state.script.default = Behaviour::default();
    state.script.recipients.insert(
        "16505551234".into(),
        Behaviour {
            outcome: Outcome::Fail,
            ..Behaviour::default()
        },
    );
    let reply = handle(&mut state, &mut rng, &send(&body), now());
    assert_eq!(reply.status, 200);
    let events = statuses(&state, &reply);
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].1["entry"][0]["changes"][0]["value"]["statuses"][0]["errors"][0]["code"],
        131026
    );
}

#[test]
fn delays_and_no_read() {
    let (mut state, mut rng) = setup();
    open_window(&mut state, &mut rng, "16505551234", 0);
    state.script.default = Behaviour {
        sent_delay_ms: 5,
        delivered_delay_ms: Some(100),
        read_delay_ms: None,
        ..Behaviour::default()
    };
    let reply = handle(
        &mut state,
        &mut rng,
        &send(&fixture("whatsapp/send_text_request.json")),
        now(),
    );
    let afters: Vec<_> = reply
        .scheduled
        .iter()
        .map(|s| s.after.as_millis())
        .collect();
    assert_eq!(afters, [5, 100]);
}

#[test]
fn inbound_has_the_documented_envelope_and_signature() {
    let (mut state, mut rng) = setup();
    let scheduled = open_window(&mut state, &mut rng, "+1 650 555 1234", 0);
    assert!(state.windows.contains_key("16505551234"));
    let Action::Whatsapp(e) = &scheduled[0].action else {
        panic!()
    };
    let w = fire(&state, e, now());
    let body: Value = serde_json::from_slice(&w.body).unwrap();
    assert_conforms(&body, &fixture("whatsapp/webhook_inbound_text.json"), &[]);
    assert_eq!(
        body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"],
        "hi"
    );
    assert!(sign::meta_verify(
        "whatsapp-app-secret",
        &w.body,
        &w.headers[0].1
    ));
    assert!(!sign::meta_verify("other-secret", &w.body, &w.headers[0].1));
}
