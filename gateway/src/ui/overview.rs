//! `/ui`: the overview. Counts by status over the last hour and day, messages accepted in
//! each of the last five minutes, and this node's binds and queues (as `/readyz` and
//! `/metrics` report them). `/ui/overview/live` answers the counters alone, which the page
//! polls every five seconds (htmx).
//!
//! The counts come from the store's `list` (newest first, the `since` filter), at most
//! [`SAMPLE`] messages per window: cheap and bounded on any store. A window with more
//! messages says so ("at least"), and its counts are those of its newest [`SAMPLE`].

use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::layout::{self, Nav};
use super::messages::{url_escape, Whose};
use super::{UiError, UiState, Viewer};
use crate::api::AppState;
use crate::domain::{now_ms, ListFilter, MessageRecord, Status, UnixMs};

/// Most messages read per window.
pub(crate) const SAMPLE: usize = 1000;
/// A minute, in ms.
const MINUTE: UnixMs = 60_000;
/// Polling period of the live counters, as htmx reads it.
const POLL: &str = "every 5s";

/// `GET /ui`.
pub(crate) async fn page(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Whose>,
) -> Result<Response, UiError> {
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref())?;
    let live = live_section(&state.app, &viewer, &tenant).await?;
    let body = html! {
        (layout::tenant_picker(&state.app, &viewer, "/ui", &tenant))
        (live)
    };
    Ok(layout::page(&viewer, Nav::Overview, "Overview", body).into_response())
}

/// `GET /ui/overview/live`: the counters alone. When the session has ended, htmx is told to
/// load the login page (`HX-Redirect`) rather than swap it into the counters.
pub(crate) async fn live(
    State(state): State<UiState>,
    viewer: Result<Viewer, UiError>,
    Query(q): Query<Whose>,
) -> Result<Response, UiError> {
    let viewer = match viewer {
        Ok(v) => v,
        Err(UiError::Login) => return Ok([("HX-Redirect", "/ui/login")].into_response()),
        Err(e) => return Err(e),
    };
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref())?;
    Ok(live_section(&state.app, &viewer, &tenant)
        .await?
        .into_response())
}

/// Counts by status of one window.
struct Window {
    /// "Last hour", "Last 24 hours".
    label: &'static str,
    /// Per status, in [`Status::ALL`] order, those with messages only.
    counts: Vec<(Status, usize)>,
    /// Messages counted.
    total: usize,
    /// The window held more than [`SAMPLE`] messages.
    capped: bool,
}

fn window(label: &'static str, records: &[MessageRecord]) -> Window {
    let counts = Status::ALL
        .iter()
        .map(|s| (*s, records.iter().filter(|r| r.status == *s).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    Window {
        label,
        counts,
        total: records.len(),
        capped: records.len() >= SAMPLE,
    }
}

/// Messages accepted in each of the last five whole minutes before `now`, most recent first.
fn per_minute(records: &[MessageRecord], now: UnixMs) -> [usize; 5] {
    let mut out = [0; 5];
    for r in records {
        let age = now.saturating_sub(r.message.created_at);
        if let Some(slot) = usize::try_from(age / MINUTE)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot += 1;
        }
    }
    out
}

async fn live_section(state: &AppState, viewer: &Viewer, tenant: &str) -> Result<Markup, UiError> {
    let now = now_ms();
    let read = |since: UnixMs| ListFilter {
        since: Some(since),
        limit: SAMPLE,
        ..ListFilter::default()
    };
    let hour = state.store.list(tenant, read(now - 60 * MINUTE)).await?;
    let day = state
        .store
        .list(tenant, read(now - 24 * 60 * MINUTE))
        .await?;
    let minutes = per_minute(&hour, now);
    let windows = [window("Last hour", &hour), window("Last 24 hours", &day)];
    let binds = state.binds.load();
    let up = binds
        .iter()
        .filter(|(_, b)| b.bound.load(Ordering::Relaxed))
        .count();
    let url = if viewer.is_operator() {
        format!("/ui/overview/live?tenant={}", url_escape(tenant))
    } else {
        "/ui/overview/live".to_owned()
    };
    Ok(html! {
        section #live hx-get=(url) hx-trigger=(POLL) hx-swap="outerHTML" {
            @for w in &windows {
                h2 { (w.label) }
                ul.cards {
                    li { span.n { @if w.capped { "≥ " } (w.total) } "messages" }
                    @for (s, n) in &w.counts {
                        li { span.n { (n) } (layout::status(s.as_str())) }
                    }
                }
                @if w.capped {
                    p.note { "More than " (SAMPLE) " messages: the counts by status are those of the newest " (SAMPLE) "." }
                }
            }
            h2 { "Accepted per minute" }
            table #throughput {
                thead { tr {
                    @for (i, _) in minutes.iter().enumerate() {
                        th.num scope="col" { @if i == 0 { "this minute" } @else { (i) " min ago" } }
                    }
                } }
                tbody { tr {
                    @for n in minutes { td.num { (n) } }
                } }
            }
            h2 { "This node" }
            ul.cards #node {
                li { span.n { (up) " / " (binds.len()) } "SMPP binds up" }
                li { span.n { (state.dispatcher.queued()) } "queued for carriers" }
                li { span.n { (state.dispatcher.scheduled_in_memory()) } "scheduled, held in memory" }
                li { span.n { (state.dispatcher.deferred()) } "deferred" }
            }
            p.note { "Updated " (crate::domain::rfc3339(now)) "; refreshes every five seconds." }
        }
    })
}
