use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::*;
use crate::provider::exchange::{Inbound, Request, Verdict};
use crate::provider::script::{Behaviour, Outcome};
use crate::provider::shape::{assert_conforms, fixture};
use crate::provider::sign;

const PSID: &str = "1254477777772919";

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

fn send(body: &Value) -> Request {
    Request {
        method: "POST".into(),
        path: "/v23.0/me/messages".into(),
        query: vec![("access_token".into(), "messenger-page-token".into())],
        body: serde_json::to_vec(body).unwrap(),
        ..Request::default()
    }
}

fn user_wrote(state: &mut State, rng: &mut StdRng, age_s: u64) -> Vec<Scheduled> {
    let msg: Inbound = serde_json::from_value(json!({"from": PSID, "age_s": age_s})).unwrap();
    inbound(state, rng, &msg, now())
}

#[test]
fn response_in_the_window_is_delivered_and_read() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(3);
    user_wrote(&mut state, &mut rng, 60);
    let reply = handle(
        &mut state,
        &mut rng,
        &send(&fixture("messenger/send_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_conforms(&reply.body, &fixture("messenger/send_response.json"), &[]);
    let mid = reply.body["message_id"].as_str().unwrap().to_owned();
    assert!(matches!(&reply.verdict, Verdict::Accepted { message_id } if *message_id == mid));
    let files = [
        "messenger/webhook_delivery.json",
        "messenger/webhook_read.json",
    ];
    assert_eq!(reply.scheduled.len(), 2);
    for (s, file) in reply.scheduled.iter().zip(files) {
        let Action::Messenger(e) = &s.action else {
            panic!()
        };
        let w = fire(&state, e, now() + s.after);
        let body: Value = serde_json::from_slice(&w.body).unwrap();
        assert_conforms(&body, &fixture(file), &[]);
        assert!(sign::meta_verify(
            "messenger-app-secret",
            &w.body,
            &w.headers[0].1
        ));
    }
    let Action::Messenger(Event::Delivery { mid: delivered, .. }) = &reply.scheduled[0].action
    else {
        panic!()
    };
    assert_eq!(*delivered, mid);
}

#[test]
fn outside_the_window_only_tags_pass() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(3);
    let reply = handle(
        &mut state,
        &mut rng,
        &send(&fixture("messenger/send_request.json")),
        now(),
    );
    assert_eq!(reply.status, 400);
    assert_conforms(
        &reply.body,
        &fixture("messenger/error_outside_window.json"),
        &[],
    );
    assert_eq!(reply.verdict, Verdict::Refused("10/2018278".into()));

    let reply = handle(
        &mut state,
        &mut rng,
        &send(&fixture("messenger/send_tag_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    // HUMAN_AGENT: 7 days.
    let mut human = fixture("messenger/send_tag_request.json");
    human["tag"] = json!("HUMAN_AGENT");
    user_wrote(&mut state, &mut rng, 2 * 86_400);
    assert_eq!(
        handle(&mut state, &mut rng, &send(&human), now()).status,
        200
    );
    assert_eq!(
        handle(
            &mut state,
            &mut rng,
            &send(&fixture("messenger/send_request.json")),
            now()
        )
        .status,
        400
    );
    state.windows.clear();
    user_wrote(&mut state, &mut rng, 8 * 86_400);
    assert_eq!(
        handle(&mut state, &mut rng, &send(&human), now()).status,
        400
    );
}

#[test]
fn credentials_and_parameters() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(3);
    user_wrote(&mut state, &mut rng, 0);
    let body = fixture("messenger/send_request.json");
    let mut r = send(&body);
    r.query.clear();
    let reply = handle(&mut state, &mut rng, &r, now());
    assert_eq!(reply.status, 401);
    assert_conforms(
        &reply.body,
        &fixture("messenger/error_invalid_token.json"),
        &["error_subcode"],
    );
    r.headers = vec![("authorization".into(), "Bearer messenger-page-token".into())];
    assert_eq!(handle(&mut state, &mut rng, &r, now()).status, 200);

    for bad in [
        json!({"messaging_type": "RESPONSE", "message": {"text": "x"}}),
        json!({"recipient": {"id": PSID}, "message": {"text": "x"}}),
        json!({"recipient": {"id": PSID}, "messaging_type": "PROMO", "message": {"text": "x"}}),
        json!({"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "message": {"text": "x"}}),
        json!({"recipient": {"id": PSID}, "messaging_type": "MESSAGE_TAG", "tag": "SALE", "message": {"text": "x"}}),
        json!({"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": "x".repeat(2001)}}),
    ] {
        let reply = handle(&mut state, &mut rng, &send(&bad), now());
        assert_eq!(
            (reply.status, reply.body["error"]["code"].clone()),
            (400, json!(100)),
            "{bad}"
        );
    }
}

#[test]
fn scripted_outcomes() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(3);
    user_wrote(&mut state, &mut rng, 0);
    let body = fixture("messenger/send_request.json");
    for (outcome, http, code) in [
        (Outcome::Reject, 400, 551),
        (Outcome::Throttle, 400, 613),
        (Outcome::Transient, 500, 2),
        (Outcome::BadCredentials, 401, 190),
    ] {
        state.script.default = Behaviour {
            outcome,
            ..Behaviour::default()
        };
        let reply = handle(&mut state, &mut rng, &send(&body), now());
        assert_eq!(
            (reply.status, reply.body["error"]["code"].clone()),
            (http, json!(code))
        );
    }
    state.script.default = Behaviour {
        outcome: Outcome::Fail,
        ..Behaviour::default()
    };
    let reply = handle(&mut state, &mut rng, &send(&body), now());
    assert_eq!(reply.status, 200);
    assert!(
        reply.scheduled.is_empty(),
        "no failure event exists; never delivered"
    );
}

#[test]
fn inbound_message_webhook() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(3);
    let scheduled = user_wrote(&mut state, &mut rng, 0);
    let Action::Messenger(e) = &scheduled[0].action else {
        panic!()
    };
    let w = fire(&state, e, now());
    let body: Value = serde_json::from_slice(&w.body).unwrap();
    assert_conforms(&body, &fixture("messenger/webhook_message.json"), &[]);
    assert_eq!(body["entry"][0]["messaging"][0]["message"]["text"], "hello");
}
