//! protocols::text and protocols::dlr hot paths: encode + split, count, receipt parse.
//!
//! `baseline/copy_459` copies the 459-byte text into a fresh Vec: the floor any encoder pays,
//! for ratios measured in the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_protocols::dlr::parse_text_receipt;
use switchyard_protocols::text::{count_segments, encode_message, EncodeOptions};

fn texts() -> (String, String, String) {
    let base = "Your verification code is 483920. It expires in 10 minutes. Do not share it. ";
    let g160: String = base.chars().cycle().take(160).collect();
    let g459: String = base.chars().cycle().take(459).collect();
    let emoji = "Happy birthday! 🎉🎂 Have a great day 😀👍 See you soon ❤️ ".repeat(2);
    (g160, g459, emoji)
}

fn bench(c: &mut Criterion) {
    let (g160, g459, emoji) = texts();
    let opts = EncodeOptions {
        reference: 42,
        ..EncodeOptions::default()
    };
    let receipt: &[u8] = b"id:1A2B3C4D5E sub:001 dlvrd:001 submit date:2301151030 done date:2301151031 stat:DELIVRD err:000 text:Your verification code is";

    c.bench_function("baseline/copy_459", |b| {
        b.iter(|| black_box(black_box(g459.as_bytes()).to_vec()))
    });
    c.bench_function("text/gsm7_encode_split_160", |b| {
        b.iter(|| encode_message(black_box(&g160), &opts))
    });
    c.bench_function("text/gsm7_encode_split_459", |b| {
        b.iter(|| encode_message(black_box(&g459), &opts))
    });
    c.bench_function("text/ucs2_encode_emoji", |b| {
        b.iter(|| encode_message(black_box(&emoji), &opts))
    });
    c.bench_function("text/count_segments_459", |b| {
        b.iter(|| count_segments(black_box(&g459), &opts))
    });
    c.bench_function("text/count_segments_emoji", |b| {
        b.iter(|| count_segments(black_box(&emoji), &opts))
    });
    c.bench_function("dlr/parse_text_receipt", |b| {
        b.iter(|| parse_text_receipt(black_box(receipt)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
