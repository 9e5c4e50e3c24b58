//! Tests of what only the PostgreSQL store has, against the test process's cluster
//! ([`super::harness`]): migrations by nodes starting together, the event log's order with
//! several nodes writing at once, group commit, `close`, errors when the database is out of
//! reach or a connection is lost, retention, and the indexes the dashboard's queries use.
//!
//! What every backend does through the [`Store`] and [`crate::store::events::EventStore`]
//! traits is tested by the store suite (`crate::store::suite`), which runs against this store
//! with [`super::harness::PostgresHarness`].

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::harness::{fresh_database, test_options};
use super::*;
use crate::domain::{IdFormats, InboundMessage, ReceiptUpdate};
use crate::store::events::EventStore;
use crate::store::suite::fixtures::{cdr, id, message, message_at, status_at, T0};

async fn open(conninfo: &str) -> PostgresStore {
    PostgresStore::open(conninfo, test_options()).await.unwrap()
}

/// The database a connection string names.
fn dbname(conninfo: &str) -> String {
    conninfo
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix("dbname="))
        .unwrap()
        .to_owned()
}

/// A plain connection to the database, for looking under the store.
async fn sql(conninfo: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(conninfo, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let conninfo = fresh_database().await;
    let stores = futures::future::join_all((0..4).map(|_| open(&conninfo))).await;
    stores[0].insert(vec![message("acme", 1, 1)]).await.unwrap();
    for s in &stores {
        assert!(s.get("acme", id(1)).await.unwrap().is_some());
    }
    let client = sql(&conninfo).await;
    let versions: Vec<i64> = client
        .query("SELECT version FROM schema_version ORDER BY version", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        versions,
        (1..=schema::MIGRATIONS.len() as i64).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let conninfo = fresh_database().await;
    open(&conninfo).await.close().await.unwrap();
    sql(&conninfo)
        .await
        .execute("INSERT INTO schema_version (version) VALUES (999)", &[])
        .await
        .unwrap();
    let err = PostgresStore::open(&conninfo, test_options())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::Internal(m) if m.contains("999")),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options = PostgresOptions {
        connect_timeout: Duration::from_secs(2),
        ..test_options()
    };
    let err = PostgresStore::open(&format!("host=127.0.0.1 port={port} user=x"), options)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    let err = PostgresStore::open("postgresql://[", PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Internal(_)), "{err:?}");
}

#[tokio::test]
async fn close_waits_for_queued_writes_and_refuses_later_ones() {
    let conninfo = fresh_database().await;
    let store = Arc::new(open(&conninfo).await);
    let writes: Vec<_> = (1..=50)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(vec![message("acme", n, 1)]).await })
        })
        .collect();
    tokio::task::yield_now().await;
    store.close().await.unwrap();
    let mut acknowledged = Vec::new();
    for (n, w) in (1..=50).zip(writes) {
        match w.await.unwrap() {
            Ok(()) => acknowledged.push(id(n)),
            Err(StoreError::Closed) => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(matches!(
        store.insert(vec![message("acme", 99, 1)]).await,
        Err(StoreError::Closed)
    ));
    assert!(matches!(store.ping().await, Err(StoreError::Closed)));
    assert!(matches!(store.max_id().await, Err(StoreError::Closed)));
    store.close().await.unwrap();
    let store = open(&conninfo).await;
    for id in acknowledged {
        assert!(store.get("acme", id).await.unwrap().is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_share_transactions() {
    let conninfo = fresh_database().await;
    let store = Arc::new(open(&conninfo).await);
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..25 {
                    store
                        .insert(vec![message("acme", 1 + t * 25 + i, 1)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let stats = store.stats();
    assert_eq!(stats.requests, 200);
    assert!(stats.commits < 200, "{stats:?}");
    assert!(stats.largest_batch > 1, "{stats:?}");
}

/// Several nodes insert and move messages at once while a reader follows the log as the
/// webhook pump does (from the last seq it saw): it must see every event, none skipped because
/// a later seq committed before an earlier one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_following_the_log_never_skips_an_event() {
    let conninfo = fresh_database().await;
    let nodes: Vec<Arc<PostgresStore>> = futures::future::join_all((0..3).map(|_| open(&conninfo)))
        .await
        .into_iter()
        .map(Arc::new)
        .collect();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let store = nodes[0].clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut last = 0;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let events = store.events_after(last, None, 1000).await.unwrap();
                if let Some(e) = events.last() {
                    last = e.seq;
                }
                seen.extend(events.iter().map(|e| e.seq));
                if finished && events.is_empty() {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..6i64)
        .map(|w| {
            let store = nodes[w as usize % nodes.len()].clone();
            tokio::spawn(async move {
                for i in 0..40 {
                    let n = 1 + w * 40 + i;
                    store.insert(vec![message("acme", n, 1)]).await.unwrap();
                    store
                        .apply(vec![status_at(id(n), Status::Queued, T0 + n)])
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let all: Vec<i64> = nodes[1]
        .events_after(0, None, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(all.len(), 480);
    assert_eq!(seen, all);
}

#[tokio::test]
async fn a_lost_connection_fails_retryably_and_the_store_reconnects() {
    let conninfo = fresh_database().await;
    let store = open(&conninfo).await;
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    // Every connection of the store's database is cut (as a database restart does).
    let dbname = dbname(&conninfo);
    sql(&switchyard_tests::postgres::cluster().conninfo("postgres"))
        .await
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&dbname],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut results = Vec::new();
    for n in 2..=4 {
        results.push(store.insert(vec![message("acme", n, 1)]).await);
    }
    for r in &results {
        if let Err(e) = r {
            assert!(e.is_retryable(), "{e:?}");
        }
    }
    assert!(results.last().unwrap().is_ok(), "{results:?}");
    // Reads come back too.
    let mut read = store.get("acme", id(1)).await;
    if read.is_err() {
        read = store.get("acme", id(1)).await;
    }
    assert!(read.unwrap().is_some());
}

/// A node that stops while a receipt waits for its grace period leaves it to the others: their
/// tickers count the pending receipts in the database now and then and sweep them.
#[tokio::test]
async fn another_node_sweeps_a_receipt_left_pending() {
    use crate::store::suite::fixtures::{now, receipt, sent};
    let conninfo = fresh_database().await;
    let b = open(&conninfo).await;
    let a = open(&conninfo).await;
    a.insert((1..=2).map(|n| message("acme", n, 1)).collect())
        .await
        .unwrap();
    a.apply(vec![now(sent(1, 0, "10")), now(sent(2, 0, "16"))])
        .await
        .unwrap();
    assert_eq!(
        a.apply(vec![now(receipt("16", Some(Status::Delivered)))])
            .await
            .unwrap(),
        vec![Applied::UnmatchedReceipt]
    );
    a.close().await.unwrap();
    let deadline = std::time::Instant::now() + PENDING_RECOUNT + Duration::from_secs(5);
    loop {
        let status = b.get("acme", id(2)).await.unwrap().unwrap().status;
        if status == Status::Delivered {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still {status:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(b.unmatched_receipts().await.unwrap(), 0);
}

/// Rows of `what` (a table, with a condition if need be).
async fn count(db: &tokio_postgres::Client, what: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {what}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// As SQLite's retention test (`sqlite/tests.rs`): every kind, small batches, cursors.
#[tokio::test]
async fn retention_deletes_what_is_old_of_every_kind_and_keeps_the_rest() {
    use crate::domain::EventWrite;
    use crate::domain::{BatchRecord, IdempotencyRecord, RequestRecord};
    let conninfo = fresh_database().await;
    let hour = Duration::from_secs(3600);
    let options = PostgresOptions {
        retention: Retention {
            messages: Some(hour),
            inbound: Some(hour),
            cdrs: Some(hour),
            unmatched_receipts: Some(hour),
            dead_letters: Some(hour),
            idempotency: Some(hour),
            interval: Duration::from_secs(1),
            // Small batches: several per kind, cursors carried between them.
            batch: 3,
        },
        ..test_options()
    };
    let store = PostgresStore::open(&conninfo, options).await.unwrap();
    let now = crate::domain::now_ms();
    let old = now - 2 * 3_600_000;
    let recent = now - 60_000;
    // Messages: 7 old and delivered (purged with everything of theirs), one old but still
    // queued, one old but changed recently, 3 recent.
    let request = |at: i64, key: &str| {
        Some(Arc::new(RequestRecord {
            idempotency: Some(IdempotencyRecord {
                tenant: "acme".into(),
                key: key.into(),
                body_hash: "h".into(),
                status: 202,
                response: "{}".into(),
                created_at: at,
            }),
            batch: Some(BatchRecord {
                id: format!("bat_{key}"),
                tenant: "acme".into(),
                created_at: at,
                recipients: 1,
                accepted: 1,
                rejected: 0,
            }),
            flows: Vec::new(),
        }))
    };
    let mut all = Vec::new();
    for n in 0..9 {
        let mut m = message_at(old, n);
        m.request = request(old, &format!("old{n}"));
        all.push(m);
    }
    for n in 0..3 {
        let mut m = message_at(recent, n);
        m.request = request(recent, &format!("new{n}"));
        all.push(m);
    }
    let ids: Vec<MessageId> = all.iter().map(|m| m.id).collect();
    store.insert(all).await.unwrap();
    let mut updates = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        if i == 7 {
            updates.push(status_at(*id, Status::Queued, old + 1));
            continue;
        }
        let at = if i == 8 || i >= 9 {
            recent + 1
        } else {
            old + 1
        };
        updates.push(Update::SegmentSent {
            id: *id,
            index: 0,
            carrier: "alpha".into(),
            carrier_message_id: format!("{}", 1000 + i),
            id_formats: IdFormats::default(),
            at,
        });
        updates.push(status_at(*id, Status::Delivered, at + 1));
    }
    for (n, at) in [
        (0, old),
        (1, old),
        (2, old),
        (3, old),
        (4, recent),
        (5, recent),
    ] {
        updates.push(Update::Inbound(InboundMessage {
            id: MessageId((at << 20) | (100 + n)),
            carrier: "alpha".into(),
            channel: switchyard_routing::Channel::Sms,
            tenant: Some("acme".into()),
            from: "+447911000001".into(),
            to: "447000000001".into(),
            body: format!("mo {n}"),
            binary: None,
            received_at: at,
            partial: None,
            provider_id: None,
        }));
        updates.push(cdr(at));
        updates.push(Update::Receipt(ReceiptUpdate {
            carrier: "beta".into(),
            carrier_message_id: format!("stray{n}"),
            id_formats: IdFormats::default(),
            status: Some(Status::Delivered),
            error: None,
            at,
        }));
        updates.push(Update::Events(EventWrite::OutboxAdd {
            seq: n,
            tenant: "acme".into(),
            url: "http://x/".into(),
            attempts: 9,
            first_at: at,
            next_at: at,
            error: None,
            dead: true,
        }));
    }
    // A retry still pending, however old, is no dead letter.
    updates.push(Update::Events(EventWrite::OutboxAdd {
        seq: 99,
        tenant: "acme".into(),
        url: "http://x/".into(),
        attempts: 1,
        first_at: old,
        next_at: old,
        error: None,
        dead: false,
    }));
    store.apply(updates).await.unwrap();
    let db = sql(&conninfo).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut purged = true;
        for (t, n) in [
            ("messages", 5),
            ("segments", 4),
            ("inbound", 2),
            ("calls", 2),
            ("unmatched_receipts", 2),
            ("webhook_outbox", 3),
            ("idempotency_keys", 3),
            ("batches", 3),
        ] {
            purged &= count(&db, t).await == n;
        }
        if purged {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: every kind purged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Kept: the queued one, the one changed recently, the recent ones; their history and
    // the recent inbound events stay (accepted + delivered or queued each, + 2 inbound).
    let kept: Vec<MessageId> = vec![ids[7], ids[8], ids[9], ids[10], ids[11]];
    for id in &kept {
        assert!(store.get("acme", *id).await.unwrap().is_some());
    }
    // accepted + queued; accepted + sent + delivered for the other four; 2 inbound events.
    assert_eq!(count(&db, "history").await, 2 + 4 * 3 + 2);
    // No carrier-id entry of a purged message is left; the kept ones still match receipts.
    let purged: Vec<String> = ids[..7].iter().map(|i| i.0.to_string()).collect();
    let left = format!("carrier_ids WHERE message_id IN ({})", purged.join(","));
    assert_eq!(count(&db, &left).await, 0);
    assert!(count(&db, "carrier_ids").await >= 4);
    let stats = store.stats();
    assert!(
        stats.purge_batches > 6 && stats.purged_rows > 0,
        "{stats:?}"
    );
}

/// As SQLite's: a flow goes once it ended before the cutoff and its deliveries are gone.
#[tokio::test]
async fn retention_purges_ended_flows_after_their_deliveries() {
    let conninfo = fresh_database().await;
    let options = PostgresOptions {
        retention: Retention {
            messages: Some(Duration::from_secs(3600)),
            interval: Duration::from_secs(1),
            batch: 2,
            ..Retention::keep_forever()
        },
        ..test_options()
    };
    let store = PostgresStore::open(&conninfo, options).await.unwrap();
    let now = crate::domain::now_ms();
    let (inserts, updates) =
        crate::store::suite::flows::flows_to_age(now - 2 * 3_600_000, now - 60_000);
    let flows: Vec<MessageId> = inserts
        .iter()
        .filter_map(|m| m.flow.as_ref().map(|f| f.flow))
        .collect();
    store.insert(inserts).await.unwrap();
    store.apply(updates).await.unwrap();
    let db = sql(&conninfo).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count(&db, "flows").await != 4 || count(&db, "messages").await != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: ended flows purged"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for (n, flow) in flows.iter().enumerate() {
        assert_eq!(
            store.flow("t", *flow).await.unwrap().is_some(),
            n >= 2,
            "flow {n}"
        );
    }
    assert_eq!(count(&db, "history WHERE status LIKE 'flow_%'").await, 3);
}

/// `ping` (behind `/readyz`) says whether a write can be made, not only whether the database
/// answers: a read-only database (a standby, a session set read-only) fails it, retryably.
#[tokio::test]
async fn ping_fails_where_writes_cannot_be_made() {
    let conninfo = fresh_database().await;
    let store = open(&conninfo).await;
    store.ping().await.unwrap();
    let dbname = dbname(&conninfo);
    let admin = sql(&switchyard_tests::postgres::cluster().conninfo("postgres")).await;
    let cut = |dbname: String| {
        let admin = &admin;
        async move {
            admin
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_backend_pid()",
                    &[&dbname],
                )
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {dbname} SET default_transaction_read_only = on"
        ))
        .await
        .unwrap();
    cut(dbname.clone()).await;
    let mut last = Ok(());
    for _ in 0..3 {
        last = store.ping().await;
    }
    let err = last.unwrap_err();
    assert!(
        err.is_retryable() && err.to_string().contains("25006"),
        "{err:?}"
    );
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {dbname} RESET default_transaction_read_only"
        ))
        .await
        .unwrap();
    cut(dbname).await;
    let mut last = store.ping().await;
    if last.is_err() {
        last = store.ping().await;
    }
    last.unwrap();
}

/// Message `n` made by node `node` (its number in the id's low 8 bits).
fn message_of_node(node: u8, n: i64) -> NewMessage {
    let mut m = message("acme", n, 1);
    m.id = MessageId((m.id.0 & !0xFF) | i64::from(node));
    m
}

#[tokio::test]
async fn nodes_register_under_free_numbers_and_a_live_number_is_refused() {
    let conninfo = fresh_database().await;
    let (a, b) = (open(&conninfo).await, open(&conninfo).await);
    let lease = Duration::from_secs(3);
    let first = a.register_node(None, "a", "h1", lease).await.unwrap();
    let second = b.register_node(None, "b", "h2", lease).await.unwrap();
    assert_eq!((first.node, second.node), (0, 1));
    // Number 1 is live (renewed meanwhile): a third process asking for it waits out the
    // lease, then gives up.
    let c = open(&conninfo).await;
    let started = std::time::Instant::now();
    let renew = async {
        while started.elapsed() < lease + Duration::from_millis(1500) {
            assert!(b.heartbeat(&second, "h2", lease).await.unwrap());
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let (refused, ()) = futures::join!(c.register_node(Some(1), "c", "h3", lease), renew);
    let refused = refused.unwrap_err();
    assert!(started.elapsed() >= lease, "{:?}", started.elapsed());
    assert!(refused.to_string().contains("node number 1"), "{refused}");
    // The heartbeat keeps it; the configuration hash is what the node says last.
    assert!(b.heartbeat(&second, "h2b", lease).await.unwrap());
    let nodes = a.nodes(lease).await.unwrap();
    assert_eq!(nodes.len(), 2);
    assert_eq!(nodes[1].config, "h2b");
    // Node 0 did not renew meanwhile: it is dead; node 1 is alive.
    assert_eq!(
        nodes.iter().map(|n| n.alive).collect::<Vec<_>>(),
        [false, true]
    );
}

#[tokio::test]
async fn a_number_whose_lease_ran_out_is_taken_and_its_old_holder_is_fenced() {
    let conninfo = fresh_database().await;
    let (a, b) = (open(&conninfo).await, open(&conninfo).await);
    let lease = Duration::from_millis(600);
    let old = a.register_node(Some(7), "old", "h", lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let new = b.register_node(Some(7), "new", "h", lease).await.unwrap();
    assert_eq!(new.node, 7);
    assert!(
        !a.heartbeat(&old, "h", lease).await.unwrap(),
        "the old holder must learn it lost the number"
    );
    assert!(b.heartbeat(&new, "h", lease).await.unwrap());
    b.unregister(&new).await.unwrap();
    assert!(a.nodes(lease).await.unwrap().is_empty());
    // A registration that expired is not renewed, even when nobody took its number: others
    // may be taking over its messages.
    let late = a.register_node(Some(8), "late", "h", lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!a.heartbeat(&late, "h", lease).await.unwrap());
}

#[tokio::test]
async fn claims_stop_once_the_dead_node_registers_again() {
    let conninfo = fresh_database().await;
    let (a, dead) = (open(&conninfo).await, open(&conninfo).await);
    let lease = Duration::from_millis(600);
    let gone = dead
        .register_node(Some(5), "dead", "h", lease)
        .await
        .unwrap();
    dead.insert((1..=40).map(|n| message_of_node(5, n)).collect())
        .await
        .unwrap();
    let me = a.register_node(Some(1), "a", "h", lease).await.unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(a.adopt_messages(&me, 5, lease, 10).await.unwrap().len(), 10);
    // Node 5 comes back (a restart under the same number): the rest stays with it.
    drop(gone);
    let back = dead
        .register_node(Some(5), "back", "h", lease)
        .await
        .unwrap();
    assert_eq!(back.node, 5);
    assert!(a
        .adopt_messages(&me, 5, lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(a.adopt_flows(&me, 5, lease).await.unwrap().is_empty());
    assert_eq!(dead.unfinished().await.unwrap().len(), 30);
}

#[tokio::test]
async fn a_lease_has_one_holder_until_it_expires() {
    let conninfo = fresh_database().await;
    let (a, b) = (open(&conninfo).await, open(&conninfo).await);
    let lease = Duration::from_millis(700);
    let na = a.register_node(None, "a", "h", lease).await.unwrap();
    let nb = b.register_node(None, "b", "h", lease).await.unwrap();
    assert!(a.lease("webhooks", &na, lease).await.unwrap());
    assert!(!b.lease("webhooks", &nb, lease).await.unwrap());
    assert!(a.lease("webhooks", &na, lease).await.unwrap(), "renewal");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(
        b.lease("webhooks", &nb, lease).await.unwrap(),
        "taken after expiry"
    );
    assert!(!a.lease("webhooks", &na, lease).await.unwrap());
    b.release_lease("webhooks", &nb).await.unwrap();
    assert!(
        a.lease("webhooks", &na, lease).await.unwrap(),
        "free after release"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_unfinished_messages_are_split_between_live_nodes_once() {
    let conninfo = fresh_database().await;
    let (a, b, dead) = (
        open(&conninfo).await,
        open(&conninfo).await,
        open(&conninfo).await,
    );
    // Long enough for the work below on a machine busy with other tests: nothing renews it.
    let lease = Duration::from_secs(2);
    let gone = dead
        .register_node(Some(5), "dead", "h", lease)
        .await
        .unwrap();
    let messages: Vec<NewMessage> = (1..=300).map(|n| message_of_node(5, n)).collect();
    dead.insert(messages).await.unwrap();
    // One of them was delivered before the node died: not unfinished, not taken over.
    dead.apply(vec![status_at(
        message_of_node(5, 1).id,
        Status::Delivered,
        T0 + 10,
    )])
    .await
    .unwrap();
    // The dead node's own recovery reads see them; node 0's do not.
    assert_eq!(dead.unfinished().await.unwrap().len(), 299);
    let na = a.register_node(Some(1), "a", "h", lease).await.unwrap();
    let nb = b.register_node(Some(2), "b", "h", lease).await.unwrap();
    assert!(
        a.orphan_owners(lease).await.unwrap().is_empty(),
        "node 5 is alive"
    );
    drop(gone);
    tokio::time::sleep(lease + Duration::from_millis(200)).await;
    assert_eq!(a.orphan_owners(lease).await.unwrap(), vec![5]);
    let take = |store: PostgresStore, me: Registration| async move {
        let mut ids = Vec::new();
        loop {
            let page = store.adopt_messages(&me, 5, lease, 16).await.unwrap();
            if page.is_empty() {
                return (store, ids);
            }
            assert!(page.iter().all(|r| r.segment_states.len() <= 1));
            ids.extend(page.into_iter().map(|r| r.message.id));
        }
    };
    let ((a, from_a), (b, from_b)) = futures::join!(take(a, na.clone()), take(b, nb.clone()));
    let mut all: Vec<_> = from_a.iter().chain(&from_b).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 299, "every unfinished message taken once");
    assert_eq!(from_a.len() + from_b.len(), 299);
    // Node 5 owns nothing any more (nodes 1 and 2 may look dead by now: they did not renew).
    assert!(!a.orphan_owners(lease).await.unwrap().contains(&5));
    // Node 1's recovery now reads what it took.
    a.node.store(1, Ordering::Relaxed);
    assert_eq!(a.unfinished().await.unwrap().len(), from_a.len());
    drop(b);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handed_off_messages_are_claimed_once_and_listeners_are_notified() {
    let conninfo = fresh_database().await;
    let (a, b, c) = (
        open(&conninfo).await,
        open(&conninfo).await,
        open(&conninfo).await,
    );
    let lease = Duration::from_secs(5);
    let na = a.register_node(Some(1), "a", "h", lease).await.unwrap();
    let nb = b.register_node(Some(2), "b", "h", lease).await.unwrap();
    let nc = c.register_node(Some(3), "c", "h", lease).await.unwrap();
    let mut notified = b.listen(HANDOFF_CHANNEL).await.unwrap();
    let messages: Vec<NewMessage> = (1..=100).map(|n| message_of_node(1, n)).collect();
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    a.insert(messages).await.unwrap();
    // One was delivered before it was claimed: handed off, but nobody sends it again.
    a.apply(vec![status_at(ids[0], Status::Delivered, T0 + 10)])
        .await
        .unwrap();
    a.hand_off("alpha", na.node, &ids).await.unwrap();
    a.hand_off("alpha", na.node, &ids[..10]).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), notified.recv())
        .await
        .expect("a notification")
        .unwrap();
    assert_eq!(got, "alpha");
    assert_eq!(a.handoffs_waiting("alpha").await.unwrap(), 100);
    assert_eq!(a.handoffs_waiting("beta").await.unwrap(), 0);
    assert!(b
        .claim_handoffs("beta", nb.node, 10)
        .await
        .unwrap()
        .is_empty());
    let take = |store: PostgresStore, me: u8| async move {
        let mut got = Vec::new();
        loop {
            let page = store.claim_handoffs("alpha", me, 7).await.unwrap();
            if page.is_empty() && store.handoffs_waiting("alpha").await.unwrap() == 0 {
                return (store, got);
            }
            got.extend(page.into_iter().map(|r| r.message.id));
        }
    };
    let ((b, from_b), (c, from_c)) = futures::join!(take(b, nb.node), take(c, nc.node));
    let mut all: Vec<MessageId> = from_b.iter().chain(&from_c).copied().collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 99, "every unfinished message claimed once");
    assert_eq!(from_b.len() + from_c.len(), 99);
    assert!(!all.contains(&ids[0]));
    // The claimers own what they claimed: their recovery reads it, the first node's does not.
    assert_eq!(b.unfinished().await.unwrap().len(), from_b.len());
    assert_eq!(c.unfinished().await.unwrap().len(), from_c.len());
    assert!(a.unfinished().await.unwrap().is_empty());
    // A message taken over from its dead owner in the meantime is not claimed again.
    let late = message_of_node(1, 200);
    a.insert(vec![late.clone()]).await.unwrap();
    a.hand_off("alpha", na.node, &[late.id]).await.unwrap();
    let db = sql(&conninfo).await;
    db.execute("UPDATE messages SET node = 3 WHERE id = $1", &[&late.id.0])
        .await
        .unwrap();
    assert!(b
        .claim_handoffs("alpha", nb.node, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(a.handoffs_waiting("alpha").await.unwrap(), 0);
    // The live leases, with their holders.
    assert!(a.lease("bind:alpha:0", &na, lease).await.unwrap());
    assert!(c.lease("bind:alpha:1", &nc, lease).await.unwrap());
    assert_eq!(
        b.live_leases().await.unwrap(),
        vec![
            ("bind:alpha:0".to_owned(), 1),
            ("bind:alpha:1".to_owned(), 3)
        ]
    );
    drop(notified);
}

#[tokio::test]
async fn a_multipart_mo_message_is_stored_by_the_first_commit_that_releases_its_parts() {
    use crate::domain::{HeldPart, InboundMessage, MoWrite};
    use switchyard_protocols::text::ReassemblyKey;
    let conninfo = fresh_database().await;
    let (a, b) = (open(&conninfo).await, open(&conninfo).await);
    let key = ReassemblyKey {
        source: bytes::Bytes::from_static(b"447911000001"),
        dest: bytes::Bytes::from_static(b"447000000001"),
        reference: 5,
        total: 2,
    };
    let hold = |seq: u8| MoWrite {
        carrier: "alpha".into(),
        hold: Some(HeldPart {
            key: key.clone(),
            seq,
            data_coding: 0,
            udh: None,
            payload: bytes::Bytes::from(vec![b'a' + seq; 10]),
            source_ton: 1,
            received_at: T0 + i64::from(seq),
        }),
        finished: Vec::new(),
    };
    let finished = |n: i64, partial| MoWrite {
        carrier: "alpha".into(),
        hold: None,
        finished: vec![(
            key.clone(),
            InboundMessage {
                id: id(n),
                carrier: "alpha".into(),
                channel: switchyard_routing::Channel::Sms,
                tenant: Some("acme".into()),
                from: "+447911000001".into(),
                to: "447000000001".into(),
                body: format!("m{n}"),
                binary: None,
                received_at: T0 + n,
                partial,
                provider_id: None,
            },
        )],
    };
    // Part 1 held by node A, part 2 by node B.
    a.apply(vec![Update::Mo(Box::new(hold(1)))]).await.unwrap();
    b.apply(vec![Update::Mo(Box::new(hold(2)))]).await.unwrap();
    let both = b.held_mo_parts_of("alpha", &key).await.unwrap();
    assert_eq!(both.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1, 2]);
    // B completes it; A later gives up its copy of part 1: not stored again.
    let done = b
        .apply(vec![Update::Mo(Box::new(finished(10, None)))])
        .await
        .unwrap();
    assert_eq!(done, vec![Applied::Inbound(id(10))]);
    let partial = Some(crate::domain::PartialParts {
        received: vec![1],
        total: 2,
    });
    let again = a
        .apply(vec![Update::Mo(Box::new(finished(11, partial)))])
        .await
        .unwrap();
    assert_eq!(again, vec![Applied::NoChange]);
    let stored = a.inbound("acme", None, None, 10).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].body, "m10");
    assert!(a.held_mo_parts_of("alpha", &key).await.unwrap().is_empty());
}

#[tokio::test]
async fn tls_to_the_database_verifies_the_server_certificate() {
    let cluster = switchyard_tests::postgres::cluster();
    let plain = fresh_database().await;
    let tls = cluster.conninfo_tls(&dbname(&plain));
    let options = PostgresOptions {
        tls_ca: Some(cluster.ca.clone()),
        ..test_options()
    };
    let store = PostgresStore::open(&tls, options).await.unwrap();
    store.insert(vec![message("acme", 1, 1)]).await.unwrap();
    let client = get(&store.pool).await.unwrap();
    let ssl: bool = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(ssl, "the store's connections use TLS");
    drop(client);
    store.close().await.unwrap();
    // A server whose certificate no trusted CA signed is refused.
    let refused = PostgresStore::open(&tls, test_options()).await.unwrap_err();
    let text = format!("{refused}");
    assert!(
        text.contains("certificate") || text.contains("TLS"),
        "{text}"
    );
}

/// The webhooks page's count per endpoint, the session lookup and the purge of expired
/// sessions use their indexes (sequential scans ruled out, as a large table would rule them
/// out).
#[tokio::test]
async fn the_dashboards_queries_use_their_indexes() {
    let conninfo = fresh_database().await;
    drop(open(&conninfo).await);
    let db = sql(&conninfo).await;
    db.batch_execute(
        "INSERT INTO webhook_outbox (seq, tenant, url, attempts, first_at, next_at, dead) \
         SELECT n, 't' || (n % 50), 'http://x/' || (n % 7), 1, 0, n, n % 3 = 0 \
         FROM generate_series(1, 5000) AS n",
    )
    .await
    .unwrap();
    db.batch_execute("ANALYZE webhook_outbox").await.unwrap();
    db.batch_execute("SET enable_seqscan = off").await.unwrap();
    let plan = |sql: &'static str| {
        let db = &db;
        async move {
            db.query(&format!("EXPLAIN {sql}"), &[])
                .await
                .unwrap()
                .iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let tally = plan(
        "SELECT url, count(*) FILTER (WHERE NOT dead), count(*) FILTER (WHERE dead), max(id) \
         FROM webhook_outbox WHERE tenant = 't1' GROUP BY url",
    )
    .await;
    assert!(
        tally.contains("webhook_outbox_tenant") && !tally.contains("Seq Scan"),
        "{tally}"
    );
    let session = plan("SELECT key_hash FROM dashboard_sessions WHERE id_hash = '\\x00'").await;
    assert!(session.contains("dashboard_sessions_pkey"), "{session}");
    let expired = plan("DELETE FROM dashboard_sessions WHERE expires_at <= 5").await;
    assert!(expired.contains("dashboard_sessions_expiry"), "{expired}");
}

#[tokio::test]
async fn a_node_follows_the_opt_outs_another_node_changes() {
    use crate::admission::optout::{follow, OptOuts};
    use crate::domain::{EventWrite, Update};
    let conninfo = fresh_database().await;
    let a = open(&conninfo).await;
    let b = Arc::new(open(&conninfo).await);
    let add = |recipient: &str, sender: &str| {
        Update::Events(EventWrite::OptOutAdd {
            tenant: "acme".into(),
            entries: vec![(recipient.into(), sender.into())],
            source: "api".into(),
            at: T0,
        })
    };
    let remove = |recipient: &str, sender: Option<&str>| {
        Update::Events(EventWrite::OptOutRemove {
            tenant: "acme".into(),
            recipient: recipient.into(),
            sender: sender.map(Into::into),
        })
    };
    // What node b reads: the recipients changed, with their senders as stored now.
    assert_eq!(b.opt_out_changes_end().await.unwrap(), 0);
    a.apply(vec![
        add("4479001", "Acme"),
        add("4479001", "*"),
        add("4479002", "Acme"),
    ])
    .await
    .unwrap();
    a.apply(vec![remove("4479002", Some("Acme"))])
        .await
        .unwrap();
    let (last, mut changed) = b.opt_out_changes_after(0, 100).await.unwrap();
    changed.iter_mut().for_each(|e| e.senders.sort());
    assert_eq!(last, 4);
    assert_eq!(
        changed
            .iter()
            .map(|e| (e.recipient.as_str(), e.senders.join(",")))
            .collect::<Vec<_>>(),
        vec![("4479001", "*,Acme".to_owned()), ("4479002", String::new())]
    );
    // An opt-out already there and a removal of nothing change nothing.
    a.apply(vec![add("4479001", "Acme"), remove("4479003", None)])
        .await
        .unwrap();
    assert_eq!(b.opt_out_changes_end().await.unwrap(), 4);
    assert_eq!(b.opt_out_changes_after(4, 100).await.unwrap(), (4, vec![]));
    assert_eq!(b.opt_out_changes_after(1, 2).await.unwrap().0, 3, "limit");

    // Node b's list, loaded now, then following: a's next changes reach it.
    let from = b.opt_out_changes_end().await.unwrap();
    let list = Arc::new(OptOuts::load(b.all_opt_outs().await.unwrap()));
    assert!(list.blocked("acme", "4479001", "Other"));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let follower = tokio::spawn(follow(list.clone(), b.clone(), from, stopped));
    a.apply(vec![add("4479005", "*")]).await.unwrap();
    a.apply(vec![remove("4479001", None)]).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !list.blocked("acme", "4479005", "Acme") || list.blocked("acme", "4479001", "Other") {
        assert!(
            std::time::Instant::now() < deadline,
            "node b's list did not follow node a's changes"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    follower.await.unwrap();
}
