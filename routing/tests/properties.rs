//! Property tests: the table against brute force, plans and blocks, the breaker's state
//! machine, and the token bucket's rate bound. All in virtual time.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use switchyard_routing::*;

const NOW: UnixTime = 1_000_000;

/// A rate row: prefix over a small alphabet (so prefixes nest and collide), price, date offset.
fn row() -> impl Strategy<Value = (String, u64, i64)> {
    (
        "[1-3][0-3]{0,5}",
        1u64..50,
        prop_oneof![3 => -1000i64..=0, 1 => 1i64..1000],
    )
}

fn decks() -> impl Strategy<Value = Vec<Vec<(String, u64, i64)>>> {
    prop::collection::vec(prop::collection::vec(row(), 0..40), 1..7)
}

fn build(decks: &[Vec<(String, u64, i64)>], priorities: &[u8]) -> RoutingConfig {
    let mut cfg = RoutingConfig::new(Currency::parse("EUR").unwrap());
    for (i, rows) in decks.iter().enumerate() {
        let mut c = CarrierConfig::new(format!("c{i}"), &[Channel::Sms]);
        c.priority = priorities.get(i).copied().unwrap_or(0);
        cfg.carriers.push(c);
        let mut seen = HashSet::new();
        let rates = rows
            .iter()
            .filter(|(p, _, d)| seen.insert((p.clone(), *d)))
            .enumerate()
            .map(|(line, (p, price, d))| Rate {
                prefix: Prefix::parse(p).unwrap(),
                price: Price::from_nanos(price * 1_000_000),
                currency: cfg.base_currency,
                effective_from: NOW + d,
                country: None,
                network: None,
                voice: None,
                line: line as u32 + 2,
            })
            .collect();
        cfg.decks.push(RateDeck {
            carrier: format!("c{i}"),
            channel: Channel::Sms,
            source: format!("c{i}.csv"),
            rates,
        });
    }
    cfg
}

/// Brute force: per carrier, its longest prefix (with a rate in effect) matching the number.
fn brute(cfg: &RoutingConfig, number: &E164) -> (usize, Vec<(u64, u8, usize)>) {
    let mut best_len = 0;
    let mut out = Vec::new();
    for (ci, deck) in cfg.decks.iter().enumerate() {
        let best = deck
            .rates
            .iter()
            .filter(|r| r.effective_from <= NOW && r.prefix.matches(number))
            .max_by_key(|r| (r.prefix.len(), r.effective_from));
        if let Some(r) = best {
            best_len = best_len.max(r.prefix.len());
            out.push((r.price.nanos(), cfg.carriers[ci].priority, ci));
        }
    }
    out.sort();
    (best_len, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn lookup_equals_brute_force(
        decks in decks(),
        priorities in prop::collection::vec(0u8..3, 7),
        numbers in prop::collection::vec("[1-4][0-3]{0,9}", 1..30),
    ) {
        let cfg = Arc::new(build(&decks, &priorities));
        let table = RoutingTable::build(Arc::clone(&cfg), NOW, Instant::now(), None).unwrap();
        for n in &numbers {
            let number = E164::parse(n).unwrap();
            let (len, expected) = brute(&cfg, &number);
            let m = table.lookup(Channel::Sms, &number);
            let got: Vec<(u64, u8, usize)> = m
                .candidates
                .iter()
                .map(|c| (c.cost.nanos(), cfg.carriers[c.carrier.index()].priority, c.carrier.index()))
                .collect();
            prop_assert_eq!(usize::from(m.matched_len), len);
            prop_assert_eq!(got, expected, "number {}", n);
        }
        // Future-dated rows are announced.
        let future = decks.iter().flatten().filter(|r| r.2 > 0).map(|r| NOW + r.2).min();
        prop_assert_eq!(table.next_change(), future);
    }

    #[test]
    fn routing_respects_plans_and_blocks(
        decks in decks(),
        allowed in prop::option::of(prop::collection::vec(0usize..7, 0..7)),
        blocked in prop::collection::vec(0usize..7, 0..4),
        blocked_prefixes in prop::collection::vec("[1-3][0-3]{0,2}", 0..3),
        preference in prop_oneof![Just(Preference::Cheapest), Just(Preference::Quality), Just(Preference::Weighted)],
        numbers in prop::collection::vec("[1-4][0-3]{0,9}", 1..20),
        salt in any::<u64>(),
    ) {
        let mut cfg = build(&decks, &[]);
        let carriers = cfg.carriers.len();
        let name = |i: &usize| format!("c{}", i % carriers);
        let mut plan = RoutePlan::open("t");
        plan.allowed = allowed.as_ref().map(|a| a.iter().map(name).collect());
        plan.blocked = blocked.iter().map(name).collect();
        plan.blocked_prefixes = blocked_prefixes.iter().map(|p| Prefix::parse(p).unwrap()).collect();
        plan.preference = preference;
        cfg.plans.push(plan.clone());
        let cfg = Arc::new(cfg);
        let now = Instant::now();
        let table = RoutingTable::build(Arc::clone(&cfg), NOW, now, None).unwrap();
        let tenant = table.tenant_id("t").unwrap();
        let permitted = |c: CarrierId| {
            let n = format!("c{}", c.index());
            plan.allowed.as_ref().is_none_or(|a| a.contains(&n)) && !plan.blocked.contains(&n)
        };
        let mut buf = RouteBuf::new();
        for n in &numbers {
            let number = E164::parse(n).unwrap();
            let req = RouteRequest { channel: Channel::Sms, number: &number, tenant, priority: Priority::Normal, salt, now };
            let result = table.route(&req, &mut buf).map(|r| r.to_vec());
            let covering: Vec<CarrierId> = table.lookup(Channel::Sms, &number).candidates.iter().map(|c| c.carrier).collect();
            let expected: HashSet<CarrierId> = covering.iter().copied().filter(|c| permitted(*c)).collect();
            if plan.blocked_prefixes.iter().any(|p| p.matches(&number)) {
                prop_assert_eq!(result, Err(RouteError::BlockedPrefix));
            } else if covering.is_empty() {
                prop_assert_eq!(result, Err(RouteError::NoRoute(Channel::Sms)));
            } else if expected.is_empty() {
                prop_assert_eq!(result, Err(RouteError::NotAllowed));
            } else {
                let ranked = result.unwrap();
                let got: HashSet<CarrierId> = ranked.iter().map(|r| r.carrier).collect();
                prop_assert_eq!(got.len(), ranked.len(), "no duplicates");
                prop_assert_eq!(&got, &expected);
                // Stable: the same request ranks the same way.
                let again = table.route(&req, &mut buf).unwrap().to_vec();
                prop_assert_eq!(&again, &ranked);
                // With uniform health, every preference puts cost first (ties may be spread
                // by weight only within the tie band).
                let top = ranked[0].score;
                let band = cfg.scoring.tie_band;
                for w in ranked.windows(2).skip(1) {
                    prop_assert!(w[0].cost <= w[1].cost);
                }
                prop_assert!(ranked.iter().all(|r| r.score <= top + band || ranked[0].score >= r.score - band));
            }
        }
    }
}

/// The scoring rules of `route()` written plainly (one `Ranked` per survivor, stable sort,
/// tie spreading by weight), for comparison with the optimised implementation.
fn reference_route(
    table: &RoutingTable,
    plan: &RoutePlan,
    number: &E164,
    priority: Priority,
    salt: u64,
    now: Instant,
) -> Result<Vec<Ranked>, RouteError> {
    let cfg = table.config();
    if plan.blocked_prefixes.iter().any(|p| p.matches(number)) {
        return Err(RouteError::BlockedPrefix);
    }
    let m = table.lookup(Channel::Sms, number);
    if m.candidates.is_empty() {
        return Err(RouteError::NoRoute(Channel::Sms));
    }
    let permitted = |name: &String| {
        plan.allowed.as_ref().is_none_or(|a| a.contains(name)) && !plan.blocked.contains(name)
    };
    let (mut allowed_any, mut retry_at) = (false, None::<Instant>);
    let mut ranked = Vec::new();
    for c in m.candidates {
        let carrier = &cfg.carriers[c.carrier.index()];
        if !permitted(&carrier.name) {
            continue;
        }
        allowed_any = true;
        let state = table.carrier_state(c.carrier).unwrap();
        let breaker = state.view(now);
        if let BreakerView::Open { until } = breaker {
            retry_at = Some(retry_at.map_or(until, |r| r.min(until)));
            continue;
        }
        ranked.push(Ranked {
            carrier: c.carrier,
            cost: c.cost,
            price: plan.markup.apply(c.cost),
            health: state.health().score(cfg.scoring.latency_reference) * carrier.quality.factor(),
            score: 0.0,
            breaker,
        });
    }
    if ranked.is_empty() {
        return Err(match retry_at {
            Some(retry_at) if allowed_any => RouteError::AllBreakersOpen { retry_at },
            _ => RouteError::NotAllowed,
        });
    }
    let min_cost = ranked[0].cost.nanos() as f64;
    let w = cfg.scoring.health_weight[priority as usize].clamp(0.0, 1.0);
    for r in &mut ranked {
        let cost = r.cost.nanos() as f64;
        let cost_score = if cost <= 0.0 {
            1.0
        } else {
            (min_cost / cost) as f32
        };
        r.score = match plan.preference {
            Preference::Cheapest => cost_score + 1e-3 * r.health,
            Preference::Quality => r.health + 1e-3 * cost_score,
            Preference::Weighted => w * r.health + (1.0 - w) * cost_score,
        };
    }
    ranked.sort_by(|a, b| b.score.total_cmp(&a.score));
    let top = ranked[0].score;
    let tied = ranked
        .iter()
        .take_while(|r| r.score >= top - cfg.scoring.tie_band)
        .count();
    let weight = |r: &Ranked| u64::from(cfg.carriers[r.carrier.index()].weight);
    let total: u64 = ranked[..tied].iter().map(weight).sum();
    if tied >= 2 && total > 0 {
        let mut pick = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % total;
        for i in 0..tied {
            if pick < weight(&ranked[i]) {
                ranked[..=i].rotate_right(1);
                break;
            }
            pick -= weight(&ranked[i]);
        }
    }
    Ok(ranked)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `route()` ranks exactly as the plain model does, under arbitrary health, breakers,
    /// plans, preferences, priorities, markups, qualities and weights.
    #[test]
    fn route_equals_reference_model(
        decks in decks(),
        outcomes in prop::collection::vec(prop::collection::vec((0u8..6, 0u64..3000), 0..12), 7),
        qualities in prop::collection::vec(0u8..3, 7),
        weights in prop::collection::vec(0u32..4, 7),
        blocked in prop::collection::vec(0usize..7, 0..3),
        preference in prop_oneof![Just(Preference::Cheapest), Just(Preference::Quality), Just(Preference::Weighted)],
        priority in prop_oneof![Just(Priority::Critical), Just(Priority::High), Just(Priority::Normal), Just(Priority::Low)],
        basis_points in 0u32..3000,
        tie_band in prop_oneof![Just(0.0f32), Just(0.01), Just(0.2)],
        later_ms in 0u64..10_000,
        numbers in prop::collection::vec("[1-4][0-3]{0,9}", 1..20),
        salt in any::<u64>(),
    ) {
        let mut cfg = build(&decks, &[]);
        for (i, c) in cfg.carriers.iter_mut().enumerate() {
            c.quality = [QualityClass::Premium, QualityClass::Standard, QualityClass::Economy][usize::from(qualities[i])];
            c.weight = weights[i];
        }
        cfg.scoring.tie_band = tie_band;
        let mut plan = RoutePlan::open("t");
        plan.blocked = blocked.iter().map(|i| format!("c{}", i % decks.len())).collect();
        plan.preference = preference;
        plan.markup.basis_points = basis_points;
        cfg.plans.push(plan.clone());
        let t0 = Instant::now();
        let table = RoutingTable::build(Arc::new(cfg), NOW, t0, None).unwrap();
        for (i, seq) in outcomes.iter().enumerate().take(table.config().carriers.len()) {
            let id = table.carrier_id(&format!("c{i}")).unwrap();
            for &(k, ms) in seq {
                let outcome = match k {
                    0 | 1 => Outcome::Success { latency: Duration::from_millis(ms) },
                    k => outcome(k - 1),
                };
                table.record(id, t0, outcome);
            }
        }
        let now = t0 + Duration::from_millis(later_ms);
        let tenant = table.tenant_id("t").unwrap();
        let mut buf = RouteBuf::new();
        for n in &numbers {
            let number = E164::parse(n).unwrap();
            let req = RouteRequest { channel: Channel::Sms, number: &number, tenant, priority, salt, now };
            let got = table.route(&req, &mut buf).map(|r| r.to_vec());
            let want = reference_route(&table, &plan, &number, priority, salt, now);
            prop_assert_eq!(got, want, "number {}", n);
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Op {
    Advance(u64),
    Allow,
    Outcome(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u64..8_000).prop_map(Op::Advance),
        2 => Just(Op::Allow),
        5 => (0u8..5).prop_map(Op::Outcome),
    ]
}

fn outcome(k: u8) -> Outcome {
    match k {
        0 => Outcome::Success {
            latency: Duration::from_millis(20),
        },
        1 => Outcome::Failure(FailureClass::Timeout),
        2 => Outcome::Failure(FailureClass::Throttled),
        3 => Outcome::Failure(FailureClass::PermanentReject),
        _ => Outcome::Failure(FailureClass::TransportDown),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_follows_its_state_machine(ops in prop::collection::vec(op(), 1..300), n in 1u32..6, probes in 1u32..4) {
        let cfg = BreakerConfig {
            consecutive_failures: n,
            min_requests: 8,
            window: Duration::from_secs(10),
            cooldown: Duration::from_secs(2),
            max_cooldown: Duration::from_secs(30),
            half_open_probes: probes,
            probe_timeout: Duration::from_secs(60),
            ..BreakerConfig::default()
        };
        let t0 = Instant::now();
        let mut now = t0;
        let mut b = CircuitBreaker::new(cfg.clone(), t0);
        let mut last_cooldown: Option<Duration> = None;
        for op in ops {
            let before = b.state();
            match op {
                Op::Advance(ms) => {
                    now += Duration::from_millis(ms);
                    b.handle_timeout(now);
                    match (before, b.state()) {
                        (BreakerState::Open { until }, BreakerState::HalfOpen) => prop_assert!(now >= until),
                        (x, y) => prop_assert_eq!(x, y, "time alone only ends a cool-down"),
                    }
                }
                Op::Allow => {
                    let in_flight = b.probes_in_flight();
                    let a = b.allow(now);
                    match b.state() {
                        BreakerState::Closed => prop_assert_eq!(a, Admission::Allowed),
                        BreakerState::Open { until } => prop_assert_eq!(a, Admission::Rejected { retry_at: until }),
                        BreakerState::HalfOpen => {
                            prop_assert!(b.probes_in_flight() <= probes, "bounded probes");
                            if a == Admission::Probe {
                                let fresh = matches!(before, BreakerState::Open { .. });
                                prop_assert!(in_flight < probes || fresh);
                            }
                        }
                    }
                }
                Op::Outcome(k) => {
                    let o = outcome(k);
                    let consecutive = b.consecutive_failures();
                    b.handle_timeout(now);
                    let mid = b.state();
                    let changed = b.on_outcome(now, o);
                    let after = b.state();
                    prop_assert_eq!(changed.is_some(), mid != after);
                    if k == 2 {
                        prop_assert_eq!(mid, after, "throttling never changes the state");
                    }
                    match (mid, after) {
                        (BreakerState::Closed, BreakerState::Open { until }) => {
                            prop_assert!(k == 1 || k == 3 || k == 4, "only counted failures open");
                            prop_assert_eq!(b.window_counts(now), (0, 0), "window reset on trip");
                            if k == 3 {
                                prop_assert!(consecutive < n, "permanent rejects open via the error rate only");
                            }
                            check_cooldown(&cfg, until - now, &mut last_cooldown)?;
                        }
                        (BreakerState::HalfOpen, BreakerState::Open { until }) => {
                            prop_assert!(k == 1 || k == 4, "only timeouts and transport failures re-open");
                            check_cooldown(&cfg, until - now, &mut last_cooldown)?;
                        }
                        (BreakerState::HalfOpen, BreakerState::Closed) => prop_assert!(k == 0 || k == 3),
                        (BreakerState::Open { .. }, x) => prop_assert_eq!(x, mid, "open ignores outcomes"),
                        (x, y) => prop_assert_eq!(x, y),
                    }
                }
            }
        }
    }

    #[test]
    fn bucket_never_exceeds_rate_over_any_window(
        rate in 1u32..50,
        burst in 1u32..20,
        ops in prop::collection::vec((0u64..300, 1u32..4), 1..300),
    ) {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(NonZeroU32::new(rate).unwrap(), NonZeroU32::new(burst).unwrap(), t0);
        let mut now = t0;
        let mut taken: Vec<(Duration, u32)> = Vec::new();
        for (dt, n) in ops {
            now += Duration::from_millis(dt);
            match b.try_take(now, n) {
                Ok(()) => taken.push((now - t0, n)),
                Err(Wait::Until(at)) => {
                    prop_assert!(at > now);
                    // Waiting until `at` is enough.
                    let mut probe = b.clone();
                    prop_assert_eq!(probe.try_take(at, n), Ok(()));
                }
                Err(Wait::Never) => prop_assert!(n > burst),
            }
        }
        // Any window [t_i, t_j]: taken ≤ burst + rate × (t_j − t_i).
        for i in 0..taken.len() {
            let mut sum = 0u64;
            for j in i..taken.len() {
                sum += u64::from(taken[j].1);
                let span = (taken[j].0 - taken[i].0).as_nanos();
                let bound = u128::from(burst) * 1_000_000_000 + span * u128::from(rate);
                prop_assert!(u128::from(sum) * 1_000_000_000 <= bound, "window {}..{}", i, j);
            }
        }
    }
}

fn check_cooldown(
    cfg: &BreakerConfig,
    got: Duration,
    last: &mut Option<Duration>,
) -> Result<(), TestCaseError> {
    // Always base × 2^k, capped.
    let mut d = cfg.cooldown;
    let mut ok = false;
    while d <= cfg.max_cooldown {
        ok |= got == d;
        d *= 2;
    }
    ok |= got == cfg.max_cooldown;
    prop_assert!(ok, "cool-down {:?} is not base × 2^k", got);
    *last = Some(got);
    Ok(())
}
