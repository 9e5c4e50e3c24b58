//! The dashboard's sessions: opened, read by the id's hash, seen, closed; expired ones deleted
//! at the next login; a bounded number open.

use super::fixtures::T0;
use super::Harness;
use crate::domain::{Applied, DashboardSession, SessionWrite, Update};

const HOUR: i64 = 3_600_000;

fn session(n: u8, created_at: i64, expires_at: i64) -> DashboardSession {
    DashboardSession {
        id_hash: [n; 32],
        key_hash: [100 + n; 32],
        created_at,
        seen_at: created_at,
        expires_at,
    }
}

fn open(s: DashboardSession, max_open: u64, now: i64) -> Update {
    Update::Session(SessionWrite::Open {
        session: s,
        max_open,
        now,
    })
}

pub(crate) async fn sessions_are_opened_seen_closed_and_survive_a_restart(h: &mut dyn Harness) {
    let store = h.store();
    let a = session(1, T0, T0 + HOUR);
    let applied = store.apply(vec![open(a, 10, T0)]).await.unwrap();
    assert_eq!(applied, vec![Applied::Rows(1)]);
    assert_eq!(store.dashboard_session([1; 32]).await.unwrap(), Some(a));
    assert_eq!(store.dashboard_session([2; 32]).await.unwrap(), None);
    let seen = |seen_at: i64, expires_at: i64| {
        Update::Session(SessionWrite::Seen {
            id_hash: [1; 32],
            seen_at,
            expires_at,
        })
    };
    let applied = store
        .apply(vec![
            seen(T0 + 60_000, T0 + HOUR + 60_000),
            seen(T0 + 30_000, T0 + HOUR + 30_000),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![Applied::Rows(1), Applied::Rows(0)],
        "a write never moves the last request back"
    );
    h.reopen().await;
    let store = h.store();
    let got = store.dashboard_session([1; 32]).await.unwrap().unwrap();
    assert_eq!(
        (got.key_hash, got.created_at, got.seen_at, got.expires_at),
        ([101; 32], T0, T0 + 60_000, T0 + HOUR + 60_000)
    );
    // Seen after its end: not revived.
    let applied = store
        .apply(vec![seen(T0 + 2 * HOUR, T0 + 3 * HOUR)])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Rows(0)]);
    let closed = store
        .apply(vec![
            Update::Session(SessionWrite::Close { id_hash: [1; 32] }),
            Update::Session(SessionWrite::Close { id_hash: [1; 32] }),
        ])
        .await
        .unwrap();
    assert_eq!(closed, vec![Applied::Rows(1), Applied::Rows(0)]);
    assert_eq!(store.dashboard_session([1; 32]).await.unwrap(), None);
}

pub(crate) async fn a_login_deletes_expired_sessions_and_is_refused_when_too_many_are_open(
    h: &mut dyn Harness,
) {
    let store = h.store();
    let applied = store
        .apply(vec![
            open(session(1, T0, T0 + HOUR), 2, T0),
            open(session(2, T0, T0 + 2 * HOUR), 2, T0),
            open(session(3, T0, T0 + 2 * HOUR), 2, T0),
        ])
        .await
        .unwrap();
    assert_eq!(
        applied,
        vec![Applied::Rows(1), Applied::Rows(1), Applied::Rows(0)],
        "two open at most"
    );
    assert_eq!(store.dashboard_session([3; 32]).await.unwrap(), None);
    // An hour later the first session has expired: the login deletes it and fits.
    let applied = store
        .apply(vec![open(
            session(3, T0 + HOUR, T0 + 3 * HOUR),
            2,
            T0 + HOUR,
        )])
        .await
        .unwrap();
    assert_eq!(applied, vec![Applied::Rows(1)]);
    assert_eq!(store.dashboard_session([1; 32]).await.unwrap(), None);
    assert!(store.dashboard_session([2; 32]).await.unwrap().is_some());
    assert!(store.dashboard_session([3; 32]).await.unwrap().is_some());
}
