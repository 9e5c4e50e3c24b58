//! `/ui`: the overview. Messages accepted over the last hour and day with what became of them
//! (counts by status, delivery rate, latency percentiles), messages accepted per minute over
//! the last hour, and this node's binds and queues (as `/readyz` and `/metrics` report them).
//! `/ui/overview/live` answers the live section alone, which the page fetches again when its
//! tenant's messages change (Server-Sent Events from `/ui/events`, [`super::live`]) and polls
//! every five seconds (htmx) for this node's binds and queues.
//!
//! The numbers come from the store's analytics rollups ([`crate::domain::analytics`]): the
//! minute rows of the last hour and the hour rows of the last day, exact whatever the traffic,
//! as `GET /v1/analytics/messages` reads them.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};

use super::layout::{self, Nav};
use super::messages::{url_escape, Whose};
use super::{UiError, UiState, Viewer};
use crate::api::analytics::recent_messages;
use crate::api::AppState;
use crate::domain::analytics::{percentiles, Latency, MessageTotals, Resolution, COUNTED};
use crate::domain::{now_ms, Status, UnixMs};

/// A minute, in ms.
const MINUTE: UnixMs = 60_000;
/// Polling period of the live counters, as htmx reads it: for this node's binds and queues,
/// which send no events; messages' changes arrive at once by Server-Sent Events.
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

/// Messages accepted in a window and what became of them.
struct Window {
    /// "Last hour", "Last 24 hours".
    label: &'static str,
    /// The window's sums.
    totals: MessageTotals,
}

/// Sums `buckets` (start, totals) into one window.
fn window(label: &'static str, buckets: &[(UnixMs, MessageTotals)]) -> Window {
    let mut totals = MessageTotals::default();
    for (_, t) in buckets {
        totals.add(t);
    }
    Window { label, totals }
}

/// Messages accepted in each of the last `N` minutes before `now` (this one first).
fn per_minute<const N: usize>(minutes: &[(UnixMs, MessageTotals)], now: UnixMs) -> [u64; N] {
    let current = Resolution::Minute.floor(now);
    let mut out = [0; N];
    for (start, t) in minutes {
        if let Some(slot) = usize::try_from((current - start) / MINUTE)
            .ok()
            .and_then(|i| out.get_mut(i))
        {
            *slot += t.count(Status::Accepted);
        }
    }
    out
}

/// A duration in milliseconds, short: "850 ms", "2.4 s", "3.1 min".
fn duration(ms: u64) -> String {
    match ms {
        0..=999 => format!("{ms} ms"),
        1_000..=59_999 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => format!("{:.1} min", ms as f64 / 60_000.0),
    }
}

/// The latency table's rows that have samples.
fn latency_rows(t: &MessageTotals) -> Vec<(&'static str, u64, [u64; 3])> {
    let rows: [(&str, Option<&Latency>); 3] = [
        ("accepted → sent", t.to_sent.as_ref()),
        ("sent → delivered", t.to_delivered.as_ref()),
        ("accepted → delivered", t.end_to_end.as_ref()),
    ];
    rows.into_iter()
        .filter_map(|(label, h)| percentiles(h).map(|(n, p)| (label, n, p)))
        .collect()
}

/// Bars of messages accepted per minute over the last hour, oldest on the left: an inline SVG
/// (no script, so the Content-Security-Policy stays as it is).
fn chart(minutes: &[u64; 60]) -> Markup {
    let most = minutes.iter().copied().max().unwrap_or(0).max(1);
    let label = format!(
        "Messages accepted per minute over the last hour: {} in all, at most {} in a minute.",
        minutes.iter().sum::<u64>(),
        minutes.iter().copied().max().unwrap_or(0)
    );
    html! {
        svg.spark viewBox="0 0 600 80" preserveAspectRatio="none" role="img" aria-label=(label) {
            @for (i, n) in minutes.iter().rev().enumerate() {
                @let h = (*n as f64 / most as f64 * 78.0).ceil();
                rect x=(i * 10) y=(format!("{:.0}", 80.0 - h)) width="8" height=(format!("{h:.0}")) {}
            }
        }
    }
}

async fn live_section(state: &AppState, viewer: &Viewer, tenant: &str) -> Result<Markup, UiError> {
    let now = now_ms();
    let who: Arc<str> = Arc::from(tenant);
    // The last 60 minute buckets and the last 24 hour buckets, the current one included.
    let minutes = recent_messages(
        state,
        Some(who.clone()),
        now,
        59 * MINUTE,
        Resolution::Minute,
    )
    .await?;
    let hours = recent_messages(state, Some(who), now, 23 * 60 * MINUTE, Resolution::Hour).await?;
    let windows = [
        window("Last hour", &minutes),
        window("Last 24 hours", &hours),
    ];
    let last_hour = per_minute::<60>(&minutes, now);
    let binds = state.binds.load();
    let up = binds
        .iter()
        .filter(|(_, b)| b.bound.load(Ordering::Relaxed))
        .count();
    let tenant_q = if viewer.is_operator() {
        format!("?tenant={}", url_escape(tenant))
    } else {
        String::new()
    };
    let url = format!("/ui/overview/live{tenant_q}");
    let events = format!("/ui/events{tenant_q}");
    Ok(html! {
        section #live hx-get=(url) hx-trigger=(POLL) hx-swap="outerHTML"
            data-live-events=(events) data-live-refresh=(url) {
            @for w in &windows {
                @let t = &w.totals;
                h2 { (w.label) }
                ul.cards {
                    li { span.n { (t.count(Status::Accepted)) } "messages" }
                    @for s in COUNTED.iter().skip(1) {
                        @if t.count(*s) > 0 {
                            li { span.n { (t.count(*s)) } (layout::status(s.as_str())) }
                        }
                    }
                    @if let Some(rate) = t.delivery_rate() {
                        li { span.n { (format!("{:.1} %", rate * 100.0)) } "delivery rate" }
                    }
                }
                @let rows = latency_rows(t);
                @if !rows.is_empty() {
                    table.latency {
                        caption { "Latency, " (w.label.to_lowercase()) }
                        thead { tr {
                            th scope="col" { "from → to" }
                            th.num scope="col" { "messages" }
                            th.num scope="col" { "p50" }
                            th.num scope="col" { "p90" }
                            th.num scope="col" { "p99" }
                        } }
                        tbody {
                            @for (label, n, p) in &rows {
                                tr {
                                    th scope="row" { (label) }
                                    td.num { (n) }
                                    @for v in p { td.num { (duration(*v)) } }
                                }
                            }
                        }
                    }
                }
            }
            h2 { "Accepted per minute" }
            (chart(&last_hour))
            table #throughput {
                thead { tr {
                    @for i in 0..5 {
                        th.num scope="col" { @if i == 0 { "this minute" } @else { (i) " min ago" } }
                    }
                } }
                tbody { tr {
                    @for n in &last_hour[..5] { td.num { (n) } }
                } }
            }
            h2 { "This node" }
            ul.cards #node {
                li { span.n { (up) " / " (binds.len()) } "SMPP binds up" }
                li { span.n { (state.dispatcher.queued()) } "queued for carriers" }
                li { span.n { (state.dispatcher.scheduled_in_memory()) } "scheduled, held in memory" }
                li { span.n { (state.dispatcher.deferred()) } "deferred" }
            }
            p.note { "Messages by the minute they were accepted, with what became of them since. Updated " (crate::domain::rfc3339(now)) "; refreshes as messages change (Server-Sent Events) and every five seconds." }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accepted(n: u64) -> MessageTotals {
        MessageTotals {
            counts: [n, 0, 0, 0, 0, 0, 0, 0, 0],
            ..MessageTotals::default()
        }
    }

    #[test]
    fn minutes_count_back_from_the_current_one() {
        let now = 10 * MINUTE + 30_000;
        let rows = vec![
            (10 * MINUTE, accepted(1)),
            (9 * MINUTE, accepted(2)),
            (6 * MINUTE, accepted(4)),
            (5 * MINUTE, accepted(8)),
        ];
        assert_eq!(per_minute::<5>(&rows, now), [1, 2, 0, 0, 4]);
    }

    #[test]
    fn durations_are_short() {
        assert_eq!(duration(850), "850 ms");
        assert_eq!(duration(2_400), "2.4 s");
        assert_eq!(duration(186_000), "3.1 min");
    }
}
