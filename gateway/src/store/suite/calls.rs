//! Call detail records of the SIP proxy: stored with [`Update::Cdr`], listed per tenant.

use super::fixtures::{cdr, T0};
use super::Harness;
use crate::domain::{Applied, CallFilter, CallRecord, Update};

pub(crate) async fn call_records_are_listed_newest_first_per_tenant(h: &mut dyn Harness) {
    let store = h.store();
    let busy = |end_at: i64| {
        let Update::Cdr(mut c) = cdr(end_at) else {
            unreachable!()
        };
        c.disposition = "busy";
        c.code = 486;
        c.answer_at = None;
        c.hangup = None;
        c.price = Some("0.0100".into());
        c.currency = Some("EUR".into());
        Update::Cdr(c)
    };
    let mut other = cdr(T0 + 2_500);
    if let Update::Cdr(c) = &mut other {
        c.tenant = "globex".into();
    }
    let applied = store
        .apply(vec![
            cdr(T0 + 1_000),
            busy(T0 + 2_000),
            other,
            cdr(T0 + 3_000),
        ])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::NoChange; 4]);

    let all = store.calls("acme", CallFilter::default()).await.unwrap();
    let ends: Vec<i64> = all.iter().map(|c| c.end_at).collect();
    assert_eq!(ends, vec![T0 + 3_000, T0 + 2_000, T0 + 1_000]);
    // Every field comes back; the store numbers them.
    let Update::Cdr(sent) = busy(T0 + 2_000) else {
        unreachable!()
    };
    assert_eq!(
        all[1],
        CallRecord {
            id: all[1].id,
            ..*sent
        }
    );
    assert!(all[0].id > all[1].id && all[1].id > all[2].id);

    let page = |filter: CallFilter| {
        let store = store.clone();
        async move {
            store
                .calls("acme", filter)
                .await
                .unwrap()
                .iter()
                .map(|c| c.end_at)
                .collect::<Vec<_>>()
        }
    };
    let cursor = CallFilter {
        before: Some(all[0].id),
        limit: 1,
        ..CallFilter::default()
    };
    assert_eq!(page(cursor).await, vec![T0 + 2_000]);
    let busy_only = CallFilter {
        disposition: Some("busy".into()),
        ..CallFilter::default()
    };
    assert_eq!(page(busy_only).await, vec![T0 + 2_000]);
    // By setup time (1 s before the end): at or after `since`, before `until`.
    let window = CallFilter {
        since: Some(T0 + 1_000),
        until: Some(T0 + 2_000),
        ..CallFilter::default()
    };
    assert_eq!(page(window).await, vec![T0 + 2_000]);
    assert_eq!(
        store
            .calls("globex", CallFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(store
        .calls("initech", CallFilter::default())
        .await
        .unwrap()
        .is_empty());
}
