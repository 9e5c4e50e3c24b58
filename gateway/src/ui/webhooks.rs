//! `/ui/webhooks`: each endpoint's health (last success and failure as the nodes sending
//! webhooks reported them to the store, with what this node has not reported yet; the last
//! failure's reason, the average delivery time, webhooks waiting for a retry and
//! given up, counted per endpoint by one store query over an index), then the webhook events
//! given up on (dead letters), oldest first, with a replay button for each and for all: the
//! same store reads and the same replay as `/v1/webhooks/dead-letters`. Needs the `admin`
//! scope, as the API does (or an operator key, which picks the tenant); read-only keys see no
//! buttons.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;

use super::layout::{self, Nav};
use super::login::CsrfForm;
use super::messages::url_escape;
use super::{UiError, UiState, Viewer};
use crate::api::webhooks::{replay, DeadLetter};
use crate::domain::rfc3339;
use crate::domain::EndpointHealth;
use std::collections::BTreeMap;

/// Dead letters per page.
const PAGE: usize = 50;

/// One endpoint's line in the health table.
#[derive(Debug, Default)]
struct Health {
    /// The attempts' record: the store's (what the nodes sending webhooks reported) with what
    /// this node has not reported yet.
    seen: EndpointHealth,
    /// Webhooks waiting for a retry.
    pending: u64,
    /// Webhooks given up.
    dead: u64,
    /// The last error of the endpoint's newest stored webhook, when no attempt reported one.
    stored_error: Option<String>,
}

/// `tenant`'s endpoints by URL: its configured webhook, those tried (by any node), those with
/// webhooks waiting or given up (counted exactly by the store, per endpoint).
async fn endpoint_health(
    state: &UiState,
    tenant: &str,
) -> Result<BTreeMap<String, Health>, UiError> {
    let mut by_url: BTreeMap<String, Health> = BTreeMap::new();
    if let Some(url) = state
        .app
        .events
        .directory
        .load()
        .tenants
        .get(tenant)
        .and_then(|e| e.webhook_url.clone())
    {
        by_url.entry(url).or_default();
    }
    for h in state.app.events.events.endpoint_health(tenant).await? {
        let url = h.url.clone();
        by_url.entry(url).or_default().seen = h;
    }
    for h in state.app.events.webhooks.health.pending(tenant) {
        by_url.entry(h.url.clone()).or_default().seen.absorb(&h);
    }
    for t in state.app.events.events.outbox_tally(tenant).await? {
        let h = by_url.entry(t.url).or_default();
        h.pending = t.waiting;
        h.dead = t.dead;
        h.stored_error = t.last_error;
    }
    Ok(by_url)
}

/// `?tenant=` and the paging cursor.
#[derive(Debug, Deserialize)]
pub(crate) struct DeadLetterQuery {
    /// Operator keys: whose dead letters.
    tenant: Option<String>,
    /// Dead letters after this id (`dl_<n>`).
    after: Option<String>,
}

/// `GET /ui/webhooks`.
pub(crate) async fn page(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Response, UiError> {
    if !viewer.can_admin() {
        return Err(UiError::Forbidden(
            "dead letters need a key with the admin scope",
        ));
    }
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref())?;
    let after = match q.after.as_deref().filter(|s| !s.is_empty()) {
        None => 0,
        Some(c) => crate::api::webhooks::parse_dl(c)
            .ok_or_else(|| UiError::BadRequest("not a dead letter id".to_owned()))?,
    };
    let rows = state
        .app
        .events
        .events
        .dead_letters(&tenant, after, PAGE)
        .await?;
    let next = (rows.len() == PAGE)
        .then(|| rows.last().map(|r| format!("dl_{}", r.id)))
        .flatten();
    let letters: Vec<DeadLetter> = rows.into_iter().map(DeadLetter::from).collect();
    let tenant_q = if viewer.is_operator() {
        format!("?tenant={}", url_escape(&tenant))
    } else {
        String::new()
    };
    let writable = !viewer.read_only();
    let health = endpoint_health(&state, &tenant).await?;
    let body = html! {
        (layout::tenant_picker(&state.app, &viewer, "/ui/webhooks", &tenant))
        h2 #health-heading { "Endpoints" }
        @if health.is_empty() {
            p.note #no-endpoints { "No webhook endpoint: the tenant has no webhook_url and no message named a callback_url yet." }
        } @else {
            table #endpoints aria-labelledby="health-heading" {
                thead { tr {
                    th scope="col" { "URL" } th scope="col" { "Last success" }
                    th scope="col" { "Last failure" } th scope="col" { "Last failure's reason" }
                    th.num scope="col" { "Delivery time" } th.num scope="col" { "Succeeded / failed" }
                    th.num scope="col" { "Waiting for a retry" } th.num scope="col" { "Given up" }
                } }
                tbody {
                    @for (url, h) in &health {
                        tr {
                            td.mono { (url) }
                            td { (h.seen.last_success.map(rfc3339).unwrap_or_else(|| "—".to_owned())) }
                            td { (h.seen.last_failure.map(rfc3339).unwrap_or_else(|| "—".to_owned())) }
                            td { (h.seen.last_error.as_deref().or(h.stored_error.as_deref()).unwrap_or("—")) }
                            td.num { (h.seen.latency_us.map(|us| format!("{} ms", (us + 500) / 1_000)).unwrap_or_else(|| "—".to_owned())) }
                            td.num { (h.seen.successes) " / " (h.seen.failures) }
                            td.num { (h.pending) }
                            td.num { (h.dead) }
                        }
                    }
                }
            }
            p.note { "Successes, failures and delivery times are every node's, reported to the store every few seconds by the node sending webhooks (delivery time: a moving average of successful attempts). Waiting and given-up webhooks are counted by the store." }
        }
        h2 #dead-heading { "Dead letters" }
        p { "Webhook events whose delivery was given up after retrying for the configured period (24 hours unless the operator set another). A replay puts them back in the retry queue, due now, for another such period." }
        @if letters.is_empty() {
            p.note #no-dead-letters { "No dead letters." }
        } @else {
            @if writable {
                form method="post" action={ "/ui/webhooks/replay" (tenant_q) } {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    button type="submit" { "Replay all" }
                }
            }
            table #dead-letters {
                thead { tr {
                    th scope="col" { "Id" } th scope="col" { "Event" } th scope="col" { "URL" }
                    th.num scope="col" { "Attempts" } th scope="col" { "First attempt" }
                    th scope="col" { "Given up" } th scope="col" { "Last error" }
                    @if writable { th scope="col" { span.skip { "Actions" } } }
                } }
                tbody {
                    @for d in &letters {
                        tr {
                            td.mono { (d.id) } td.mono { (d.event_id) } td.mono { (d.url) }
                            td.num { (d.attempts) } td { (d.first_attempt_at) } td { (d.dead_at) }
                            td { (d.last_error.as_deref().unwrap_or("")) }
                            @if writable {
                                td {
                                    form method="post" action={ "/ui/webhooks/" (d.id) "/replay" (tenant_q) } {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        button.secondary type="submit" aria-label={ "Replay " (d.id) } { "Replay" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                @let sep = if tenant_q.is_empty() { "?" } else { "&" };
                p { a href={ "/ui/webhooks" (tenant_q) (sep) "after=" (next) } { "More" } }
            }
        }
    };
    Ok(layout::page(&viewer, Nav::Webhooks, "Webhooks", body).into_response())
}

/// `?tenant=` of the replay POSTs (operator keys).
#[derive(Debug, Deserialize)]
pub(crate) struct Whose {
    /// Operator keys: whose dead letters.
    tenant: Option<String>,
}

/// `POST /ui/webhooks/{id}/replay`.
pub(crate) async fn replay_one(
    State(state): State<UiState>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(q): Query<Whose>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    let tenant = checked(&state, &viewer, q.tenant.as_deref(), &form)?;
    let id = crate::api::webhooks::parse_dl(&id).ok_or(UiError::NotFound("dead letter"))?;
    match replay(&state.app, &tenant, Some(id)).await? {
        0 => Err(UiError::NotFound("dead letter")),
        _ => Ok(back(&viewer, &tenant)),
    }
}

/// `POST /ui/webhooks/replay`: every dead letter of the tenant.
pub(crate) async fn replay_all(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Whose>,
    Form(form): Form<CsrfForm>,
) -> Result<Response, UiError> {
    let tenant = checked(&state, &viewer, q.tenant.as_deref(), &form)?;
    replay(&state.app, &tenant, None).await?;
    Ok(back(&viewer, &tenant))
}

fn checked(
    state: &UiState,
    viewer: &Viewer,
    asked: Option<&str>,
    form: &CsrfForm,
) -> Result<std::sync::Arc<str>, UiError> {
    viewer.check_post(&form.csrf)?;
    if !viewer.can_admin() {
        return Err(UiError::Forbidden(
            "dead letters need a key with the admin scope",
        ));
    }
    viewer.tenant(&state.app, asked)
}

fn back(viewer: &Viewer, tenant: &str) -> Response {
    let to = if viewer.is_operator() {
        format!("/ui/webhooks?tenant={}", url_escape(tenant))
    } else {
        "/ui/webhooks".to_owned()
    };
    Redirect::to(&to).into_response()
}
