//! The HTTP API (axum).
//!
//! - [`messages`]: `POST /v1/messages`, `GET /v1/messages/{id}`, `GET /v1/messages`,
//!   `POST /v1/messages/{id}/cancel`.
//! - [`batches`]: `POST /v1/messages/batch`, `GET /v1/batches/{id}`.
//! - [`analytics`]: `GET /v1/analytics/messages`, `GET /v1/analytics/calls` and the operator's
//!   `GET /v1/operator/analytics/…`, from the store's rollups.
//! - [`message_log`]: `GET /v1/messages.csv`, `GET /v1/messages.ndjson` and the operator's
//!   `GET /v1/operator/messages.csv`/`.ndjson`, streamed page by page by [`export`] (as are
//!   `GET /v1/calls.csv` and `.ndjson`).
//! - [`idempotent`]: the raw JSON body extractor and the `Idempotency-Key` glue for POSTs.
//! - [`ops`]: `GET /v1/routes/explain`, `/healthz`, `/readyz`, `/metrics` (the last two on
//!   `server.ops_listen` instead when it is set: [`ops_router`]).
//! - [`listener`]: serving a router over HTTP/1.1 and HTTP/2, TLS, connection cap, timeouts.
//! - [`request`]: what every request gets: an `X-Request-Id` on its answer, the `request`
//!   span of its logs, its latency in `switchyard_api_request_seconds`.
//! - [`timeout`]: the request timeout (408), which never stops a handler half-way.
//! - [`routes`]: the route table both routers are built from (and the OpenAPI test reads).
//! - [`openapi`]: `GET /openapi.json`, generated from the handlers and types (utoipa).
//! - [`validate`]: request parsing into types that cannot be invalid.
//! - [`problem`]: RFC 9457 errors.
//!
//! Every `/v1` route authenticates with `Authorization: Bearer <key>`; a tenant only ever sees
//! its own messages. Keys carry scopes ([`Scope`]): `GET`s need `read`, other methods `send` or
//! `admin` (checked by the [`Tenant`] extractor), and handlers narrow that with
//! [`Tenant::require`] (sends need `send`, tenant settings `admin`). Operator keys
//! (`[operator] api_keys`) are not tenants: they are refused by [`Tenant`] and accepted where a
//! handler takes a [`Caller`] (`/v1/routes/explain`, `/v1/smpp/binds`) or an [`Operator`]
//! (`/v1/operator/…`, which tenant keys get 403 from).

pub(crate) mod analytics;
pub(crate) mod batches;
pub(crate) mod calls;
pub(crate) mod contacts;
pub(crate) mod events;
pub(crate) mod export;
pub mod flows;
pub(crate) mod idempotency;
pub(crate) mod idempotent;
pub(crate) mod inbound;
pub(crate) mod listener;
pub(crate) mod message_log;
pub(crate) mod messages;
pub(crate) mod openapi;
pub(crate) mod ops;
pub(crate) mod optouts;
pub(crate) mod page;
pub(crate) mod problem;
pub(crate) mod providers;
pub(crate) mod request;
pub(crate) mod routes;
pub(crate) mod smpp;
pub(crate) mod timeout;
pub mod validate;
pub(crate) mod views;
pub(crate) mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRequestParts};
use axum::http::request::Parts;
use axum::Router;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::admission::limits::TenantLimiter;
use crate::api::idempotency::Idempotency;
use crate::dispatch::Dispatcher;
use crate::smpp::supervisor::BindTable;
use crate::store::Store;
use problem::Problem;
pub(crate) use switchyard_ops::config::{Scope, Scopes};

/// Resolves an API key to its tenant (hash comparison in constant time lives behind this).
pub(crate) trait Authenticator: Send + Sync + 'static {
    /// The tenant owning `key`, if any.
    fn tenant(&self, key: &str) -> Option<Arc<str>>;

    /// The tenant owning `key` and what the key may do. By default every scope.
    fn authenticate(&self, key: &str) -> Option<(Arc<str>, Scopes)> {
        self.tenant(key).map(|t| (t, Scopes::ALL))
    }

    /// True when `key` is an operator key. By default there are none.
    fn is_operator(&self, _key: &str) -> bool {
        false
    }

    /// As [`Authenticator::authenticate`], for the key whose SHA-256 hash is `hash` (what a
    /// dashboard session keeps instead of the key). By default no hash authenticates.
    fn authenticate_hash(
        &self,
        _hash: &switchyard_ops::config::ApiKeyHash,
    ) -> Option<(Arc<str>, Scopes)> {
        None
    }

    /// As [`Authenticator::is_operator`], for the key whose SHA-256 hash is `hash`.
    fn is_operator_hash(&self, _hash: &switchyard_ops::config::ApiKeyHash) -> bool {
        false
    }
    /// The configuration the keys come from, when there is one (the dashboard's tenant
    /// settings page reads it; it is swapped with the keys on reload).
    fn config(&self) -> Option<Arc<switchyard_ops::config::Config>> {
        None
    }
}

/// What every handler can reach: one allocation shared by every request, so the copy each
/// extractor and middleware takes is one reference count, not one per component.
#[derive(Clone)]
pub(crate) struct AppState(Arc<AppParts>);

impl AppState {
    /// The state made of `parts`.
    pub(crate) fn new(parts: AppParts) -> Self {
        AppState(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppParts;

    fn deref(&self) -> &AppParts {
        &self.0
    }
}

/// The components behind [`AppState`].
pub(crate) struct AppParts {
    /// API keys → tenants (swapped on reload).
    pub(crate) auth: Arc<arc_swap::ArcSwap<Box<dyn Authenticator>>>,
    /// Durable state.
    pub(crate) store: Arc<dyn Store>,
    /// Routing and queues.
    pub(crate) dispatcher: Arc<Dispatcher>,
    /// Every bind's live status (for /readyz and metrics).
    pub(crate) binds: Arc<BindTable>,
    /// Prometheus exposition.
    pub(crate) metrics: Option<PrometheusHandle>,
    /// Request limits.
    pub(crate) limits: validate::Limits,
    /// Per-tenant rate, quotas and allow/block lists (swapped on reload).
    pub(crate) tenant_limits: Arc<TenantLimiter>,
    /// `Idempotency-Key` requests running now.
    pub(crate) idempotency: Arc<Idempotency>,
    /// Events, webhooks, SSE, inbound messages and the opt-out list.
    pub(crate) events: Arc<crate::events::pump::Hub>,
    /// The accept pipeline every send goes through.
    pub(crate) submit: crate::submit::Submitter,
    /// The SMPP server for tenants, when `[smpp_server]` runs.
    pub(crate) smpp: Option<std::sync::Arc<crate::smpp_server::Server>>,
    /// Flows (one message over several channels) in progress.
    pub(crate) flows: crate::flows::Flows,
    /// The chat engine, whose providers' status webhooks the API receives.
    pub(crate) chat: Arc<crate::chat::Chat>,
    /// Where those webhooks' receipts and inbound messages go.
    pub(crate) updates: crate::updates::UpdateSink,
    /// Owners and keywords of the inbound messages on chat channels.
    pub(crate) inbound: crate::inbound::Inbound,
    /// The WhatsApp and Messenger windows those inbound messages open.
    pub(crate) windows: Arc<crate::admission::windows::Windows>,
    /// This node, its configuration's hash and its peers (for `/readyz` and metrics).
    pub(crate) node: crate::cluster::SharedNodeView,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

/// The tenant a request authenticated as, and what its key may do.
#[derive(Debug, Clone)]
pub(crate) struct Tenant(pub Arc<str>, pub Scopes);

impl Tenant {
    /// 403 `insufficient_scope` unless the key has `scope`.
    pub(crate) fn require(&self, scope: Scope) -> Result<(), Problem> {
        if self.1.contains(scope) {
            Ok(())
        } else {
            Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "insufficient_scope",
                format!("this API key lacks the {:?} scope", scope.as_str()),
            ))
        }
    }
}

/// The bearer key of a request, or 401.
fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let header = parts
        .headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(Problem::unauthorized)?;
    header
        .strip_prefix("Bearer ")
        .map(str::trim)
        .ok_or_else(Problem::unauthorized)
}

impl FromRequestParts<AppState> for Tenant {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts)?;
        let auth = state.auth.load();
        let Some((tenant, scopes)) = auth.authenticate(key) else {
            if auth.is_operator(key) {
                return Err(Problem::new(
                    axum::http::StatusCode::FORBIDDEN,
                    "operator_key",
                    "an operator key is not a tenant's: it is accepted by /v1/routes/explain \
                     (with ?tenant=) only",
                ));
            }
            return Err(Problem::unauthorized());
        };
        let tenant = Tenant(tenant, scopes);
        // Reads need `read`; anything that changes state needs `send` or `admin` (handlers
        // narrow it down with `require`).
        if parts.method == axum::http::Method::GET || parts.method == axum::http::Method::HEAD {
            tenant.require(Scope::Read)?;
        } else if !scopes.contains(Scope::Send) && !scopes.contains(Scope::Admin) {
            tenant.require(Scope::Send)?;
        }
        Ok(tenant)
    }
}

/// Who a request authenticated as, where operator keys are accepted too.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// A tenant's key (with the `read` scope for GETs, as for [`Tenant`]).
    Tenant(Tenant),
    /// One of the operator's keys: sees every tenant and the carriers' costs and health.
    Operator,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let key = bearer(parts)?;
        if state.auth.load().is_operator(key) {
            return Ok(Caller::Operator);
        }
        Tenant::from_request_parts(parts, state)
            .await
            .map(Caller::Tenant)
    }
}

/// An operator key (`[operator] api_keys`): what the `/v1/operator/…` endpoints take. A
/// tenant's key gets 403 `operator_only`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Operator;

impl FromRequestParts<AppState> for Operator {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match Caller::from_request_parts(parts, state).await? {
            Caller::Operator => Ok(Operator),
            Caller::Tenant(_) => Err(Problem::new(
                axum::http::StatusCode::FORBIDDEN,
                "operator_only",
                "this endpoint takes an operator key ([operator] api_keys)",
            )),
        }
    }
}

/// Every configured tenant's name, in configuration order.
pub(crate) fn tenants(state: &AppState) -> Vec<Arc<str>> {
    let table = state.dispatcher.router.load();
    table
        .config()
        .plans
        .iter()
        .map(|p| Arc::from(p.tenant.as_str()))
        .collect()
}

/// The API's routes, and `extra` (the dashboard's, from the layer above). `/metrics` and
/// `/readyz` are among them unless `server.ops_listen` is set ([`ops_router`] serves them
/// there). Every request must be answered (headers sent) within `server.request_timeout_s`,
/// body upload included, or gets 408.
pub(crate) fn router(
    state: AppState,
    server: &switchyard_ops::config::ServerConfig,
    extra: Router,
) -> Router {
    let max_body_bytes = server.max_body_bytes;
    let mut endpoints = routes::api(batches::MAX_BODY_BYTES.max(max_body_bytes));
    if server.ops_listen.is_none() {
        endpoints.extend(routes::ops());
    }
    let api = routes::router(endpoints);
    api.with_state(state)
        .merge(extra)
        .fallback(no_such_endpoint)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            server.request_timeout,
            timeout::request_timeout,
        ))
        .layer(axum::middleware::from_fn(request::layer))
}

/// The operator's listener (`server.ops_listen`): `/metrics`, `/readyz` and `/healthz`.
pub(crate) fn ops_router(state: AppState, server: &switchyard_ops::config::ServerConfig) -> Router {
    routes::router(routes::ops())
        .route("/healthz", axum::routing::get(ops::healthz))
        .fallback(no_such_endpoint)
        .layer(axum::middleware::from_fn_with_state(
            server.request_timeout,
            timeout::request_timeout,
        ))
        .layer(axum::middleware::from_fn(request::layer))
        .with_state(state)
}

async fn no_such_endpoint() -> Problem {
    Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "no_such_endpoint",
        "no such endpoint",
    )
}
