//! Operations endpoints: route explanation, liveness, readiness, metrics.

use std::sync::atomic::Ordering;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use switchyard_routing::{Channel, Priority, RouteRequest, E164};

use super::problem::Problem;
use super::{AppState, Tenant};

/// Query of `GET /v1/routes/explain`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ExplainQuery {
    /// Destination, E.164.
    pub to: String,
    /// Priority to score with (default normal).
    pub priority: Option<String>,
}

/// `GET /v1/routes/explain?to=+44…`: which carriers, in what order, why, at what price.
#[utoipa::path(get, path = "/v1/routes/explain", tag = "routing", params(ExplainQuery),
    responses((status = 200, description = "Matched prefix, candidates with price, health, breaker and score, the winner and why"), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn explain(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let number =
        E164::parse(&q.to).map_err(|e| Problem::invalid("to", "invalid_number", e.to_string()))?;
    let priority = match q.priority.as_deref().unwrap_or("normal") {
        "critical" => Priority::Critical,
        "high" => Priority::High,
        "normal" => Priority::Normal,
        "low" => Priority::Low,
        other => {
            return Err(Problem::invalid(
                "priority",
                "invalid_priority",
                format!("{other:?} is not a priority"),
            ))
        }
    };
    let table = state.dispatcher.router.load();
    let tenant_id = table.tenant_id(&tenant).ok_or_else(|| {
        Problem::new(
            StatusCode::FORBIDDEN,
            "no_route_plan",
            "this tenant has no routing plan",
        )
    })?;
    let req = RouteRequest {
        channel: Channel::Sms,
        number: &number,
        tenant: tenant_id,
        priority,
        salt: 0,
        now: std::time::Instant::now(),
    };
    let e = table.explain(&req);
    let candidates: Vec<serde_json::Value> = e
        .candidates
        .iter()
        .map(|c| {
            serde_json::json!({
                "carrier": c.carrier,
                "prefix": c.prefix,
                "country": c.country,
                "network": c.network,
                "rate": c.rate.to_string(),
                "rate_currency": c.currency.to_string(),
                "cost": c.cost.to_string(),
                "price": c.price.to_string(),
                "success_rate": c.health.success_rate,
                "throttle_rate": c.health.throttle_rate,
                "latency_ms": c.health.latency.as_secs_f64() * 1000.0,
                "samples": c.health.samples,
                "health_score": c.health_score,
                "breaker": c.breaker.name(),
                "rank": c.rank,
                "score": c.score,
                "excluded": c.excluded.map(|x| format!("{x:?}")),
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "generation": e.generation,
        "to": e.number,
        "priority": format!("{:?}", e.priority).to_lowercase(),
        "matched_prefix": e.matched_prefix,
        "currency": table.config().base_currency.to_string(),
        "health_weight": e.health_weight,
        "winner": e.outcome.as_ref().ok(),
        "error": e.outcome.as_ref().err().map(|x| x.to_string()),
        "reason": e.reason,
        "candidates": candidates,
    })))
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store takes writes and at least one bind is up.
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready"), (status = 503, description = "not ready, with the reasons")))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if let Err(e) = state.store.ping().await {
        problems.push(format!("store: {e}"));
    }
    let binds = state.binds.load();
    let up = binds
        .iter()
        .filter(|(_, b)| b.bound.load(Ordering::Relaxed))
        .count();
    if up == 0 {
        problems.push("no SMPP bind is up".to_owned());
    }
    let body = serde_json::json!({ "ready": problems.is_empty(), "binds_up": up, "binds": binds.len(), "problems": problems });
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format")))]
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let binds = state.binds.load();
    for (i, (carrier, b)) in binds.iter().enumerate() {
        let labels = [("carrier", carrier.clone()), ("bind", i.to_string())];
        metrics::gauge!("switchyard_smpp_bind_up", &labels)
            .set(f64::from(u8::from(b.bound.load(Ordering::Relaxed))));
        metrics::counter!("switchyard_smpp_submit_sm_total", &labels)
            .absolute(b.submitted.load(Ordering::Relaxed));
        metrics::counter!("switchyard_smpp_receipts_total", &labels)
            .absolute(b.receipts.load(Ordering::Relaxed));
    }
    metrics::gauge!("switchyard_dispatch_queued_messages").set(state.dispatcher.queued() as f64);
    metrics::gauge!("switchyard_dispatch_scheduled_in_memory_messages")
        .set(state.dispatcher.scheduled_in_memory() as f64);
    metrics::gauge!("switchyard_dispatch_deferred_messages")
        .set(state.dispatcher.deferred() as f64);
    let text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}
