//! Mobile-originated messages: stored whole, or as parts held until their message completes;
//! listed per tenant; their keywords edit the opt-out list.

use switchyard_protocols::text::ReassemblyKey;

use super::fixtures::{id, message, T0};
use super::Harness;
use crate::domain::{Applied, HeldPart, InboundMessage, MoWrite, OptOut, PartialParts, Update};

pub(crate) async fn inbound_messages_are_stored_and_share_the_id_space(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let mo = InboundMessage {
        id: id(50),
        carrier: "alpha".into(),
        channel: switchyard_routing::Channel::Sms,
        tenant: Some("acme".into()),
        from: "+15555550001".into(),
        to: "+15550001111".into(),
        body: "STOP".into(),
        binary: None,
        received_at: T0 + 50,
        partial: None,
        provider_id: None,
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
            // Part 1 keeps its IEs other than concatenation (here an application port IE).
            udh: (seq == 1).then(|| bytes::Bytes::from_static(&[6, 5, 4, 0x0B, 0x84, 0x23, 0xF0])),
            payload: bytes::Bytes::from(vec![b'a' + seq; 100]),
            source_ton: 1,
            received_at: T0 + i64::from(seq),
        }),
        finished: Vec::new(),
    };
    let mo = |n: i64, body: &str, partial: Option<PartialParts>| InboundMessage {
        id: id(n),
        carrier: "alpha".into(),
        channel: switchyard_routing::Channel::Sms,
        tenant: Some("acme".into()),
        from: "+447911000001".into(),
        to: "447000000001".into(),
        body: body.into(),
        binary: None,
        received_at: T0 + n,
        partial,
        provider_id: None,
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
    let listed = store.inbound("acme", None, None, 10).await.unwrap();
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

pub(crate) async fn inbound_messages_page_newest_first_per_tenant(h: &mut dyn Harness) {
    let store = h.store();
    let mo = |n: i64, tenant: Option<&str>| InboundMessage {
        id: id(n),
        carrier: "alpha".into(),
        channel: switchyard_routing::Channel::Sms,
        tenant: tenant.map(str::to_owned),
        from: format!("+4479110000{n:02}"),
        to: "447000000001".into(),
        body: format!("hi {n}"),
        // One binary: its data_coding and header are kept.
        binary: (n == 3).then(|| crate::domain::BinaryCoding {
            data_coding: 0xF5,
            udh: Some(vec![6, 5, 4, 0x0B, 0x84, 0x23, 0xF0]),
        }),
        received_at: T0 + n,
        partial: None,
        provider_id: None,
    };
    let applied = store
        .apply(vec![
            Update::Inbound(mo(1, Some("acme"))),
            Update::Inbound(mo(2, Some("globex"))),
            Update::Inbound(mo(3, Some("acme"))),
            Update::Inbound(mo(4, None)),
            Update::Inbound(mo(5, Some("acme"))),
        ])
        .await
        .unwrap();
    assert_eq!(applied[4], Applied::Inbound(id(5)));
    let page = store.inbound("acme", None, None, 2).await.unwrap();
    assert_eq!(page, vec![mo(5, Some("acme")), mo(3, Some("acme"))]);
    let rest = store.inbound("acme", None, Some(id(3)), 10).await.unwrap();
    assert_eq!(rest, vec![mo(1, Some("acme"))]);
    assert_eq!(
        store.inbound("globex", None, None, 10).await.unwrap().len(),
        1
    );
    // Nobody's: in the log, listed for no tenant.
    let log = store.events_after(0, None, 10).await.unwrap();
    assert_eq!(log.len(), 5);
    assert_eq!(log[3].tenant, None);
    assert_eq!(log[2].binary, mo(3, None).binary);
    assert_eq!(log[1].binary, None);
    assert_eq!(store.max_id().await.unwrap(), Some(id(5)));
}

pub(crate) async fn keywords_edit_the_opt_out_list_in_the_same_commit(h: &mut dyn Harness) {
    let store = h.store();
    let mo = |n: i64, to: &str, body: &str| {
        Update::Inbound(InboundMessage {
            id: id(n),
            carrier: "alpha".into(),
            channel: switchyard_routing::Channel::Sms,
            tenant: Some("acme".into()),
            from: "+447911000001".into(),
            to: to.into(),
            body: body.into(),
            binary: None,
            received_at: T0 + n,
            partial: None,
            provider_id: None,
        })
    };
    let pairs = |list: Vec<OptOut>| -> Vec<(String, String, String)> {
        let mut v: Vec<_> = list
            .into_iter()
            .map(|o| (o.recipient, o.sender, o.source))
            .collect();
        v.sort();
        v
    };
    store
        .apply(vec![
            mo(1, "447000000001", " stop "),
            mo(2, "447000000002", "STOPALL"),
            mo(3, "447000000003", "HELP"),
        ])
        .await
        .unwrap();
    assert_eq!(
        pairs(store.opt_outs("acme", None, 10).await.unwrap()),
        vec![
            ("447911000001".into(), "*".into(), "keyword".into()),
            (
                "447911000001".into(),
                "447000000001".into(),
                "keyword".into()
            ),
        ]
    );
    // START to one sender lifts that sender's entry and the one for every sender.
    store
        .apply(vec![mo(4, "447000000001", "start")])
        .await
        .unwrap();
    assert!(store.opt_outs("acme", None, 10).await.unwrap().is_empty());
}

pub(crate) async fn chat_inbound_keeps_its_channel_and_opts_out_of_that_channel_only(
    h: &mut dyn Harness,
) {
    use switchyard_routing::Channel;
    let store = h.store();
    let mo = |n: i64, channel: Channel, body: &str| InboundMessage {
        id: id(n),
        carrier: if channel == Channel::Sms {
            "alpha"
        } else {
            "wa"
        }
        .into(),
        channel,
        tenant: Some("acme".into()),
        from: "+447911000001".into(),
        to: "447000000001".into(),
        body: body.into(),
        binary: None,
        received_at: T0 + n,
        partial: None,
        provider_id: None,
    };
    store
        .apply(vec![
            Update::Inbound(mo(1, Channel::Whatsapp, "Hello")),
            Update::Inbound(mo(2, Channel::Sms, "hi")),
            Update::Inbound(mo(3, Channel::Whatsapp, "STOP")),
            Update::Inbound(mo(4, Channel::Messenger, "stopall")),
        ])
        .await
        .unwrap();
    let whatsapp = store
        .inbound("acme", Some(Channel::Whatsapp), None, 10)
        .await
        .unwrap();
    assert_eq!(
        whatsapp,
        vec![
            mo(3, Channel::Whatsapp, "STOP"),
            mo(1, Channel::Whatsapp, "Hello")
        ]
    );
    assert_eq!(
        store.inbound("acme", None, None, 10).await.unwrap().len(),
        4
    );
    // The event says which channel.
    let log = store.events_after(0, Some("acme"), 10).await.unwrap();
    assert_eq!(log[0].channel.as_deref(), Some("whatsapp"));
    assert_eq!(log[1].channel.as_deref(), Some("sms"));
    // A STOP (or STOPALL) on a chat channel blocks that channel only.
    let mut entries: Vec<(String, String)> = store
        .opt_outs("acme", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.recipient, o.sender))
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec![
            ("447911000001".into(), "messenger:*".into()),
            ("447911000001".into(), "whatsapp:*".into()),
        ]
    );
    // START on WhatsApp lifts WhatsApp's only.
    store
        .apply(vec![Update::Inbound(mo(5, Channel::Whatsapp, "START"))])
        .await
        .unwrap();
    let left: Vec<String> = store
        .opt_outs("acme", None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.sender)
        .collect();
    assert_eq!(left, vec!["messenger:*".to_owned()]);
    // The windows are rebuilt from the chat ones received since a time.
    let recent = store.recent_chat_inbound(T0 + 3).await.unwrap();
    let mut ids: Vec<i64> = recent.iter().map(|m| m.id.0).collect();
    ids.sort();
    assert_eq!(ids, vec![id(3).0, id(4).0, id(5).0]);
}

pub(crate) async fn a_chat_message_sent_again_is_stored_once_per_account(h: &mut dyn Harness) {
    use switchyard_routing::Channel;
    let store = h.store();
    let mo = |n: i64, carrier: &str, body: &str, provider_id: Option<&str>| InboundMessage {
        id: id(n),
        carrier: carrier.into(),
        channel: Channel::Whatsapp,
        tenant: Some("acme".into()),
        from: "447911000001".into(),
        to: "15550783881".into(),
        body: body.into(),
        binary: None,
        received_at: T0 + n,
        partial: None,
        provider_id: provider_id.map(str::to_owned),
    };
    let applied = store
        .apply(vec![
            Update::Inbound(mo(1, "wa", "STOP", Some("wamid.1"))),
            // The same webhook again, in the same commit.
            Update::Inbound(mo(2, "wa", "STOP", Some("wamid.1"))),
            // The same platform id on another account is another message.
            Update::Inbound(mo(3, "wa2", "hello", Some("wamid.1"))),
            // Messages without a platform id are never taken for each other.
            Update::Inbound(mo(4, "wa", "hi", None)),
            Update::Inbound(mo(5, "wa", "hi", None)),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![
            Applied::Inbound(id(1)),
            Applied::NoChange,
            Applied::Inbound(id(3)),
            Applied::Inbound(id(4)),
            Applied::Inbound(id(5)),
        ]
    );
    // START, then the STOP sent again later (another commit): the resend is not stored, makes
    // no event and leaves the opt-out lifted.
    store
        .apply(vec![Update::Inbound(mo(6, "wa", "START", Some("wamid.2")))])
        .await
        .unwrap();
    assert!(store.opt_outs("acme", None, 10).await.unwrap().is_empty());
    let before = store
        .events_after(0, Some("acme"), 100)
        .await
        .unwrap()
        .len();
    assert_eq!(
        store
            .apply(vec![Update::Inbound(mo(7, "wa", "STOP", Some("wamid.1")))])
            .await
            .unwrap(),
        vec![Applied::NoChange]
    );
    assert_eq!(
        store
            .events_after(0, Some("acme"), 100)
            .await
            .unwrap()
            .len(),
        before
    );
    assert!(store.opt_outs("acme", None, 10).await.unwrap().is_empty());
    let ids: Vec<i64> = store
        .inbound("acme", None, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id.0)
        .collect();
    assert_eq!(ids, vec![id(6).0, id(5).0, id(4).0, id(3).0, id(1).0]);
    // The platform id reads back.
    let first = store
        .inbound("acme", None, None, 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(first, mo(1, "wa", "STOP", Some("wamid.1")));
    // It still holds after a restart.
    h.reopen().await;
    assert_eq!(
        h.store()
            .apply(vec![Update::Inbound(mo(8, "wa", "STOP", Some("wamid.1")))])
            .await
            .unwrap(),
        vec![Applied::NoChange]
    );
}
