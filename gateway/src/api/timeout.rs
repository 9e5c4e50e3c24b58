//! The request timeout (`server.request_timeout_s`): a request must be complete and its
//! response started within the limit, or the client gets 408 `request_timeout`.
//!
//! Two rules make it safe to apply to every endpoint:
//! - The handler runs as its own task. Neither the timeout nor a client that disconnects can
//!   stop it half-way: a send that reached the store is also queued, whoever is still waiting
//!   for the answer.
//! - The request body has the same deadline, plus a second ([`DeadlineBody`]): a body trickled
//!   in byte by byte fails then, so the handler reading it ends and the connection is released.
//!
//! A response that has started (an event stream) is not cut.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper::body::{Body as HttpBody, Bytes, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::problem::Problem;

/// How long after the request's deadline its body is cut.
const BODY_GRACE: Duration = Duration::from_secs(1);

/// The middleware (`from_fn_with_state(limit, request_timeout)`).
pub(crate) async fn request_timeout(
    State(limit): State<Duration>,
    request: Request,
    next: Next,
) -> Response {
    let deadline = Instant::now() + limit;
    // The body is cut a moment after the answer's deadline, so that a trickled body gets the
    // 408 below rather than the handler's 400 for a body it could not read.
    let body_deadline = deadline + BODY_GRACE;
    let request = request.map(|body| Body::new(DeadlineBody::new(body, body_deadline)));
    // The handler's task runs in this request's span (its id is on every log line).
    let mut handler = tokio::spawn(tracing::Instrument::in_current_span(next.run(request)));
    match tokio::time::timeout_at(deadline, &mut handler).await {
        Ok(Ok(response)) => response,
        Ok(Err(e)) => {
            tracing::error!("an API handler failed: {e}");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the request failed inside the gateway",
            )
            .into_response()
        }
        Err(_) => {
            metrics::counter!("switchyard_api_request_timeouts_total").increment(1);
            Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the request was not complete and answered within {} s",
                    limit.as_secs()
                ),
            )
            .into_response()
        }
    }
}

/// A request body that fails once `deadline` has passed while a frame is still awaited.
#[derive(Debug)]
pub(crate) struct DeadlineBody {
    /// The body as received.
    inner: Body,
    /// Fires at the request's deadline.
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    /// `inner`, cut at `deadline`.
    pub(crate) fn new(inner: Body, deadline: Instant) -> Self {
        DeadlineBody {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

/// The error a [`DeadlineBody`] ends with.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the request timeout")]
pub(crate) struct BodyTimedOut;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(BodyTimedOut.into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stops_arriving_fails_at_the_deadline() {
        let (mut tx, rx) =
            futures::channel::mpsc::channel::<Result<Frame<Bytes>, axum::BoxError>>(4);
        let stream = http_body_util::StreamBody::new(rx);
        let start = Instant::now();
        let mut body = DeadlineBody::new(Body::new(stream), start + Duration::from_secs(3));
        tx.try_send(Ok(Frame::data(Bytes::from_static(b"{\"to\""))))
            .unwrap();
        let first = body.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "{\"to\"");
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.is::<BodyTimedOut>(), "{err}");
        assert_eq!(start.elapsed(), Duration::from_secs(3));
        drop(tx);
    }
}
