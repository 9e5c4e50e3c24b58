//! `/ui/events`: live updates for the dashboard's pages, as Server-Sent Events, over the same
//! machinery as `GET /v1/events` ([`crate::events::sse`]): the session's tenant's events from
//! now on, through its tenant's broadcast and under the API's stream caps.
//!
//! The pages need to know *that* something changed, not what: each event is sent as
//! `event: change` with the event's type as data (`message.delivered`), never the message
//! itself, and the page's script (`live.js`) fetches the part of the page that shows it again.
//!
//! Bounded: at most [`super::session::MAX_STREAMS`] streams per session on each node and the
//! API's caps per tenant and in total (429 beyond, after which `EventSource` retries); a
//! comment line every [`HEARTBEAT`] keeps proxies from closing an idle stream. A stream ends
//! at once at a logout through its own node, and within [`CHECK`] (it reads its session in
//! the store that often) when its session was closed through another node, expired, or its
//! key stopped authenticating; without a session the answer is 204, which tells
//! `EventSource` not to reconnect.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::messages::Whose;
use super::session::StreamSlot;
use super::{UiError, UiState, Viewer};
use crate::domain::now_ms;
use crate::events::sse;

/// A comment line this often while nothing happens.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a stream checks in the store that its session is still open and its key still
/// valid (the heartbeat's period: one indexed read per stream per heartbeat).
const CHECK: Duration = HEARTBEAT;

/// `GET /ui/events`.
pub(crate) async fn stream(
    State(state): State<UiState>,
    viewer: Result<Viewer, UiError>,
    Query(q): Query<Whose>,
) -> Result<Response, UiError> {
    let viewer = match viewer {
        Ok(v) => v,
        Err(UiError::Login) => return Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => return Err(e),
    };
    let tenant = viewer.tenant(&state.app, q.tenant.as_deref().filter(|t| !t.is_empty()))?;
    let Some(slot) = state.sessions.stream(&viewer.session) else {
        return Ok((
            StatusCode::TOO_MANY_REQUESTS,
            "this session has the most live-update streams open\n",
        )
            .into_response());
    };
    let after = state.app.events.events.max_seq().await?;
    let rx = match sse::subscribe(
        &state.app.events.streams,
        state.app.events.events.clone(),
        tenant,
        after,
    ) {
        Ok(rx) => rx,
        Err(e) => return Ok((StatusCode::TOO_MANY_REQUESTS, e.to_string()).into_response()),
    };
    let ended = slot.ended.clone();
    let mut check = tokio::time::interval_at(tokio::time::Instant::now() + CHECK, CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let watch = Watch {
        rx,
        check,
        ended,
        state: state.clone(),
        session: viewer.session.clone(),
        _slot: slot,
    };
    let events = futures::stream::unfold(watch, |mut w| async move {
        loop {
            tokio::select! {
                r = w.rx.recv() => {
                    let r = r?;
                    let event = SseEvent::default().event("change").data(r.kind.as_str());
                    return Some((Ok::<_, Infallible>(event), w));
                }
                _ = w.ended.cancelled() => return None,
                _ = w.check.tick() => {
                    if !w.still_open().await {
                        return None;
                    }
                }
            }
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(HEARTBEAT))
        .into_response())
}

/// One stream's state between events.
struct Watch {
    /// The subscriber's events.
    rx: tokio::sync::mpsc::Receiver<Arc<crate::events::Rendered>>,
    /// When to check the session again.
    check: tokio::time::Interval,
    /// Cancelled at logout.
    ended: tokio_util::sync::CancellationToken,
    /// Sessions and keys, to check.
    state: UiState,
    /// The session's id.
    session: String,
    /// Its place among the session's streams on this node.
    _slot: StreamSlot,
}

impl Watch {
    /// The session is open, and its key still authenticates with the `read` scope. A store
    /// that cannot answer now does not end the stream: the next check asks again.
    async fn still_open(&self) -> bool {
        match self.state.sessions.check(&self.session, now_ms()).await {
            Ok(Some(key)) => super::who(&self.state.app, &key).is_some_and(|w| super::may_view(&w)),
            Ok(None) => false,
            Err(e) => {
                tracing::debug!("live updates: cannot read the session now: {e}");
                true
            }
        }
    }
}
