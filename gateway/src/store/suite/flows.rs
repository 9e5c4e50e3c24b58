//! Flows: a flow written with its first delivery in one commit, read back with its
//! deliveries by step, skipped steps and its end; running flows are what a restart reads; a
//! recipient's history, which orders a `smart` flow.

use std::sync::Arc;

use super::fixtures::{message, status_at};
use super::Harness;
use crate::domain::{
    now_ms, FlowLink, FlowMode, FlowRecord, FlowState, FlowStep, FlowWrite, MessageId, NewMessage,
    RequestRecord, Status, StepRequest, Success, Update,
};

fn flow(id: MessageId, now: i64) -> FlowRecord {
    let step = |channel: &str, success| FlowStep {
        channel: channel.into(),
        success,
        timeout_s: Some(60),
        delay_s: None,
        smart: None,
        request: StepRequest::new(&serde_json::json!({"channel": channel, "body": "hi"})).unwrap(),
    };
    FlowRecord {
        id,
        tenant: "t".into(),
        mode: FlowMode::Cascade,
        steps: vec![
            step("email", Success::Sent),
            step("sms", Success::Delivered),
        ],
        state: FlowState::Running,
        skipped: Vec::new(),
        created_at: now,
        updated_at: now,
        deliveries: Vec::new(),
    }
}

fn delivery(id: MessageId, flow: MessageId, step: u8, request: Option<FlowRecord>) -> NewMessage {
    NewMessage {
        id,
        created_at: id.timestamp_ms(),
        flow: Some(FlowLink { flow, step }),
        request: request.map(|f| {
            Arc::new(RequestRecord {
                flows: vec![FlowWrite::Insert(Box::new(f))],
                ..RequestRecord::default()
            })
        }),
        ..message("t", 1, 1)
    }
}

pub(crate) async fn a_flow_commits_with_its_first_delivery_and_follows_its_steps(
    h: &mut dyn Harness,
) {
    let store = h.store();
    let now = now_ms();
    let id = MessageId::generate(now);
    let first = MessageId::generate(now);
    store
        .insert(vec![delivery(first, id, 0, Some(flow(id, now)))])
        .await
        .unwrap();
    let read = store.flow("t", id).await.unwrap().unwrap();
    assert_eq!(read.steps, flow(id, now).steps);
    assert_eq!(read.state, FlowState::Running);
    assert_eq!(read.deliveries.len(), 1);
    assert_eq!(read.deliveries[0].id, first);
    assert_eq!(read.deliveries[0].step, 0);
    assert_eq!(read.deliveries[0].status, Status::Accepted);
    assert!(
        store.flow("other", id).await.unwrap().is_none(),
        "per tenant"
    );
    let got = store.get("t", first).await.unwrap().unwrap();
    assert_eq!(got.message.flow, Some(FlowLink { flow: id, step: 0 }));

    // The first delivery fails and the second step could not start.
    store
        .apply(vec![status_at(first, Status::Rejected, now + 1)])
        .await
        .unwrap();
    store
        .apply(vec![Update::Flow(FlowWrite::Skip {
            id,
            step: 1,
            reason: "no route".into(),
            at: now + 2,
        })])
        .await
        .unwrap();
    let read = store.flow("t", id).await.unwrap().unwrap();
    assert_eq!(read.deliveries[0].status, Status::Rejected);
    assert_eq!(read.skipped, vec![(1, "no route".to_owned())]);
    let running = store.running_flows().await.unwrap();
    assert_eq!(running.len(), 1);
    assert_eq!(running[0].deliveries.len(), 1);

    store
        .apply(vec![Update::Flow(FlowWrite::End {
            id,
            state: FlowState::Failed,
            step: None,
            at: now + 3,
        })])
        .await
        .unwrap();
    h.reopen().await;
    let store = h.store();
    assert!(store.running_flows().await.unwrap().is_empty());
    let read = store.flow("t", id).await.unwrap().unwrap();
    assert_eq!(read.state, FlowState::Failed);
    assert_eq!(read.updated_at, now + 3);
}

pub(crate) async fn a_later_step_is_a_delivery_of_the_same_flow(h: &mut dyn Harness) {
    let store = h.store();
    let now = now_ms();
    let id = MessageId::generate(now);
    let (a, b) = (MessageId::generate(now), MessageId::generate(now));
    store
        .insert(vec![delivery(a, id, 0, Some(flow(id, now)))])
        .await
        .unwrap();
    store.insert(vec![delivery(b, id, 1, None)]).await.unwrap();
    let read = store.flow("t", id).await.unwrap().unwrap();
    let steps: Vec<(u8, MessageId)> = read.deliveries.iter().map(|d| (d.step, d.id)).collect();
    assert_eq!(steps, vec![(0, a), (1, b)]);
    // An end is final: a second one changes nothing.
    for (state, step) in [(FlowState::Succeeded, Some(1)), (FlowState::Failed, None)] {
        store
            .apply(vec![Update::Flow(FlowWrite::End {
                id,
                state,
                step,
                at: now + 1,
            })])
            .await
            .unwrap();
    }
    let read = store.flow("t", id).await.unwrap().unwrap();
    assert_eq!(read.state, FlowState::Succeeded);
    // The end is the flow's own event, once, naming the step that succeeded.
    let events: Vec<_> = store
        .events_after(0, Some("t"), 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.message_id == id)
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].status, "flow_succeeded");
    assert_eq!(events[0].tenant.as_deref(), Some("t"));
    assert_eq!(
        events[0].flow,
        Some(crate::domain::FlowLink { flow: id, step: 1 })
    );
}

/// A recipient's history: the tenant's newest messages to the addresses asked for, with each
/// one's channel, status, price and when it reached the person; other tenants, other
/// addresses and messages before `since` are left out, and `limit` keeps the newest.
pub(crate) async fn a_recipients_history_is_per_tenant_and_address_newest_first(
    h: &mut dyn Harness,
) {
    use crate::domain::{ChatChannel, ChatSpec, EmailSpec, PastMessage};
    let store = h.store();
    let now = now_ms();
    let at = |n: i64| NewMessage {
        id: MessageId::generate(now - 10_000 + n),
        created_at: now - 10_000 + n,
        to: "+447911123456".into(),
        ..message("t", n, 1)
    };
    let whatsapp = NewMessage {
        chat: Some(ChatSpec {
            channel: ChatChannel::Whatsapp,
            template: None,
            tag: None,
        }),
        encoding: None,
        ..at(1)
    };
    let sms = at(2);
    let email = NewMessage {
        to: "ana@example.org".into(),
        email: Some(EmailSpec {
            subject: "Your code".into(),
            html: None,
            reply_to: None,
        }),
        encoding: None,
        ..at(3)
    };
    let old = NewMessage {
        id: MessageId::generate(now - 100_000),
        created_at: now - 100_000,
        ..at(0)
    };
    let other_tenant = NewMessage {
        tenant: "u".into(),
        ..at(4)
    };
    let other_phone = NewMessage {
        to: "+447911000000".into(),
        ..at(5)
    };
    store
        .insert(vec![
            old,
            whatsapp.clone(),
            sms.clone(),
            email.clone(),
            other_tenant,
            other_phone,
        ])
        .await
        .unwrap();
    store
        .apply(vec![
            status_at(whatsapp.id, Status::Delivered, now - 5_000),
            status_at(sms.id, Status::Undeliverable, now - 4_000),
        ])
        .await
        .unwrap();
    let to = vec!["+447911123456".to_owned(), "ana@example.org".to_owned()];
    let history = store
        .recipient_history("t", to.clone(), now - 50_000, 10)
        .await
        .unwrap();
    let price = Some(0.0079);
    assert_eq!(
        history,
        vec![
            PastMessage {
                channel: "email".into(),
                status: Status::Accepted,
                created_at: email.created_at,
                reached_at: None,
                price,
            },
            PastMessage {
                channel: "sms".into(),
                status: Status::Undeliverable,
                created_at: sms.created_at,
                reached_at: None,
                price,
            },
            PastMessage {
                channel: "whatsapp".into(),
                status: Status::Delivered,
                created_at: whatsapp.created_at,
                reached_at: Some(now - 5_000),
                price,
            },
        ]
    );
    let newest = store
        .recipient_history("t", to.clone(), now - 50_000, 1)
        .await
        .unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].channel, "email");
    let all = store
        .recipient_history("t", to, now - 200_000, 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 4, "the old one is within a longer window");
    assert!(store
        .recipient_history("t", Vec::new(), 0, 10)
        .await
        .unwrap()
        .is_empty());
}

/// Six flows of one delivery each, for the backends' retention tests (which purge what is
/// older than an hour): `old` is longer ago than that, `recent` is not. Returns the deliveries
/// to insert (each carrying its flow) and the updates that follow. Once purged, flows 0 and 1
/// are gone with their events and deliveries; kept are flow 2 (ended, its delivery still
/// queued), 3 (still running; its delivery is purged), 4 (ended recently: a late success) and
/// 5 (recent); the deliveries of 2 and 5 stay, and the end events of 2, 4 and 5.
pub(crate) fn flows_to_age(old: i64, recent: i64) -> (Vec<NewMessage>, Vec<Update>) {
    let mut inserts = Vec::new();
    let mut updates = Vec::new();
    for n in 0..6 {
        let created = if n == 5 { recent } else { old };
        let flow_id = MessageId((created << 20) | (500 + n));
        let first = MessageId((created << 20) | (600 + n));
        inserts.push(delivery(first, flow_id, 0, Some(flow(flow_id, created))));
        if n == 2 {
            updates.push(status_at(first, Status::Queued, created + 1));
        } else {
            updates.push(status_at(first, Status::Delivered, created + 1));
        }
        let ended = match n {
            3 => None,
            4 | 5 => Some(recent + 2),
            _ => Some(created + 2),
        };
        if let Some(at) = ended {
            updates.push(Update::Flow(FlowWrite::End {
                id: flow_id,
                state: FlowState::Succeeded,
                step: Some(0),
                at,
            }));
        }
    }
    (inserts, updates)
}
