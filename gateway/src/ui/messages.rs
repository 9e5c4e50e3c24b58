//! `/ui/messages`: search by id, number and status, newest first, a page at a time (the
//! store's `list`, as `GET /v1/messages` uses it), the first page following new messages and
//! status changes live (Server-Sent Events, [`super::live`]); `/ui/messages/{id}`: one message with its
//! per-segment states and full status history (the store's `get`).

use std::str::FromStr;

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{html, Markup};
use serde::Deserialize;

use super::layout::{self, Nav};
use super::{UiError, UiState, Viewer};
use crate::domain::{encoding_name, rfc3339, ListFilter, MessageId, MessageRecord, Status};

/// Messages per page.
const PAGE: usize = 50;

/// The search form's fields (empty fields are no filter).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Search {
    /// Operator keys: whose messages.
    tenant: Option<String>,
    /// A message id: straight to its page.
    id: Option<String>,
    /// Only to this number (as stored: E.164 with `+`).
    to: Option<String>,
    /// Only in this status.
    status: Option<String>,
    /// Messages older than this id (the next page).
    before: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /ui/messages`.
pub(crate) async fn list(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Search>,
) -> Result<Response, UiError> {
    let tenant = viewer.tenant(&state.app, given(&q.tenant))?;
    let tenant_q = if viewer.is_operator() {
        format!("?tenant={}", url_escape(&tenant))
    } else {
        String::new()
    };
    if let Some(id) = given(&q.id) {
        return Ok(
            Redirect::to(&format!("/ui/messages/{}{tenant_q}", url_escape(id))).into_response(),
        );
    }
    let status = given(&q.status)
        .map(|s| Status::from_str(s).map_err(UiError::BadRequest))
        .transpose()?;
    let before = given(&q.before)
        .map(|c| MessageId::from_str(c).map_err(UiError::BadRequest))
        .transpose()?;
    let to = given(&q.to).map(str::to_owned);
    let filter = ListFilter {
        status,
        to: to.clone(),
        before,
        limit: PAGE,
        ..ListFilter::default()
    };
    let records = state.app.store.list(&tenant, filter).await?;
    let next = (records.len() == PAGE)
        .then(|| records.last().map(|r| r.message.id.to_string()))
        .flatten();
    let mut next_q = vec![];
    if viewer.is_operator() {
        next_q.push(format!("tenant={}", url_escape(&tenant)));
    }
    if let Some(to) = &to {
        next_q.push(format!("to={}", url_escape(to)));
    }
    if let Some(s) = status {
        next_q.push(format!("status={}", s.as_str()));
    }
    // The first page follows changes live: the page is fetched again on each (debounced).
    let live = before.is_none().then(|| {
        let tenant_q = if viewer.is_operator() {
            format!("?tenant={}", url_escape(&tenant))
        } else {
            String::new()
        };
        let sep = if next_q.is_empty() { "" } else { "?" };
        (
            format!("/ui/events{tenant_q}"),
            format!("/ui/messages{sep}{}", next_q.join("&")),
        )
    });
    let body = html! {
        form.filters method="get" action="/ui/messages" role="search" {
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
                label for="id" { "Message id" }
                input #id name="id" placeholder="msg_…" spellcheck="false";
            }
            div {
                label for="to" { "To (number)" }
                input #to name="to" type="tel" placeholder="+447911123456" value=[to.as_deref()];
            }
            div {
                label for="status" { "Status" }
                select #status name="status" {
                    option value="" { "any" }
                    @for s in Status::ALL {
                        option value=(s.as_str()) selected[status == Some(s)] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        div #messages-region data-live-events=[live.as_ref().map(|(e, _)| e)] data-live-refresh=[live.as_ref().map(|(_, r)| r)] {
        @if records.is_empty() {
            p.note { "No messages match." }
        } @else {
            table #messages {
                caption.note { "Newest first, " (PAGE) " a page." }
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Accepted" } th scope="col" { "To" }
                    th scope="col" { "From" } th scope="col" { "Status" }
                    th scope="col" { "Channel" } th.num scope="col" { "Segments" }
                    th scope="col" { "Carrier" } th.num scope="col" { "Price" }
                } }
                tbody {
                    @for r in &records {
                        (row(r, &tenant_q))
                    }
                }
            }
        }
        nav.pager aria-label="Pages" {
            @if before.is_some() {
                a href={ "/ui/messages?" (next_q.join("&")) } { "First page" }
            }
            @if let Some(next) = next {
                @let sep = if next_q.is_empty() { "" } else { "&" };
                a href={ "/ui/messages?" (next_q.join("&")) (sep) "before=" (next) } { "Older messages" }
            }
        }
        }
        @if live.is_some() {
            p.note { "New messages and status changes show here as they happen." }
        }
    };
    Ok(layout::page(&viewer, Nav::Messages, "Messages", body).into_response())
}

fn row(r: &MessageRecord, tenant_q: &str) -> Markup {
    let m = &r.message;
    html! {
        tr {
            td.mono { a href={ "/ui/messages/" (m.id) (tenant_q) } { (m.id) } }
            td { (rfc3339(m.created_at)) }
            td.mono { (m.to) }
            td { (m.from) }
            td { (layout::status(r.status.as_str())) }
            td { (m.channel().as_str()) }
            td.num { (m.segments) }
            td { (m.carrier.as_deref().unwrap_or("")) }
            td.num { (price(r)) }
        }
    }
}

fn price(r: &MessageRecord) -> String {
    r.message
        .price
        .map(|p| format!("{} {}", p.amount, p.currency))
        .unwrap_or_default()
}

/// The `?tenant=` of `GET /ui/messages/{id}` (operator keys).
#[derive(Debug, Deserialize)]
pub(crate) struct Whose {
    /// Operator keys: whose message.
    pub(crate) tenant: Option<String>,
}

/// `GET /ui/messages/{id}`. Another tenant's message is "not found", as in the API.
pub(crate) async fn detail(
    State(state): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Whose>,
) -> Result<Response, UiError> {
    let tenant = viewer.tenant(&state.app, given(&q.tenant))?;
    let id = MessageId::from_str(&id).map_err(|_| UiError::NotFound("message"))?;
    let r = state
        .app
        .store
        .get(&tenant, id)
        .await?
        .ok_or(UiError::NotFound("message"))?;
    let m = &r.message;
    let back = if viewer.is_operator() {
        format!("/ui/messages?tenant={}", url_escape(&tenant))
    } else {
        "/ui/messages".to_owned()
    };
    let body = html! {
        dl.facts #facts {
            dt { "Id" } dd.mono { (m.id) }
            @if viewer.is_operator() { dt { "Tenant" } dd { (tenant) } }
            dt { "Status" } dd #status { (layout::status(r.status.as_str())) }
            dt { "To" } dd.mono { (m.to) }
            dt { "From" } dd { (m.from) }
            dt { "Channel" } dd { (m.channel().as_str()) }
            dt { "Encoding" } dd { (encoding_name(m.encoding)) }
            dt { "Segments" } dd { (m.segments) }
            dt { "Carrier" } dd { (m.carrier.as_deref().unwrap_or("—")) }
            dt { "Price" } dd { (price(&r)) }
            dt { "Accepted" } dd { (rfc3339(m.created_at)) }
            dt { "Last change" } dd { (rfc3339(r.updated_at)) }
            @if let Some(at) = m.scheduled_at { dt { "Scheduled for" } dd { (rfc3339(at)) } }
            @if let Some(at) = m.expires_at { dt { "Expires" } dd { (rfc3339(at)) } }
            @if !m.tags.is_empty() { dt { "Tags" } dd { (m.tags.join(", ")) } }
            dt { "Body" }
            @if viewer.is_operator() {
                dd.note { "hidden from operator keys" }
            } @else {
                dd { (m.body) }
            }
        }
        h2 #segments-heading { "Segments" }
        @if r.segment_states.is_empty() {
            p.note { "Not submitted yet." }
        } @else {
            table aria-labelledby="segments-heading" {
                thead { tr {
                    th.num scope="col" { "#" } th scope="col" { "Carrier" }
                    th scope="col" { "Carrier's id" } th scope="col" { "Status" }
                    th scope="col" { "Error" } th scope="col" { "Updated" }
                } }
                tbody {
                    @for s in &r.segment_states {
                        tr {
                            td.num { (s.index) }
                            td { (s.carrier.as_deref().unwrap_or("")) }
                            td.mono { (s.carrier_message_id.as_deref().unwrap_or("")) }
                            td { (layout::status(s.status.as_str())) }
                            td { (s.error.as_deref().unwrap_or("")) }
                            td { (rfc3339(s.updated_at)) }
                        }
                    }
                }
            }
        }
        h2 #history-heading { "History" }
        table #history aria-labelledby="history-heading" {
            thead { tr { th scope="col" { "At" } th scope="col" { "Status" } th scope="col" { "Detail" } } }
            tbody {
                @for h in &r.history {
                    tr {
                        td { (rfc3339(h.at)) }
                        td { (layout::status(h.status.as_str())) }
                        td { (h.detail.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        p { a href=(back) { "All messages" } }
    };
    let title = format!("Message {}", m.id);
    Ok(layout::page(&viewer, Nav::Messages, &title, body).into_response())
}

/// Percent-encodes `s` for a query value or path segment.
pub(crate) fn url_escape(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
