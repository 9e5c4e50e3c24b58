//! `GET /v1/events`: the tenant's events as Server-Sent Events, resumable with `Last-Event-ID`.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;

use super::problem::Problem;
use super::{AppState, Tenant};
use crate::domain::{event_id, parse_event_id};
use crate::events::sse;

/// `Retry-After` of a stream refused because too many are open.
const STREAMS_RETRY_AFTER_S: u64 = 5;

/// Query of `GET /v1/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct EventsQuery {
    /// Start after this event id (as `Last-Event-ID`, which wins when both are given);
    /// `evt_0` replays everything kept. Without either, the stream starts now.
    pub(crate) after: Option<String>,
}

/// `GET /v1/events`.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream: `id: evt_…`, `event: message.<status>`, `data: <event JSON>`"),
        (status = 401, body = Problem), (status = 422, body = Problem),
        (status = 429, description = "Too many event streams open, for this tenant (`[sse] max_streams_per_tenant`) or in total (`max_streams`); see Retry-After", body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    headers: HeaderMap,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, Problem> {
    let Query(q) = query.map_err(|e| Problem::bad_request("invalid_query", e.body_text()))?;
    let given = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or(q.after);
    let after = match given {
        Some(id) => parse_event_id(&id).ok_or_else(|| {
            Problem::invalid(
                "Last-Event-ID",
                "invalid_event_id",
                format!("{id:?} is not an event id (evt_…)"),
            )
        })?,
        None => state.events.events.max_seq().await?,
    };
    let rx = sse::subscribe(
        &state.events.streams,
        state.events.events.clone(),
        tenant,
        after,
    )
    .map_err(|e| {
        let mut p = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            e.to_string(),
        );
        p.retry_after = Some(STREAMS_RETRY_AFTER_S);
        p
    })?;
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let r = rx.recv().await?;
        let event = SseEvent::default()
            .id(event_id(r.seq))
            .event(r.kind.as_str())
            .data(r.json.as_str());
        Some((Ok(event), rx))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// The OpenAPI paths of events, webhooks, inbound messages and opt-outs, merged into
/// `/openapi.json` by [`super::openapi::serve`].
#[derive(Debug, utoipa::OpenApi)]
#[openapi(
    paths(stream, super::webhooks::list, super::webhooks::replay_one, super::webhooks::replay_all,
        super::inbound::list, super::optouts::list, super::optouts::create, super::optouts::remove,
        super::optouts::import),
    components(schemas(super::webhooks::DeadLetter, super::optouts::OptOutView, super::optouts::AddOptOut)),
    tags((name = "events"), (name = "webhooks"), (name = "inbound"), (name = "opt-outs"))
)]
pub(crate) struct EventsApi;

#[cfg(test)]
mod tests {
    #[test]
    fn documents_the_event_routes() {
        let doc = serde_json::to_value(super::super::openapi::document()).unwrap();
        for path in [
            "/v1/events",
            "/v1/inbound",
            "/v1/opt-outs",
            "/v1/opt-outs/{number}",
            "/v1/opt-outs/import",
            "/v1/webhooks/dead-letters",
            "/v1/webhooks/dead-letters/{id}/replay",
            "/v1/webhooks/dead-letters/replay",
            "/v1/messages",
        ] {
            assert!(doc["paths"][path].is_object(), "{path} missing");
        }
    }
}
