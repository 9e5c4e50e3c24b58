//! Channels priced per message (email): carriers ranked by their flat price, converted to the
//! base currency, filtered by plans and breakers like phone routes; configuration mistakes are
//! build problems.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_routing::*;

fn eur(s: &str) -> Price {
    Price::parse(s).unwrap()
}

fn carrier(name: &str, price: &str, currency: &str) -> CarrierConfig {
    let mut c = CarrierConfig::new(name, &[Channel::Email]);
    c.flat_prices.push(FlatPrice {
        channel: Channel::Email,
        price: eur(price),
        currency: Currency::parse(currency).unwrap(),
    });
    c
}

fn config() -> RoutingConfig {
    let mut cfg = RoutingConfig::new(Currency::parse("EUR").unwrap());
    cfg.fx.push(FxRate {
        currency: Currency::parse("USD").unwrap(),
        to_base: eur("0.5"),
    });
    cfg.carriers = vec![
        carrier("Relay A", "0.0010", "EUR"),
        // 0.0016 USD = 0.0008 EUR: the cheapest once converted.
        carrier("Relay B", "0.0016", "USD"),
        CarrierConfig::new("Sms Only", &[Channel::Sms]),
    ];
    let mut picky = RoutePlan::open("picky");
    picky.blocked.push("Relay B".into());
    cfg.plans = vec![RoutePlan::open("open"), picky];
    cfg
}

fn route(
    table: &RoutingTable,
    tenant: &str,
    now: Instant,
) -> Result<Vec<(String, Price)>, RouteError> {
    let mut buf = RouteBuf::new();
    let req = FlatRouteRequest {
        channel: Channel::Email,
        tenant: table.tenant_id(tenant).unwrap(),
        priority: Priority::Normal,
        salt: 0,
        now,
    };
    table.route_flat(&req, &mut buf).map(|ranked| {
        ranked
            .iter()
            .map(|r| (table.carrier(r.carrier).unwrap().name.clone(), r.cost))
            .collect()
    })
}

#[test]
fn carriers_are_ranked_by_their_converted_flat_price() {
    let now = Instant::now();
    let table = RoutingTable::build(Arc::new(config()), 0, now, None).unwrap();
    let ranked = route(&table, "open", now).unwrap();
    assert_eq!(
        ranked,
        vec![
            ("Relay B".to_owned(), eur("0.0008")),
            ("Relay A".to_owned(), eur("0.0010"))
        ]
    );
    assert_eq!(table.flat_candidates(Channel::Email).len(), 2);
    assert!(table.flat_candidates(Channel::Sms).is_empty());
}

#[test]
fn plans_and_breakers_filter_flat_routes() {
    let now = Instant::now();
    let table = RoutingTable::build(Arc::new(config()), 0, now, None).unwrap();
    assert_eq!(route(&table, "picky", now).unwrap().len(), 1);
    let a = table.carrier_id("Relay A").unwrap();
    for _ in 0..100 {
        table.record(a, now, Outcome::Failure(FailureClass::TransportDown));
    }
    let later = now + Duration::from_millis(1);
    assert!(matches!(
        route(&table, "picky", later),
        Err(RouteError::AllBreakersOpen { .. })
    ));
    assert_eq!(
        route(&table, "open", now + Duration::from_millis(1))
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn flat_price_mistakes_are_build_problems() {
    let mut cfg = config();
    cfg.carriers
        .push(CarrierConfig::new("No Price", &[Channel::Email]));
    let mut wrong = CarrierConfig::new("Priced Sms", &[Channel::Sms]);
    wrong.flat_prices.push(FlatPrice {
        channel: Channel::Sms,
        price: eur("0.01"),
        currency: Currency::parse("EUR").unwrap(),
    });
    cfg.carriers.push(wrong);
    cfg.carriers.push(carrier("Yen Relay", "1", "JPY"));
    let err = RoutingTable::build(Arc::new(cfg), 0, Instant::now(), None).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("\"No Price\": no price per message (email)"),
        "{text}"
    );
    assert!(
        text.contains("\"Priced Sms\": priced by rate decks"),
        "{text}"
    );
    assert!(text.contains("\"Yen Relay\": no exchange rate"), "{text}");
}
