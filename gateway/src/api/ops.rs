//! Operations endpoints: route explanation (tenants see their price and carrier order;
//! operator keys see costs and health too), liveness, readiness, metrics.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use switchyard_routing::{Channel, Priority, RouteRequest, E164};

use super::problem::Problem;
use super::{AppState, Caller, Tenant};
use metrics_exporter_prometheus::PrometheusHandle;

/// Query of `GET /v1/routes/explain`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExplainQuery {
    /// Destination, E.164.
    pub(crate) to: String,
    /// Priority to score with (default normal).
    pub(crate) priority: Option<String>,
    /// Whose route plan (operator keys only, and required for them; a tenant may name only
    /// itself).
    pub(crate) tenant: Option<String>,
}

/// `GET /v1/routes/explain?to=+44…`: which carriers, in what order, at what price.
///
/// A tenant sees its own price and the order of the carriers it can use. Wholesale rates,
/// costs, carrier health, breakers, scores and excluded carriers are the operator's business:
/// only an operator key (`[operator] api_keys`, with `?tenant=`) sees them.
#[utoipa::path(get, path = "/v1/routes/explain", tag = "routing", params(ExplainQuery),
    responses((status = 200, body = Object, description = "Matched prefix, the carriers in order with the tenant's price, the winner; with an operator key also rates, costs, health, breakers, scores, excluded carriers and why the winner won"), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ExplainQuery>,
) -> Result<Json<serde_json::Value>, Problem> {
    let (tenant, operator) = match (&caller, q.tenant) {
        (Caller::Operator, Some(t)) => (Arc::<str>::from(t), true),
        (Caller::Operator, None) => {
            return Err(Problem::invalid(
                "tenant",
                "tenant_required",
                "an operator key names the tenant whose route plan to explain: ?tenant=NAME",
            ))
        }
        (Caller::Tenant(Tenant(own, _)), Some(t)) if *t != **own => {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "other_tenant",
                "a tenant's key explains that tenant's routes only",
            ))
        }
        (Caller::Tenant(Tenant(own, _)), _) => (own.clone(), false),
    };
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
    let currency = table.config().base_currency.to_string();
    let priority = format!("{:?}", e.priority).to_lowercase();
    let error = e.outcome.as_ref().err().map(|x| x.to_string());
    if !operator {
        // Ranked carriers only, in order, with the tenant's own price.
        let candidates: Vec<serde_json::Value> = e
            .candidates
            .iter()
            .filter(|c| c.rank.is_some())
            .map(|c| {
                serde_json::json!({
                    "carrier": c.carrier,
                    "rank": c.rank,
                    "prefix": c.prefix,
                    "country": c.country,
                    "network": c.network,
                    "price": c.price.to_string(),
                })
            })
            .collect();
        return Ok(Json(serde_json::json!({
            "generation": e.generation,
            "to": e.number,
            "priority": priority,
            "matched_prefix": e.matched_prefix,
            "currency": currency,
            "winner": e.outcome.as_ref().ok(),
            "error": error,
            "candidates": candidates,
        })));
    }
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
        "tenant": &*tenant,
        "to": e.number,
        "priority": priority,
        "matched_prefix": e.matched_prefix,
        "currency": currency,
        "health_weight": e.health_weight,
        "winner": e.outcome.as_ref().ok(),
        "error": error,
        "reason": e.reason,
        "candidates": candidates,
    })))
}

/// `GET /healthz`: the process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive", body = String, content_type = "text/plain")))]
pub(crate) async fn healthz() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: the store takes writes and at least one bind is up (on a shared store, here
/// or on another node: this node hands messages for carriers bound elsewhere to them). Says
/// which node this is, the hash of its configuration, and (on a shared store) every node with its
/// configuration's hash, listing live nodes whose configuration differs (`config_mismatch`).
#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "ready", body = super::openapi::Readiness), (status = 503, description = "not ready, with the reasons", body = super::openapi::Readiness)))]
pub(crate) async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let mut problems = Vec::new();
    if let Err(e) = state.store.ping().await {
        problems.push(format!("store: {e}"));
    }
    let binds = state.binds.load();
    let up = binds
        .iter()
        .filter(|(_, b)| b.bound.load(Ordering::Relaxed))
        .count();
    let elsewhere = binds
        .iter()
        .filter(|(_, b)| b.elsewhere.load(Ordering::Relaxed))
        .count();
    if up == 0 && elsewhere == 0 {
        problems.push("no SMPP bind is up".to_owned());
    }
    let node = state.node.load();
    let peers: Vec<_> = node
        .peers
        .iter()
        .map(|p| {
            serde_json::json!({
                "id": p.id,
                "name": p.name,
                "config": p.config,
                "alive": p.alive,
                "heartbeat_age_ms": p.heartbeat_age.as_millis() as u64,
            })
        })
        .collect();
    let body = serde_json::json!({
        "ready": problems.is_empty(),
        "binds_up": up,
        "binds_elsewhere": elsewhere,
        "binds": binds.len(),
        "problems": problems,
        "node": node.node,
        "config": node.config,
        "nodes": peers,
        "config_mismatch": node.config_mismatch(),
    });
    let status = if problems.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Bucket bounds of the `_seconds` histograms: 1 ms to 60 s.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Bucket bounds of `switchyard_store_commit_batch_size` (rows per commit).
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// Installs the process's Prometheus recorder: histograms exported with buckets (not
/// summaries), so dashboards can aggregate them across nodes with `histogram_quantile`.
/// `None` when a recorder is already installed (a second gateway in one test process).
pub(crate) fn metrics_recorder() -> Option<PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("switchyard_store_commit_batch_size".into()),
                BATCH_BUCKETS,
            )
        })
        .ok()?
        .install_recorder()
        .ok()
}

/// How often the recorder's histograms are drained into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Drains the recorder's histogram samples into their buckets every few seconds until
/// `shutdown`. Without it every sample recorded stays in memory until a scrape of `/metrics`
/// (8 bytes each, several per message: about 45 MB per million messages when nobody scrapes).
pub(crate) async fn metrics_upkeep(
    handle: PrometheusHandle,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(UPKEEP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => handle.run_upkeep(),
            _ = shutdown.changed() => return,
        }
    }
}

/// Per configured carrier: its queue depth, health score and success rate, and its breaker
/// state (one series per state, 1 for the current one, so each reads as a plain gauge).
fn carrier_gauges(state: &AppState) {
    let table = state.dispatcher.router.load();
    let reference = table.config().scoring.latency_reference;
    let now = std::time::Instant::now();
    for c in &table.config().carriers {
        let carrier = c.name.clone();
        if let Some(depth) = state.dispatcher.queued_for(&c.name) {
            metrics::gauge!("switchyard_dispatch_queue_depth", "carrier" => carrier.clone())
                .set(depth as f64);
        }
        let Some(s) = table
            .carrier_id(&c.name)
            .and_then(|id| table.carrier_state(id))
        else {
            continue;
        };
        let health = s.health();
        metrics::gauge!("switchyard_carrier_health_score", "carrier" => carrier.clone())
            .set(health.score(reference));
        metrics::gauge!("switchyard_carrier_success_ratio", "carrier" => carrier.clone())
            .set(health.snapshot().success_rate);
        let current = s.view(now).name();
        for name in ["closed", "open", "half-open"] {
            metrics::gauge!("switchyard_carrier_breaker_state", "carrier" => carrier.clone(), "state" => name)
                .set(f64::from(u8::from(name == current)));
        }
    }
}

/// `GET /metrics`: Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
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
    let node = state.node.load();
    metrics::gauge!("switchyard_config_info", "node" => node.node.to_string(), "hash" => node.config.clone())
        .set(1.0);
    metrics::gauge!("switchyard_dispatch_queued_messages").set(state.dispatcher.queued() as f64);
    metrics::gauge!("switchyard_dispatch_scheduled_in_memory_messages")
        .set(state.dispatcher.scheduled_in_memory() as f64);
    metrics::gauge!("switchyard_dispatch_deferred_messages")
        .set(state.dispatcher.deferred() as f64);
    metrics::gauge!("switchyard_dispatch_backlog_messages").set(state.dispatcher.in_store() as f64);
    carrier_gauges(&state);
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
