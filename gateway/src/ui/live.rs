//! `/ui/events`: live updates for the dashboard's pages, as Server-Sent Events, over the same
//! machinery as `GET /v1/events` ([`crate::events::sse`]): the session's tenant's events from
//! now on, through its tenant's broadcast and under the API's stream caps.
//!
//! The pages need to know *that* something changed, not what: each event is sent as
//! `event: change` with the event's type as data (`message.delivered`), never the message
//! itself, and the page's script (`live.js`) fetches the part of the page that shows it again.
//!
//! Bounded: at most [`super::session::MAX_STREAMS`] streams per session and the API's caps
//! per tenant and in total (429 beyond, after which `EventSource` retries); a comment line
//! every [`HEARTBEAT`] keeps proxies from closing an idle stream. A stream ends at logout at
//! once, and within [`CHECK`] when its session expires or its key stops authenticating;
//! without a session the answer is 204, which tells `EventSource` not to reconnect.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};

use super::messages::Whose;
use super::{UiError, UiState, Viewer};
use crate::events::sse;

/// A comment line this often while nothing happens.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// How often a stream checks that its session is still open and its key still valid.
const CHECK: Duration = Duration::from_secs(5);

/// A stream's place among its session's; given back when dropped.
#[derive(Debug)]
struct SessionSlot(Arc<AtomicUsize>);

impl SessionSlot {
    fn take(count: &Arc<AtomicUsize>) -> Option<SessionSlot> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < super::session::MAX_STREAMS).then_some(n + 1)
            })
            .ok()
            .map(|_| SessionSlot(count.clone()))
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

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
    let Some(slot) = SessionSlot::take(&viewer.live.streams) else {
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
    let ended = viewer.live.ended.clone();
    let mut check = tokio::time::interval(CHECK);
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
                    if !w.still_open() {
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
    /// Its place among the session's streams.
    _slot: SessionSlot,
}

impl Watch {
    /// The session is open, and its key still authenticates with the `read` scope.
    fn still_open(&self) -> bool {
        if !self.state.sessions.is_open(&self.session, Instant::now()) {
            return false;
        }
        self.state
            .sessions
            .key(&self.session)
            .and_then(|key| super::who(&self.state.app, &key))
            .is_some_and(|who| match who {
                super::Who::Operator => true,
                super::Who::Tenant { scopes, .. } => scopes.contains(crate::api::Scope::Read),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_holds_a_bounded_number_of_streams() {
        let count = Arc::new(AtomicUsize::new(0));
        let slots: Vec<_> = (0..super::super::session::MAX_STREAMS)
            .map(|_| SessionSlot::take(&count).unwrap())
            .collect();
        assert!(SessionSlot::take(&count).is_none());
        drop(slots);
        assert_eq!(count.load(Ordering::Acquire), 0);
        assert!(SessionSlot::take(&count).is_some());
    }
}
