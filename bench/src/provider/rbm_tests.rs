use std::time::{Duration, SystemTime};

use base64::Engine as _;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

use super::*;
use crate::provider::exchange::{Inbound, Request, Verdict};
use crate::provider::script::{Behaviour, Outcome};
use crate::provider::shape::{assert_conforms, fixture};
use crate::provider::sign;

const PHONE: &str = "+12223334444";

/// 2029-12-31T12:00:00Z: the rich-card fixture's `expireTime` is 12 hours later.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_893_412_800)
}

fn request(method: &str, path: &str, query: &[(&str, &str)], body: Option<&Value>) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        query: query
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        headers: vec![("authorization".into(), "Bearer rbm-access-token".into())],
        body: body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default(),
    }
}

fn create(id: &str, body: &Value) -> Request {
    request(
        "POST",
        &format!("/v1/phones/{PHONE}/agentMessages"),
        &[("messageId", id), ("agentId", "switchyard-sim-agent")],
        Some(body),
    )
}

fn revoke_req(id: &str) -> Request {
    request(
        "DELETE",
        &format!("/v1/phones/{PHONE}/agentMessages/{id}"),
        &[("agentId", "switchyard-sim-agent")],
        None,
    )
}

/// Fires the event of `s`, returning the push body, the decoded event and the webhook.
fn fire_one(state: &mut State, rng: &mut StdRng, s: &Scheduled) -> Option<(Value, Value, Webhook)> {
    let Action::Rbm(e) = &s.action else { panic!() };
    let w = fire(state, rng, e, now() + s.after)?;
    let push: Value = serde_json::from_slice(&w.body).unwrap();
    let data = base64::engine::general_purpose::STANDARD
        .decode(push["message"]["data"].as_str().unwrap())
        .unwrap();
    assert!(sign::rbm_verify("rbm-client-token", &data, &w.headers[0].1));
    assert!(!sign::rbm_verify("wrong-token", &data, &w.headers[0].1));
    Some((push, serde_json::from_slice(&data).unwrap(), w))
}

#[test]
fn capability_check() {
    let mut state = State::default();
    let q = [
        ("requestId", "5d1b3a40-0a3a-4c8b-9d5e-7b1f0e0b7c11"),
        ("agentId", "switchyard-sim-agent"),
    ];
    let path = format!("/v1/phones/{PHONE}/capabilities");
    let reply = handle(&mut state, &request("GET", &path, &q, None), now());
    assert_eq!(reply.status, 200);
    assert_conforms(&reply.body, &fixture("rbm/capabilities_response.json"), &[]);
    state.script.recipients.insert(
        PHONE.into(),
        Behaviour {
            capable: false,
            ..Behaviour::default()
        },
    );
    let reply = handle(&mut state, &request("GET", &path, &q, None), now());
    assert_eq!(reply.status, 404);
    assert_eq!(reply.body, fixture("rbm/error_not_found.json"));
    assert_eq!(reply.verdict, Verdict::Refused("NOT_FOUND".into()));
}

#[test]
fn text_is_delivered_and_read_and_then_cannot_expire_or_be_revoked() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(5);
    let reply = handle(
        &mut state,
        &create("m1", &fixture("rbm/agent_message_text_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_conforms(
        &reply.body,
        &fixture("rbm/agent_message_response.json"),
        &[],
    );
    assert_eq!(
        reply.body["name"],
        format!("phones/{PHONE}/agentMessages/m1")
    );
    let kinds: Vec<_> = reply
        .scheduled
        .iter()
        .map(|s| match &s.action {
            Action::Rbm(Event::Status { kind, .. }) => *kind,
            _ => panic!(),
        })
        .collect();
    assert_eq!(kinds, [Kind::Delivered, Kind::Read, Kind::Expired]);

    let (push, event, w) = fire_one(&mut state, &mut rng, &reply.scheduled[0]).unwrap();
    assert_conforms(&push, &fixture("rbm/pubsub_push.json"), &[]);
    assert_conforms(&event, &fixture("rbm/event_delivered.json"), &[]);
    assert_eq!(
        (event["eventType"].clone(), event["messageId"].clone()),
        (json!("DELIVERED"), json!("m1"))
    );
    assert_eq!(w.kind, "DELIVERED");
    let (_, event, _) = fire_one(&mut state, &mut rng, &reply.scheduled[1]).unwrap();
    assert_conforms(&event, &fixture("rbm/event_read.json"), &[]);
    assert!(
        fire_one(&mut state, &mut rng, &reply.scheduled[2]).is_none(),
        "delivered: no expiry"
    );

    let reply = handle(&mut state, &revoke_req("m1"), now());
    assert_eq!(reply.status, 404, "delivered messages cannot be revoked");
    assert_eq!(reply.body, fixture("rbm/error_not_found.json"));
}

#[test]
fn undelivered_message_expires_at_its_ttl() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(5);
    state.script.default = Behaviour {
        delivered_delay_ms: None,
        read_delay_ms: None,
        ..Behaviour::default()
    };
    let mut body = fixture("rbm/agent_message_text_request.json");
    body["ttl"] = json!("1.5s");
    let reply = handle(&mut state, &create("m2", &body), now());
    assert_eq!(reply.status, 200);
    assert_eq!(reply.scheduled.len(), 1);
    assert_eq!(reply.scheduled[0].after, Duration::from_millis(1500));
    let (_, event, w) = fire_one(&mut state, &mut rng, &reply.scheduled[0]).unwrap();
    assert_conforms(&event, &fixture("rbm/event_ttl_revoked.json"), &[]);
    assert_eq!(w.kind, "TTL_EXPIRATION_REVOKED");
    assert_eq!(handle(&mut state, &revoke_req("m2"), now()).status, 404);
}

#[test]
fn revoked_message_is_never_delivered() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(5);
    let reply = handle(
        &mut state,
        &create("m3", &fixture("rbm/agent_message_rich_card_request.json")),
        now(),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(
        reply.scheduled.last().unwrap().after,
        Duration::from_secs(12 * 3600)
    );
    let revoked = handle(&mut state, &revoke_req("m3"), now());
    assert_eq!((revoked.status, revoked.body.clone()), (200, json!({})));
    for s in &reply.scheduled {
        assert!(fire_one(&mut state, &mut rng, s).is_none());
    }
    assert_eq!(
        handle(&mut state, &revoke_req("unknown"), now()).status,
        404
    );
}

#[test]
fn duplicate_message_id_is_answered_not_resent() {
    let mut state = State::default();
    let body = fixture("rbm/agent_message_text_request.json");
    let first = handle(&mut state, &create("dup", &body), now());
    let again = handle(
        &mut state,
        &create("dup", &body),
        now() + Duration::from_secs(5),
    );
    assert_eq!(again.status, 200);
    assert_eq!(again.body, first.body);
    assert_eq!(again.verdict, Verdict::Duplicate);
    assert!(again.scheduled.is_empty());
}

#[test]
fn errors() {
    let mut state = State::default();
    let body = fixture("rbm/agent_message_text_request.json");
    let mut r = create("e1", &body);
    r.headers.clear();
    let reply = handle(&mut state, &r, now());
    assert_eq!(
        (reply.status, reply.body["error"]["status"].clone()),
        (401, json!("UNAUTHENTICATED"))
    );
    assert_conforms(&reply.body, &fixture("rbm/error_not_found.json"), &[]);

    let r = request(
        "POST",
        &format!("/v1/phones/{PHONE}/agentMessages"),
        &[("messageId", "e2")],
        Some(&body),
    );
    assert_eq!(handle(&mut state, &r, now()).status, 400);
    let r = request(
        "POST",
        &format!("/v1/phones/{PHONE}/agentMessages"),
        &[("agentId", "switchyard-sim-agent")],
        Some(&body),
    );
    assert_eq!(handle(&mut state, &r, now()).status, 400);
    let r = request(
        "POST",
        "/v1/phones/12223334444/agentMessages",
        &[("messageId", "e3"), ("agentId", "switchyard-sim-agent")],
        Some(&body),
    );
    assert_eq!(handle(&mut state, &r, now()).status, 400);

    for bad in [
        json!({}),
        json!({"contentMessage": {}}),
        json!({"contentMessage": {"text": ""}}),
        json!({"contentMessage": {"text": "x".repeat(3073)}}),
        json!({"contentMessage": {"text": "x", "richCard": {"standaloneCard": {}}}}),
        json!({"contentMessage": {"richCard": {}}}),
        json!({"contentMessage": {"text": "x"}, "ttl": "10s", "expireTime": "2030-01-01T00:00:00Z"}),
        json!({"contentMessage": {"text": "x"}, "ttl": "ten seconds"}),
        json!({"contentMessage": {"text": "x"}, "ttl": "1296001s"}),
        json!({"contentMessage": {"text": "x", "suggestions": vec![json!({"reply": {"text": "a", "postbackData": "a"}}); 12]}}),
    ] {
        let reply = handle(&mut state, &create("bad", &bad), now());
        assert_eq!(
            (reply.status, reply.body["error"]["status"].clone()),
            (400, json!("INVALID_ARGUMENT")),
            "{bad}"
        );
    }

    for (b, http, status) in [
        (
            Behaviour {
                capable: false,
                ..Behaviour::default()
            },
            404,
            "NOT_FOUND",
        ),
        (
            Behaviour {
                outcome: Outcome::Throttle,
                ..Behaviour::default()
            },
            429,
            "RESOURCE_EXHAUSTED",
        ),
        (
            Behaviour {
                outcome: Outcome::Transient,
                ..Behaviour::default()
            },
            503,
            "UNAVAILABLE",
        ),
        (
            Behaviour {
                outcome: Outcome::BadCredentials,
                ..Behaviour::default()
            },
            401,
            "UNAUTHENTICATED",
        ),
        (
            Behaviour {
                outcome: Outcome::Reject,
                ..Behaviour::default()
            },
            400,
            "INVALID_ARGUMENT",
        ),
    ] {
        state.script.default = b;
        let reply = handle(&mut state, &create("s1", &body), now());
        assert_eq!(
            (reply.status, reply.body["error"]["status"].clone()),
            (http, json!(status))
        );
    }
}

#[test]
fn user_message_webhook() {
    let mut state = State::default();
    let mut rng = StdRng::seed_from_u64(5);
    let msg: Inbound = serde_json::from_value(json!({"from": PHONE, "text": "Hi"})).unwrap();
    let scheduled = inbound(&mut rng, &msg, now());
    let (push, event, w) = fire_one(&mut state, &mut rng, &scheduled[0]).unwrap();
    assert_conforms(&push, &fixture("rbm/pubsub_push.json"), &[]);
    assert_conforms(&event, &fixture("rbm/user_message.json"), &[]);
    assert_eq!(
        (w.kind.as_str(), event["text"].clone()),
        ("message", json!("Hi"))
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("3.5s"), Some(Duration::from_millis(3500)));
    assert_eq!(parse_duration("10"), None);
    assert_eq!(parse_duration("-1s"), None);
}
