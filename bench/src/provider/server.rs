//! The tokio driver: serves the provider APIs with axum, holds scripted answers, and sends
//! the webhooks a reply scheduled (one task per reply, in deadline order, one attempt each).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;

use super::exchange::{parse_query, percent_decode, Request, Scheduled, Webhook};
use super::State;

/// The simulator's state and its webhook client, shared by the two ports and the tasks.
#[derive(Debug, Clone)]
pub struct Shared {
    /// Everything, behind one lock.
    pub state: Arc<Mutex<State>>,
    /// Sends webhooks (plain HTTP; the tests' receivers are on 127.0.0.1).
    pub client: Client<HttpConnector, Full<Bytes>>,
    /// How long one webhook POST may take.
    pub webhook_timeout: Duration,
}

impl Shared {
    /// Wraps `state`.
    pub fn new(state: State, webhook_timeout: Duration) -> Shared {
        Shared {
            state: Arc::new(Mutex::new(state)),
            client: Client::builder(TokioExecutor::new()).build_http(),
            webhook_timeout,
        }
    }
}

/// Serves the provider APIs until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Shared) -> anyhow::Result<()> {
    let app = Router::new().fallback(provider_api).with_state(shared);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn provider_api(
    AxumState(shared): AxumState<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Request {
        method: method.as_str().to_owned(),
        path: percent_decode(uri.path(), false),
        query: uri.query().map(parse_query).unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    };
    hold(&shared, &req).await;
    let handled = shared.state.lock().handle(&req, SystemTime::now());
    let Some((_, reply)) = handled else {
        return (
            StatusCode::NOT_FOUND,
            "no simulated provider API at this path\n",
        )
            .into_response();
    };
    if !reply.scheduled.is_empty() {
        tokio::spawn(deliver(shared.clone(), reply.scheduled));
    }
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(reply.body)).into_response()
}

/// Waits while the behaviour of `req`'s recipient holds it (looked at every 20 ms), counted in
/// its provider's `holding`.
async fn hold(shared: &Shared, req: &Request) {
    let provider = {
        let mut state = shared.state.lock();
        if !state.holds(req) {
            return;
        }
        let provider = state.route(req);
        if let Some(p) = provider {
            state.stats.of(p).holding += 1;
        }
        provider
    };
    while shared.state.lock().holds(req) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if let Some(p) = provider {
        let mut state = shared.state.lock();
        let held = &mut state.stats.of(p).holding;
        *held = held.saturating_sub(1);
    }
}

/// Fires `scheduled` in deadline order, each at its time after now.
pub async fn deliver(shared: Shared, mut scheduled: Vec<Scheduled>) {
    scheduled.sort_by_key(|s| s.after);
    let start = tokio::time::Instant::now();
    for s in scheduled {
        tokio::time::sleep_until(start + s.after).await;
        let webhook = shared.state.lock().fire(&s.action, SystemTime::now());
        if let Some(w) = webhook {
            let result = post(&shared, &w).await;
            if let Err(e) = &result {
                tracing::debug!(kind = %w.kind, "webhook failed: {e}");
            }
            shared.state.lock().stats.record_webhook(&w, result);
        }
    }
}

/// POSTs `w` once; the receiver's status, or why there is none.
async fn post(shared: &Shared, w: &Webhook) -> Result<u16, String> {
    if w.url.is_empty() {
        return Err("no webhook_url configured".into());
    }
    let mut builder =
        hyper::Request::post(w.url.as_str()).header("content-type", "application/json");
    for (k, v) in &w.headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let req = builder
        .body(Full::new(Bytes::from(w.body.clone())))
        .map_err(|e| format!("bad webhook request: {e}"))?;
    let send = async {
        let resp = shared
            .client
            .request(req)
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        // Read the answer so the connection can be reused.
        let _ = resp.into_body().collect().await;
        Ok(status)
    };
    match tokio::time::timeout(shared.webhook_timeout, send).await {
        Ok(r) => r,
        Err(_) => Err(format!("no answer within {:?}", shared.webhook_timeout)),
    }
}
