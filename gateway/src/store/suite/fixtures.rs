//! What the suite's tests (and a backend's own tests) build their messages and updates from.
//!
//! Times are fixed around [`T0`] unless a test needs the clock (receipts that wait for a grace
//! period, idempotency keys that age, retention): those use [`now`] and [`message_at`].

use std::time::Duration;

use super::Backend;
use crate::domain::{
    Applied, CallRecord, IdFormats, MessageId, Money, NewMessage, ReceiptUpdate, Status, Update,
};

/// The fixed time of the tests (unix ms).
pub(crate) const T0: i64 = 1_700_000_000_000;

/// The id of test message `n`, created at `T0 + n`.
pub(crate) fn id(n: i64) -> MessageId {
    MessageId(((T0 + n) << 20) | (n << 8))
}

/// Message `n` of `tenant`, with `segments` segments and every optional field set.
pub(crate) fn message(tenant: &str, n: i64, segments: u16) -> NewMessage {
    NewMessage {
        id: id(n),
        tenant: tenant.into(),
        to: format!("+1555555{:04}", n % 10_000),
        country: Some("US".into()),
        from: "+15550001111".into(),
        body: format!("hello {n} ✓"),
        encoding: Some(switchyard_protocols::text::Encoding::Ucs2),
        segments,
        priority: switchyard_routing::Priority::Normal,
        scheduled_at: None,
        expires_at: Some(T0 + 3_600_000),
        callback_url: Some("https://example.com/cb".into()),
        tags: vec!["t".into(), format!("n{}", n % 2)],
        metadata: Some(r#"{"k":1}"#.into()),
        carrier: Some("alpha".into()),
        price: Some(Money {
            amount: switchyard_routing::Price::parse("0.0079").unwrap(),
            currency: switchyard_routing::Currency::parse("USD").unwrap(),
        }),
        created_at: T0 + n,
        batch_id: None,
        voice: None,
        email: None,
        chat: None,
        flow: None,
        request: None,
        smpp: None,
        udh: None,
        data_coding: None,
    }
}

/// A message of "acme" accepted at `at` (unix ms), numbered `n` within that millisecond.
pub(crate) fn message_at(at: i64, n: i64) -> NewMessage {
    NewMessage {
        id: MessageId((at << 20) | n),
        created_at: at,
        ..message("acme", n, 1)
    }
}

/// Message `n` moves to `status` at `T0 + 1000`.
pub(crate) fn status(n: i64, status: Status) -> Update {
    status_at(id(n), status, T0 + 1_000)
}

/// Message `id` moves to `status` at `at`.
pub(crate) fn status_at(id: MessageId, status: Status, at: i64) -> Update {
    Update::Status {
        id,
        status,
        at,
        detail: None,
    }
}

/// Carrier "alpha" took segment `index` of message `n` under `carrier_id`.
pub(crate) fn sent(n: i64, index: u16, carrier_id: &str) -> Update {
    Update::SegmentSent {
        id: id(n),
        index,
        carrier: "alpha".into(),
        carrier_message_id: carrier_id.into(),
        id_formats: IdFormats::default(),
        at: T0 + 2_000,
    }
}

/// A receipt from carrier "alpha" for `carrier_id` (`None`: an intermediate state); failures
/// carry the error "001" (delivered and read none).
pub(crate) fn receipt(carrier_id: &str, status: Option<Status>) -> Update {
    Update::Receipt(ReceiptUpdate {
        carrier: "alpha".into(),
        carrier_message_id: carrier_id.into(),
        id_formats: IdFormats::default(),
        status,
        error: status.filter(|s| !s.reached()).map(|_| "001".into()),
        at: T0 + 3_000,
    })
}

/// What applying an update that moves message `n` of `tenant` to `status` returns.
pub(crate) fn moved(n: i64, tenant: &str, status: Status) -> Applied {
    Applied::Moved {
        id: id(n),
        tenant: tenant.into(),
        status,
        flow: None,
    }
}

/// `u` happening now (pending receipts are decided once a grace period after they arrived has
/// passed, and given up once they are older than the late-match window, which `T0` is).
pub(crate) fn now(mut u: Update) -> Update {
    match &mut u {
        Update::SegmentSent { at, .. } => *at = crate::domain::now_ms(),
        Update::Receipt(r) => r.at = crate::domain::now_ms(),
        _ => {}
    }
    u
}

/// A SIP proxy call of "acme" that ended at `end_at`.
pub(crate) fn cdr(end_at: i64) -> Update {
    Update::Cdr(Box::new(CallRecord {
        id: 0,
        tenant: "acme".into(),
        sip_call_id: format!("call-{end_at}"),
        caller: "100".into(),
        callee: "+15555550001".into(),
        attempts: vec![("alpha".into(), 200)],
        carrier: Some("alpha".into()),
        disposition: "answered",
        code: 200,
        hangup: Some("caller"),
        setup_at: end_at - 1000,
        answer_at: Some(end_at - 900),
        end_at,
        duration_ms: 900,
        billed_secs: 1,
        cost: None,
        price: None,
        currency: None,
    }))
}

/// The status of message `n` of `tenant`, which must exist.
pub(crate) async fn status_of(store: &dyn Backend, tenant: &str, n: i64) -> Status {
    store.get(tenant, id(n)).await.unwrap().unwrap().status
}

/// Waits (at most 5 s) until message `n` of "acme" has `status`.
pub(crate) async fn wait_status(store: &dyn Backend, n: i64, status: Status) {
    for _ in 0..100 {
        if status_of(store, "acme", n).await == status {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("message {n} never became {status:?}");
}
