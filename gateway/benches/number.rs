//! E.164 validation: the precompiled fast path against the `phonenumber` crate's own parser and
//! validator, on the same numbers in the same run (see `gateway/src/number.rs`).
//!
//! `cargo bench -p switchyard-gateway --bench number`

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_gateway::number::{parse_e164, slow};

/// Mobile and fixed numbers of 16 countries, so the crate's 100-entry pattern cache is
/// exercised the way mixed traffic does.
const NUMBERS: &[&str] = &[
    "+447400123456",
    "+447911123456",
    "+14155552671",
    "+16137827274",
    "+33612345678",
    "+4915123456789",
    "+393123456789",
    "+34612345678",
    "+31612345678",
    "+46701234567",
    "+48512345678",
    "+5511961234567",
    "+919876543210",
    "+8613812345678",
    "+61412345678",
    "+27821234567",
    "+2348031234567",
    "+971501234567",
    "+6591234567",
    "+81901234567",
];

/// One country only: the crate's pattern cache never evicts (the best case for it).
const ONE_COUNTRY: &[&str] = &[
    "+447400123456",
    "+447400123457",
    "+447400654321",
    "+447401234567",
];

fn bench(c: &mut Criterion) {
    for raw in NUMBERS {
        assert_eq!(parse_e164(raw), slow(raw), "{raw}");
    }
    let mut group = c.benchmark_group("e164");
    group.bench_function("phonenumber_crate", |b| {
        b.iter(|| {
            for raw in NUMBERS {
                black_box(slow(black_box(raw)).is_ok());
            }
        })
    });
    group.bench_function("switchyard_fast_path", |b| {
        b.iter(|| {
            for raw in NUMBERS {
                black_box(parse_e164(black_box(raw)).is_ok());
            }
        })
    });
    group.finish();

    // Same-run ratio, per number: each side timed for about a second.
    let per = |numbers: &[&str], f: &dyn Fn(&str) -> bool| {
        let start = Instant::now();
        let mut rounds = 0u32;
        while start.elapsed().as_secs_f64() < 1.0 {
            for raw in numbers {
                black_box(f(black_box(raw)));
            }
            rounds += 1;
        }
        start.elapsed().as_secs_f64() * 1e9 / f64::from(rounds) / numbers.len() as f64
    };
    for (name, numbers) in [("20 countries", NUMBERS), ("one country", ONE_COUNTRY)] {
        let crate_ns = per(numbers, &|raw| slow(raw).is_ok());
        let fast_ns = per(numbers, &|raw| parse_e164(raw).is_ok());
        println!(
            "e164 validation per number, {name}: phonenumber crate {crate_ns:.0} ns, fast path {fast_ns:.0} ns, ratio {:.1}x",
            crate_ns / fast_ns
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
