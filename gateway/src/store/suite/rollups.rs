//! Analytics rollups: written in the commits that change the messages (and store the CDRs),
//! counting each status a message reaches once, whatever repeats.

use super::fixtures::{cdr, id, message, receipt, sent, status, status_at, T0};
use super::{Backend, Harness};
use crate::domain::analytics::{
    percentiles, CallTotals, MessageDimension, MessageTotals, Resolution, RollupQuery,
};
use crate::domain::{Status, Update};

/// The rows of `tenant` (`None`: everyone's) at `resolution` around `T0`, summed.
pub(crate) async fn totals(
    store: &dyn Backend,
    tenant: Option<&str>,
    resolution: Resolution,
    filters: Vec<(MessageDimension, String)>,
) -> MessageTotals {
    let rows = store
        .message_rollups(RollupQuery {
            tenant: tenant.map(str::to_owned),
            resolution,
            since: Resolution::Day.floor(T0),
            until: Resolution::Day.floor(T0) + 2 * Resolution::Day.millis(),
            filters,
            group_by: Vec::new(),
        })
        .await
        .unwrap();
    let mut sum = MessageTotals::default();
    for ((bucket, _), t) in &rows {
        assert_eq!(
            *bucket,
            resolution.floor(T0),
            "every test message is in T0's bucket"
        );
        sum.add(t);
    }
    sum
}

/// Within the histograms' precision (two significant digits) of `expected`.
fn close(value: u64, expected: u64) -> bool {
    value.abs_diff(expected) <= expected / 100 + 1
}

pub(crate) fn counts(t: &MessageTotals) -> Vec<(Status, u64)> {
    crate::domain::analytics::COUNTED
        .iter()
        .map(|s| (*s, t.count(*s)))
        .filter(|(_, n)| *n > 0)
        .collect()
}

pub(crate) async fn rollups_count_each_status_reached_once(h: &mut dyn Harness) {
    let store = h.store();
    let mut two_parts = message("acme", 6, 2);
    two_parts.carrier = Some("beta".into());
    store
        .insert(vec![
            message("acme", 1, 1),
            message("acme", 2, 1),
            message("acme", 3, 1),
            message("acme", 4, 1),
            message("globex", 5, 1),
            two_parts,
        ])
        .await
        .unwrap();
    store
        .apply(vec![
            // 1: sent, delivered; the receipt repeated, a late status ignored.
            sent(1, 0, "c1"),
            receipt("c1", Some(Status::Delivered)),
            receipt("c1", Some(Status::Delivered)),
            status(1, Status::Sent),
            // 2: sent (twice, the second is no move), then undeliverable.
            status(2, Status::Queued),
            status(2, Status::Sent),
            status(2, Status::Sent),
            status_at(id(2), Status::Undeliverable, T0 + 5_000),
            // 3: no carrier could take it.
            status(3, Status::Failed),
            // 5: another tenant's.
            status(5, Status::Sent),
            // 6: one of two segments sent: not sent yet.
            Update::SegmentSent {
                id: id(6),
                index: 0,
                carrier: "beta".into(),
                carrier_message_id: "c6".into(),
                id_formats: Default::default(),
                at: T0 + 2_000,
            },
        ])
        .await
        .unwrap();
    // Retried in another commit: still nothing new.
    store
        .apply(vec![
            receipt("c1", Some(Status::Delivered)),
            status(3, Status::Failed),
        ])
        .await
        .unwrap();

    let acme = totals(&*store, Some("acme"), Resolution::Minute, vec![]).await;
    assert_eq!(
        counts(&acme),
        vec![
            (Status::Accepted, 5),
            (Status::Sent, 2),
            (Status::Delivered, 1),
            (Status::Undeliverable, 1),
            (Status::Failed, 1),
        ]
    );
    assert_eq!(acme.delivery_rate(), Some(1.0 / 3.0));
    assert_eq!(acme.price_nanos, 5 * 7_900_000);
    // Sent at T0 + 2000 (accepted at T0 + 1) and T0 + 1000 (accepted at T0 + 2); delivered at
    // T0 + 3000.
    let (n, _) = percentiles(acme.to_sent.as_ref()).unwrap();
    assert_eq!(n, 2);
    let (n, [p50, ..]) = percentiles(acme.to_delivered.as_ref()).unwrap();
    assert_eq!(n, 1);
    assert!(close(p50, 1_000), "{p50}");
    let (n, [p50, ..]) = percentiles(acme.end_to_end.as_ref()).unwrap();
    assert_eq!(n, 1);
    assert!(close(p50, 2_999), "{p50}");

    // The same sums at every resolution.
    for res in [Resolution::Hour, Resolution::Day] {
        let t = totals(&*store, Some("acme"), res, vec![]).await;
        assert_eq!(counts(&t), counts(&acme), "{res:?}");
        assert_eq!(t.end_to_end.map(|h| h.len()), Some(1));
    }
    // The rollups agree with the messages' own statuses.
    for (s, n) in [
        (Status::Delivered, 1),
        (Status::Undeliverable, 1),
        (Status::Failed, 1),
    ] {
        let listed = store
            .list(
                "acme",
                crate::domain::ListFilter {
                    status: Some(s),
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(listed.len() as u64, n, "{s:?}");
        assert_eq!(acme.count(s), n, "{s:?}");
    }

    // Tenants are apart; the operator's view (no tenant) has everyone.
    let globex = totals(&*store, Some("globex"), Resolution::Minute, vec![]).await;
    assert_eq!(
        counts(&globex),
        vec![(Status::Accepted, 1), (Status::Sent, 1)]
    );
    let all = totals(&*store, None, Resolution::Minute, vec![]).await;
    assert_eq!(all.count(Status::Accepted), 6);

    // Filters read only their rows.
    let beta = totals(
        &*store,
        Some("acme"),
        Resolution::Hour,
        vec![(MessageDimension::Carrier, "beta".into())],
    )
    .await;
    assert_eq!(counts(&beta), vec![(Status::Accepted, 1)]);
    let nowhere = totals(
        &*store,
        None,
        Resolution::Day,
        vec![(MessageDimension::Country, "FR".into())],
    )
    .await;
    assert!(counts(&nowhere).is_empty());
}

pub(crate) async fn a_failed_request_adds_nothing_to_the_rollups(h: &mut dyn Harness) {
    let store = h.store();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    // The same id again: refused, rolled back alone.
    assert!(store.insert(vec![message("acme", 1, 1)]).await.is_err());
    store.insert(vec![message("acme", 2, 1)]).await.unwrap();
    let t = totals(&*store, Some("acme"), Resolution::Minute, vec![]).await;
    assert_eq!(counts(&t), vec![(Status::Accepted, 2)]);
    h.reopen().await;
    let t = totals(&*h.store(), Some("acme"), Resolution::Day, vec![]).await;
    assert_eq!(counts(&t), vec![(Status::Accepted, 2)], "durable");
}

pub(crate) async fn an_answer_of_too_many_groups_is_refused(h: &mut dyn Harness) {
    use crate::domain::analytics::MAX_GROUPS;
    use crate::store::StoreError;
    let store = h.store();
    // One sender per message (a tenant's free text): one group each.
    let n = MAX_GROUPS as i64 + 1;
    store
        .insert(
            (1..=n)
                .map(|i| {
                    let mut m = message("acme", i, 1);
                    m.from = format!("sender{i}");
                    m
                })
                .collect(),
        )
        .await
        .unwrap();
    let query = |group_by: Vec<MessageDimension>| RollupQuery {
        tenant: Some("acme".into()),
        resolution: Resolution::Day,
        since: Resolution::Day.floor(T0),
        until: Resolution::Day.floor(T0) + Resolution::Day.millis(),
        filters: vec![],
        group_by,
    };
    let refused = store
        .message_rollups(query(vec![MessageDimension::Sender]))
        .await;
    assert!(
        matches!(&refused, Err(StoreError::TooLarge(why)) if why.contains("2000")),
        "{refused:?}"
    );
    let one = store.message_rollups(query(vec![])).await.unwrap();
    assert_eq!(
        one.values().next().map(|t| t.count(Status::Accepted)),
        Some(n as u64)
    );
}

pub(crate) async fn call_rollups_sum_the_detail_records(h: &mut dyn Harness) {
    let store = h.store();
    let with = |end_at: i64, disposition: &'static str, price: &str, cost: &str| {
        let Update::Cdr(mut c) = cdr(end_at) else {
            unreachable!()
        };
        c.disposition = disposition;
        if disposition != "answered" {
            c.answer_at = None;
            c.duration_ms = 0;
            c.billed_secs = 0;
        }
        c.price = Some(price.into());
        c.cost = Some(cost.into());
        Update::Cdr(c)
    };
    store
        .apply(vec![
            with(T0 + 1_000, "answered", "0.0200", "0.0100"),
            with(T0 + 2_000, "answered", "0.0200", "0.0100"),
            with(T0 + 3_000, "busy", "0", "0"),
        ])
        .await
        .unwrap();
    let rows = store
        .call_rollups(RollupQuery {
            tenant: Some("acme".into()),
            resolution: Resolution::Hour,
            since: Resolution::Hour.floor(T0),
            until: Resolution::Hour.floor(T0) + Resolution::Hour.millis(),
            filters: vec![(MessageDimension::Carrier, "alpha".into())],
            group_by: vec![MessageDimension::Carrier],
        })
        .await
        .unwrap();
    let mut t = CallTotals::default();
    for ((_, group), row) in &rows {
        assert_eq!(group, &["alpha"]);
        t.add(row);
    }
    assert_eq!((t.calls, t.answered(), t.dispositions[1]), (3, 2, 1));
    assert_eq!((t.duration_ms, t.billed_secs), (1_800, 2));
    assert_eq!((t.price_nanos, t.cost_nanos), (40_000_000, 20_000_000));
    let (n, [p50, ..]) = percentiles(t.to_answer.as_ref()).unwrap();
    assert_eq!((n, p50), (2, 100));
    let others = store
        .call_rollups(RollupQuery {
            tenant: Some("globex".into()),
            resolution: Resolution::Day,
            since: 0,
            until: T0 * 2,
            filters: vec![],
            group_by: Vec::new(),
        })
        .await
        .unwrap();
    assert!(others.is_empty());
}
