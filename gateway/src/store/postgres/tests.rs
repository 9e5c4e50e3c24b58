//! Tests of what only the PostgreSQL store has, against the test process's cluster
//! ([`super::harness`]): migrations by nodes starting together, the event log's order with
//! several nodes writing at once, group commit, `close`, and errors when the database is out of
//! reach or a connection is lost.
//!
//! What every backend does through the [`Store`] and [`crate::store::events::EventStore`]
//! traits is tested by the store suite (`crate::store::suite`), which runs against this store
//! with [`super::harness::PostgresHarness`].

use std::sync::Arc;
use std::time::Duration;

use super::harness::{fresh_database, test_options};
use super::*;
use crate::store::events::EventStore;
use crate::store::suite::fixtures::{id, message, status_at, T0};

async fn open(conninfo: &str) -> PostgresStore {
    PostgresStore::open(conninfo, test_options()).await.unwrap()
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
    let dbname = conninfo.rsplit('=').next().unwrap().to_owned();
    sql(&harness::cluster().conninfo("postgres"))
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
