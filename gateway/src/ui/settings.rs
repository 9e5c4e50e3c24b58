//! `/ui/settings`: a tenant's settings as the running configuration has them, read-only:
//! limits and quotas (with what today and this month used, from the analytics rollups), its
//! API keys' scopes (a short fingerprint of each key's hash, never a key), the numbers it
//! owns, its SMPP server users (never their passwords) and its webhook (never its secrets).
//! An operator key picks the tenant, as on every page.

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use switchyard_ops::config::{Scope, Tenant};

use super::layout::{self, Nav};
use super::messages::Whose;
use super::{UiError, UiState, Viewer};
use crate::api::analytics::recent_messages;
use crate::domain::analytics::{MessageTotals, Resolution};
use crate::domain::{now_ms, Status, UnixMs};

/// `GET /ui/settings`.
pub(crate) async fn page(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Whose>,
) -> Result<Response, UiError> {
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref().filter(|t| !t.is_empty()))?;
    let config = state
        .app
        .auth
        .load()
        .config()
        .ok_or(UiError::NotFound("configuration"))?;
    let t = config
        .tenants
        .iter()
        .find(|t| *t.name == *tenant)
        .ok_or(UiError::NotFound("tenant"))?;
    let now = now_ms();
    let today = accepted(&state, &tenant, now, 0).await?;
    let month = accepted(&state, &tenant, now, now - month_start(now)).await?;
    let body = html! {
        (layout::tenant_picker(&state.app, &viewer, "/ui/settings", &tenant))
        p { "As the running configuration has them; they change with the configuration file (and a reload)." }
        (limits(t, today, month))
        (keys(t))
        (numbers(t))
        (smpp(t))
        (webhook(t))
    };
    Ok(layout::page(&viewer, Nav::Settings, "Settings", body).into_response())
}

/// Messages `tenant` had accepted in the day buckets covering the last `window` ms.
async fn accepted(
    state: &UiState,
    tenant: &Arc<str>,
    now: UnixMs,
    window: i64,
) -> Result<u64, UiError> {
    let rows = recent_messages(
        &state.app,
        Some(tenant.clone()),
        now,
        window,
        Resolution::Day,
    )
    .await?;
    let mut totals = MessageTotals::default();
    for (_, t) in &rows {
        totals.add(t);
    }
    Ok(totals.count(Status::Accepted))
}

/// Midnight UTC on the first of `now`'s month.
fn month_start(now: UnixMs) -> UnixMs {
    let day = Resolution::Day.floor(now);
    let dom = time::OffsetDateTime::from_unix_timestamp(now / 1000)
        .map(|t| i64::from(t.day()))
        .unwrap_or(1);
    day - (dom - 1) * Resolution::Day.millis()
}

fn or_none<T: std::fmt::Display>(v: Option<T>, none: &str) -> String {
    v.map_or_else(|| none.to_owned(), |v| v.to_string())
}

fn limits(t: &Tenant, today: u64, month: u64) -> Markup {
    let l = &t.limits;
    let quota = |used: u64, q: Option<u64>| match q {
        Some(q) => format!("{used} of {q} used"),
        None => format!("no limit ({used} used)"),
    };
    html! {
        h2 #limits-heading { "Limits and quotas" }
        dl.facts #limits aria-labelledby="limits-heading" {
            dt { "Messages today (UTC)" } dd { (quota(today, l.daily_quota)) }
            dt { "Messages this month" } dd { (quota(month, l.monthly_quota)) }
            dt { "Messages per second" } dd { (or_none(t.max_tps, "no limit beyond the carriers'")) }
            dt { "Segments per message" } dd { (or_none(l.max_segments, "the API's limit")) }
            dt { "Channels" } dd { (match &l.allowed_channels {
                Some(c) => c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", "),
                None => "every channel".to_owned(),
            }) }
            dt { "Countries" } dd { (match &l.allowed_countries {
                Some(c) => format!("only {}", c.join(", ")),
                None => "every country".to_owned(),
            }) }
            @if !l.blocked_countries.is_empty() {
                dt { "Blocked countries" } dd { (l.blocked_countries.join(", ")) }
            }
            dt { "Highest priority" } dd { (format!("{:?}", t.fairness.max_priority).to_lowercase()) }
            dt { "Default sender" } dd { (t.default_sender.as_deref().unwrap_or("—")) }
        }
    }
}

fn keys(t: &Tenant) -> Markup {
    html! {
        h2 #keys-heading { "API keys" }
        table #keys aria-labelledby="keys-heading" {
            thead { tr {
                th.num scope="col" { "#" } th scope="col" { "Fingerprint" } th scope="col" { "Scopes" }
            } }
            tbody {
                @for (i, hash) in t.api_keys.iter().enumerate() {
                    @let scopes = t.api_key_scopes.get(i).copied().unwrap_or(switchyard_ops::config::Scopes::ALL);
                    tr {
                        td.num { (i + 1) }
                        td.mono { "sha256:" (hex::encode(&hash.as_bytes()[..4])) "…" }
                        td { (Scope::ALL.iter().filter(|s| scopes.contains(**s)).map(|s| s.as_str()).collect::<Vec<_>>().join(", ")) }
                    }
                }
            }
        }
        p.note { "Keys are stored as SHA-256 hashes; the fingerprint is the start of the hash, to tell keys apart." }
    }
}

fn numbers(t: &Tenant) -> Markup {
    let numbers = &t.events.numbers;
    html! {
        h2 #numbers-heading { "Numbers" }
        @if numbers.is_empty() {
            p.note { "No numbers: inbound messages reach this tenant only through its chat accounts or SMPP users." }
        } @else {
            ul #numbers aria-labelledby="numbers-heading" {
                @for n in numbers {
                    li.mono { @if n.len() > 8 { "+" } (n) }
                }
            }
        }
        @if !t.events.accounts.is_empty() {
            p { "Chat accounts: " (t.events.accounts.join(", ")) }
        }
    }
}

fn smpp(t: &Tenant) -> Markup {
    html! {
        h2 #smpp-heading { "SMPP server users" }
        @if t.smpp.users.is_empty() {
            p.note { "None: this tenant does not bind to the SMPP server." }
        } @else {
            table #smpp-users aria-labelledby="smpp-heading" {
                thead { tr {
                    th scope="col" { "system_id" } th.num scope="col" { "Max binds" }
                    th.num scope="col" { "Window" } th.num scope="col" { "Max TPS" }
                    th scope="col" { "Allowed IPs" }
                } }
                tbody {
                    @for u in &t.smpp.users {
                        tr {
                            td.mono { (u.system_id) }
                            td.num { (u.max_binds) }
                            td.num { (u.window) }
                            td.num { (or_none(u.max_tps, "—")) }
                            td.mono { @if u.allowed_ips.is_empty() { "any" } @else {
                                (u.allowed_ips.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))
                            } }
                        }
                    }
                }
            }
        }
    }
}

fn webhook(t: &Tenant) -> Markup {
    let e = &t.events;
    html! {
        h2 #webhook-heading { "Webhook" }
        dl.facts #webhook aria-labelledby="webhook-heading" {
            dt { "URL" } dd.mono { (e.webhook_url.as_deref().map(without_userinfo).unwrap_or_else(|| "—".to_owned())) }
            dt { "Signing secrets" } dd { (e.webhook_secrets.len()) }
            dt { "Events sent" } dd { (match &e.webhook_events {
                Some(kinds) => kinds.join(", "),
                None => "every type".to_owned(),
            }) }
            dt { "Events per request" } dd { (match e.webhook_batch_max {
                0 | 1 => "one (a JSON object)".to_owned(),
                n => format!("up to {n} (a JSON array)"),
            }) }
        }
    }
}

/// `url` without a user name or password (`https://user:pw@host/` → `https://…@host/`).
fn without_userinfo(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…{}", &rest[at..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_lose_their_credentials() {
        assert_eq!(
            without_userinfo("https://u:secret@hooks.example/x@y"),
            "https://…@hooks.example/x@y"
        );
        assert_eq!(without_userinfo("http://h:8/p"), "http://h:8/p");
    }

    #[test]
    fn months_start_at_midnight_on_the_first() {
        // 2026-12-06T14:12:07Z.
        let now = 1_796_566_327_000;
        assert_eq!(
            crate::domain::rfc3339(month_start(now)),
            "2026-12-01T00:00:00Z"
        );
    }
}
