//! `/ui/carriers` (operator keys): each carrier's channels, binds up, queue depth, health
//! (success rate, latency, score) and breaker state, from the routing table's live state, the
//! bind table and the dispatcher: what `GET /v1/routes/explain` shows an operator per
//! candidate, for every carrier at once. Below it, a route explanation: a tenant, a number,
//! a channel and a priority give the routing table's own explanation
//! ([`switchyard_routing::RoutingTable::explain`], as `GET /v1/routes/explain` computes it):
//! the matched prefix, every covering carrier with its rate, cost, price, health, breaker,
//! score and rank or why it is excluded, and why the winner won.

use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;
use switchyard_routing::{Channel, Explanation, Priority, RouteRequest, E164};

use super::layout::{self, Nav};
use super::{UiError, UiState, Viewer};

/// Priorities an explanation can be asked for, as the API names them.
const PRIORITIES: [(&str, Priority); 4] = [
    ("critical", Priority::Critical),
    ("high", Priority::High),
    ("normal", Priority::Normal),
    ("low", Priority::Low),
];

/// The route explanation form's fields.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ExplainForm {
    /// Whose route plan.
    tenant: Option<String>,
    /// The destination, E.164.
    to: Option<String>,
    /// A phone channel (default SMS).
    channel: Option<String>,
    /// The priority to score with (default normal).
    priority: Option<String>,
}

/// An explanation, or why there is none.
fn explain(
    state: &UiState,
    tenant: &str,
    to: &str,
    channel: Channel,
    priority: Priority,
) -> Result<Explanation, String> {
    let number =
        E164::parse(to.trim()).map_err(|e| format!("{to:?} is not an E.164 number: {e}"))?;
    let table = state.app.dispatcher.router.load();
    let tenant_id = table
        .tenant_id(tenant)
        .ok_or_else(|| "this tenant has no routing plan".to_owned())?;
    Ok(table.explain(&RouteRequest {
        channel,
        number: &number,
        tenant: tenant_id,
        priority,
        salt: 0,
        now: Instant::now(),
    }))
}

fn explanation(e: &Explanation, currency: &str) -> Markup {
    html! {
        section #explanation aria-labelledby="explanation-heading" {
            h3 #explanation-heading { "Route for " (e.number) " (" (e.channel.as_str()) ")" }
            dl.facts {
                dt { "Matched prefix" } dd.mono { (e.matched_prefix.as_deref().unwrap_or("none")) }
                dt { "Winner" } dd #winner { @match &e.outcome {
                    Ok(c) => strong { (c) },
                    Err(err) => span.error { "none: " (err) },
                } }
                dt { "Why" } dd #reason { (e.reason) }
                dt { "Health weight" } dd { (format!("{:.2}", e.health_weight)) }
                dt { "Table generation" } dd { (e.generation) }
            }
            @if !e.candidates.is_empty() {
                table #candidates {
                    caption.note { "Ranked carriers first, in order; prices in " (currency) " (rates in the deck's currency)." }
                    thead { tr {
                        th.num scope="col" { "Rank" } th scope="col" { "Carrier" }
                        th scope="col" { "Prefix" } th scope="col" { "Network" }
                        th.num scope="col" { "Rate" } th.num scope="col" { "Cost" }
                        th.num scope="col" { "Price" } th.num scope="col" { "Success rate" }
                        th.num scope="col" { "Latency" } th scope="col" { "Breaker" }
                        th.num scope="col" { "Score" } th scope="col" { "Excluded" }
                    } }
                    tbody {
                        @for c in &e.candidates {
                            tr {
                                td.num { (c.rank.map_or("—".to_owned(), |r| r.to_string())) }
                                th scope="row" { (c.carrier) }
                                td.mono { (c.prefix) }
                                td { (c.country.as_deref().unwrap_or("")) " " (c.network.as_deref().unwrap_or("")) }
                                td.num { (c.rate) " " (c.currency) }
                                td.num { (c.cost) }
                                td.num { (c.price) }
                                td.num { (format!("{:.1} %", c.health.success_rate * 100.0)) }
                                td.num { (format!("{:.0} ms", c.health.latency.as_secs_f64() * 1000.0)) }
                                td { (layout::status(c.breaker.name())) }
                                td.num { (c.score.map_or("—".to_owned(), |s| format!("{s:.3}"))) }
                                td { (c.excluded.map_or(String::new(), |x| match x {
                                    switchyard_routing::Exclusion::NotInPlan => "not in the tenant's plan".to_owned(),
                                    switchyard_routing::Exclusion::BreakerOpen => "breaker open".to_owned(),
                                    switchyard_routing::Exclusion::Overflow => "beyond the candidates kept".to_owned(),
                                })) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `GET /ui/carriers`, with the route explanation when `to` is given.
pub(crate) async fn page(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<ExplainForm>,
) -> Result<Response, UiError> {
    if !viewer.is_operator() {
        return Err(UiError::Forbidden("the carriers page is for operator keys"));
    }
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref().filter(|t| !t.is_empty()))?;
    let to = q.to.as_deref().map(str::trim).filter(|t| !t.is_empty());
    let channel = match q.channel.as_deref().filter(|c| !c.is_empty()) {
        None => Channel::Sms,
        Some(c) => Channel::from_str(c)
            .ok()
            .filter(|c| c.is_phone())
            .ok_or_else(|| UiError::BadRequest(format!("{c:?} is not a phone channel")))?,
    };
    let priority = match q.priority.as_deref().filter(|p| !p.is_empty()) {
        None => Priority::Normal,
        Some(p) => PRIORITIES
            .iter()
            .find(|(n, _)| *n == p)
            .map(|(_, p)| *p)
            .ok_or_else(|| UiError::BadRequest(format!("{p:?} is not a priority")))?,
    };
    let explained = to.map(|to| explain(&state, &tenant, to, channel, priority));
    let table = state.app.dispatcher.router.load();
    let binds = state.app.binds.load();
    let reference = table.config().scoring.latency_reference;
    let now = Instant::now();
    let body = html! {
        table #carriers {
            thead { tr {
                th scope="col" { "Carrier" } th scope="col" { "Channels" }
                th.num scope="col" { "Binds up" } th.num scope="col" { "Queued" }
                th.num scope="col" { "Success rate" } th.num scope="col" { "Latency" }
                th.num scope="col" { "Samples" } th.num scope="col" { "Health score" }
                th scope="col" { "Breaker" }
            } }
            tbody {
                @for c in &table.config().carriers {
                    @let own: Vec<_> = binds.iter().filter(|(n, _)| *n == c.name).collect();
                    @let up = own.iter().filter(|(_, b)| b.bound.load(Ordering::Relaxed)).count();
                    @let state_ = table.carrier_id(&c.name).and_then(|id| table.carrier_state(id));
                    tr {
                        th scope="row" { (c.name) }
                        td { (c.channels.iter().map(|ch| ch.as_str()).collect::<Vec<_>>().join(", ")) }
                        td.num { @if own.is_empty() { "—" } @else { (up) " / " (own.len()) } }
                        td.num { (state.app.dispatcher.queued_for(&c.name).map_or("—".to_owned(), |n| n.to_string())) }
                        @if let Some(s) = state_ {
                            @let h = s.health().snapshot();
                            td.num { (format!("{:.1} %", h.success_rate * 100.0)) }
                            td.num { (format!("{:.0} ms", h.latency.as_secs_f64() * 1000.0)) }
                            td.num { (h.samples) }
                            td.num { (format!("{:.2}", s.health().score(reference))) }
                            td { (layout::status(s.view(now).name())) }
                        } @else {
                            td colspan="5" { "no live state" }
                        }
                    }
                }
            }
        }
        p.note { "Health decays with time; the score weighs the success rate by latency (1.0 is best). A breaker that is open skips the carrier until its cool-down ends, then lets probes through (half-open)." }
        h2 #explain-heading { "Route explanation" }
        form.filters #explain method="get" action="/ui/carriers" aria-labelledby="explain-heading" {
            div {
                label for="tenant" { "Tenant" }
                select #tenant name="tenant" {
                    @for t in super::tenants(&state.app) {
                        option value=(t) selected[*t == *tenant] { (t) }
                    }
                }
            }
            div {
                label for="to" { "Number (E.164)" }
                input #to name="to" type="tel" required placeholder="+447911123456" value=[to];
            }
            div {
                label for="channel" { "Channel" }
                select #channel name="channel" {
                    @for c in Channel::PHONE {
                        option value=(c.as_str()) selected[c == channel] { (c.as_str()) }
                    }
                }
            }
            div {
                label for="priority" { "Priority" }
                select #priority name="priority" {
                    @for (name, p) in PRIORITIES {
                        option value=(name) selected[p == priority] { (name) }
                    }
                }
            }
            button type="submit" { "Explain" }
        }
        @match &explained {
            None => p.note { "Which carriers a message to a number would go to, in what order and why: as the router decides now." },
            Some(Err(e)) => p.error role="alert" #explain-error { (e) },
            Some(Ok(e)) => (explanation(e, &table.config().base_currency.to_string())),
        }
    };
    Ok(layout::page(&viewer, Nav::Carriers, "Carriers", body).into_response())
}
