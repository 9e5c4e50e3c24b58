//! Flows: a flow written with its first delivery in one commit, read back with its
//! deliveries by step, skipped steps and its end; running flows are what a restart reads.

use std::sync::Arc;

use super::fixtures::{message, status_at};
use super::Harness;
use crate::domain::{
    now_ms, FlowLink, FlowMode, FlowRecord, FlowState, FlowStep, FlowWrite, MessageId, NewMessage,
    RequestRecord, Status, Success, Update,
};

fn flow(id: MessageId, now: i64) -> FlowRecord {
    let step = |channel: &str, success| FlowStep {
        channel: channel.into(),
        success,
        timeout_s: Some(60),
        request: serde_json::json!({"channel": channel, "body": "hi"}),
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
                flow: Some(FlowWrite::Insert(Box::new(f))),
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
    for state in [FlowState::Succeeded, FlowState::Failed] {
        store
            .apply(vec![Update::Flow(FlowWrite::End { id, state, at: now })])
            .await
            .unwrap();
    }
    let read = store.flow("t", id).await.unwrap().unwrap();
    assert_eq!(read.state, FlowState::Succeeded);
}
