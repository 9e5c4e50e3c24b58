//! The routing table: built off the hot path from a [`RoutingConfig`], then read-only.
//!
//! Build: pick each (carrier, channel, prefix)'s rate in effect at the build time, convert it to
//! the base currency, and hand the lot to the `PrefixTrie`, which precomputes the ranked
//! (cheapest-first) candidate list of every node. Lookup: walk the trie, then filter and score
//! the handful of candidates for the tenant, the message priority and live carrier health, into
//! a caller-provided buffer.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crate::breaker::{Admission, BreakerState, Outcome};
use crate::carrier::{CarrierConfig, Channel};
use crate::config::{Priority, RoutingConfig};
use crate::deck::{Rate, UnixTime, VoiceTerms};
use crate::money::{Currency, Price};
use crate::number::{Prefix, E164};
use crate::plan::{Markup, Preference};
use crate::state::{BreakerView, CarrierState};
use crate::trie::PrefixTrie;

pub use crate::candidate::{Candidate, CarrierId, MAX_CANDIDATES};

/// A tenant's index in one table (its position in [`RoutingConfig::plans`]). Resolve it once
/// per request with [`RoutingTable::tenant_id`]; ids stay valid across rebuilds as long as the
/// plan order does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(u32);

/// Result of a longest-prefix match.
#[derive(Clone, Copy, Debug)]
pub struct Match<'a> {
    /// Digits of the longest prefix any carrier has a rate for (0: no match).
    pub matched_len: u8,
    /// All carriers with a rate covering the number, cheapest first (each by its own longest
    /// matching prefix), unfiltered.
    pub candidates: &'a [Candidate],
}

/// A candidate that survived the tenant's plan and the breakers, with its score.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ranked {
    /// The carrier.
    pub carrier: CarrierId,
    /// Our cost, base currency.
    pub cost: Price,
    /// The tenant's price (cost with the tenant's markup).
    pub price: Price,
    /// Health score used (0..=1, quality class included).
    pub health: f32,
    /// Final score; higher is better. Ranked descending.
    pub score: f32,
    /// Breaker as seen at lookup: closed or half-open (then send only with a probe admission).
    pub breaker: BreakerView,
}

/// The charge for one answered call ([`RoutingTable::voice_charge`]), base currency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoiceCharge {
    /// Seconds billed after the deck's increments (0 for an unanswered call).
    pub billed_secs: u64,
    /// The carrier's per-minute rate.
    pub per_minute: Price,
    /// What the carrier charges us.
    pub cost: Price,
    /// What the tenant pays (cost with its markup).
    pub price: Price,
}

/// Caller-provided output buffer for [`RoutingTable::route`]; reuse it, lookups never allocate.
#[derive(Clone, Debug)]
pub struct RouteBuf {
    /// Ranked candidates; the first `len` are valid.
    ranked: [Ranked; MAX_CANDIDATES],
    /// Valid entries.
    len: usize,
    /// Matched prefix length of the last route.
    matched_len: u8,
}

impl Default for RouteBuf {
    fn default() -> Self {
        Self::new()
    }
}

impl RouteBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        let blank = Ranked {
            carrier: CarrierId(0),
            cost: Price::ZERO,
            price: Price::ZERO,
            health: 0.0,
            score: 0.0,
            breaker: BreakerView::Closed,
        };
        Self {
            ranked: [blank; MAX_CANDIDATES],
            len: 0,
            matched_len: 0,
        }
    }

    /// The ranked carriers from the last successful route, best first.
    pub fn ranked(&self) -> &[Ranked] {
        self.ranked.get(..self.len).unwrap_or(&[])
    }

    /// Length of the prefix matched by the last route.
    pub fn matched_len(&self) -> u8 {
        self.matched_len
    }
}

/// What to route.
#[derive(Clone, Copy, Debug)]
pub struct RouteRequest<'a> {
    /// SMS or voice.
    pub channel: Channel,
    /// Destination.
    pub number: &'a E164,
    /// Whose plan applies.
    pub tenant: TenantId,
    /// Sets the weight of health against cost.
    pub priority: Priority,
    /// Any per-message value (e.g. a hash of the message id): picks among tied carriers in
    /// proportion to their weights, deterministically.
    pub salt: u64,
    /// Current time, for breaker cool-downs.
    pub now: Instant,
}

/// What to route on a channel priced per message (no destination number).
#[derive(Clone, Copy, Debug)]
pub struct FlatRouteRequest {
    /// The channel (not a phone channel).
    pub channel: Channel,
    /// Whose plan applies.
    pub tenant: TenantId,
    /// Sets the weight of health against cost.
    pub priority: Priority,
    /// Picks among tied carriers in proportion to their weights.
    pub salt: u64,
    /// Current time, for breaker cool-downs.
    pub now: Instant,
}

/// Why no carrier can take a message. Says who is at fault and whether retrying helps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouteError {
    /// The tenant id is not in this table (caller error: resolve ids per table generation).
    #[error("unknown tenant id")]
    UnknownTenant,
    /// No carrier has a rate for this destination on this channel. Not retryable.
    #[error("no {0} route for this destination")]
    NoRoute(Channel),
    /// The tenant's plan blocks this destination. Not retryable.
    #[error("destination blocked by the tenant's route plan")]
    BlockedPrefix,
    /// Carriers cover the destination, but the tenant's plan allows none of them. Not retryable.
    #[error("no carrier allowed by the tenant's route plan covers this destination")]
    NotAllowed,
    /// Every allowed carrier has an open circuit breaker. Retry at `retry_at` (or fail).
    #[error("all circuit breakers open for this destination")]
    AllBreakersOpen {
        /// Earliest end of a cool-down among the carriers.
        retry_at: Instant,
    },
}

impl RouteError {
    /// Whether the same request may succeed later.
    pub fn retryable(&self) -> bool {
        matches!(self, RouteError::AllBreakersOpen { .. })
    }
}

/// One problem found while building a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildProblem {
    /// Two carriers share a name.
    #[error("carrier {0:?} defined twice")]
    DuplicateCarrier(String),
    /// More carriers than a table can index (65 535).
    #[error("too many carriers")]
    TooManyCarriers,
    /// More decks than a table can index (65 535).
    #[error("too many rate decks")]
    TooManyDecks,
    /// A carrier's number rewrite rule is invalid.
    #[error("carrier {0:?}: invalid tech prefix or strip count")]
    BadRewrite(String),
    /// A deck names a carrier that is not configured.
    #[error("{source_name}: unknown carrier {carrier:?}")]
    UnknownCarrier {
        /// The deck's source.
        source_name: String,
        /// The name it gives.
        carrier: String,
    },
    /// A deck's channel is not one the carrier offers.
    #[error("{source_name}: carrier {carrier:?} does not offer {channel}")]
    ChannelNotOffered {
        /// The deck's source.
        source_name: String,
        /// The carrier.
        carrier: String,
        /// The deck's channel.
        channel: Channel,
    },
    /// A deck uses a currency with no conversion to the base currency.
    #[error("{source_name}:{line}: no exchange rate for {currency}")]
    NoExchangeRate {
        /// The deck's source.
        source_name: String,
        /// First row using it.
        line: u32,
        /// The currency.
        currency: Currency,
    },
    /// Two decks of one carrier give the same prefix a rate effective at the same time.
    #[error("{source_name}:{line}: prefix {prefix} conflicts with {other_source}:{other_line}")]
    ConflictingRate {
        /// One deck.
        source_name: String,
        /// Its row.
        line: u32,
        /// The prefix.
        prefix: Prefix,
        /// The other deck.
        other_source: String,
        /// Its row.
        other_line: u32,
    },
    /// Two plans for one tenant.
    #[error("route plan for tenant {0:?} defined twice")]
    DuplicateTenant(String),
    /// A plan names a carrier that is not configured.
    #[error("route plan {tenant:?}: unknown carrier {carrier:?}")]
    PlanUnknownCarrier {
        /// The tenant.
        tenant: String,
        /// The name it gives.
        carrier: String,
    },
    /// A carrier offers a channel priced per message but has no flat price for it, has one
    /// for a channel it does not offer or for a phone channel, or its currency has no
    /// exchange rate.
    #[error("carrier {carrier:?}: {problem} ({channel})")]
    FlatPrice {
        /// The carrier.
        carrier: String,
        /// The channel.
        channel: Channel,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Every problem that stopped a table build (the configuration's author must fix them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub Vec<BuildProblem>);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} problem(s) in routing configuration", self.0.len())?;
        for p in &self.0 {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for BuildError {}

/// A tenant plan compiled for lookups.
#[derive(Debug)]
struct CompiledPlan {
    /// Tenant name, for explanations.
    tenant: String,
    /// Bit per carrier: may this tenant use it (allowed list and block list applied).
    allowed: Box<[u64]>,
    /// Destinations the tenant may not reach.
    blocked_prefixes: Box<[Prefix]>,
    /// Tenant price over cost.
    markup: Markup,
    /// Ordering preference.
    preference: Preference,
}

impl CompiledPlan {
    #[inline]
    fn allows(&self, c: CarrierId) -> bool {
        let i = c.index();
        self.allowed
            .get(i / 64)
            .is_some_and(|w| w >> (i % 64) & 1 == 1)
    }
}

/// Per-carrier data read on every route, kept together for cache locality.
#[derive(Debug)]
struct CarrierRuntime {
    /// Live health and breaker, shared across generations.
    state: Arc<CarrierState>,
    /// Quality-class multiplier on health.
    quality: f32,
    /// Share among tied carriers.
    weight: u32,
}

/// Sizes of a built table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Distinct prefixes with rates, per channel ([`Channel::ALL`] order; 0 for channels not
    /// priced by prefix).
    pub prefixes: [usize; CHANNELS],
    /// Trie nodes, per channel.
    pub nodes: [usize; CHANNELS],
    /// Candidate entries stored after de-duplication, per channel.
    pub stored_candidates: [usize; CHANNELS],
    /// Rates in effect (one per carrier and prefix), per channel.
    pub active_rates: [usize; CHANNELS],
}

/// How many channels there are ([`Channel::ALL`]).
const CHANNELS: usize = Channel::ALL.len();

/// An immutable, precomputed routing table. Share it behind [`crate::Router`].
#[derive(Debug)]
pub struct RoutingTable {
    /// Increases by one on every rebuild.
    generation: u64,
    /// The time rates were selected for.
    built_for: UnixTime,
    /// When the next future-dated rate takes effect (rebuild then).
    next_change: Option<UnixTime>,
    /// The source configuration, kept for explanations and carrier attributes.
    config: Arc<RoutingConfig>,
    /// Per carrier, indexed by [`CarrierId`].
    carriers: Box<[CarrierRuntime]>,
    /// Per tenant, indexed by [`TenantId`].
    plans: Box<[CompiledPlan]>,
    /// Tenant name → id; for resolving ids once per request, not per lookup.
    tenant_ids: HashMap<String, TenantId>,
    /// Carrier name → id.
    carrier_ids: HashMap<String, CarrierId>,
    /// One trie per channel ([`Channel::ALL`] order; empty for channels not priced by prefix).
    tries: [PrefixTrie; CHANNELS],
    /// Per channel ([`Channel::ALL`] order), the carriers with a flat price, cheapest first
    /// (empty for phone channels).
    flat: Box<[Box<[Candidate]>]>,
    /// `config.scoring.health_weight`, clamped to 0..=1 once rather than per lookup.
    health_weight: [f32; 4],
    /// `config.scoring.latency_reference` in µs as `f32` (≥ 1), converted once.
    latency_reference_us: f32,
    /// Sizes.
    stats: TableStats,
}

/// A rate selected for the table, before it goes into the trie.
struct Selected {
    /// With `carrier` and `prefix`: what the rate prices; one rate per key goes in the table.
    channel: Channel,
    /// The carrier's [`CarrierId`] number.
    carrier: u16,
    /// The destinations it covers.
    prefix: Prefix,
    /// Among rates for one key, the latest already in effect wins.
    effective_from: UnixTime,
    /// Index of the deck in [`RoutingConfig::decks`], for its price and errors.
    deck: u16,
    /// Row of the rate in its deck.
    row: u32,
}

impl RoutingTable {
    /// Builds a table with the rates in effect at `unix_now`. `now` is the monotonic time used
    /// for new carriers' breakers. Carriers also present in `previous` (by name) keep their
    /// live health and breaker; the generation is `previous`'s plus one (1 without).
    pub fn build(
        config: Arc<RoutingConfig>,
        unix_now: UnixTime,
        now: Instant,
        previous: Option<&RoutingTable>,
    ) -> Result<Self, BuildError> {
        let mut problems = Vec::new();
        let cfg = &*config;
        let carrier_ids = index_carriers(cfg, &mut problems);
        let fx = exchange_rates(cfg);
        let (rates, next_change) = collect_rates(cfg, &carrier_ids, &fx, unix_now, &mut problems);
        let in_effect = resolve_effective(cfg, rates, &mut problems);
        let (entries, active_rates) = candidate_entries(cfg, &in_effect, &fx);
        drop(in_effect);
        let (plans, tenant_ids) = compile_plans(cfg, &carrier_ids, &mut problems);
        check_flat_prices(cfg, &fx, &mut problems);
        if !problems.is_empty() {
            return Err(BuildError(problems));
        }
        let tries = build_tries(cfg, entries);
        let carriers = carrier_runtimes(cfg, previous, now);
        let flat = flat_candidates(cfg, &fx);
        let count = |f: fn((usize, usize, usize)) -> usize| tries.each_ref().map(|t| f(t.counts()));
        let stats = TableStats {
            prefixes: count(|c| c.2),
            nodes: count(|c| c.0),
            stored_candidates: count(|c| c.1),
            active_rates,
        };
        let health_weight = cfg.scoring.health_weight.map(|w| w.clamp(0.0, 1.0));
        let latency_reference_us = crate::health::reference_us(cfg.scoring.latency_reference);
        Ok(Self {
            generation: previous.map_or(1, |p| p.generation + 1),
            built_for: unix_now,
            next_change,
            config,
            carriers,
            plans,
            tenant_ids,
            carrier_ids,
            tries,
            flat,
            health_weight,
            latency_reference_us,
            stats,
        })
    }

    /// Build generation: 1 for the first table, +1 per rebuild.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The time the table's rates were selected for.
    pub fn built_for(&self) -> UnixTime {
        self.built_for
    }

    /// When the next future-dated rate takes effect; rebuild at (or after) that time.
    pub fn next_change(&self) -> Option<UnixTime> {
        self.next_change
    }

    /// The configuration the table was built from.
    pub fn config(&self) -> &Arc<RoutingConfig> {
        &self.config
    }

    /// Sizes of the table.
    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Heap bytes of the lookup structures (trie nodes and candidate lists, both channels).
    /// Excludes the configuration (the decks themselves), which the caller owns anyway.
    pub fn heap_size(&self) -> usize {
        self.tries.iter().map(PrefixTrie::heap_size).sum::<usize>()
            + std::mem::size_of_val::<[CarrierRuntime]>(&self.carriers)
            + self
                .plans
                .iter()
                .map(|p| std::mem::size_of::<CompiledPlan>() + p.allowed.len() * 8)
                .sum::<usize>()
    }

    /// Resolves a tenant name (hashes the string: call once per request, not per lookup).
    pub fn tenant_id(&self, tenant: &str) -> Option<TenantId> {
        self.tenant_ids.get(tenant).copied()
    }

    /// Resolves a carrier name.
    pub fn carrier_id(&self, carrier: &str) -> Option<CarrierId> {
        self.carrier_ids.get(carrier).copied()
    }

    /// A carrier's attributes.
    pub fn carrier(&self, id: CarrierId) -> Option<&CarrierConfig> {
        self.config.carriers.get(id.index())
    }

    /// A carrier's live health and breaker.
    pub fn carrier_state(&self, id: CarrierId) -> Option<&Arc<CarrierState>> {
        self.carriers.get(id.index()).map(|c| &c.state)
    }

    /// Asks to send to a carrier now (see [`CarrierState::admit`]). Unknown ids are rejected.
    pub fn admit(&self, id: CarrierId, now: Instant) -> Admission {
        self.carrier_state(id)
            .map_or(Admission::Rejected { retry_at: now }, |s| s.admit(now))
    }

    /// What [`Self::admit`] would answer, without taking a half-open probe slot: for quotes,
    /// which send nothing.
    pub fn peek(&self, id: CarrierId, now: Instant) -> Admission {
        self.carrier_state(id)
            .map_or(Admission::Rejected { retry_at: now }, |s| s.peek(now))
    }

    /// Records an attempt's outcome for a carrier (health and breaker). Returns the new breaker
    /// state if it changed.
    pub fn record(&self, id: CarrierId, now: Instant, outcome: Outcome) -> Option<BreakerState> {
        self.carrier_state(id).and_then(|s| s.record(now, outcome))
    }

    /// The deck row behind a candidate (prefix, original price and currency, names, voice terms).
    pub fn rate(&self, c: &Candidate) -> Option<&Rate> {
        deck_rate(&self.config, c.deck, c.row)
    }

    /// Longest-prefix match without any filtering: every carrier covering the number, cheapest
    /// first. No allocation, no locks, no hashing.
    #[inline]
    pub fn lookup(&self, channel: Channel, number: &E164) -> Match<'_> {
        let (matched_len, candidates) = match self.tries.get(channel.index()) {
            Some(t) => t.lookup(number.digits()),
            None => (0, &[][..]),
        };
        Match {
            matched_len,
            candidates,
        }
    }

    /// Routes one message or call: the tenant's allowed carriers with a closed or half-open
    /// breaker, scored and ranked best first into `buf`. No allocation, no locks.
    ///
    /// One pass over the (cheapest-first) candidates filters and scores them; per-table
    /// constants (clamped weights, the latency reference as `f32`) are prepared at build time,
    /// and costs are compared as integers converted once, so a candidate costs one atomic
    /// breaker read, two health loads and two divisions.
    pub fn route<'b>(
        &self,
        req: &RouteRequest<'_>,
        buf: &'b mut RouteBuf,
    ) -> Result<&'b [Ranked], RouteError> {
        buf.len = 0;
        let plan = self
            .plans
            .get(req.tenant.0 as usize)
            .ok_or(RouteError::UnknownTenant)?;
        if plan
            .blocked_prefixes
            .iter()
            .any(|p| req.number.starts_with(p))
        {
            return Err(RouteError::BlockedPrefix);
        }
        let m = self.lookup(req.channel, req.number);
        buf.matched_len = m.matched_len;
        if m.candidates.is_empty() {
            return Err(RouteError::NoRoute(req.channel));
        }
        self.rank(plan, m.candidates, req.priority, req.salt, req.now, buf)
    }

    /// Routes one message on a channel priced per message ([`FlatPrice`]): the tenant's
    /// allowed carriers offering `req.channel`, scored and ranked like [`RoutingTable::route`].
    ///
    /// [`FlatPrice`]: crate::FlatPrice
    pub fn route_flat<'b>(
        &self,
        req: &FlatRouteRequest,
        buf: &'b mut RouteBuf,
    ) -> Result<&'b [Ranked], RouteError> {
        buf.len = 0;
        buf.matched_len = 0;
        let plan = self
            .plans
            .get(req.tenant.0 as usize)
            .ok_or(RouteError::UnknownTenant)?;
        let candidates = self
            .flat
            .get(req.channel.index())
            .map_or(&[][..], |c| &c[..]);
        if candidates.is_empty() {
            return Err(RouteError::NoRoute(req.channel));
        }
        self.rank(plan, candidates, req.priority, req.salt, req.now, buf)
    }

    /// The carriers with a flat price on `channel`, cheapest first, unfiltered.
    pub fn flat_candidates(&self, channel: Channel) -> &[Candidate] {
        self.flat.get(channel.index()).map_or(&[][..], |c| &c[..])
    }

    /// Filters `candidates` (cheapest first) by the plan and the breakers, scores them and
    /// ranks them best first into `buf`.
    fn rank<'b>(
        &self,
        plan: &CompiledPlan,
        candidates: &[Candidate],
        priority: Priority,
        salt: u64,
        now: Instant,
        buf: &'b mut RouteBuf,
    ) -> Result<&'b [Ranked], RouteError> {
        let w = self
            .health_weight
            .get(priority.index())
            .copied()
            .unwrap_or(0.5);
        let (health_coef, cost_coef) = match plan.preference {
            Preference::Cheapest => (1e-3, 1.0),
            Preference::Quality => (1.0, 1e-3),
            Preference::Weighted => (w, 1.0 - w),
        };
        let latency_ref = self.latency_reference_us;
        let mut allowed_any = false;
        let mut retry_at: Option<Instant> = None;
        let mut min_cost = 0.0;
        let mut n = 0;
        for c in candidates {
            if !plan.allows(c.carrier) {
                continue;
            }
            allowed_any = true;
            let Some(rt) = self.carriers.get(c.carrier.index()) else {
                continue;
            };
            let breaker = rt.state.view(now);
            if let BreakerView::Open { until } = breaker {
                retry_at = Some(retry_at.map_or(until, |r| r.min(until)));
                continue;
            }
            let Some(slot) = buf.ranked.get_mut(n) else {
                break;
            };
            let health = rt.state.health().score_with(latency_ref) * rt.quality;
            let cost = c.cost.nanos() as f64;
            if n == 0 {
                // Candidates arrive cheapest first: the first survivor holds the minimum.
                min_cost = cost;
            }
            let cost_score = if cost <= 0.0 {
                1.0
            } else {
                (min_cost / cost) as f32
            };
            *slot = Ranked {
                carrier: c.carrier,
                cost: c.cost,
                price: plan.markup.apply(c.cost),
                health,
                score: health_coef * health + cost_coef * cost_score,
                breaker,
            };
            n += 1;
        }
        if n == 0 {
            return Err(match retry_at {
                Some(retry_at) if allowed_any => RouteError::AllBreakersOpen { retry_at },
                _ => RouteError::NotAllowed,
            });
        }
        let ranked = buf.ranked.get_mut(..n).unwrap_or(&mut []);
        // Insertion sort, descending score; stable, so equal scores keep cost order. Entries
        // usually arrive in (or near) score order, so this is one comparison per entry.
        for i in 1..ranked.len() {
            let mut j = i;
            while j > 0 && ranked.get(j - 1).map(|r| r.score) < ranked.get(j).map(|r| r.score) {
                ranked.swap(j - 1, j);
                j -= 1;
            }
        }
        self.spread_ties(ranked, salt);
        buf.len = n;
        Ok(buf.ranked())
    }

    /// Among the leading candidates within the tie band, moves one chosen by weight (and salt)
    /// to the front.
    fn spread_ties(&self, ranked: &mut [Ranked], salt: u64) {
        let Some(top) = ranked.first().map(|r| r.score) else {
            return;
        };
        let band = self.config.scoring.tie_band;
        let tied = ranked.iter().take_while(|r| r.score >= top - band).count();
        if tied < 2 {
            return;
        }
        let weight =
            |r: &Ranked| u64::from(self.carriers.get(r.carrier.index()).map_or(0, |c| c.weight));
        let total: u64 = ranked.iter().take(tied).map(weight).sum();
        if total == 0 {
            return;
        }
        // Mix the salt so consecutive ids spread well.
        let mut pick = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(29) % total;
        for i in 0..tied {
            let wi = ranked.get(i).map_or(0, weight);
            if pick < wi {
                if let Some(head) = ranked.get_mut(..=i) {
                    head.rotate_right(1);
                }
                return;
            }
            pick -= wi;
        }
    }

    /// What an answered call of `secs` seconds to `number` on `carrier` costs us and what
    /// `tenant` pays, in the base currency, by the carrier's voice rate for the number (its
    /// billing increments and connection fee included). `None` when the carrier has no voice
    /// rate for the number, or its currency has no exchange rate.
    pub fn voice_charge(
        &self,
        tenant: TenantId,
        carrier: CarrierId,
        number: &E164,
        secs: u32,
    ) -> Option<VoiceCharge> {
        let m = self.lookup(Channel::Voice, number);
        let c = m.candidates.iter().find(|c| c.carrier == carrier)?;
        let rate = self.rate(c)?;
        let terms = rate.voice?;
        let cfg = &self.config;
        let to_base = if rate.currency == cfg.base_currency {
            Price::from_nanos(1_000_000_000)
        } else {
            cfg.fx.iter().find(|f| f.currency == rate.currency)?.to_base
        };
        let cost = if secs == 0 {
            Price::ZERO
        } else {
            candidate_cost(rate, to_base, secs)
        };
        let price = match self.plan_info(tenant) {
            Some((_, markup, _)) if secs > 0 => markup.apply(cost),
            _ => cost,
        };
        Some(VoiceCharge {
            billed_secs: terms.billing.billable_secs(secs),
            per_minute: rate.price.mul_rate(to_base),
            cost,
            price,
        })
    }

    /// Tenant name, markup and preference for a tenant id.
    pub(crate) fn plan_info(&self, t: TenantId) -> Option<(&str, Markup, Preference)> {
        self.plans
            .get(t.0 as usize)
            .map(|p| (p.tenant.as_str(), p.markup, p.preference))
    }

    /// Whether the tenant's plan allows a carrier.
    pub(crate) fn plan_allows(&self, t: TenantId, c: CarrierId) -> bool {
        self.plans.get(t.0 as usize).is_some_and(|p| p.allows(c))
    }
}

// The phases of `RoutingTable::build`, in order. Each adds what it finds wrong to `problems`;
// the build fails after the last one that can find problems, so one run reports them all.

/// Carrier name → id, in configuration order; duplicate names, bad rewrite rules and more
/// carriers than a [`CarrierId`] can count are problems.
fn index_carriers(
    cfg: &RoutingConfig,
    problems: &mut Vec<BuildProblem>,
) -> HashMap<String, CarrierId> {
    let mut carrier_ids = HashMap::new();
    if cfg.carriers.len() > usize::from(u16::MAX) {
        problems.push(BuildProblem::TooManyCarriers);
    }
    for (i, c) in cfg.carriers.iter().enumerate().take(usize::from(u16::MAX)) {
        match carrier_ids.entry(c.name.clone()) {
            std::collections::hash_map::Entry::Occupied(_) => {
                problems.push(BuildProblem::DuplicateCarrier(c.name.clone()))
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(CarrierId(i as u16));
            }
        }
        if !c.rewrite.is_valid() {
            problems.push(BuildProblem::BadRewrite(c.name.clone()));
        }
    }
    carrier_ids
}

/// Currency → its value in the base currency (the base currency itself is 1).
fn exchange_rates(cfg: &RoutingConfig) -> HashMap<Currency, Price> {
    let mut fx: HashMap<Currency, Price> = cfg.fx.iter().map(|r| (r.currency, r.to_base)).collect();
    fx.insert(cfg.base_currency, Price::from_nanos(1_000_000_000));
    fx
}

/// Every deck row that may go into the table: its deck names a configured carrier offering the
/// deck's channel, its currency converts to the base, and it is effective at `unix_now`. Also
/// returns when the earliest future-dated row takes effect.
fn collect_rates(
    cfg: &RoutingConfig,
    carrier_ids: &HashMap<String, CarrierId>,
    fx: &HashMap<Currency, Price>,
    unix_now: UnixTime,
    problems: &mut Vec<BuildProblem>,
) -> (Vec<Selected>, Option<UnixTime>) {
    if cfg.decks.len() > usize::from(u16::MAX) {
        problems.push(BuildProblem::TooManyDecks);
    }
    let mut rows: Vec<Selected> = Vec::with_capacity(cfg.decks.iter().map(|d| d.rates.len()).sum());
    let mut next_change: Option<UnixTime> = None;
    for (di, deck) in cfg.decks.iter().enumerate().take(usize::from(u16::MAX)) {
        let Some(&carrier) = carrier_ids.get(&deck.carrier) else {
            problems.push(BuildProblem::UnknownCarrier {
                source_name: deck.source.clone(),
                carrier: deck.carrier.clone(),
            });
            continue;
        };
        if !deck.channel.is_phone() {
            problems.push(BuildProblem::FlatPrice {
                carrier: deck.carrier.clone(),
                channel: deck.channel,
                problem: "priced per message, not by rate decks",
            });
            continue;
        }
        if !cfg
            .carriers
            .get(carrier.index())
            .is_some_and(|c| c.channels.contains(&deck.channel))
        {
            problems.push(BuildProblem::ChannelNotOffered {
                source_name: deck.source.clone(),
                carrier: deck.carrier.clone(),
                channel: deck.channel,
            });
            continue;
        }
        let mut missing_fx: Vec<Currency> = Vec::new();
        for (ri, rate) in deck.rates.iter().enumerate() {
            if !fx.contains_key(&rate.currency) {
                if !missing_fx.contains(&rate.currency) {
                    missing_fx.push(rate.currency);
                    problems.push(BuildProblem::NoExchangeRate {
                        source_name: deck.source.clone(),
                        line: rate.line,
                        currency: rate.currency,
                    });
                }
                continue;
            }
            if rate.effective_from > unix_now {
                next_change =
                    Some(next_change.map_or(rate.effective_from, |n| n.min(rate.effective_from)));
                continue;
            }
            rows.push(Selected {
                channel: deck.channel,
                carrier: carrier.0,
                prefix: rate.prefix,
                effective_from: rate.effective_from,
                deck: di as u16,
                row: ri as u32,
            });
        }
    }
    (rows, next_change)
}

/// The rate in effect for each (channel, carrier, prefix): the one with the latest
/// `effective_from`. Two decks giving the winning date a rate conflict.
fn resolve_effective(
    cfg: &RoutingConfig,
    mut rows: Vec<Selected>,
    problems: &mut Vec<BuildProblem>,
) -> Vec<Selected> {
    // Newest effective rate first within each (channel, carrier, prefix).
    rows.sort_unstable_by(|a, b| {
        (
            a.channel,
            a.carrier,
            a.prefix,
            std::cmp::Reverse(a.effective_from),
            a.deck,
            a.row,
        )
            .cmp(&(
                b.channel,
                b.carrier,
                b.prefix,
                std::cmp::Reverse(b.effective_from),
                b.deck,
                b.row,
            ))
    });
    // Keep the first (newest) of each (channel, carrier, prefix); `newer` is the one kept.
    rows.dedup_by(|s, newer| {
        if (newer.channel, newer.carrier, newer.prefix) != (s.channel, s.carrier, s.prefix) {
            return false;
        }
        if newer.effective_from == s.effective_from && newer.deck != s.deck {
            let (a, b) = (
                deck_rate(cfg, newer.deck, newer.row),
                deck_rate(cfg, s.deck, s.row),
            );
            problems.push(BuildProblem::ConflictingRate {
                source_name: deck_source(cfg, newer.deck),
                line: a.map_or(0, |r| r.line),
                prefix: s.prefix,
                other_source: deck_source(cfg, s.deck),
                other_line: b.map_or(0, |r| r.line),
            });
        }
        true // superseded by a newer rate
    });
    rows
}

/// Per channel, each rate in effect as a (prefix, candidate) pair priced in the base currency,
/// and how many there are.
fn candidate_entries(
    cfg: &RoutingConfig,
    in_effect: &[Selected],
    fx: &HashMap<Currency, Price>,
) -> ([Vec<(Prefix, Candidate)>; CHANNELS], [usize; CHANNELS]) {
    let mut entries: [Vec<(Prefix, Candidate)>; CHANNELS] = Default::default();
    let mut active = [0usize; CHANNELS];
    for s in in_effect {
        let Some(rate) = deck_rate(cfg, s.deck, s.row) else {
            continue;
        };
        let to_base = fx.get(&rate.currency).copied().unwrap_or(Price::ZERO);
        let cost = candidate_cost(rate, to_base, cfg.voice_reference_secs);
        let cand = Candidate {
            cost,
            row: s.row,
            carrier: CarrierId(s.carrier),
            deck: s.deck,
        };
        if let Some(list) = entries.get_mut(s.channel.index()) {
            list.push((s.prefix, cand));
        }
        if let Some(n) = active.get_mut(s.channel.index()) {
            *n += 1;
        }
    }
    (entries, active)
}

/// Each tenant's plan compiled for lookups (allowed carriers as a bit set) and tenant name →
/// id; duplicate tenants and plans naming unknown carriers are problems.
fn compile_plans(
    cfg: &RoutingConfig,
    carrier_ids: &HashMap<String, CarrierId>,
    problems: &mut Vec<BuildProblem>,
) -> (Box<[CompiledPlan]>, HashMap<String, TenantId>) {
    let words = cfg.carriers.len().div_ceil(64).max(1);
    let mut plans = Vec::with_capacity(cfg.plans.len());
    let mut tenant_ids = HashMap::new();
    for (i, plan) in cfg.plans.iter().enumerate() {
        if tenant_ids
            .insert(plan.tenant.clone(), TenantId(i as u32))
            .is_some()
        {
            problems.push(BuildProblem::DuplicateTenant(plan.tenant.clone()));
        }
        let mut allowed = vec![0u64; words].into_boxed_slice();
        let mut set = |name: &str, on: bool| match carrier_ids.get(name) {
            Some(id) => {
                if let Some(w) = allowed.get_mut(id.index() / 64) {
                    let bit = 1u64 << (id.index() % 64);
                    if on {
                        *w |= bit
                    } else {
                        *w &= !bit
                    }
                }
                true
            }
            None => false,
        };
        let mut unknown = Vec::new();
        match &plan.allowed {
            Some(list) => list
                .iter()
                .filter(|n| !set(n, true))
                .for_each(|n| unknown.push(n.clone())),
            None => cfg.carriers.iter().for_each(|c| {
                set(&c.name, true);
            }),
        }
        plan.blocked
            .iter()
            .filter(|n| !set(n, false))
            .for_each(|n| unknown.push(n.clone()));
        problems.extend(
            unknown
                .into_iter()
                .map(|carrier| BuildProblem::PlanUnknownCarrier {
                    tenant: plan.tenant.clone(),
                    carrier,
                }),
        );
        plans.push(CompiledPlan {
            tenant: plan.tenant.clone(),
            allowed,
            blocked_prefixes: plan.blocked_prefixes.clone().into_boxed_slice(),
            markup: plan.markup,
            preference: plan.preference,
        });
    }
    (plans.into_boxed_slice(), tenant_ids)
}

/// The lookup tries, one per channel. Each prefix's candidates are ranked cheapest first, then
/// by carrier priority, then by carrier order (stable and total).
fn build_tries(
    cfg: &RoutingConfig,
    entries: [Vec<(Prefix, Candidate)>; CHANNELS],
) -> [PrefixTrie; CHANNELS] {
    let priorities: Vec<u8> = cfg.carriers.iter().map(|c| c.priority).collect();
    let rank = |c: &Candidate| {
        (
            c.cost,
            priorities
                .get(c.carrier.index())
                .copied()
                .unwrap_or(u8::MAX),
            c.carrier,
        )
    };
    entries.map(|e| PrefixTrie::build(e, rank))
}

/// Per carrier, its live state (kept from `previous` for carriers it has, by name; new
/// otherwise, breakers starting at `now`) and scoring attributes.
fn carrier_runtimes(
    cfg: &RoutingConfig,
    previous: Option<&RoutingTable>,
    now: Instant,
) -> Box<[CarrierRuntime]> {
    cfg.carriers
        .iter()
        .map(|c| CarrierRuntime {
            state: previous
                .and_then(|p| {
                    p.carrier_id(&c.name)
                        .and_then(|id| p.carriers.get(id.index()))
                })
                .map(|r| Arc::clone(&r.state))
                .unwrap_or_else(|| Arc::new(CarrierState::new(cfg.breaker.clone(), now))),
            quality: c.quality.factor(),
            weight: c.weight,
        })
        .collect()
}

/// Per channel, the carriers offering it at a flat price, converted to the base currency and
/// ranked cheapest first, then by priority, then by carrier order.
fn flat_candidates(cfg: &RoutingConfig, fx: &HashMap<Currency, Price>) -> Box<[Box<[Candidate]>]> {
    Channel::ALL
        .iter()
        .map(|&channel| {
            let mut list: Vec<(u8, Candidate)> = cfg
                .carriers
                .iter()
                .enumerate()
                .take(usize::from(u16::MAX))
                .filter(|(_, c)| c.channels.contains(&channel))
                .filter_map(|(i, c)| {
                    let flat = c.flat_prices.iter().find(|f| f.channel == channel)?;
                    let to_base = fx.get(&flat.currency)?;
                    Some((
                        c.priority,
                        Candidate {
                            cost: flat.price.mul_rate(*to_base),
                            row: 0,
                            carrier: CarrierId(i as u16),
                            deck: FLAT_DECK,
                        },
                    ))
                })
                .collect();
            list.sort_by_key(|(priority, c)| (c.cost, *priority, c.carrier));
            list.truncate(MAX_CANDIDATES);
            list.into_iter().map(|(_, c)| c).collect()
        })
        .collect()
}

/// Every carrier offering a channel priced per message has exactly one usable flat price
/// for it, and flat prices are only for such channels.
fn check_flat_prices(
    cfg: &RoutingConfig,
    fx: &HashMap<Currency, Price>,
    problems: &mut Vec<BuildProblem>,
) {
    for c in &cfg.carriers {
        let mut problem = |channel, problem| {
            problems.push(BuildProblem::FlatPrice {
                carrier: c.name.clone(),
                channel,
                problem,
            })
        };
        for &channel in c.channels.iter().filter(|ch| !ch.is_phone()) {
            match c
                .flat_prices
                .iter()
                .filter(|f| f.channel == channel)
                .count()
            {
                0 => problem(channel, "no price per message"),
                1 => {}
                _ => problem(channel, "more than one price per message"),
            }
        }
        for f in &c.flat_prices {
            if f.channel.is_phone() {
                problem(f.channel, "priced by rate decks, not per message");
            } else if !c.channels.contains(&f.channel) {
                problem(
                    f.channel,
                    "a price for a channel the carrier does not offer",
                );
            } else if !fx.contains_key(&f.currency) {
                problem(f.channel, "no exchange rate for the price's currency");
            }
        }
    }
}

/// The `deck` of a candidate priced per message: it has no deck row.
const FLAT_DECK: u16 = u16::MAX;

fn deck_rate(cfg: &RoutingConfig, deck: u16, row: u32) -> Option<&Rate> {
    cfg.decks
        .get(usize::from(deck))
        .and_then(|d| d.rates.get(row as usize))
}

fn deck_source(cfg: &RoutingConfig, deck: u16) -> String {
    cfg.decks
        .get(usize::from(deck))
        .map_or_else(String::new, |d| d.source.clone())
}

/// Cost in base currency: the converted price, or for voice the converted cost of a reference
/// call.
fn candidate_cost(rate: &Rate, to_base: Price, reference_secs: u32) -> Price {
    let price = rate.price.mul_rate(to_base);
    match rate.voice {
        None => price,
        Some(v) => VoiceTerms {
            connection_fee: v.connection_fee.mul_rate(to_base),
            billing: v.billing,
        }
        .call_cost(price, reference_secs),
    }
}
