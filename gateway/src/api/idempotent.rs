//! The body of a POST as raw JSON bytes (so it can be hashed for `Idempotency-Key`), and the
//! glue between handlers and [`super::idempotency`].
//!
//! A handler takes a [`RawJson`], calls [`start`] (which answers a replay or a 409 itself),
//! parses the body with [`RawJson::parse`], and attaches [`record`] to the first message it
//! stores, so the response to replay is committed with the messages.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::problem::{json_problem, Problem};
use super::{AppState, Tenant};
pub(crate) use crate::api::idempotency::InFlight;
use crate::api::idempotency::{Begin, KeyedRequest};
use crate::domain::RequestRecord;
use crate::domain::UnixMs;

/// The header.
pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// Sent with a replayed response.
pub(crate) const REPLAYED: &str = "idempotent-replayed";

/// A JSON request body, unparsed, with what identifies the request.
#[derive(Debug)]
pub(crate) struct RawJson {
    /// The body.
    pub(crate) bytes: Bytes,
    /// `Idempotency-Key`, if sent.
    pub(crate) idempotency_key: Option<String>,
    /// Method and path, hashed with the body.
    pub(crate) method: String,
    /// Path of the request.
    pub(crate) path: String,
}

impl<S: Send + Sync> FromRequest<S> for RawJson {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(|m| {
                let m = m.trim();
                m.eq_ignore_ascii_case("application/json")
                    || (m.starts_with("application/") && m.ends_with("+json"))
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::bad_request(
                "content_type",
                "send the body as application/json",
            ));
        }
        let idempotency_key = match req.headers().get(IDEMPOTENCY_KEY) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| {
                        Problem::bad_request(
                            "invalid_idempotency_key",
                            "Idempotency-Key must be visible ASCII",
                        )
                    })?
                    .to_owned(),
            ),
        };
        let method = req.method().as_str().to_owned();
        let path = req.uri().path().to_owned();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Problem::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    e.body_text(),
                )
            } else {
                Problem::bad_request("bad_request", e.body_text())
            }
        })?;
        Ok(RawJson {
            bytes,
            idempotency_key,
            method,
            path,
        })
    }
}

impl RawJson {
    /// Parses the body (same problems as axum's `Json` extractor gives).
    pub(crate) fn parse<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        Json::<T>::from_bytes(&self.bytes)
            .map(|Json(v)| v)
            .map_err(json_problem)
    }
}

/// What a handler does after [`start`].
#[derive(Debug)]
pub(crate) enum Start {
    /// Answer this (a replay of the stored response).
    Replay(Response),
    /// Run the request; keep the guard (if keyed) until the store answered.
    Run(Option<InFlight>),
}

/// Looks at the request's `Idempotency-Key`: replays a stored response, refuses a reused key,
/// waits for a running twin, or lets the request run.
pub(crate) async fn start(
    state: &AppState,
    tenant: &Tenant,
    raw: &RawJson,
) -> Result<Start, Problem> {
    let Some(key) = &raw.idempotency_key else {
        return Ok(Start::Run(None));
    };
    let request = KeyedRequest::new(tenant.0.clone(), key, &raw.method, &raw.path, &raw.bytes)?;
    match state
        .idempotency
        .begin(state.store.as_ref(), request)
        .await?
    {
        Begin::Run(guard) => Ok(Start::Run(Some(guard))),
        Begin::Replay(r) => {
            metrics::counter!("switchyard_api_idempotent_replays_total").increment(1);
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK);
            let mut response = (status, r.response).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(Start::Replay(response))
        }
    }
}

/// The response to a request that was accepted: the body `record` keeps for replays when the
/// request is keyed (serialized once, for both), else `response` as JSON.
pub(crate) fn answer<T: Serialize>(
    status: StatusCode,
    response: &T,
    record: Option<&RequestRecord>,
) -> Response {
    match record.and_then(|r| r.idempotency.as_ref()) {
        Some(kept) => {
            let json = HeaderValue::from_static("application/json");
            (
                status,
                [(header::CONTENT_TYPE, json)],
                kept.response.clone(),
            )
                .into_response()
        }
        None => (status, Json(response)).into_response(),
    }
}

/// The records to store with the request's first message: the response for replays (when the
/// request is keyed) and `batch`. `None` when there is nothing to record.
pub(crate) fn record<T: Serialize>(
    running: Option<&InFlight>,
    status: StatusCode,
    response: &T,
    batch: Option<crate::domain::BatchRecord>,
    now: UnixMs,
) -> Result<Option<Arc<RequestRecord>>, Problem> {
    let idempotency = match running {
        None => None,
        Some(guard) => {
            let body = serde_json::to_string(response).map_err(|e| {
                Problem::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    format!("cannot serialise the response: {e}"),
                )
            })?;
            Some(guard.request.record(status, body, now))
        }
    };
    if idempotency.is_none() && batch.is_none() {
        return Ok(None);
    }
    Ok(Some(Arc::new(RequestRecord {
        idempotency,
        batch,
        flows: Vec::new(),
    })))
}
