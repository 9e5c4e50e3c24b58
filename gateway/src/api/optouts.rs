//! `/v1/opt-outs`: the tenant's opt-out list (people who must not be sent to).
//!
//! An entry is a recipient and what it blocks: one sender of the tenant (`from`), every sender
//! on every channel (`"*"`, without `from`), or one chat channel (`channel`, kept as the
//! sender `<channel>:*`, as a STOP sent on that channel makes it). The recipient is an E.164
//! number, or on a chat channel the address its messages go to: a number for RCS and
//! WhatsApp, a chat id for Telegram, a page-scoped id for Messenger. STOP/START keywords
//! change the list too.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use switchyard_routing::{Channel, E164};

use super::problem::Problem;
use super::{AppState, Scope, Tenant};
use crate::domain::{channel_sender, ChatChannel, OptOut};
use crate::domain::{now_ms, Update};
use crate::domain::{number_key, ALL_SENDERS};
use crate::domain::{rfc3339, EventWrite};
use crate::store::events::OptOutSenders;

/// Most rows one import may carry.
const MAX_IMPORT: usize = 100_000;

/// One entry as shown.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct OptOutView {
    /// The recipient, E.164 (a Telegram chat id or a Messenger page-scoped id for those
    /// channels' entries).
    pub(crate) number: String,
    /// The sender it applies to, `*` for all, or a chat channel (`whatsapp:*`) for a STOP
    /// sent on that channel.
    pub(crate) from: String,
    /// The channel it blocks: a chat channel for its `<channel>:*` entries, `sms` for one
    /// sender of the tenant, null for every sender on every channel (`*`).
    pub(crate) channel: Option<String>,
    /// "api", "import" or "keyword".
    pub(crate) source: String,
    /// When (RFC 3339).
    pub(crate) created_at: String,
}

impl From<OptOut> for OptOutView {
    fn from(o: OptOut) -> Self {
        // A chat channel's entry (`whatsapp:*`) names the channel; Telegram and Messenger
        // address people by the platform's ids, not numbers.
        let by_platform_id = o.sender == "telegram:*" || o.sender == "messenger:*";
        OptOutView {
            number: if by_platform_id {
                o.recipient
            } else {
                format!("+{}", o.recipient)
            },
            channel: match o.sender.strip_suffix(":*") {
                Some(chat) => Some(chat.to_owned()),
                None if o.sender == ALL_SENDERS => None,
                None => Some("sms".to_owned()),
            },
            from: if o.sender == ALL_SENDERS || o.sender.len() <= 8 || o.sender.ends_with(":*") {
                o.sender
            } else {
                format!("+{}", o.sender)
            },
            source: o.source,
            created_at: rfc3339(o.created_at),
        }
    }
}

/// `POST /v1/opt-outs` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddOptOut {
    /// The recipient: E.164; with a chat `channel`, that channel's address (E.164 for `rcs`
    /// and `whatsapp`, a chat id or `@channelusername` for `telegram`, a page-scoped id for
    /// `messenger`).
    pub(crate) number: String,
    /// Only for this sender of the tenant (default: every sender). Not with a chat `channel`.
    pub(crate) from: Option<String>,
    /// Only this chat channel (`rcs`, `whatsapp`, `telegram`, `messenger`), as a STOP sent
    /// on it does; `sms` (the default) keeps `from`'s meaning.
    pub(crate) channel: Option<String>,
}

/// The chat channel named by a request's `channel`: none for absent or `sms`.
pub(crate) fn chat_channel(raw: Option<&str>) -> Result<Option<ChatChannel>, Problem> {
    let Some(raw) = raw.map(str::trim).filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    match raw.parse::<Channel>() {
        Ok(Channel::Sms) => Ok(None),
        Ok(c) => match ChatChannel::of(c) {
            Some(ChatChannel::Webhook) | None => Err(bad_channel()),
            Some(chat) => Ok(Some(chat)),
        },
        Err(_) => Err(bad_channel()),
    }
}

fn bad_channel() -> Problem {
    Problem::invalid(
        "channel",
        "invalid_channel",
        "channel must be sms, rcs, whatsapp, telegram or messenger",
    )
}

/// The list's key for `raw` on `channel` (none: SMS, an E.164 number): as the channel's
/// messages are checked against the list, so an entry added here blocks them.
pub(crate) fn address(raw: &str, channel: Option<ChatChannel>) -> Result<String, String> {
    let Some(chat) = channel else {
        return recipient(raw);
    };
    let to = super::validate::Recipient::Phone(raw.to_owned());
    match super::validate::chat_recipient(&to, chat) {
        Ok((crate::submit::Recipient::Phone(n), _)) => Ok(n.as_str().to_owned()),
        Ok((crate::submit::Recipient::Account(a), _)) => Ok(a),
        _ => Err(format!(
            "{raw:?} is not {}",
            match chat {
                ChatChannel::Telegram =>
                    "a Telegram chat id (an integer, or @ and a channel's username)",
                ChatChannel::Messenger => "a Messenger page-scoped id (digits)",
                _ => "an E.164 number",
            }
        )),
    }
}

/// The entry's sender: the chat channel's, or `from`'s (SMS); both is an error.
fn entry_sender(from: Option<&str>, channel: Option<ChatChannel>) -> Result<String, Problem> {
    match (channel, from.map(str::trim).filter(|f| !f.is_empty())) {
        (Some(_), Some(_)) => Err(Problem::invalid(
            "from",
            "from_with_channel",
            "an opt-out of a chat channel applies to the whole channel: give channel or from, \
             not both",
        )),
        (Some(chat), None) => Ok(channel_sender(chat.channel())),
        (None, from) => Ok(sender(from)),
    }
}

/// A recipient as the list keys it: E.164 digits without `+`, or why not.
pub(crate) fn recipient(raw: &str) -> Result<String, String> {
    E164::parse(raw.trim())
        .map(|n| n.as_str().to_owned())
        .map_err(|e| format!("{raw:?} is not an E.164 number: {e}"))
}

fn sender(raw: Option<&str>) -> String {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => ALL_SENDERS.to_owned(),
        Some(s) => number_key(s),
    }
}

/// Adds `entries` (recipient, sender) to `tenant`'s list, durably then in memory.
pub(crate) async fn add(
    state: &AppState,
    tenant: &str,
    entries: Vec<(String, String)>,
    source: &str,
) -> Result<(), Problem> {
    if entries.is_empty() {
        return Ok(());
    }
    state
        .store
        .apply(vec![Update::Events(EventWrite::OptOutAdd {
            tenant: tenant.to_owned(),
            entries: entries.clone(),
            source: source.to_owned(),
            at: now_ms(),
        })])
        .await?;
    for (r, s) in &entries {
        state.events.opt_outs.add(tenant, r, s);
    }
    Ok(())
}

/// `POST /v1/opt-outs`.
#[utoipa::path(post, path = "/v1/opt-outs", tag = "opt-outs", request_body = AddOptOut,
    responses((status = 201, body = OptOutView), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Tenant,
    body: Result<Json<AddOptOut>, JsonRejection>,
) -> Result<(StatusCode, Json<OptOutView>), Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let Json(req) = body.map_err(|e| Problem::bad_request("invalid_json", e.body_text()))?;
    let channel = chat_channel(req.channel.as_deref())?;
    let r = address(&req.number, channel)
        .map_err(|d| Problem::invalid("number", "invalid_number", d))?;
    let s = entry_sender(req.from.as_deref(), channel)?;
    add(&state, &tenant, vec![(r.clone(), s.clone())], "api").await?;
    Ok((
        StatusCode::CREATED,
        Json(OptOutView::from(OptOut {
            tenant: tenant.to_string(),
            recipient: r,
            sender: s,
            source: "api".into(),
            created_at: now_ms(),
        })),
    ))
}

/// Query of `DELETE /v1/opt-outs/{number}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct RemoveQuery {
    /// Remove only the entry for this sender (`*` for the every-sender entry); default: all
    /// entries of the number.
    pub(crate) from: Option<String>,
    /// Remove only the entry of this chat channel (`rcs`, `whatsapp`, `telegram`,
    /// `messenger`), whose address `number` is then (a Telegram chat id, a Messenger
    /// page-scoped id); not with `from`.
    pub(crate) channel: Option<String>,
}

/// `DELETE /v1/opt-outs/{number}`.
#[utoipa::path(delete, path = "/v1/opt-outs/{number}", tag = "opt-outs", params(("number" = String, Path), RemoveQuery),
    responses((status = 204), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn remove(
    State(state): State<AppState>,
    caller: Tenant,
    Path(number): Path<String>,
    query: Result<Query<RemoveQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<StatusCode, Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let Query(q) = query.map_err(|e| Problem::bad_request("invalid_query", e.body_text()))?;
    let channel = chat_channel(q.channel.as_deref())?;
    let r =
        address(&number, channel).map_err(|d| Problem::invalid("number", "invalid_number", d))?;
    let s = match (channel, q.from.as_deref()) {
        (None, from) => from.map(|f| sender(Some(f))),
        (Some(_), from) => Some(entry_sender(from, channel)?),
    };
    if remove_entries(&state, &tenant, &r, s).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(Problem::not_found("opt-out"))
    }
}

/// Removes `tenant`'s entries for `recipient` (as the list keys it): the one for `sender`,
/// or all of them. False when there was none.
pub(crate) async fn remove_entries(
    state: &AppState,
    tenant: &str,
    recipient: &str,
    sender: Option<String>,
) -> Result<bool, Problem> {
    let applied = state
        .store
        .apply(vec![Update::Events(EventWrite::OptOutRemove {
            tenant: tenant.to_owned(),
            recipient: recipient.to_owned(),
            sender: sender.clone(),
        })])
        .await?;
    match &sender {
        Some(s) => state
            .events
            .opt_outs
            .remove(tenant, recipient, &[s.as_str()]),
        None => state.events.opt_outs.remove(tenant, recipient, &[]),
    }
    Ok(!matches!(
        applied.first(),
        Some(crate::domain::Applied::Rows(0))
    ))
}

/// Query of `GET /v1/opt-outs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Only the entries whose `channel` is this: `sms` (one sender's), `rcs`, `whatsapp`,
    /// `telegram` or `messenger` (that channel's). Entries for every sender (`*`) are listed
    /// only without it.
    pub(crate) channel: Option<String>,
    /// The `next_cursor` of the previous page.
    pub(crate) cursor: Option<String>,
    /// Page size, 1–1000 (default 100).
    pub(crate) limit: Option<usize>,
}

/// `GET /v1/opt-outs`: by number.
#[utoipa::path(get, path = "/v1/opt-outs", tag = "opt-outs", params(ListQuery),
    responses((status = 200, description = "A page of the opt-out list", body = super::openapi::OptOutPage),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Tenant,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let q = super::page::query(query)?;
    let limit = super::page::limit(q.limit)?;
    let senders = match q.channel.as_deref().map(str::trim) {
        None => None,
        Some("sms") => Some(OptOutSenders::Sms),
        Some(c) => Some(OptOutSenders::Chat(
            chat_channel(Some(c))?.ok_or_else(bad_channel)?.channel(),
        )),
    };
    // The cursor is "<recipient>|<sender>" of the last entry shown.
    let after = q.cursor.as_deref().map(|c| {
        let (r, s) = c.split_once('|').unwrap_or((c, ""));
        (r.to_owned(), s.to_owned())
    });
    let rows = state
        .events
        .events
        .opt_outs_of(&tenant, senders, after, limit)
        .await?;
    let next_cursor = (rows.len() == limit)
        .then(|| rows.last().map(|r| format!("{}|{}", r.recipient, r.sender)))
        .flatten();
    let data: Vec<OptOutView> = rows.into_iter().map(OptOutView::from).collect();
    Ok(Json(
        serde_json::json!({ "data": data, "next_cursor": next_cursor }),
    ))
}

/// One import line's entry (recipient, sender), or why not.
fn line_entry(
    number: &str,
    from: Option<&str>,
    channel: Option<&str>,
) -> Result<(String, String), String> {
    let channel = chat_channel(channel).map_err(|p| p.detail)?;
    let r = address(number, channel)?;
    let s = entry_sender(from, channel).map_err(|p| p.detail)?;
    Ok((r, s))
}

/// `POST /v1/opt-outs/import`: a CSV body, one `number[,from[,channel]]` per line (a header
/// line `number,from,channel` is allowed; a chat channel's line leaves `from` empty). Valid
/// lines are added, the others reported.
#[utoipa::path(post, path = "/v1/opt-outs/import", tag = "opt-outs",
    request_body(content = String, content_type = "text/csv"),
    responses((status = 200, description = "`{imported: n, rejected: [{line, reason}]}`", body = Object), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn import(
    State(state): State<AppState>,
    caller: Tenant,
    body: Bytes,
) -> Result<Json<serde_json::Value>, Problem> {
    caller.require(Scope::Admin)?;
    let tenant = caller.0;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body.as_ref());
    let mut entries = Vec::new();
    let mut rejected = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 1;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rejected.push(serde_json::json!({"line": line, "reason": e.to_string()}));
                continue;
            }
        };
        let number = record.get(0).unwrap_or("");
        if line == 1 && number.eq_ignore_ascii_case("number") {
            continue;
        }
        if number.is_empty() {
            continue;
        }
        match line_entry(number, record.get(1), record.get(2)) {
            Ok(entry) => entries.push(entry),
            Err(reason) => rejected.push(serde_json::json!({"line": line, "reason": reason})),
        }
        if entries.len() > MAX_IMPORT {
            return Err(Problem::invalid(
                "body",
                "too_many_rows",
                format!("at most {MAX_IMPORT} rows per import"),
            ));
        }
    }
    let imported = entries.len();
    add(&state, &tenant, entries, "import").await?;
    Ok(Json(
        serde_json::json!({ "imported": imported, "rejected": rejected }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_channel_keys_its_own_addresses() {
        assert_eq!(address("+447911000001", None), Ok("447911000001".into()));
        assert!(address("123456789012345678", None).is_err());
        let chat = |c| Some(c);
        assert_eq!(
            address(" +447911000001 ", chat(ChatChannel::Whatsapp)),
            Ok("447911000001".into())
        );
        assert_eq!(
            address("+447911000001", chat(ChatChannel::Rcs)),
            Ok("447911000001".into())
        );
        assert_eq!(
            address("-1001234567890", chat(ChatChannel::Telegram)),
            Ok("-1001234567890".into())
        );
        assert_eq!(
            address("@switchyard_news", chat(ChatChannel::Telegram)),
            Ok("@switchyard_news".into())
        );
        assert_eq!(
            address("1254477777772919", chat(ChatChannel::Messenger)),
            Ok("1254477777772919".into())
        );
        for (raw, c) in [
            ("@no", ChatChannel::Telegram),
            ("12ab", ChatChannel::Telegram),
            ("psid", ChatChannel::Messenger),
            ("+1254477777772919", ChatChannel::Messenger),
            ("12345", ChatChannel::Whatsapp),
        ] {
            assert!(address(raw, chat(c)).is_err(), "{raw} on {c:?}");
        }
    }

    #[test]
    fn channels_and_senders_combine_one_way() {
        assert_eq!(chat_channel(None).unwrap(), None);
        assert_eq!(chat_channel(Some("sms")).unwrap(), None);
        assert_eq!(
            chat_channel(Some("telegram")).unwrap(),
            Some(ChatChannel::Telegram)
        );
        for bad in ["email", "voice", "webhook", "fax"] {
            assert_eq!(chat_channel(Some(bad)).unwrap_err().field, Some("channel"));
        }
        assert_eq!(
            entry_sender(None, Some(ChatChannel::Messenger)).unwrap(),
            "messenger:*"
        );
        assert_eq!(
            entry_sender(Some("+15550001111"), None).unwrap(),
            "15550001111"
        );
        assert_eq!(entry_sender(None, None).unwrap(), ALL_SENDERS);
        assert_eq!(
            entry_sender(Some("+15550001111"), Some(ChatChannel::Telegram))
                .unwrap_err()
                .field,
            Some("from")
        );
    }

    #[test]
    fn import_lines_take_a_channel_in_their_third_column() {
        assert_eq!(
            line_entry("+447911000001", Some("+15550001111"), None),
            Ok(("447911000001".into(), "15550001111".into()))
        );
        assert_eq!(
            line_entry("+447911000001", None, None),
            Ok(("447911000001".into(), ALL_SENDERS.into()))
        );
        assert_eq!(
            line_entry("123456789", Some(""), Some("telegram")),
            Ok(("123456789".into(), "telegram:*".into()))
        );
        assert_eq!(
            line_entry("+447911000001", None, Some("sms")),
            Ok(("447911000001".into(), ALL_SENDERS.into()))
        );
        assert!(line_entry("123456789", Some("+15550001111"), Some("telegram")).is_err());
        assert!(line_entry("psid", None, Some("messenger")).is_err());
        assert!(line_entry("123456789", None, Some("email")).is_err());
    }

    #[test]
    fn the_view_names_the_channel_an_entry_blocks() {
        let view = |recipient: &str, sender: &str| {
            OptOutView::from(OptOut {
                tenant: "acme".into(),
                recipient: recipient.into(),
                sender: sender.into(),
                source: "api".into(),
                created_at: 0,
            })
        };
        let tg = view("123456789", "telegram:*");
        assert_eq!(
            (tg.number.as_str(), tg.channel.as_deref()),
            ("123456789", Some("telegram"))
        );
        let wa = view("447911000001", "whatsapp:*");
        assert_eq!(
            (wa.number.as_str(), wa.channel.as_deref()),
            ("+447911000001", Some("whatsapp"))
        );
        let one = view("447911000001", "15550001111");
        assert_eq!(
            (one.from.as_str(), one.channel.as_deref()),
            ("+15550001111", Some("sms"))
        );
        assert_eq!(view("447911000001", "*").channel, None);
    }
}
