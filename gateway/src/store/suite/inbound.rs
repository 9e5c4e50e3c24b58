//! Mobile-originated messages: stored whole, or as parts held until their message completes.

use switchyard_protocols::text::ReassemblyKey;

use super::fixtures::{id, message, T0};
use super::Harness;
use crate::domain::{Applied, HeldPart, InboundMessage, MoWrite, PartialParts, Update};

pub(crate) async fn inbound_messages_are_stored_and_share_the_id_space(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let mo = InboundMessage {
        id: id(50),
        carrier: "alpha".into(),
        tenant: Some("acme".into()),
        from: "+15555550001".into(),
        to: "+15550001111".into(),
        body: "STOP".into(),
        received_at: T0 + 50,
        partial: None,
    };
    assert_eq!(
        store.apply(vec![Update::Inbound(mo)]).await.unwrap(),
        vec![Applied::Inbound(id(50))]
    );
    assert_eq!(store.max_id().await.unwrap(), Some(id(50)));
}

pub(crate) async fn mo_parts_are_held_until_the_commit_that_stores_their_message(
    h: &mut dyn Harness,
) {
    let store = h.store();
    let key = |reference: u16| ReassemblyKey {
        source: bytes::Bytes::from_static(b"447911000001"),
        dest: bytes::Bytes::from_static(b"447000000001"),
        reference,
        total: 2,
    };
    let hold = |reference: u16, seq: u8| MoWrite {
        carrier: "alpha".into(),
        hold: Some(HeldPart {
            key: key(reference),
            seq,
            data_coding: 0,
            payload: bytes::Bytes::from(vec![b'a' + seq; 100]),
            source_ton: 1,
            received_at: T0 + i64::from(seq),
        }),
        finished: Vec::new(),
    };
    let mo = |n: i64, body: &str, partial: Option<PartialParts>| InboundMessage {
        id: id(n),
        carrier: "alpha".into(),
        tenant: Some("acme".into()),
        from: "+447911000001".into(),
        to: "447000000001".into(),
        body: body.into(),
        received_at: T0 + n,
        partial,
    };
    let applied = store
        .apply(vec![
            Update::Mo(Box::new(hold(1, 1))),
            // The carrier sent it again: held once.
            Update::Mo(Box::new(hold(1, 1))),
            Update::Mo(Box::new(hold(2, 2))),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange; 3]);
    let held = store.held_mo_parts().await.unwrap();
    assert_eq!(held.len(), 2);
    assert_eq!(held[0].0, "alpha");
    assert_eq!(held[0].1, hold(1, 1).hold.unwrap());
    // Message 1 completes; message 2 is given up (say, evicted) in the same step.
    let step = MoWrite {
        carrier: "alpha".into(),
        hold: None,
        finished: vec![
            (key(1), mo(10, "whole", None)),
            (
                key(2),
                mo(
                    11,
                    "STOP",
                    Some(PartialParts {
                        received: vec![2],
                        total: 2,
                    }),
                ),
            ),
        ],
    };
    let applied = store.apply(vec![Update::Mo(Box::new(step))]).await.unwrap();
    assert_eq!(applied, vec![Applied::Inbound(id(10))]);
    assert!(store.held_mo_parts().await.unwrap().is_empty());
    let listed = store.inbound("acme", None, 10).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].body, "STOP");
    assert_eq!(
        listed[0].partial,
        Some(PartialParts {
            received: vec![2],
            total: 2
        })
    );
    assert_eq!(listed[1].partial, None);
    // A partial text is no keyword: nobody was opted out.
    assert!(store.all_opt_outs().await.unwrap().is_empty());
}
