//! Errors as RFC 9457 problem details: `application/problem+json` with a stable machine code,
//! the HTTP status, a human title and detail, and the offending field when there is one.

use axum::extract::rejection::JsonRejection;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use switchyard_routing::RouteError;

use crate::dispatch::DispatchError;
use crate::store::StoreError;
use crate::submit::SubmitError;

/// The problem type URI, built from the code when serialised (keeps [`Problem`] small).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProblemType(pub &'static str);

impl Serialize for ProblemType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("https://switchyard.dev/problems/{}", self.0))
    }
}

/// One API error (RFC 9457 problem details).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub(crate) struct Problem {
    /// A URI naming the problem type (stable; documentation lives there).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub(crate) kind: ProblemType,
    /// Short summary of the problem type.
    pub(crate) title: &'static str,
    /// HTTP status code.
    pub(crate) status: u16,
    /// What went wrong with this request.
    pub(crate) detail: String,
    /// Stable machine-readable code (`invalid_number`, `queue_full`, …).
    pub(crate) code: &'static str,
    /// The request field at fault, as a JSON pointer-ish path (`to`, `body`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) field: Option<&'static str>,
    /// Seconds after which retrying may succeed (also sent as `Retry-After`).
    #[serde(skip)]
    #[schema(ignore)]
    pub(crate) retry_after: Option<u64>,
}

impl Problem {
    /// A problem with a status, a code and a detail.
    pub(crate) fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            kind: ProblemType(code),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            field: None,
            retry_after: None,
        }
    }

    /// 422: a field's value is not acceptable.
    pub(crate) fn invalid(
        field: &'static str,
        code: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Problem {
            field: Some(field),
            ..Problem::new(StatusCode::UNPROCESSABLE_ENTITY, code, detail)
        }
    }

    /// 400: the request cannot be read at all.
    pub(crate) fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Problem::new(StatusCode::BAD_REQUEST, code, detail)
    }

    /// 401: no or wrong credentials.
    pub(crate) fn unauthorized() -> Self {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send a valid API key as `Authorization: Bearer <key>`",
        )
    }

    /// 404: nothing of yours by that id.
    pub(crate) fn not_found(what: &str) -> Self {
        Problem::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} with that id"),
        )
    }

    /// 503 with Retry-After: overloaded or unavailable, try again.
    pub(crate) fn unavailable(
        code: &'static str,
        detail: impl Into<String>,
        retry_after: u64,
    ) -> Self {
        Problem {
            retry_after: Some(retry_after),
            ..Problem::new(StatusCode::SERVICE_UNAVAILABLE, code, detail)
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after;
        let mut response = (status, axum::Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// A refusal of the tenant's plan, limits or opt-outs: 403 for what the plan does not allow,
/// 422 for the request's own content (segments, an opted-out recipient), 429 with
/// `Retry-After` for rate and quota.
impl From<crate::admission::Refusal> for Problem {
    fn from(r: crate::admission::Refusal) -> Self {
        use crate::admission::Refusal;
        let status = match &r {
            Refusal::ChannelNotAllowed(_)
            | Refusal::CountryNotAllowed(_)
            | Refusal::CountryBlocked(_)
            | Refusal::PriorityNotAllowed { .. } => StatusCode::FORBIDDEN,
            Refusal::TooManySegments { .. } | Refusal::OptedOut | Refusal::OutsideWindow(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            Refusal::QuotaExceeded { .. } | Refusal::RateLimited { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
        };
        Problem {
            field: r.field(),
            retry_after: r.retry_after_s(),
            ..Problem::new(status, r.code(), r.to_string())
        }
    }
}

/// No carrier can take the message now, or the route refuses it.
pub(crate) fn dispatch_problem(e: &DispatchError) -> Problem {
    match e {
        DispatchError::Route(RouteError::AllBreakersOpen { .. }) => Problem::unavailable(
            "carriers_unavailable",
            "every carrier for this destination is failing; retry shortly",
            5,
        ),
        DispatchError::Route(RouteError::UnknownTenant) => Problem::new(
            StatusCode::FORBIDDEN,
            "no_route_plan",
            "this tenant has no routing plan",
        ),
        DispatchError::Route(RouteError::NoRoute(_)) => {
            Problem::invalid("to", "no_route", "no carrier serves this destination")
        }
        DispatchError::Route(RouteError::BlockedPrefix | RouteError::NotAllowed) => Problem::new(
            StatusCode::FORBIDDEN,
            "destination_blocked",
            "your plan does not allow this destination",
        ),
        DispatchError::QueuesFull => Problem::unavailable(
            "queue_full",
            "the carrier queues for this destination are full; retry shortly",
            1,
        ),
        other => Problem::unavailable("no_carrier", other.to_string(), 5),
    }
}

/// A store read or write that failed: 503, retry shortly.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::TooLarge(why) => Problem::invalid("query", "answer_too_large", why),
            e => Problem::unavailable("store_unavailable", e.to_string(), 2),
        }
    }
}

/// A message the accept pipeline did not take.
impl From<SubmitError> for Problem {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Refused(r) => r.into(),
            SubmitError::Dispatch(e) => dispatch_problem(&e),
            SubmitError::NoTrunk => dispatch_problem(&DispatchError::Route(RouteError::NoRoute(
                switchyard_routing::Channel::Voice,
            ))),
            SubmitError::Backlog(backlog) => Problem::unavailable(
                "queue_full",
                format!("{backlog} messages are waiting for carriers; retry shortly"),
                5,
            ),
            SubmitError::CallsFull => Problem::unavailable(
                "queue_full",
                "too many calls are waiting to be placed; retry shortly",
                2,
            ),
            SubmitError::VoiceUnavailable => Problem::invalid(
                "channel",
                "voice_unavailable",
                "voice calls are not available: no voice carrier has a [carriers.sip] trunk, or the \
                 caller could not start (see the gateway's log)",
            ),
            SubmitError::EmailUnavailable => Problem::invalid(
                "channel",
                "email_unavailable",
                "email is not available: no carrier has the email channel with a [carriers.smtp] \
                 relay",
            ),
            SubmitError::SenderRequired => Problem::invalid(
                "from",
                "sender_required",
                "an email needs a sender: give \"from\" (no relay has a default `from`)",
            ),
            SubmitError::ChatUnavailable(channel) => Problem::invalid(
                "channel",
                "channel_unavailable",
                format!(
                    "the {channel} channel is not available: no carrier has it with a provider \
                     account ([carriers.rbm] for rcs, [carriers.whatsapp], [carriers.telegram], \
                     [carriers.messenger] or [carriers.webhook] for those)"
                ),
            ),
            SubmitError::ChatsFull(channel) => Problem::unavailable(
                "queue_full",
                format!("too many {channel} messages are waiting for a provider; retry shortly"),
                2,
            ),
            SubmitError::EmailsFull => Problem::unavailable(
                "queue_full",
                "too many emails are waiting for a relay; retry shortly",
                2,
            ),
            SubmitError::WrongRecipient(channel, needs) => Problem::invalid(
                "to",
                "invalid_recipient",
                format!("the {channel} channel needs {needs} in \"to\""),
            ),
            SubmitError::Store(e) => {
                tracing::error!("store refused a message: {e}");
                Problem::unavailable(
                    "store_unavailable",
                    "the message store cannot take writes right now",
                    2,
                )
            }
        }
    }
}

/// The problem for a body axum's `Json` could not read.
pub(crate) fn json_problem(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::JsonDataError(e) => Problem::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.body_text(),
        ),
        JsonRejection::JsonSyntaxError(e) => Problem::bad_request("malformed_json", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => {
            Problem::bad_request("content_type", "send the body as application/json")
        }
        JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                e.body_text(),
            )
        }
        other => Problem::bad_request("bad_request", other.body_text()),
    }
}

impl From<crate::submit::CancelError> for Problem {
    fn from(e: crate::submit::CancelError) -> Self {
        use crate::submit::CancelError;
        match e {
            CancelError::NotFound => Problem::not_found("message"),
            CancelError::NotCancellable(_) => {
                Problem::new(StatusCode::CONFLICT, "not_cancellable", e.to_string())
            }
            CancelError::Store(e) => e.into(),
        }
    }
}
