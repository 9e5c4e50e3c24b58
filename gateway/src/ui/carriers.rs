//! `/ui/carriers` (operator keys): each carrier's channels, binds up, queue depth, health
//! (success rate, latency, score) and breaker state, from the routing table's live state, the
//! bind table and the dispatcher: what `GET /v1/routes/explain` shows an operator per
//! candidate, for every carrier at once.

use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{self, Nav};
use super::{UiError, UiState, Viewer};

/// `GET /ui/carriers`.
pub(crate) async fn page(
    State(state): State<UiState>,
    viewer: Viewer,
) -> Result<Response, UiError> {
    if !viewer.is_operator() {
        return Err(UiError::Forbidden("the carriers page is for operator keys"));
    }
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
    };
    Ok(layout::page(&viewer, Nav::Carriers, "Carriers", body).into_response())
}
