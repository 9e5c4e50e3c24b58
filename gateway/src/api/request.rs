//! What every request through the API's listener gets: a request id, in the `X-Request-Id`
//! header of its answer and in the `request` span its log lines are written in; and its
//! latency, in the histogram `switchyard_api_request_seconds` by route template, method and
//! status (bounded: the route table's templates, `-` for no route). `POST /v1/messages`
//! answered 202 is the API's accept latency: the store's commit included.
//!
//! A caller's own `X-Request-Id` is kept when it is 1 to [`MAX_LEN`] characters of letters,
//! digits and `-`, `_`, `.`, `:` (what a proxy or a tracing system sends); anything else is
//! replaced by a new one (32 random hex digits), so a log line never carries what a client
//! could use to forge or break it. The span carries the route's template (`/v1/messages/{id}`,
//! never the path itself, which may hold a phone number) and the method.

use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

/// The header.
pub(crate) static HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest id accepted from a caller.
pub(crate) const MAX_LEN: usize = 128;

/// The caller's id when it is acceptable, else a new one.
pub(crate) fn choose(given: Option<&HeaderValue>) -> String {
    given
        .and_then(|v| v.to_str().ok())
        .filter(|s| acceptable(s))
        .map_or_else(|| hex::encode(rand::random::<[u8; 16]>()), str::to_owned)
}

/// 1 to [`MAX_LEN`] letters, digits, `-`, `_`, `.` or `:`.
fn acceptable(s: &str) -> bool {
    (1..=MAX_LEN).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// The middleware: picks the id, runs the request in its span, times it, puts the id on the
/// answer. A 5xx answer is logged as a warning (the handler has said why, in the same span),
/// except a 503 with Retry-After (overload refused on purpose, counted in
/// `switchyard_api_request_seconds{status="503"}`); others at debug level.
pub(crate) async fn layer(request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let id = choose(request.headers().get(&HEADER));
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("-", MatchedPath::as_str)
        .to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut response = next.run(request).instrument(span.clone()).await;
    let status = response.status();
    metrics::histogram!(
        "switchyard_api_request_seconds",
        "route" => route,
        "method" => method_label(&method),
        "status" => status.as_str().to_owned()
    )
    .record(started.elapsed().as_secs_f64());
    // A 503 that says when to retry is backpressure working (overload, queues full), not a
    // failure: at thousands a second, a warning each would cost more than the refusal.
    let backpressure = status == StatusCode::SERVICE_UNAVAILABLE
        && response.headers().contains_key(header::RETRY_AFTER);
    span.in_scope(|| {
        if status.is_server_error() && !backpressure {
            tracing::warn!(status = status.as_u16(), "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), "request answered");
        }
    });
    // The id is made of visible ASCII only (checked or generated above).
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER.clone(), value);
    }
    response
}

/// The method as a label: the standard ones by name, any other as `other` (a client may send
/// any token as a method).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_id_is_kept_and_anything_else_replaced() {
        let keep = HeaderValue::from_static("req-42_a.b:c");
        assert_eq!(choose(Some(&keep)), "req-42_a.b:c");
        let long = HeaderValue::from_str(&"a".repeat(MAX_LEN + 1)).unwrap();
        for bad in [
            HeaderValue::from_static(""),
            HeaderValue::from_static("has space"),
            HeaderValue::from_static("quote\"d"),
            HeaderValue::from_static("{json}"),
            long,
        ] {
            let id = choose(Some(&bad));
            assert_ne!(id.as_bytes(), bad.as_bytes());
            assert_eq!(id.len(), 32, "{id}");
            assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(choose(None), choose(None));
        let max = "a".repeat(MAX_LEN);
        assert_eq!(choose(Some(&HeaderValue::from_str(&max).unwrap())), max);
    }
}
