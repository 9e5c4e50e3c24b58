use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use super::*;
use crate::provider::exchange::{Inbound, Request, Verdict};
use crate::provider::script::{Behaviour, Outcome};
use crate::provider::shape::{assert_conforms, fixture};
use crate::provider::sign;

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn send(token: &str, body: &Value) -> Request {
    Request {
        method: "POST".into(),
        path: format!("/bot{token}/sendMessage"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::to_vec(body).unwrap(),
        ..Request::default()
    }
}

const TOKEN: &str = "123456:ABC-DEF1234ghIkl-zyx57W2v1u123ew11";

#[test]
fn documented_request_is_answered_with_a_message() {
    let mut state = State::default();
    let reply = handle(
        &mut state,
        &send(TOKEN, &fixture("telegram/sendmessage_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_conforms(
        &reply.body,
        &fixture("telegram/sendmessage_response.json"),
        &[],
    );
    assert_eq!(reply.body["result"]["from"]["id"], 123456);
    assert_eq!(reply.body["result"]["chat"]["id"], 123456789);
    assert_eq!(
        reply.verdict,
        Verdict::Accepted {
            message_id: "1".into()
        }
    );
    assert!(reply.scheduled.is_empty(), "Telegram has no receipts");
}

#[test]
fn errors_have_the_documented_shape() {
    let mut state = State::default();
    let body = fixture("telegram/sendmessage_request.json");
    let reply = handle(&mut state, &send("1:wrong", &body), now());
    assert_eq!(reply.status, 401);
    assert_eq!(reply.body, fixture("telegram/error_unauthorized.json"));

    let cases = [
        (Outcome::Reject, Some(403), "telegram/error_blocked.json"),
        (
            Outcome::Reject,
            Some(400),
            "telegram/error_chat_not_found.json",
        ),
        (
            Outcome::BadCredentials,
            None,
            "telegram/error_unauthorized.json",
        ),
    ];
    for (outcome, code, file) in cases {
        state.script.default = Behaviour {
            outcome,
            code,
            ..Behaviour::default()
        };
        let reply = handle(&mut state, &send(TOKEN, &body), now());
        assert_eq!(reply.body, fixture(file), "{outcome:?}");
    }
    state.script.recipients.insert(
        "123456789".into(),
        Behaviour {
            outcome: Outcome::Throttle,
            retry_after_s: 5,
            ..Behaviour::default()
        },
    );
    let reply = handle(&mut state, &send(TOKEN, &body), now());
    assert_eq!(reply.status, 429);
    assert_eq!(reply.body, fixture("telegram/error_too_many_requests.json"));
}

#[test]
fn parameters_are_checked() {
    let mut state = State::default();
    for body in [
        json!({"text": "x"}),
        json!({"chat_id": 1}),
        json!({"chat_id": 1, "text": ""}),
        json!({"chat_id": 1, "text": "x".repeat(4097)}),
        json!({"chat_id": 1, "text": "x", "parse_mode": "BBCode"}),
    ] {
        let reply = handle(&mut state, &send(TOKEN, &body), now());
        assert_eq!(reply.status, 400, "{body}");
        assert_eq!(reply.body["ok"], false);
    }
    let mut r = send(TOKEN, &json!({}));
    r.path = format!("/bot{TOKEN}/getMe");
    assert_eq!(handle(&mut state, &r, now()).status, 404);
    // Forms and channel usernames.
    let mut r = send(TOKEN, &json!({}));
    r.body = b"chat_id=%40news&text=hello+there".to_vec();
    let reply = handle(&mut state, &r, now());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["result"]["chat"]["type"], "channel");
    assert_eq!(reply.body["result"]["text"], "hello there");
}

#[test]
fn known_chats_only_needs_an_inbound_first() {
    let mut state = State::default();
    state.config.known_chats_only = true;
    let body = json!({"chat_id": 555, "text": "hi"});
    let reply = handle(&mut state, &send(TOKEN, &body), now());
    assert_eq!(reply.body, fixture("telegram/error_chat_not_found.json"));
    let msg: Inbound =
        serde_json::from_value(json!({"from": "555", "name": "Ann", "text": "/start"})).unwrap();
    let scheduled = inbound(&mut state, &msg, now()).unwrap();
    let reply = handle(&mut state, &send(TOKEN, &body), now());
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body["result"]["chat"]["first_name"], "Ann");

    let Action::Telegram(e) = &scheduled[0].action else {
        panic!()
    };
    let w = fire(&state, e);
    let update: Value = serde_json::from_slice(&w.body).unwrap();
    assert_conforms(&update, &fixture("telegram/update_message.json"), &[]);
    assert_eq!(update["message"]["text"], "/start");
    assert_eq!(
        w.headers,
        vec![(
            sign::TELEGRAM_HEADER.to_owned(),
            "telegram-secret-token".to_owned()
        )]
    );

    let bad: Inbound = serde_json::from_value(json!({"from": "@someone"})).unwrap();
    assert!(inbound(&mut state, &bad, now()).is_err());
}
