//! From [`Config`] to the routing crate's [`RoutingConfig`]: carriers, tenant plans, scoring and
//! breakers are copied; rate decks are read from disk (or built in), with every deck error
//! reported as `deck.csv:line: decks[i]: reason`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use switchyard_routing::{
    CarrierConfig, Channel, Currency, FlatPrice, RateDeck, RoutePlan, RoutingConfig, RoutingTable,
};

use super::error::{ConfigErrorKind, ConfigErrors};
use super::model::{Config, DeckSource};
use super::reader::Report;

/// Flat price of every destination in the built-in sandbox deck (per SMS segment or per minute).
pub const SANDBOX_PRICE: &str = "0.0050";

/// Source name of the built-in sandbox deck in messages.
pub const SANDBOX_DECK_SOURCE: &str = "<built-in sandbox deck>";

/// The sandbox deck: every country code (1 to 9 cover all of E.164) at [`SANDBOX_PRICE`] in
/// `currency`, in effect since 2000.
pub fn sandbox_deck_csv(currency: Currency) -> String {
    let mut csv = String::from("prefix,price,currency,effective_date,country,network\n");
    for digit in 1..=9 {
        csv.push_str(&format!(
            "{digit},{SANDBOX_PRICE},{currency},2000-01-01,Sandbox,Sandbox\n"
        ));
    }
    csv
}

impl Config {
    /// The routing table's input. Reads every rate deck (paths relative to `base_dir`, the
    /// config file's folder) and reports all their errors at once.
    pub fn routing_config(&self, base_dir: &Path) -> Result<RoutingConfig, ConfigErrors> {
        let mut report = Report::new("<config>", "");
        let mut rc = RoutingConfig::new(self.routing.base_currency);
        rc.fx = self.routing.fx.clone();
        rc.scoring = self.routing.scoring.clone();
        rc.breaker = self.routing.breaker.clone();
        rc.voice_reference_secs = self.routing.voice_reference_secs;
        rc.carriers = self
            .carriers
            .iter()
            .map(|c| {
                let mut cc = CarrierConfig::new(c.name.clone(), &c.channels);
                cc.priority = c.priority;
                cc.weight = c.weight;
                cc.quality = c.quality;
                cc.max_tps = c.max_tps;
                cc.max_cps = c.max_cps;
                cc.rewrite = c.rewrite.clone();
                let flat = [
                    (
                        Channel::Email,
                        c.smtp.as_ref().map(|s| (s.price, s.currency)),
                    ),
                    (
                        Channel::Telegram,
                        c.telegram.as_ref().map(|s| (s.price, s.currency)),
                    ),
                    (
                        Channel::Messenger,
                        c.messenger.as_ref().map(|s| (s.price, s.currency)),
                    ),
                    (
                        Channel::Webhook,
                        c.webhook.as_ref().map(|s| (s.price, s.currency)),
                    ),
                ];
                for (channel, priced) in flat {
                    if let Some((price, currency)) = priced {
                        cc.flat_prices.push(FlatPrice {
                            channel,
                            price,
                            currency: currency.unwrap_or(self.routing.base_currency),
                        });
                    }
                }
                cc
            })
            .collect();
        rc.plans = self
            .tenants
            .iter()
            .map(|t| {
                let mut p = RoutePlan::open(t.name.clone());
                p.allowed = t.route.allowed_carriers.clone();
                p.blocked = t.route.blocked_carriers.clone();
                p.blocked_prefixes = t.route.blocked_prefixes.clone();
                p.markup = t.route.markup;
                p.preference = t.route.preference;
                p
            })
            .collect();
        for (i, d) in self.decks.iter().enumerate() {
            let path = format!("decks[{i}]");
            let loaded = match &d.source {
                DeckSource::File(p) => {
                    RateDeck::from_path(&d.carrier, d.channel, Config::resolve(base_dir, p))
                }
                DeckSource::Sandbox => RateDeck::parse(
                    &d.carrier,
                    d.channel,
                    SANDBOX_DECK_SOURCE,
                    &sandbox_deck_csv(d.currency.unwrap_or(self.routing.base_currency)),
                ),
            };
            match loaded {
                Ok(mut deck) => {
                    if let Some(cur) = d.currency {
                        for rate in &mut deck.rates {
                            rate.currency = cur;
                        }
                    }
                    rc.decks.push(deck);
                }
                Err(errors) => {
                    for e in errors.0 {
                        let line = (e.line > 0).then_some(e.line);
                        report.in_file(e.source_name, line, &path, ConfigErrorKind::Deck(e.kind));
                    }
                }
            }
        }
        report.finish(rc)
    }
}

/// Builds a routing table from `rc` as a dry run (rates in effect now) and reports its
/// problems against the config file `file`: conflicting rates, missing exchange rates …
pub(crate) fn dry_run(file: &str, rc: RoutingConfig) -> Result<(), ConfigErrors> {
    let unix_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    match RoutingTable::build(Arc::new(rc), unix_now, Instant::now(), None) {
        Ok(_) => Ok(()),
        Err(e) => {
            let mut report = Report::new(file, "");
            for problem in e.0 {
                report.in_file(
                    file.to_owned(),
                    None,
                    "routing",
                    ConfigErrorKind::Routing(problem),
                );
            }
            report.finish(())
        }
    }
}
