//! Explanations of routing decisions: which prefix matched, every candidate with its price,
//! health, breaker and score, and why the winner won. Backs `GET /v1/routes/explain`.

use std::fmt;

use crate::carrier::Channel;
use crate::config::Priority;
use crate::deck::VoiceTerms;
use crate::health::HealthSnapshot;
use crate::money::{Currency, Price};
use crate::plan::Preference;
use crate::state::BreakerView;
use crate::table::{RouteBuf, RouteError, RouteRequest, RoutingTable};

/// Why a covering carrier is not in the ranking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exclusion {
    /// The tenant's plan does not allow it.
    NotInPlan,
    /// Its circuit breaker is open.
    BreakerOpen,
    /// Beyond [`crate::MAX_CANDIDATES`].
    Overflow,
}

/// One carrier covering the destination.
#[derive(Clone, Debug)]
pub struct ExplainedCandidate {
    /// Carrier name.
    pub carrier: String,
    /// The carrier's longest prefix matching the number.
    pub prefix: String,
    /// Country, from the deck.
    pub country: Option<String>,
    /// Network or description, from the deck.
    pub network: Option<String>,
    /// Deck price (per segment, or per minute for voice) in the deck's currency.
    pub rate: Price,
    /// The deck's currency.
    pub currency: Currency,
    /// Voice terms, for voice routes.
    pub voice: Option<VoiceTerms>,
    /// Our cost in the base currency (voice: a reference-length call).
    pub cost: Price,
    /// The tenant's price (cost with markup).
    pub price: Price,
    /// Live health.
    pub health: HealthSnapshot,
    /// Health score used for ranking (quality class included); `None` when excluded.
    pub health_score: Option<f32>,
    /// Breaker as seen at the request's `now`.
    pub breaker: BreakerView,
    /// 1-based position in the ranking; `None` when excluded.
    pub rank: Option<usize>,
    /// Score; `None` when excluded.
    pub score: Option<f32>,
    /// Why it is not ranked.
    pub excluded: Option<Exclusion>,
}

/// A routing decision, explained.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// Table generation that decided.
    pub generation: u64,
    /// Channel routed.
    pub channel: Channel,
    /// Tenant name (empty if the id is unknown).
    pub tenant: String,
    /// Message priority.
    pub priority: Priority,
    /// The tenant's preference.
    pub preference: Option<Preference>,
    /// Health weight used for `Weighted` scoring at this priority.
    pub health_weight: f32,
    /// Destination, masked.
    pub number: String,
    /// Longest prefix any carrier has a rate for.
    pub matched_prefix: Option<String>,
    /// Ranked candidates first (in order), then excluded ones.
    pub candidates: Vec<ExplainedCandidate>,
    /// The winning carrier, or why there is none.
    pub outcome: Result<String, RouteError>,
    /// Why the winner won, in words.
    pub reason: String,
}

impl RoutingTable {
    /// Explains a routing decision (allocates; for the explain endpoint and debugging).
    pub fn explain(&self, req: &RouteRequest<'_>) -> Explanation {
        explain(self, req)
    }
}

fn explain(table: &RoutingTable, req: &RouteRequest<'_>) -> Explanation {
    let mut buf = RouteBuf::new();
    let result = table.route(req, &mut buf).map(|r| r.len());
    let info = table.plan_info(req.tenant);
    let m = table.lookup(req.channel, req.number);
    let health_weight = table
        .config()
        .scoring
        .health_weight
        .get(req.priority.index())
        .copied()
        .unwrap_or(0.5)
        .clamp(0.0, 1.0);
    let ranked = buf.ranked();
    let mut candidates = Vec::with_capacity(m.candidates.len());
    for c in m.candidates {
        let Some(rate) = table.rate(c) else { continue };
        let state = table.carrier_state(c.carrier);
        let breaker = state.map_or(BreakerView::Closed, |s| s.view(req.now));
        let position = ranked.iter().position(|r| r.carrier == c.carrier);
        let excluded = match position {
            Some(_) => None,
            None if !table.plan_allows(req.tenant, c.carrier) => Some(Exclusion::NotInPlan),
            None if matches!(breaker, BreakerView::Open { .. }) => Some(Exclusion::BreakerOpen),
            None => Some(Exclusion::Overflow),
        };
        let r = position.and_then(|p| ranked.get(p));
        candidates.push(ExplainedCandidate {
            carrier: table
                .carrier(c.carrier)
                .map_or_else(String::new, |cc| cc.name.clone()),
            prefix: rate.prefix.to_string(),
            country: rate.country.clone(),
            network: rate.network.clone(),
            rate: rate.price,
            currency: rate.currency,
            voice: rate.voice,
            cost: c.cost,
            price: info.map_or(c.cost, |(_, markup, _)| markup.apply(c.cost)),
            health: state.map_or_else(
                || crate::Health::new().snapshot(),
                |s| s.health().snapshot(),
            ),
            health_score: r.map(|r| r.health),
            breaker,
            rank: position.map(|p| p + 1),
            score: r.map(|r| r.score),
            excluded,
        });
    }
    candidates.sort_by_key(|c| c.rank.unwrap_or(usize::MAX));
    let outcome = match result {
        Ok(_) => Ok(candidates
            .first()
            .map_or_else(String::new, |c| c.carrier.clone())),
        Err(e) => Err(e),
    };
    let reason = reason(
        &candidates,
        &outcome,
        info.map(|i| i.2),
        req.priority,
        health_weight,
    );
    Explanation {
        generation: table.generation(),
        channel: req.channel,
        tenant: info.map_or_else(String::new, |i| i.0.to_owned()),
        priority: req.priority,
        preference: info.map(|i| i.2),
        health_weight,
        number: req.number.masked(5).to_string(),
        matched_prefix: (m.matched_len > 0).then(|| {
            req.number
                .as_str()
                .get(..usize::from(m.matched_len))
                .unwrap_or("")
                .to_owned()
        }),
        candidates,
        outcome,
        reason,
    }
}

fn reason(
    cands: &[ExplainedCandidate],
    outcome: &Result<String, RouteError>,
    pref: Option<Preference>,
    priority: Priority,
    w: f32,
) -> String {
    if let Err(e) = outcome {
        return format!("no route: {e}");
    }
    let ranked: Vec<&ExplainedCandidate> = cands.iter().filter(|c| c.rank.is_some()).collect();
    let (Some(win), runner) = (ranked.first(), ranked.get(1)) else {
        return String::new();
    };
    let how = match pref {
        Some(Preference::Cheapest) => "tenant prefers cheapest".to_owned(),
        Some(Preference::Quality) => "tenant prefers quality".to_owned(),
        _ => format!(
            "weighted, {priority:?} priority: health {w:.1} / cost {:.1}",
            1.0 - w
        ),
    };
    let Some(run) = runner else {
        return format!("{} is the only eligible carrier ({how})", win.carrier);
    };
    let score = |c: &ExplainedCandidate| c.score.unwrap_or(0.0);
    let health = |c: &ExplainedCandidate| c.health_score.unwrap_or(0.0);
    let cheapest = ranked.iter().all(|c| win.cost <= c.cost);
    let healthiest = ranked.iter().all(|c| health(win) >= health(c));
    let mut s = format!(
        "{} wins with score {:.3} over {} ({:.3}); {how}; ",
        win.carrier,
        score(win),
        run.carrier,
        score(run)
    );
    if score(win) < score(run) {
        s.push_str("scores tie within the band, so the pick was spread by carrier weight");
    } else if cheapest && healthiest {
        s.push_str("it is both the cheapest and the healthiest");
    } else if cheapest {
        s.push_str(&format!(
            "it is the cheapest ({} vs {}) and {}'s better health ({:.2} vs {:.2}) does not outweigh that",
            win.cost, run.cost, run.carrier, health(run), health(win)
        ));
    } else if healthiest {
        s.push_str(&format!(
            "its health ({:.2} vs {:.2}) outweighs the higher cost ({} vs {})",
            health(win),
            health(run),
            win.cost,
            run.cost
        ));
    } else {
        s.push_str("it has the best blend of cost and health");
    }
    let open = cands
        .iter()
        .filter(|c| c.excluded == Some(Exclusion::BreakerOpen))
        .count();
    let blocked = cands
        .iter()
        .filter(|c| c.excluded == Some(Exclusion::NotInPlan))
        .count();
    if open + blocked > 0 {
        s.push_str(&format!(
            " ({open} skipped for open breakers, {blocked} not in the tenant's plan)"
        ));
    }
    s
}

impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} {} for tenant {:?} (priority {:?}, generation {}): matched prefix {}",
            self.channel,
            self.number,
            self.tenant,
            self.priority,
            self.generation,
            self.matched_prefix.as_deref().unwrap_or("none")
        )?;
        for c in &self.candidates {
            let rank = c.rank.map_or_else(|| "-".to_owned(), |r| r.to_string());
            write!(
                f,
                "  {rank:>2} {:<20} prefix {:<8} {} {} (cost {}, tenant {}) success {:.2} latency {}ms breaker {}",
                c.carrier,
                c.prefix,
                c.rate,
                c.currency,
                c.cost,
                c.price,
                c.health.success_rate,
                c.health.latency.as_millis(),
                c.breaker.name()
            )?;
            match (c.score, c.excluded) {
                (Some(s), _) => writeln!(f, " score {s:.3}")?,
                (None, Some(e)) => writeln!(f, " excluded: {e:?}")?,
                (None, None) => writeln!(f)?,
            }
        }
        write!(f, "  => {}", self.reason)
    }
}
