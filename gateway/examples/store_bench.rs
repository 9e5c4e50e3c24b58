//! Load test of the SQLite store: durable inserts from many concurrent tasks.
//!
//! ```text
//! cargo run --release -p switchyard-gateway --example store_bench -- \
//!     [--messages 200000] [--tasks 64] [--batch 256] [--linger-us 0] [--updates] [--path FILE]
//! ```
//! Each task calls `insert` with `--batch` messages at a time until `--messages` are stored,
//! every call waiting for its commit (WAL, `synchronous=FULL`), so the numbers are durable
//! inserts. With `--updates` it then applies a `SegmentSent` and a delivery receipt per message
//! the same way. Prints inserts/s, commits, average rows per commit, CPU µs per insert (user +
//! system, from /proc/self/stat), call latency percentiles and peak RSS.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_gateway::domain::{
    IdFormat, IdFormats, MessageId, NewMessage, ReceiptUpdate, Status, Update,
};
use switchyard_gateway::store::sqlite::{SqliteOptions, SqliteStore};
use switchyard_gateway::store::Store;

/// What to run.
#[derive(Debug)]
struct Args {
    messages: usize,
    tasks: usize,
    batch: usize,
    linger: Duration,
    updates: bool,
    path: Option<PathBuf>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        messages: 200_000,
        tasks: 64,
        batch: 256,
        linger: Duration::ZERO,
        updates: false,
        path: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .ok_or_else(|| anyhow::anyhow!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--messages" => args.messages = value()?.parse()?,
            "--tasks" => args.tasks = value()?.parse()?,
            "--batch" => args.batch = value()?.parse()?,
            "--linger-us" => args.linger = Duration::from_micros(value()?.parse()?),
            "--path" => args.path = Some(value()?.into()),
            "--updates" => args.updates = true,
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    anyhow::ensure!(
        args.tasks > 0 && args.batch > 0,
        "--tasks and --batch must be positive"
    );
    Ok(args)
}

fn message(n: usize, now: i64) -> NewMessage {
    NewMessage {
        id: MessageId::generate(now),
        tenant: format!("tenant-{}", n % 8),
        to: format!("+1555{:07}", n % 10_000_000),
        country: Some("US".into()),
        from: "+15550001111".into(),
        body: "Your verification code is 123456. It expires in 10 minutes.".into(),
        encoding: Some(switchyard_protocols::text::Encoding::Gsm7),
        segments: 1,
        priority: switchyard_routing::Priority::Normal,
        scheduled_at: None,
        expires_at: None,
        callback_url: None,
        tags: vec!["otp".into()],
        metadata: None,
        carrier: Some("alpha".into()),
        price: Some(switchyard_gateway::domain::Money {
            amount: switchyard_routing::Price::parse("0.0079").unwrap(),
            currency: switchyard_routing::Currency::parse("USD").unwrap(),
        }),
        created_at: now,
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

/// User + system CPU time of this process so far.
fn cpu_time() -> Duration {
    // Fields 14 and 15 of /proc/self/stat (after the parenthesised command name), in clock
    // ticks of 1/100 s on Linux.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// Peak resident set size, from /proc/self/status.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs `calls` (each a Vec of rows) from `tasks` concurrent tasks through `op`, and reports.
async fn phase<T: Send + 'static>(
    name: &str,
    store: &Arc<SqliteStore>,
    work: Vec<Vec<T>>,
    tasks: usize,
    op: fn(Arc<SqliteStore>, Vec<T>) -> futures::future::BoxFuture<'static, anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let rows: usize = work.iter().map(Vec::len).sum();
    let queue = Arc::new(std::sync::Mutex::new(work));
    let before = store.stats();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let handles: Vec<_> = (0..tasks)
        .map(|_| {
            let queue = queue.clone();
            let store = store.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                loop {
                    let next = queue.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.pop();
                    let Some(rows) = next else { break };
                    let t = Instant::now();
                    op(store.clone(), rows).await?;
                    latencies.push(t.elapsed());
                }
                Ok::<_, anyhow::Error>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for h in handles {
        latencies.extend(h.await??);
    }
    let elapsed = start.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let after = store.stats();
    latencies.sort_unstable();
    let commits = after.commits - before.commits;
    println!(
        "{name:>8}: {rows} rows in {:.2} s = {:.0} rows/s durable | {} commits, {:.1} rows/commit (largest {}) | \
         CPU {:.2} µs/row | call p50 {:.2} ms p99 {:.2} ms | writer: work {:.2} µs/row, commit {:.1} ms/commit",
        elapsed.as_secs_f64(),
        rows as f64 / elapsed.as_secs_f64(),
        commits,
        (after.rows - before.rows) as f64 / commits.max(1) as f64,
        after.largest_batch,
        cpu.as_secs_f64() * 1e6 / rows.max(1) as f64,
        percentile(&latencies, 0.50).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
        (after.work_micros - before.work_micros) as f64 / (after.rows - before.rows).max(1) as f64,
        (after.commit_micros - before.commit_micros) as f64 / 1e3 / commits.max(1) as f64,
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let dir = std::env::temp_dir().join(format!("switchyard-store-bench-{}", std::process::id()));
    let path = args.path.clone().unwrap_or_else(|| dir.join("bench.db"));
    let options = SqliteOptions {
        linger: args.linger,
        ..SqliteOptions::default()
    };
    let store = Arc::new(SqliteStore::open(&path, options)?);
    println!(
        "store_bench: {} messages, {} tasks, {} per call, linger {:?}, file {}",
        args.messages,
        args.tasks,
        args.batch,
        args.linger,
        path.display()
    );

    let now = switchyard_gateway::domain::now_ms();
    let messages: Vec<NewMessage> = (0..args.messages).map(|n| message(n, now)).collect();
    let ids: Vec<MessageId> = messages.iter().map(|m| m.id).collect();
    let mut calls: Vec<Vec<NewMessage>> = messages
        .chunks(args.batch)
        .map(<[NewMessage]>::to_vec)
        .collect();
    calls.reverse();
    phase("insert", &store, calls, args.tasks, |store, rows| {
        Box::pin(async move { Ok(store.insert(rows).await?) })
    })
    .await?;

    if args.updates {
        // Hex in responses, decimal in receipts, as configured for such a carrier.
        let formats = IdFormats {
            response: Some(IdFormat::Hex),
            receipt: Some(IdFormat::Decimal),
        };
        let sent: Vec<Update> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| Update::SegmentSent {
                id: *id,
                index: 0,
                carrier: "alpha".into(),
                carrier_message_id: format!("{:X}", 0x10_0000 + n),
                id_formats: formats,
                at: now + 1,
            })
            .collect();
        let receipts: Vec<Update> = (0..ids.len())
            .map(|n| {
                Update::Receipt(ReceiptUpdate {
                    carrier: "alpha".into(),
                    carrier_message_id: (0x10_0000 + n).to_string(),
                    id_formats: formats,
                    status: Some(Status::Delivered),
                    error: None,
                    at: now + 2,
                })
            })
            .collect();
        for (name, updates) in [("sent", sent), ("receipt", receipts)] {
            let mut calls: Vec<Vec<Update>> =
                updates.chunks(args.batch).map(<[Update]>::to_vec).collect();
            calls.reverse();
            phase(name, &store, calls, args.tasks, |store, rows| {
                Box::pin(async move {
                    store.apply(rows).await?;
                    Ok(())
                })
            })
            .await?;
        }
        let unmatched = store.unmatched_receipts().await?;
        anyhow::ensure!(unmatched == 0, "{unmatched} receipts did not match");
    }

    store.close().await?;
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "peak RSS {} MiB, database {} MiB",
        peak_rss_kib() / 1024,
        size / (1024 * 1024)
    );
    if args.path.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
