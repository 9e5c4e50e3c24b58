//! Analytics queries over a large SQLite store: 1,000,000 messages accepted over 30 days, each
//! sent and delivered (or undeliverable), written through the store's own path (`insert` and
//! `apply`, so the rollups are the writer's), then queried as `GET /v1/analytics/messages`
//! does: the rows of 30 days in day buckets, grouped by carrier and by country, summed, with
//! the percentiles of every group. Target: ≤ 100 ms per query.
//!
//! `cargo bench -p switchyard-gateway --bench analytics`
//!
//! The store is kept between runs under the system's temporary folder
//! (`switchyard-bench-analytics-1m`); delete it to fill it again. Traffic: 3 tenants, 20
//! countries, each served by 2 of 8 carriers, 3 senders per tenant (about 360 keys a day).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_gateway::domain::analytics::{
    percentiles, MessageDimension, Resolution, RollupQuery,
};
use switchyard_gateway::domain::{MessageId, Money, NewMessage, Status, Update};
use switchyard_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use switchyard_gateway::store::Store;

const MESSAGES: u64 = 1_000_000;
const DAYS: i64 = 30;
/// Midnight UTC, 30 days before the queries' end.
const START: i64 = 1_780_012_800_000 - DAYS * 86_400_000;
const TENANTS: [&str; 3] = ["acme", "globex", "initech"];
const CARRIERS: [&str; 8] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
];
const COUNTRIES: [&str; 20] = [
    "GB", "US", "DE", "FR", "ES", "IT", "NL", "SE", "NO", "DK", "FI", "PL", "PT", "IE", "BE", "AT",
    "CH", "CZ", "GR", "HU",
];
const PER_INSERT: u64 = 5_000;

/// A small deterministic generator (splitmix64), so every run builds the same store.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn message(n: u64, at: i64, rng: &mut Rng) -> NewMessage {
    let tenant = TENANTS[rng.below(TENANTS.len())];
    let country = rng.below(COUNTRIES.len());
    let carrier = CARRIERS[(country + rng.below(2) * 3) % CARRIERS.len()];
    NewMessage {
        id: MessageId((at << 20) | (n as i64 & 0xF_FFFF)),
        tenant: tenant.into(),
        to: format!("+4479{:08}", n % 100_000_000),
        country: Some(COUNTRIES[country].into()),
        from: format!("{tenant}-{}", rng.below(3)),
        body: "Your code is 123456".into(),
        encoding: Some(switchyard_protocols::text::Encoding::Gsm7),
        segments: 1,
        priority: switchyard_routing::Priority::Normal,
        scheduled_at: None,
        expires_at: None,
        callback_url: None,
        tags: vec![],
        metadata: None,
        carrier: Some(carrier.into()),
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

fn query(tenant: Option<&str>, group_by: &[MessageDimension]) -> RollupQuery {
    RollupQuery {
        tenant: tenant.map(str::to_owned),
        resolution: Resolution::Day,
        since: START,
        until: START + DAYS * 86_400_000,
        filters: Vec::new(),
        group_by: group_by.to_vec(),
    }
}

/// Fills the store unless a previous run did.
async fn fill(store: &SqliteStore) {
    let have = store
        .message_rollups(query(None, &[]))
        .await
        .expect("rollups")
        .values()
        .map(|t| t.count(Status::Accepted))
        .sum::<u64>();
    if have == MESSAGES {
        return;
    }
    assert_eq!(have, 0, "a partly filled store: delete it");
    let began = Instant::now();
    let mut rng = Rng(17);
    let step = DAYS * 86_400_000 / MESSAGES as i64;
    let mut n = 0u64;
    while n < MESSAGES {
        let batch: Vec<NewMessage> = (n..(n + PER_INSERT).min(MESSAGES))
            .map(|k| message(k, START + k as i64 * step, &mut rng))
            .collect();
        n += batch.len() as u64;
        let moves: Vec<(MessageId, i64, u64)> = batch
            .iter()
            .map(|m| (m.id, m.created_at, rng.next()))
            .collect();
        store.insert(batch).await.expect("insert");
        let sent = moves
            .iter()
            .map(|(id, at, r)| status(*id, Status::Sent, at + 100 + (*r % 900) as i64))
            .collect();
        store.apply(sent).await.expect("sent");
        let done = moves
            .iter()
            .map(|(id, at, r)| {
                let outcome = if r % 50 == 0 {
                    Status::Undeliverable
                } else {
                    Status::Delivered
                };
                status(*id, outcome, at + 1_000 + ((r >> 10) % 20_000) as i64)
            })
            .collect();
        store.apply(done).await.expect("final");
    }
    println!(
        "filled {MESSAGES} messages over {DAYS} days in {:.1} s",
        began.elapsed().as_secs_f64()
    );
}

/// What the API computes: rows summed per (day, group), three percentiles per histogram.
async fn analytics(store: &SqliteStore, tenant: Option<&str>, by: MessageDimension) -> usize {
    let grouped = store
        .message_rollups(query(tenant, &[by]))
        .await
        .expect("groups");
    let mut n = 0;
    for t in grouped.values() {
        black_box(t.delivery_rate());
        for h in [&t.to_sent, &t.to_delivered, &t.end_to_end] {
            black_box(percentiles(h.as_ref()));
        }
        n += 1;
    }
    n
}

fn queries(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let dir = std::env::temp_dir().join("switchyard-bench-analytics-1m");
    let store = SqliteStore::open(
        &dir.join("store.db"),
        SqliteOptions {
            fsync: false,
            ..SqliteOptions::default()
        },
    )
    .expect("a store");
    runtime.block_on(fill(&store));
    let rows = runtime
        // Grouped by every dimension: one group per row.
        .block_on(store.message_rollups(query(Some("acme"), &MessageDimension::ALL)))
        .expect("rows")
        .len();
    println!("one tenant's day rows over {DAYS} days: {rows}");
    for (name, tenant, by) in [
        (
            "tenant_30d_day_by_carrier",
            Some("acme"),
            MessageDimension::Carrier,
        ),
        (
            "tenant_30d_day_by_country",
            Some("acme"),
            MessageDimension::Country,
        ),
        (
            "operator_30d_day_by_carrier",
            None,
            MessageDimension::Carrier,
        ),
        (
            "operator_30d_day_by_country",
            None,
            MessageDimension::Country,
        ),
    ] {
        c.bench_function(&format!("analytics/{name}"), |b| {
            b.iter(|| runtime.block_on(analytics(&store, tenant, by)))
        });
    }
    runtime.block_on(store.close()).expect("close");
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(5));
    targets = queries
}
criterion_main!(benches);
