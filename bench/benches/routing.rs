//! routing: LCR table lookup, full route (plan filter + health scoring), and rebuild, on a
//! synthetic table shaped like real decks: every ITU country code, 200k distinct prefixes,
//! 20 carriers each covering most countries and ~20 % of the longer prefixes.
//!
//! `naive/hashmap_probe` is the baseline measured in the same run: the same ranked lists in a
//! `HashMap<String, Vec<Candidate>>`, probed from the longest prefix length down. After the
//! criterion groups, a short fixed-iteration run prints the lookup ratio, the rebuild time and
//! the table's memory.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard_routing::*;

const PREFIXES: usize = 200_000;
const CARRIERS: usize = 20;
const NOW: UnixTime = 1_750_000_000;

/// ITU-T E.164 country codes (assigned geographic ones; shared codes such as 1 and 7 once).
const COUNTRY_CODES: &[u16] = &[
    1, 7, 20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49, 51, 52, 53, 54,
    55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66, 81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98, 211,
    212, 213, 216, 218, 220, 221, 222, 223, 224, 225, 226, 227, 228, 229, 230, 231, 232, 233, 234,
    235, 236, 237, 238, 239, 240, 241, 242, 243, 244, 245, 246, 247, 248, 249, 250, 251, 252, 253,
    254, 255, 256, 257, 258, 260, 261, 262, 263, 264, 265, 266, 267, 268, 269, 290, 291, 297, 298,
    299, 350, 351, 352, 353, 354, 355, 356, 357, 358, 359, 370, 371, 372, 373, 374, 375, 376, 377,
    378, 379, 380, 381, 382, 383, 385, 386, 387, 389, 420, 421, 423, 500, 501, 502, 503, 504, 505,
    506, 507, 508, 509, 590, 591, 592, 593, 594, 595, 596, 597, 598, 599, 670, 672, 673, 674, 675,
    676, 677, 678, 679, 680, 681, 682, 683, 685, 686, 687, 688, 689, 690, 691, 692, 850, 852, 853,
    855, 856, 880, 886, 960, 961, 962, 963, 964, 965, 966, 967, 968, 970, 971, 972, 973, 974, 975,
    976, 977, 992, 993, 994, 995, 996, 998,
];

/// splitmix64: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

struct Synthetic {
    config: Arc<RoutingConfig>,
    prefixes: Vec<String>,
    numbers: Vec<E164>,
}

fn synthetic() -> Synthetic {
    let mut rng = Rng(0x0051_571C_4A7D);
    // Prefixes: each country code, then national ranges of 1–5 more digits; big countries
    // (short codes) get more ranges, as in real decks.
    let mut set: HashSet<String> = COUNTRY_CODES.iter().map(|c| c.to_string()).collect();
    let weights: Vec<u64> = COUNTRY_CODES
        .iter()
        .map(|&c| if c < 100 { 12 } else { 3 })
        .collect();
    let total: u64 = weights.iter().sum();
    while set.len() < PREFIXES {
        let mut pick = rng.below(total);
        let mut cc = COUNTRY_CODES[0];
        for (c, w) in COUNTRY_CODES.iter().zip(&weights) {
            if pick < *w {
                cc = *c;
                break;
            }
            pick -= w;
        }
        let extra = 1 + rng.below(5) as usize;
        let mut p = cc.to_string();
        for _ in 0..extra {
            p.push(char::from(b'0' + rng.below(10) as u8));
        }
        set.insert(p);
    }
    let mut prefixes: Vec<String> = set.into_iter().collect();
    prefixes.sort();
    let country_price: HashMap<u16, u64> = COUNTRY_CODES
        .iter()
        .map(|&c| (c, 5_000_000 + rng.below(95_000_000)))
        .collect();
    let cc_of = |p: &str| {
        (1..=3)
            .rev()
            .filter_map(|l| p.get(..l)?.parse::<u16>().ok())
            .find(|c| country_price.contains_key(c))
    };

    let eur = Currency::parse("EUR").unwrap_or_else(|_| unreachable!());
    let mut config = RoutingConfig::new(eur);
    for i in 0..CARRIERS {
        let name = format!("Carrier {i:02}");
        let mut c = CarrierConfig::new(name.clone(), &[Channel::Sms]);
        c.priority = (i % 5) as u8;
        c.weight = 1 + (i % 3) as u32;
        config.carriers.push(c);
        let factor = 80 + rng.below(40); // percent
        let mut rates = Vec::new();
        for (line, p) in prefixes.iter().enumerate() {
            let is_cc = p.len() <= 3 && COUNTRY_CODES.iter().any(|c| c.to_string() == *p);
            // Every prefix has at least one carrier (the one `line % CARRIERS` picks).
            let covered = if is_cc {
                rng.chance(0.9)
            } else {
                rng.chance(0.2)
            } || line % CARRIERS == i;
            if !covered {
                continue;
            }
            let base = cc_of(p)
                .and_then(|c| country_price.get(&c))
                .copied()
                .unwrap_or(50_000_000);
            let price = base * factor / 100 * (90 + rng.below(20)) / 100;
            rates.push(Rate {
                prefix: Prefix::parse(p).unwrap_or_else(|_| unreachable!("generated digits")),
                price: Price::from_nanos(price),
                currency: eur,
                effective_from: NOW - 86_400,
                country: None,
                network: None,
                voice: None,
                line: line as u32 + 2,
            });
        }
        config.decks.push(RateDeck {
            carrier: name,
            channel: Channel::Sms,
            source: format!("carrier{i:02}.csv"),
            rates,
        });
    }
    let mut plan = RoutePlan::open("tenant");
    plan.blocked = vec!["Carrier 03".into(), "Carrier 11".into()];
    config.plans.push(plan);

    // Traffic: numbers under random deck prefixes, 11–12 digits long.
    let numbers = (0..4096)
        .map(|_| {
            let mut n = prefixes[rng.below(prefixes.len() as u64) as usize].clone();
            let len = 11 + rng.below(2) as usize;
            while n.len() < len {
                n.push(char::from(b'0' + rng.below(10) as u8));
            }
            E164::parse(&n).unwrap_or_else(|_| unreachable!("generated digits"))
        })
        .collect();
    Synthetic {
        config: Arc::new(config),
        prefixes,
        numbers,
    }
}

/// The baseline: every deck prefix → its ranked list, probed longest first.
fn naive_map(table: &RoutingTable, prefixes: &[String]) -> HashMap<String, Vec<Candidate>> {
    prefixes
        .iter()
        .filter_map(|p| {
            let n = E164::parse(p).ok()?;
            let m = table.lookup(Channel::Sms, &n);
            (usize::from(m.matched_len) == p.len()).then(|| (p.clone(), m.candidates.to_vec()))
        })
        .collect()
}

fn naive_lookup<'a>(map: &'a HashMap<String, Vec<Candidate>>, number: &E164) -> &'a [Candidate] {
    let s = number.as_str();
    for len in (1..=s.len()).rev() {
        if let Some(v) = s.get(..len).and_then(|k| map.get(k)) {
            return v;
        }
    }
    &[]
}

fn bench(c: &mut Criterion) {
    let syn = synthetic();
    let t0 = Instant::now();
    let start = Instant::now();
    let table = RoutingTable::build(Arc::clone(&syn.config), NOW, t0, None)
        .unwrap_or_else(|e| panic!("{e}"));
    let first_build = start.elapsed();
    let map = naive_map(&table, &syn.prefixes);
    let numbers = &syn.numbers;
    // Naive and trie must agree before being compared.
    for n in numbers {
        assert_eq!(
            naive_lookup(&map, n),
            table.lookup(Channel::Sms, n).candidates
        );
    }

    let mut g = c.benchmark_group("routing_lookup");
    let mut i = 0usize;
    g.bench_function("trie", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(
                table
                    .lookup(Channel::Sms, black_box(&numbers[i]))
                    .candidates
                    .len(),
            )
        })
    });
    g.bench_function("naive/hashmap_probe", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            black_box(naive_lookup(&map, black_box(&numbers[i])).len())
        })
    });
    let tenant = table.tenant_id("tenant").unwrap_or_else(|| unreachable!());
    let mut buf = RouteBuf::new();
    g.bench_function("route_scored", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            let req = RouteRequest {
                channel: Channel::Sms,
                number: &numbers[i],
                tenant,
                priority: Priority::High,
                salt: i as u64,
                now: t0,
            };
            black_box(table.route(&req, &mut buf).map(|r| r.len()).unwrap_or(0))
        })
    });
    g.finish();

    let mut g = c.benchmark_group("routing_rebuild");
    g.sample_size(10);
    g.bench_function("200k_prefixes_20_carriers", |b| {
        b.iter(|| {
            RoutingTable::build(Arc::clone(&syn.config), NOW, t0, Some(&table))
                .map(|t| t.generation())
        })
    });
    g.finish();

    // Same-run summary with a fixed number of iterations.
    let per_lookup = |f: &dyn Fn(&E164) -> usize| {
        let mut samples: Vec<f64> = (0..7)
            .map(|_| {
                let start = Instant::now();
                let mut sink = 0usize;
                for _ in 0..100 {
                    for n in numbers {
                        sink = sink.wrapping_add(f(black_box(n)));
                    }
                }
                black_box(sink);
                start.elapsed().as_nanos() as f64 / (100 * numbers.len()) as f64
            })
            .collect();
        samples.sort_by(f64::total_cmp);
        samples[3]
    };
    let trie_ns = per_lookup(&|n| table.lookup(Channel::Sms, n).candidates.len());
    let naive_ns = per_lookup(&|n| naive_lookup(&map, n).len());
    let mut rebuilds: Vec<Duration> = (0..3)
        .map(|_| {
            let s = Instant::now();
            black_box(
                RoutingTable::build(Arc::clone(&syn.config), NOW, t0, Some(&table))
                    .map(|t| t.generation())
                    .ok(),
            );
            s.elapsed()
        })
        .collect();
    rebuilds.sort();
    let stats = table.stats();
    let heap = table.heap_size();
    let avg_cands: f64 = numbers
        .iter()
        .map(|n| table.lookup(Channel::Sms, n).candidates.len() as f64)
        .sum::<f64>()
        / numbers.len() as f64;
    println!("\nrouting summary (same run)");
    println!(
        "  table: {} prefixes, {} active rates, {} carriers, {} trie nodes, {} stored candidates, {:.1} candidates/lookup",
        stats.prefixes[0],
        stats.active_rates[0],
        CARRIERS,
        stats.nodes[0],
        stats.stored_candidates[0],
        avg_cands
    );
    println!(
        "  lookup: trie {trie_ns:.1} ns, naive hashmap probe {naive_ns:.1} ns, ratio {:.1}x",
        naive_ns / trie_ns
    );
    println!(
        "  rebuild: first {:.0} ms, median of 3 {:.0} ms",
        first_build.as_secs_f64() * 1e3,
        rebuilds[1].as_secs_f64() * 1e3
    );
    println!(
        "  memory: table heap {:.1} MB ({:.0} B per prefix, {:.1} B per active rate)",
        heap as f64 / 1e6,
        heap as f64 / stats.prefixes[0] as f64,
        heap as f64 / stats.active_rates[0] as f64
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
