//! End-to-end use of the shipped example decks (`examples/decks/`): load, build, route, explain,
//! fail over on breakers, take future-dated rates, rebuild while keeping health.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_routing::*;

fn deck_path(name: &str) -> PathBuf {
    PathBuf::from(
        &std::env::var("CARGO_MANIFEST_DIR")
            .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned()),
    )
    .join("../examples/decks")
    .join(name)
}

/// 2025-06-01T00:00:00Z.
const JUNE_2025: UnixTime = 1_748_736_000;

fn config() -> RoutingConfig {
    let mut cfg = RoutingConfig::new(Currency::parse("EUR").unwrap());
    cfg.fx.push(FxRate {
        currency: Currency::parse("USD").unwrap(),
        to_base: Price::parse("0.92").unwrap(),
    });
    let mut northwind = CarrierConfig::new("Northwind Telecom", &[Channel::Sms, Channel::Voice]);
    northwind.quality = QualityClass::Premium;
    northwind.max_tps = Some(200);
    northwind.priority = 10;
    let mut bluefin = CarrierConfig::new("Bluefin Mobile Exchange", &[Channel::Sms]);
    bluefin.max_tps = Some(100);
    let mut kestrel = CarrierConfig::new("Kestrel Wholesale", &[Channel::Sms]);
    kestrel.quality = QualityClass::Economy;
    kestrel.rewrite = NumberRewrite {
        strip_digits: 0,
        tech_prefix: "0077#".into(),
        plus: false,
    };
    let mut halcyon = CarrierConfig::new("Halcyon Trunks", &[Channel::Voice]);
    halcyon.max_cps = Some(20);
    cfg.carriers = vec![northwind, bluefin, kestrel, halcyon];
    for (carrier, channel, file) in [
        ("Northwind Telecom", Channel::Sms, "northwind_sms.csv"),
        ("Bluefin Mobile Exchange", Channel::Sms, "bluefin_sms.csv"),
        ("Kestrel Wholesale", Channel::Sms, "kestrel_sms.csv"),
        ("Northwind Telecom", Channel::Voice, "northwind_voice.csv"),
        ("Halcyon Trunks", Channel::Voice, "halcyon_voice.csv"),
    ] {
        cfg.decks
            .push(RateDeck::from_path(carrier, channel, deck_path(file)).unwrap());
    }
    let mut premium = RoutePlan::open("acme-bank");
    premium.blocked.push("Kestrel Wholesale".into());
    premium.markup = Markup {
        basis_points: 2000,
        fixed: Price::ZERO,
    };
    let mut bulk = RoutePlan::open("bulkblast");
    bulk.preference = Preference::Cheapest;
    bulk.blocked_prefixes.push(Prefix::parse("234").unwrap());
    let mut quality = RoutePlan::open("medialert");
    quality.preference = Preference::Quality;
    quality.allowed = Some(vec![
        "Northwind Telecom".into(),
        "Bluefin Mobile Exchange".into(),
        "Halcyon Trunks".into(),
    ]);
    cfg.plans = vec![premium, bulk, quality];
    cfg
}

fn req<'a>(
    table: &RoutingTable,
    number: &'a E164,
    tenant: &str,
    priority: Priority,
    now: Instant,
) -> RouteRequest<'a> {
    RouteRequest {
        channel: Channel::Sms,
        number,
        tenant: table.tenant_id(tenant).unwrap(),
        priority,
        salt: 0,
        now,
    }
}

#[test]
fn routes_example_traffic() {
    let now = Instant::now();
    let table = RoutingTable::build(Arc::new(config()), JUNE_2025, now, None).unwrap();
    assert_eq!(table.generation(), 1);
    // The 2030 and 2031 rows are not in effect yet; the earliest one is reported.
    assert_eq!(table.next_change(), deck::parse_date("2030-06-01"));

    let uk = E164::parse("+447700900123").unwrap();
    let m = table.lookup(Channel::Sms, &uk);
    assert_eq!(m.matched_len, 4, "4477 is the longest prefix with a rate");
    assert_eq!(m.candidates.len(), 3);
    assert!(m.candidates.windows(2).all(|w| w[0].cost <= w[1].cost));

    let mut buf = RouteBuf::new();
    // The bank tenant never gets Kestrel, whatever it costs.
    let ranked = table
        .route(
            &req(&table, &uk, "acme-bank", Priority::Critical, now),
            &mut buf,
        )
        .unwrap();
    assert_eq!(ranked.len(), 2);
    assert!(ranked
        .iter()
        .all(|r| table.carrier(r.carrier).unwrap().name != "Kestrel Wholesale"));
    for r in ranked {
        assert_eq!(
            r.price,
            Markup {
                basis_points: 2000,
                fixed: Price::ZERO
            }
            .apply(r.cost)
        );
    }

    // Bulk tenant: cheapest first, and Nigeria is blocked.
    let ranked = table
        .route(&req(&table, &uk, "bulkblast", Priority::Low, now), &mut buf)
        .unwrap();
    assert!(ranked.windows(2).all(|w| w[0].cost <= w[1].cost));
    let ng = E164::parse("+2348031234567").unwrap();
    assert_eq!(
        table.route(&req(&table, &ng, "bulkblast", Priority::Low, now), &mut buf),
        Err(RouteError::BlockedPrefix)
    );
    let nowhere = E164::parse("+6701234567").unwrap();
    assert_eq!(
        table.route(
            &req(&table, &nowhere, "bulkblast", Priority::Low, now),
            &mut buf
        ),
        Err(RouteError::NoRoute(Channel::Sms))
    );

    // Rewrite rules for the carrier.
    let kestrel = table
        .carrier(table.carrier_id("Kestrel Wholesale").unwrap())
        .unwrap();
    assert_eq!(kestrel.rewrite.apply(&uk).as_str(), "0077#447700900123");
}

#[test]
fn unhealthy_carriers_lose_critical_traffic_and_open_breakers_are_skipped() {
    let t0 = Instant::now();
    let table = RoutingTable::build(Arc::new(config()), JUNE_2025, t0, None).unwrap();
    let de = E164::parse("+4915112345678").unwrap();
    let mut buf = RouteBuf::new();
    let first = |buf: &mut RouteBuf, prio, now| {
        let r = table
            .route(&req(&table, &de, "acme-bank", prio, now), buf)
            .unwrap();
        table.carrier(r[0].carrier).unwrap().name.clone()
    };
    let cheapest = first(&mut buf, Priority::Low, t0);
    let cheapest_id = table.carrier_id(&cheapest).unwrap();
    // Cheapest carrier degrades: 70 % failures (spread out so the breaker stays closed).
    for i in 0..200u64 {
        let outcome = if i % 10 < 7 {
            Outcome::Failure(FailureClass::PermanentReject)
        } else {
            Outcome::Success {
                latency: Duration::from_millis(900),
            }
        };
        table.record(cheapest_id, t0 + Duration::from_secs(i * 2), outcome);
    }
    let t1 = t0 + Duration::from_secs(400);
    assert_eq!(
        table.carrier_state(cheapest_id).unwrap().view(t1),
        BreakerView::Closed
    );
    assert_ne!(
        first(&mut buf, Priority::Critical, t1),
        cheapest,
        "critical traffic follows health"
    );

    // Now it goes down hard: the breaker opens and it is skipped for all priorities.
    for _ in 0..5 {
        table.record(
            cheapest_id,
            t1,
            Outcome::Failure(FailureClass::TransportDown),
        );
    }
    assert!(matches!(
        table.admit(cheapest_id, t1),
        Admission::Rejected { .. }
    ));
    let ranked = table
        .route(&req(&table, &de, "acme-bank", Priority::Low, t1), &mut buf)
        .unwrap();
    assert!(ranked.iter().all(|r| r.carrier != cheapest_id));
    let ex = table.explain(&req(&table, &de, "acme-bank", Priority::Low, t1));
    assert!(ex
        .candidates
        .iter()
        .any(|c| c.carrier == cheapest && c.excluded == Some(Exclusion::BreakerOpen)));

    // Open every allowed carrier: a clear, retryable error.
    for r in ranked {
        for _ in 0..5 {
            table.record(r.carrier, t1, Outcome::Failure(FailureClass::Timeout));
        }
    }
    let err = table
        .route(&req(&table, &de, "acme-bank", Priority::Low, t1), &mut buf)
        .unwrap_err();
    assert!(matches!(err, RouteError::AllBreakersOpen { retry_at } if retry_at > t1));
    assert!(err.retryable());
    // After the cool-down they are half-open: routed again, sends admitted as probes.
    let t2 = t1 + Duration::from_secs(6);
    let ranked = table
        .route(&req(&table, &de, "acme-bank", Priority::Low, t2), &mut buf)
        .unwrap();
    assert!(ranked.iter().all(|r| r.breaker == BreakerView::HalfOpen));
    assert_eq!(table.admit(ranked[0].carrier, t2), Admission::Probe);
}

#[test]
fn explain_names_prices_health_and_reason() {
    let now = Instant::now();
    let table = RoutingTable::build(Arc::new(config()), JUNE_2025, now, None).unwrap();
    let fr = E164::parse("+33612345678").unwrap();
    let ex = table.explain(&req(&table, &fr, "bulkblast", Priority::Normal, now));
    assert_eq!(ex.matched_prefix.as_deref(), Some("336"));
    assert_eq!(ex.number, "+33612******");
    assert_eq!(ex.candidates.len(), 3);
    assert!(ex
        .candidates
        .iter()
        .all(|c| c.rank.is_some() && c.score.is_some()));
    assert!(
        ex.candidates.iter().any(|c| c.currency.as_str() == "USD"),
        "Kestrel prices in USD"
    );
    let winner = ex.outcome.clone().unwrap();
    assert_eq!(winner, ex.candidates[0].carrier);
    assert!(ex.reason.contains(&winner), "{}", ex.reason);
    assert!(ex.reason.contains("cheapest"), "{}", ex.reason);
    let text = ex.to_string();
    assert!(
        text.contains("matched prefix 336") && !text.contains("33612345678"),
        "{text}"
    );
}

#[test]
fn voice_ranks_by_call_cost_and_future_rates_apply_at_their_date() {
    let now = Instant::now();
    let cfg = Arc::new(config());
    let table = RoutingTable::build(Arc::clone(&cfg), JUNE_2025, now, None).unwrap();
    let london = E164::parse("+442079460000").unwrap();
    let m = table.lookup(Channel::Voice, &london);
    assert_eq!(m.matched_len, 4);
    for c in m.candidates {
        let rate = table.rate(c).unwrap();
        let terms = rate.voice.unwrap();
        assert_eq!(
            c.cost,
            terms.call_cost(rate.price, cfg.voice_reference_secs)
        );
    }
    // Halcyon's 1/1 rate for 44 starts 2030-06-01; its 4420 rate still wins for London, but a
    // generic UK fixed number sees the new terms after a refresh.
    let router = Router::new(table);
    let leeds = E164::parse("+441132496000").unwrap();
    let halcyon = router.load().carrier_id("Halcyon Trunks").unwrap();
    let billing = |r: &Router| {
        let t = r.load();
        let c = *t
            .lookup(Channel::Voice, &leeds)
            .candidates
            .iter()
            .find(|c| c.carrier == halcyon)
            .unwrap();
        t.rate(&c).unwrap().voice.unwrap().billing
    };
    assert_eq!(billing(&router), Billing { first: 6, next: 6 });
    assert_eq!(router.refresh_rates(JUNE_2025 + 86_400, now).unwrap(), None);
    let in_2030 = deck::parse_date("2030-06-01").unwrap();
    assert_eq!(router.refresh_rates(in_2030, now).unwrap(), Some(2));
    assert_eq!(billing(&router), Billing { first: 1, next: 1 });
    assert_eq!(router.load().next_change(), deck::parse_date("2031-01-01"));
}

#[test]
fn rebuild_swaps_generation_and_keeps_live_health() {
    let now = Instant::now();
    let router = Router::build(Arc::new(config()), JUNE_2025, now).unwrap();
    let old = router.load_full();
    let id = old.carrier_id("Bluefin Mobile Exchange").unwrap();
    for _ in 0..50 {
        old.record(id, now, Outcome::Failure(FailureClass::PermanentReject));
    }
    let before = old.carrier_state(id).unwrap().health().success_rate();
    assert!(before < 0.1);
    // New config: one carrier removed, plan referencing it adjusted.
    let mut cfg = config();
    cfg.carriers.retain(|c| c.name != "Kestrel Wholesale");
    cfg.decks.retain(|d| d.carrier != "Kestrel Wholesale");
    cfg.plans[0].blocked.clear();
    assert_eq!(router.rebuild(Arc::new(cfg), JUNE_2025, now).unwrap(), 2);
    let new = router.load();
    assert_eq!(new.generation(), 2);
    let id2 = new.carrier_id("Bluefin Mobile Exchange").unwrap();
    assert_eq!(
        new.carrier_state(id2).unwrap().health().success_rate(),
        before
    );
    // The old table is still usable by whoever holds it.
    assert_eq!(old.generation(), 1);

    // A broken config is refused, with every problem, and the old table stays.
    let mut bad = config();
    bad.plans[1].blocked.push("Nobody Telecom".into());
    bad.decks[0].carrier = "Ghost Carrier".into();
    bad.carriers
        .push(CarrierConfig::new("Northwind Telecom", &[Channel::Sms]));
    let err = router.rebuild(Arc::new(bad), JUNE_2025, now).unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
    assert_eq!(router.generation(), 2);
}

#[test]
fn deck_errors_name_file_and_line() {
    let dir = std::env::temp_dir().join(format!("sy-routing-deck-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("broken.csv");
    std::fs::write(&path, "prefix,price,currency,effective_date\n44,0.03,EUR,2025-01-01\n44x,0.03,EUR,2025-01-01\n49,-1,EUR,2025-01-01\n").unwrap();
    let err = RateDeck::from_path("X", Channel::Sms, &path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("broken.csv:3: prefix \"44x\""), "{text}");
    assert!(text.contains("broken.csv:4: price \"-1\""), "{text}");
    let missing = RateDeck::from_path("X", Channel::Sms, dir.join("nope.csv")).unwrap_err();
    assert!(
        missing.to_string().contains("nope.csv:0: cannot read"),
        "{missing}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
