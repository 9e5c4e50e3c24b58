//! `/ui/calls`: the tenant's call detail records (SIP proxy calls and notification calls),
//! newest first, with filters and paging; `/ui/calls/{id}`: one record with every trunk
//! tried. The same store query as `GET /v1/calls` (time range, disposition, cursor); the
//! number and trunk filters are applied to its pages here, reading at most [`MAX_SCAN`]
//! records per page shown.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::messages::{url_escape, Whose};
use super::{UiError, UiState, Viewer};
use crate::api::calls::{call_id, DISPOSITIONS};
use crate::api::messages::parse_time;
use crate::domain::{rfc3339, CallFilter, CallRecord, UnixMs};

/// Records per page.
const PAGE: usize = 50;
/// Records read from the store per round trip.
const BATCH: usize = 500;
/// Most records read to fill one page when the number or trunk filter is set.
const MAX_SCAN: usize = 5_000;

/// The filter form's fields (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    /// Operator keys: whose calls.
    tenant: Option<String>,
    /// Set up at or after (RFC 3339, or the form's `YYYY-MM-DDTHH:MM`, UTC).
    since: Option<String>,
    /// Set up before.
    until: Option<String>,
    /// Caller or callee contains this.
    number: Option<String>,
    /// Only this disposition.
    disposition: Option<String>,
    /// A trunk (carrier) that was tried.
    trunk: Option<String>,
    /// Records older than this id (`call_<hex>`).
    before: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// A time from the form: RFC 3339, or a `datetime-local` value read as UTC.
fn time(field: &'static str, s: &str) -> Result<UnixMs, UiError> {
    let full = if s.len() == 16 && s.as_bytes().get(10) == Some(&b'T') {
        format!("{s}:00Z")
    } else {
        s.to_owned()
    };
    parse_time(field, &full).map_err(UiError::from)
}

/// The form's value for a time given as RFC 3339 (`YYYY-MM-DDTHH:MM`, UTC).
fn form_time(ms: UnixMs) -> String {
    rfc3339(ms).chars().take(16).collect()
}

fn parse_id(s: &str) -> Option<i64> {
    s.strip_prefix("call_")
        .and_then(|h| i64::from_str_radix(h, 16).ok())
}

/// Whether `c` passes the filters the store does not apply.
fn matches(c: &CallRecord, number: Option<&str>, trunk: Option<&str>) -> bool {
    let number_ok = number.is_none_or(|n| {
        let n = n.trim_start_matches('+');
        c.caller.contains(n) || c.callee.contains(n)
    });
    let trunk_ok = trunk.is_none_or(|t| {
        c.carrier.as_deref() == Some(t) || c.attempts.iter().any(|(name, _)| name == t)
    });
    number_ok && trunk_ok
}

/// `GET /ui/calls`.
pub(crate) async fn list(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Search>,
) -> Result<Response, UiError> {
    let tenant = viewer.tenant(&state.app, given(&q.tenant))?;
    let since = given(&q.since).map(|s| time("since", s)).transpose()?;
    let until = given(&q.until).map(|s| time("until", s)).transpose()?;
    let disposition = given(&q.disposition).map(str::to_owned);
    if let Some(d) = &disposition {
        if !DISPOSITIONS.contains(&d.as_str()) {
            return Err(UiError::BadRequest(format!("{d:?} is not a disposition")));
        }
    }
    let number = given(&q.number);
    let trunk = given(&q.trunk);
    let mut before = given(&q.before)
        .map(|c| parse_id(c).ok_or_else(|| UiError::BadRequest("not a call id".to_owned())))
        .transpose()?;
    let first_page = before.is_none();
    let mut rows = Vec::new();
    let mut scanned = 0;
    // The id to continue from when there may be more.
    let mut next = None;
    loop {
        let filter = CallFilter {
            before,
            since,
            until,
            disposition: disposition.clone(),
            limit: BATCH,
        };
        let page = state.app.store.calls(&tenant, filter).await?;
        let exhausted = page.len() < BATCH;
        for c in page {
            scanned += 1;
            before = Some(c.id);
            if matches(&c, number, trunk) {
                rows.push(c);
                if rows.len() == PAGE {
                    break;
                }
            }
        }
        if rows.len() == PAGE || (!exhausted && scanned >= MAX_SCAN) {
            next = before;
            break;
        }
        if exhausted {
            break;
        }
    }
    let mut keep = vec![];
    if viewer.is_operator() {
        keep.push(format!("tenant={}", url_escape(&tenant)));
    }
    for (k, v) in [
        ("since", given(&q.since)),
        ("until", given(&q.until)),
        ("number", number),
        ("disposition", disposition.as_deref()),
        ("trunk", trunk),
    ] {
        if let Some(v) = v {
            keep.push(format!("{k}={}", url_escape(v)));
        }
    }
    let tenant_q = if viewer.is_operator() {
        format!("?tenant={}", url_escape(&tenant))
    } else {
        String::new()
    };
    let trunks: Vec<String> = state
        .app
        .dispatcher
        .router
        .load()
        .config()
        .carriers
        .iter()
        .filter(|c| c.channels.contains(&switchyard_routing::Channel::Voice))
        .map(|c| c.name.clone())
        .collect();
    let body = html! {
        form.filters method="get" action="/ui/calls" role="search" {
            @if viewer.is_operator() {
                div {
                    label for="tenant" { "Tenant" }
                    select #tenant name="tenant" {
                        @for t in super::tenants(&state.app) {
                            option value=(t) selected[*t == *tenant] { (t) }
                        }
                    }
                }
            }
            div {
                label for="since" { "From (UTC)" }
                input #since name="since" type="datetime-local" value=[since.map(form_time)];
            }
            div {
                label for="until" { "Until (UTC)" }
                input #until name="until" type="datetime-local" value=[until.map(form_time)];
            }
            div {
                label for="number" { "Number" }
                input #number name="number" type="tel" placeholder="+447911123456" value=[number];
            }
            div {
                label for="disposition" { "Disposition" }
                select #disposition name="disposition" {
                    option value="" { "any" }
                    @for d in DISPOSITIONS {
                        option value=(d) selected[disposition.as_deref() == Some(d)] { (d) }
                    }
                }
            }
            div {
                label for="trunk" { "Trunk" }
                select #trunk name="trunk" {
                    option value="" { "any" }
                    @for t in &trunks {
                        option value=(t) selected[trunk == Some(t.as_str())] { (t) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        @if rows.is_empty() {
            p.note #no-calls { "No calls match." }
        } @else {
            table #calls {
                caption.note { "Newest first, " (PAGE) " a page." }
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Set up" } th scope="col" { "From" }
                    th scope="col" { "To" } th scope="col" { "Disposition" }
                    th.num scope="col" { "Code" } th scope="col" { "Trunk" }
                    th.num scope="col" { "Duration" } th.num scope="col" { "Price" }
                } }
                tbody {
                    @for c in &rows { (row(c, &tenant_q)) }
                }
            }
        }
        @if next.is_some() && scanned >= MAX_SCAN && rows.len() < PAGE {
            p.note { "Read " (scanned) " calls for this page; older ones may match too." }
        }
        nav.pager aria-label="Pages" {
            @if !first_page {
                a href={ "/ui/calls?" (keep.join("&")) } { "First page" }
            }
            @if let Some(n) = next {
                @let sep = if keep.is_empty() { "" } else { "&" };
                a href={ "/ui/calls?" (keep.join("&")) (sep) "before=" (call_id(n)) } { "Older calls" }
            }
        }
    };
    Ok(layout::page(&viewer, Nav::Calls, "Calls", body).into_response())
}

fn price(c: &CallRecord) -> String {
    match (&c.price, &c.currency) {
        (Some(p), Some(cur)) => format!("{p} {cur}"),
        (Some(p), None) => p.clone(),
        _ => String::new(),
    }
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn row(c: &CallRecord, tenant_q: &str) -> Markup {
    let id = call_id(c.id);
    html! {
        tr {
            td.mono { a href={ "/ui/calls/" (id) (tenant_q) } { (id) } }
            td { (rfc3339(c.setup_at)) }
            td.mono { (c.caller) }
            td.mono { (c.callee) }
            td { (layout::status(c.disposition)) }
            td.num { (c.code) }
            td { (c.carrier.as_deref().unwrap_or("")) }
            td.num { (seconds(c.duration_ms)) }
            td.num { (price(c)) }
        }
    }
}

/// `GET /ui/calls/{id}`. Another tenant's call is "not found".
pub(crate) async fn detail(
    State(state): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Whose>,
) -> Result<Response, UiError> {
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref().filter(|t| !t.is_empty()))?;
    let n = parse_id(&id).ok_or(UiError::NotFound("call"))?;
    let filter = CallFilter {
        before: n.checked_add(1),
        limit: 1,
        ..CallFilter::default()
    };
    let c = state
        .app
        .store
        .calls(&tenant, filter)
        .await?
        .into_iter()
        .find(|c| c.id == n)
        .ok_or(UiError::NotFound("call"))?;
    let back = if viewer.is_operator() {
        format!("/ui/calls?tenant={}", url_escape(&tenant))
    } else {
        "/ui/calls".to_owned()
    };
    let body = html! {
        dl.facts #facts {
            dt { "Id" } dd.mono { (call_id(c.id)) }
            @if viewer.is_operator() { dt { "Tenant" } dd { (tenant) } }
            dt { "Disposition" } dd #disposition { (layout::status(c.disposition)) }
            dt { "Final SIP code" } dd { (c.code) }
            dt { "From" } dd.mono { (c.caller) }
            dt { "To" } dd.mono { (c.callee) }
            dt { "Trunk that answered" } dd { (c.carrier.as_deref().unwrap_or("—")) }
            dt { "Hung up by" } dd { (c.hangup.unwrap_or("—")) }
            dt { "Set up" } dd { (rfc3339(c.setup_at)) }
            dt { "Answered" } dd { (c.answer_at.map(rfc3339).unwrap_or_else(|| "—".to_owned())) }
            dt { "Ended" } dd { (rfc3339(c.end_at)) }
            dt { "Duration" } dd { (seconds(c.duration_ms)) }
            dt { "Billed" } dd { (c.billed_secs) " s" }
            dt { "Price" } dd { (price(&c)) }
            @if viewer.is_operator() {
                dt { "Cost" } dd { (c.cost.as_deref().unwrap_or("—")) }
            }
            dt { "SIP Call-ID" } dd.mono { (c.sip_call_id) }
        }
        h2 #attempts-heading { "Trunks tried" }
        @if c.attempts.is_empty() {
            p.note { "None." }
        } @else {
            table #attempts aria-labelledby="attempts-heading" {
                thead { tr { th.num scope="col" { "#" } th scope="col" { "Trunk" } th.num scope="col" { "SIP code" } } }
                tbody {
                    @for (i, (name, code)) in c.attempts.iter().enumerate() {
                        tr { td.num { (i + 1) } td { (name) } td.num { (code) } }
                    }
                }
            }
        }
        p { a href=(back) { "All calls" } }
    };
    let title = format!("Call {}", call_id(c.id));
    Ok(layout::page(&viewer, Nav::Calls, &title, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(caller: &str, callee: &str, carrier: Option<&str>, tried: &[&str]) -> CallRecord {
        CallRecord {
            caller: caller.into(),
            callee: callee.into(),
            carrier: carrier.map(str::to_owned),
            attempts: tried.iter().map(|t| ((*t).to_owned(), 503)).collect(),
            id: 1,
            tenant: "acme".into(),
            sip_call_id: "x".into(),
            disposition: "answered",
            code: 200,
            hangup: None,
            setup_at: 0,
            answer_at: None,
            end_at: 0,
            duration_ms: 0,
            billed_secs: 0,
            cost: None,
            price: None,
            currency: None,
        }
    }

    #[test]
    fn number_and_trunk_filters() {
        let c = call("+15550001", "+447911123456", Some("B"), &["A", "B"]);
        assert!(matches(&c, None, None));
        assert!(matches(&c, Some("+447911123456"), None));
        assert!(matches(&c, Some("15550001"), Some("A")));
        assert!(!matches(&c, Some("+33"), None));
        assert!(!matches(&c, None, Some("C")));
    }

    #[test]
    fn form_times_are_utc_minutes() {
        let ms = time("since", "2026-12-06T14:05").unwrap();
        assert_eq!(form_time(ms), "2026-12-06T14:05");
        assert_eq!(time("since", "2026-12-06T14:05:00Z").unwrap(), ms);
        assert!(time("since", "yesterday").is_err());
        assert_eq!(parse_id(&call_id(42)), Some(42));
    }
}
