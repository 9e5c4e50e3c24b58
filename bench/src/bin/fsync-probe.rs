//! `fsync-probe`: measures the disk's fsync latency where a store lives, while a benchmark runs,
//! so a durable gateway's accept latency can be read against what its disk allows.
//!
//! Every `--interval-ms` it writes 4 KiB at the end of a file in `--dir` (wrapping at 1 MiB,
//! like a write-ahead log that restarts) and calls `fsync` on it, the same call SQLite makes to
//! commit with `synchronous = FULL`, timing the write and the sync together. After
//! `--duration-s` it removes the file and prints one JSON line:
//! `{"fsyncs": N, "p50_us": …, "p90_us": …, "p99_us": …, "max_us": …}`.
//!
//! At the default 20 ms it adds 50 small synced writes a second to the disk's load: small next
//! to a gateway committing hundreds of times a second, but not nothing on a slow disk.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

/// Command-line options of `fsync-probe`.
#[derive(Debug, Parser)]
#[command(
    name = "fsync-probe",
    version,
    about = "Measures fsync latency in a directory"
)]
struct Options {
    /// The directory whose file system is measured (a file is created there and removed).
    #[arg(long)]
    dir: PathBuf,
    /// Time between two synced writes.
    #[arg(long, default_value_t = 20)]
    interval_ms: u64,
    /// How long to measure.
    #[arg(long, default_value_t = 60)]
    duration_s: u64,
}

/// Bytes per write: one SQLite page.
const WRITE: usize = 4096;
/// The file wraps back to its start at this size.
const WRAP: u64 = 1 << 20;

fn main() -> anyhow::Result<()> {
    let options = Options::parse();
    let path = options
        .dir
        .join(format!("fsync-probe-{}.dat", std::process::id()));
    let result = measure(&options, &path);
    let _ = std::fs::remove_file(&path);
    let h = result?;
    let us = |q: f64| h.value_at_quantile(q);
    println!(
        "{}",
        serde_json::json!({
            "fsyncs": h.len(),
            "p50_us": us(0.5),
            "p90_us": us(0.9),
            "p99_us": us(0.99),
            "max_us": h.max(),
        })
    );
    Ok(())
}

/// Synced writes until the time is up; their latencies in µs.
fn measure(options: &Options, path: &PathBuf) -> anyhow::Result<Histogram<u64>> {
    let mut file: File = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(path)?;
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let block = vec![0x5a_u8; WRITE];
    let interval = Duration::from_millis(options.interval_ms.max(1));
    let end = Instant::now() + Duration::from_secs(options.duration_s);
    let mut offset = 0u64;
    let mut next = Instant::now();
    while Instant::now() < end {
        let started = Instant::now();
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(&block)?;
        file.sync_all()?;
        h.saturating_record(started.elapsed().as_micros() as u64);
        offset = (offset + WRITE as u64) % WRAP;
        next += interval;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
    Ok(h)
}
