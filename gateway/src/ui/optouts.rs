//! `/ui/opt-outs`: the tenant's opt-out list (numbers that must not be sent to), by number,
//! with the channel or sender each entry applies to; a search by number; adding and removing
//! entries for keys that may change the list. The same store reads and writes as
//! `/v1/opt-outs`: the list in memory that sends are checked against changes with them.
//!
//! Reading and changing the list need the `admin` scope, as `/v1/opt-outs` does, or an
//! operator key.

use std::str::FromStr;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Form;
use maud::html;
use serde::Deserialize;
use switchyard_routing::Channel;

use super::layout::{self, Nav};
use super::messages::url_escape;
use super::{UiError, UiState, Viewer};
use crate::api::optouts::{add, address, recipient, remove_entries, OptOutView};
use crate::domain::{channel_sender, ChatChannel, OptOut, ALL_SENDERS};

/// Entries per page.
const PAGE: usize = 50;
/// Entries read per round trip when a channel filter is set.
const BATCH: usize = 500;
/// Most entries read to fill one page with the channel filter.
const MAX_SCAN: usize = 5_000;
/// Chat channels whose STOP blocks the whole channel (`<channel>:*` entries).
const CHAT: [Channel; 4] = [
    Channel::Whatsapp,
    Channel::Rcs,
    Channel::Telegram,
    Channel::Messenger,
];

/// The list's query: tenant, number search, channel, paging.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    /// Operator keys: whose list.
    tenant: Option<String>,
    /// Only this number (E.164, or a chat platform's id).
    number: Option<String>,
    /// Only entries for this channel (`sms` for senders and `*`).
    channel: Option<String>,
    /// Entries after this one (`<recipient>|<sender>`).
    after: Option<String>,
    /// What the last change did, said once after the redirect.
    done: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// The channel an entry applies to: a chat channel for `<channel>:*`, else SMS (a sender
/// of the tenant, or `*` for every sender).
fn channel_of(o: &OptOut) -> &str {
    o.sender.strip_suffix(":*").unwrap_or("sms")
}

/// The list key of a searched number: E.164 digits, or a platform id as given.
fn key_of(number: &str) -> String {
    recipient(number).unwrap_or_else(|_| number.trim().to_owned())
}

/// `GET /ui/opt-outs`.
pub(crate) async fn list(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<ListQuery>,
) -> Result<Response, UiError> {
    if !viewer.can_admin() {
        return Err(UiError::Forbidden(
            "the opt-out list needs a key with the admin scope",
        ));
    }
    let tenant = viewer.tenant(&state.app, given(&q.tenant))?;
    let number = given(&q.number);
    let channel = given(&q.channel);
    if let Some(c) = channel {
        if c != "sms" && Channel::from_str(c).is_err() {
            return Err(UiError::BadRequest(format!("{c:?} is not a channel")));
        }
    }
    let store = &state.app.events.events;
    let mut rows = Vec::new();
    let mut next = None;
    if let Some(n) = number {
        // Every entry of one number sorts right after (number, "").
        let key = key_of(n);
        let found = store
            .opt_outs(&tenant, Some((key.clone(), String::new())), PAGE)
            .await?;
        rows.extend(
            found
                .into_iter()
                .filter(|o| o.recipient == key && channel.is_none_or(|c| channel_of(o) == c)),
        );
    } else {
        let mut after = given(&q.after).map(|c| {
            let (r, s) = c.split_once('|').unwrap_or((c, ""));
            (r.to_owned(), s.to_owned())
        });
        let mut scanned = 0;
        loop {
            let limit = if channel.is_some() { BATCH } else { PAGE };
            let page = store.opt_outs(&tenant, after.clone(), limit).await?;
            let exhausted = page.len() < limit;
            for o in page {
                scanned += 1;
                after = Some((o.recipient.clone(), o.sender.clone()));
                if channel.is_none_or(|c| channel_of(&o) == c) {
                    rows.push(o);
                    if rows.len() == PAGE {
                        break;
                    }
                }
            }
            if rows.len() == PAGE || (!exhausted && scanned >= MAX_SCAN) {
                next = after.map(|(r, s)| format!("{r}|{s}"));
                break;
            }
            if exhausted {
                break;
            }
        }
    }
    let operator_q = viewer
        .is_operator()
        .then(|| format!("tenant={}", url_escape(&tenant)));
    let tenant_q = operator_q
        .as_ref()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    let writable = viewer.can_admin();
    let mut keep: Vec<String> = operator_q.iter().cloned().collect();
    if let Some(c) = channel {
        keep.push(format!("channel={}", url_escape(c)));
    }
    let body = html! {
        @if let Some(done) = given(&q.done) {
            p.notice role="status" #done { (done) }
        }
        form.filters method="get" action="/ui/opt-outs" role="search" {
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
                label for="number" { "Number" }
                input #number name="number" type="search" placeholder="+447911123456" value=[number];
            }
            div {
                label for="channel" { "Channel" }
                select #channel name="channel" {
                    option value="" { "any" }
                    option value="sms" selected[channel == Some("sms")] { "sms" }
                    @for c in CHAT {
                        option value=(c.as_str()) selected[channel == Some(c.as_str())] { (c.as_str()) }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        p { "Numbers here are not sent to: on SMS for the sender an entry names (every sender for “*”), on a chat channel for the whole channel (a STOP sent there). STOP and START keywords change the list too." }
        @if rows.is_empty() {
            p.note #no-opt-outs { "No opt-outs match." }
        } @else {
            table #opt-outs {
                caption.note { "By number, " (PAGE) " a page." }
                thead { tr {
                    th scope="col" { "Number" } th scope="col" { "Channel" }
                    th scope="col" { "Applies to" } th scope="col" { "Source" }
                    th scope="col" { "Since" }
                    @if writable { th scope="col" { span.skip { "Actions" } } }
                } }
                tbody {
                    @for o in &rows {
                        @let ch = channel_of(o).to_owned();
                        @let view = OptOutView::from(o.clone());
                        tr {
                            td.mono { (view.number) }
                            td { (ch) }
                            td { @if o.sender == ALL_SENDERS { "every sender" } @else if o.sender.ends_with(":*") { "the whole channel" } @else { span.mono { (view.from) } } }
                            td { (view.source) }
                            td { (view.created_at) }
                            @if writable {
                                td {
                                    form method="post" action={ "/ui/opt-outs/remove" (tenant_q) } {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        input type="hidden" name="recipient" value=(o.recipient);
                                        input type="hidden" name="sender" value=(o.sender);
                                        button.secondary type="submit" aria-label={ "Remove " (view.number) " (" (view.from) ")" } { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(next) = next {
            @let sep = if keep.is_empty() { "" } else { "&" };
            nav.pager aria-label="Pages" {
                @if given(&q.after).is_some() {
                    a href={ "/ui/opt-outs?" (keep.join("&")) } { "First page" }
                }
                a href={ "/ui/opt-outs?" (keep.join("&")) (sep) "after=" (url_escape(&next)) } { "More" }
            }
        }
        @if writable {
            h2 #add-heading { "Add an opt-out" }
            form.filters #add-opt-out method="post" action={ "/ui/opt-outs/add" (tenant_q) } aria-labelledby="add-heading" {
                input type="hidden" name="csrf" value=(viewer.csrf);
                div {
                    label for="add-number" { "Number (E.164), or the chat id on Telegram or Messenger" }
                    input #add-number name="number" type="text" required placeholder="+447911123456";
                }
                div {
                    label for="add-scope" { "Applies to" }
                    select #add-scope name="scope" {
                        option value="*" { "every sender (SMS)" }
                        @for c in CHAT {
                            option value=(channel_sender(c)) { "the whole " (c.as_str()) " channel" }
                        }
                    }
                }
                button type="submit" { "Add" }
            }
        }
    };
    Ok(layout::page(&viewer, Nav::OptOuts, "Opt-outs", body).into_response())
}

/// `?tenant=` of the POSTs (operator keys).
#[derive(Debug, Deserialize)]
pub(crate) struct Whose {
    /// Operator keys: whose list.
    tenant: Option<String>,
}

/// The add form.
#[derive(Debug, Deserialize)]
pub(crate) struct AddForm {
    /// The session's token.
    #[serde(default)]
    csrf: String,
    /// The number, E.164; for Telegram or Messenger, the chat's id there.
    number: String,
    /// `*` or a chat channel's `<channel>:*`.
    scope: String,
}

/// The remove buttons' form: one entry, as the list keys it.
#[derive(Debug, Deserialize)]
pub(crate) struct RemoveForm {
    /// The session's token.
    #[serde(default)]
    csrf: String,
    /// The recipient as stored (no `+`).
    recipient: String,
    /// The sender as stored.
    sender: String,
}

fn checked(
    state: &UiState,
    viewer: &Viewer,
    asked: Option<&str>,
    csrf: &str,
) -> Result<std::sync::Arc<str>, UiError> {
    viewer.check_post(csrf)?;
    if !viewer.can_admin() {
        return Err(UiError::Forbidden(
            "changing the opt-out list needs a key with the admin scope",
        ));
    }
    viewer.tenant(&state.app, asked.filter(|t| !t.is_empty()))
}

fn back(viewer: &Viewer, tenant: &str, done: &str) -> Response {
    let mut q = vec![format!("done={}", url_escape(done))];
    if viewer.is_operator() {
        q.push(format!("tenant={}", url_escape(tenant)));
    }
    Redirect::to(&format!("/ui/opt-outs?{}", q.join("&"))).into_response()
}

/// `POST /ui/opt-outs/add`.
pub(crate) async fn add_one(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Whose>,
    Form(form): Form<AddForm>,
) -> Result<Response, UiError> {
    let tenant = checked(&state, &viewer, q.tenant.as_deref(), &form.csrf)?;
    let scope = form.scope.trim();
    // Every sender takes an E.164 number; a chat channel its own kind of address (a Telegram
    // chat id, a Messenger page-scoped id), checked as the API checks it.
    let chat = match CHAT.iter().find(|c| channel_sender(**c) == scope) {
        Some(c) => ChatChannel::of(*c),
        None if scope == ALL_SENDERS => None,
        None => return Err(UiError::BadRequest(format!("{scope:?} is not a choice"))),
    };
    let r = address(&form.number, chat).map_err(UiError::BadRequest)?;
    add(
        &state.app,
        &tenant,
        vec![(r.clone(), scope.to_owned())],
        "api",
    )
    .await?;
    let phone = chat.is_none_or(|c| matches!(c, ChatChannel::Rcs | ChatChannel::Whatsapp));
    let shown = if phone { format!("+{r}") } else { r };
    Ok(back(&viewer, &tenant, &format!("Added {shown}.")))
}

/// `POST /ui/opt-outs/remove`.
pub(crate) async fn remove_one(
    State(state): State<UiState>,
    viewer: Viewer,
    Query(q): Query<Whose>,
    Form(form): Form<RemoveForm>,
) -> Result<Response, UiError> {
    let tenant = checked(&state, &viewer, q.tenant.as_deref(), &form.csrf)?;
    if form.recipient.is_empty() || form.recipient.len() > 128 || form.sender.len() > 128 {
        return Err(UiError::BadRequest("not an opt-out entry".to_owned()));
    }
    if !remove_entries(
        &state.app,
        &tenant,
        &form.recipient,
        Some(form.sender.clone()),
    )
    .await?
    {
        return Err(UiError::NotFound("opt-out"));
    }
    let shown = OptOutView::from(OptOut {
        tenant: tenant.to_string(),
        recipient: form.recipient,
        sender: form.sender,
        source: String::new(),
        created_at: 0,
    });
    Ok(back(
        &viewer,
        &tenant,
        &format!("Removed {}.", shown.number),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(sender: &str) -> OptOut {
        OptOut {
            tenant: "acme".into(),
            recipient: "447911123456".into(),
            sender: sender.into(),
            source: "api".into(),
            created_at: 0,
        }
    }

    #[test]
    fn entries_belong_to_sms_or_a_chat_channel() {
        assert_eq!(channel_of(&entry("*")), "sms");
        assert_eq!(channel_of(&entry("447700900001")), "sms");
        assert_eq!(channel_of(&entry("whatsapp:*")), "whatsapp");
        assert_eq!(key_of(" +447911123456 "), "447911123456");
    }
}
