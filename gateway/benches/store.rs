//! The SQLite store's writer on the SMS hot path: a message's life (accepted, sent, delivered)
//! in batches of 256, as the group commit sees it under load. Two shapes: `lifecycle_256`
//! inserts the 256 messages in one request, `requests_256` in 256 requests of one message
//! queued at once (as the HTTP API sends them); both apply the updates in one request each (as
//! the update sink batches them).
//!
//! `cargo bench -p switchyard-gateway --bench store`
//!
//! Besides criterion's time per batch it prints the writer's own work per message (time spent
//! running requests inside the transaction, without the commit itself: `StoreStats::work_micros`),
//! which is what the rollups add to.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_gateway::domain::{MessageId, Money, NewMessage, Status, Update};
use switchyard_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use switchyard_gateway::store::Store;

/// Messages per request (and per commit).
const BATCH: usize = 256;
/// Carriers and countries the messages are spread over.
const CARRIERS: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];
const COUNTRIES: [&str; 8] = ["GB", "US", "DE", "FR", "ES", "IT", "NL", "SE"];

/// A fresh folder for one store under the system's temporary folder.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Message `n`, accepted at `at`.
fn message(n: i64, at: i64) -> NewMessage {
    let i = n as usize;
    NewMessage {
        id: MessageId((at << 20) | (n & 0xF_FFFF)),
        tenant: if i % 5 == 0 { "globex" } else { "acme" }.into(),
        to: format!("+4479{:08}", n % 100_000_000),
        country: Some(COUNTRIES[i % COUNTRIES.len()].into()),
        from: "Switchyard".into(),
        body: "Your code is 123456".into(),
        encoding: Some(switchyard_protocols::text::Encoding::Gsm7),
        segments: 1,
        priority: switchyard_routing::Priority::Normal,
        scheduled_at: None,
        expires_at: None,
        callback_url: None,
        tags: vec![],
        metadata: None,
        carrier: Some(CARRIERS[(i / 3) % CARRIERS.len()].into()),
        price: Some(Money {
            amount: switchyard_routing::Price::from_nanos(7_900_000),
            currency: switchyard_routing::Currency::parse("USD").expect("a currency"),
        }),
        created_at: at,
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

fn status(id: MessageId, status: Status, at: i64) -> Update {
    Update::Status {
        id,
        status,
        at,
        detail: None,
    }
}

/// One batch's life: insert, sent, delivered (three commits). With `one_per_request`, each
/// message is inserted by a request of its own, all queued at once.
async fn lifecycle(store: &SqliteStore, next: &mut i64, at: i64, one_per_request: bool) {
    let messages: Vec<NewMessage> = (0..BATCH as i64)
        .map(|k| message(*next + k, at + k / 16))
        .collect();
    *next += BATCH as i64;
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    if one_per_request {
        let inserts = messages.into_iter().map(|m| store.insert(vec![m]));
        for r in futures::future::join_all(inserts).await {
            r.expect("insert");
        }
    } else {
        store.insert(messages).await.expect("insert");
    }
    let sent = ids
        .iter()
        .map(|id| status(*id, Status::Sent, at + 250))
        .collect();
    store.apply(sent).await.expect("sent");
    let delivered = ids
        .iter()
        .map(|id| status(*id, Status::Delivered, at + 2_400))
        .collect();
    store.apply(delivered).await.expect("delivered");
}

fn writer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    for (fsync, one_per_request) in [(false, false), (true, false), (false, true), (true, true)] {
        let dir = scratch(if fsync { "writer-fsync" } else { "writer" });
        let store = SqliteStore::open(
            &dir.join("store.db"),
            SqliteOptions {
                fsync,
                ..SqliteOptions::default()
            },
        )
        .expect("a store");
        let mut next = 0i64;
        // Two minutes of traffic per second of wall time, from a fixed start.
        let start = 1_780_000_000_000i64;
        let name = match (one_per_request, fsync) {
            (false, true) => "writer/lifecycle_256/fsync",
            (false, false) => "writer/lifecycle_256/no_fsync",
            (true, true) => "writer/requests_256/fsync",
            (true, false) => "writer/requests_256/no_fsync",
        };
        let before = store.stats();
        let mut messages = 0u64;
        c.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let began = Instant::now();
                runtime.block_on(async {
                    for _ in 0..iters {
                        let at = start + next * 100;
                        lifecycle(&store, &mut next, at, one_per_request).await;
                    }
                });
                messages += iters * BATCH as u64;
                began.elapsed()
            })
        });
        let after = store.stats();
        let work = after.work_micros - before.work_micros;
        println!(
            "{name}: writer work {:.2} µs per message (3 updates: insert, sent, delivered) over {messages} messages",
            work as f64 / messages.max(1) as f64
        );
        runtime.block_on(store.close()).expect("close");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(8));
    targets = writer
}
criterion_main!(benches);
