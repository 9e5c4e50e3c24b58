//! The simulator's HTTP control port: counters, live behaviour changes, MO injection.
//!
//! - `GET /stats` — the counters as JSON.
//! - `GET /behaviour` / `PUT /behaviour` — read or replace the fault and receipt settings.
//! - `POST /disconnect` — drops every open connection at once (receipts not yet delivered wait
//!   for the next bind of their system_id, as they do after any lost connection); answers
//!   `{"connections": N}`, the binds that were up.
//! - `POST /mo` — `{"system_id", "from", "to", "text"}` queues a mobile-originated message for a
//!   receiving bind of that system_id (or the only system_id bound, if omitted). A long text
//!   goes in parts; `"parts": [1, 3]` sends only those parts (1-based) and `"reference": 7`
//!   fixes the concatenation reference, so a test can send the rest of a message later.
//!   Binary instead of text: `"octets": "0b84…"` (hex), with `"data_coding"` (default 4) and
//!   `"udh"` (hex, UDHL included: IEs such as application ports, in every part after the
//!   concatenation IE of a long one).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::policy::Behaviour;
use super::Shared;

/// An MO message to inject.
#[derive(Debug, Deserialize)]
pub struct MoRequest {
    /// The ESME system_id whose binds should receive it; optional when only one is bound.
    pub system_id: Option<String>,
    /// The mobile's number (source_addr).
    pub from: String,
    /// The number it was sent to (destination_addr): the tenant's short code or long number.
    pub to: String,
    /// The text (GSM-7 when representable, else UCS-2); unused with `octets`.
    #[serde(default)]
    pub text: String,
    /// Binary data as hex instead of a text.
    #[serde(default)]
    pub octets: Option<String>,
    /// The data_coding of `octets` (default 4).
    #[serde(default)]
    pub data_coding: Option<u8>,
    /// A user data header (hex, UDHL included) whose IEs every part of `octets` carries.
    #[serde(default)]
    pub udh: Option<String>,
    /// Only these parts of a long text (1-based); all when absent.
    #[serde(default)]
    pub parts: Option<Vec<u8>>,
    /// The concatenation reference; the next of a counter when absent.
    #[serde(default)]
    pub reference: Option<u16>,
}

/// Serves the control port until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/behaviour", get(behaviour).put(set_behaviour))
        .route("/mo", post(mo))
        .route("/disconnect", post(disconnect))
        .with_state(shared);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<super::counters::Snapshot> {
    Json(shared.counters.snapshot())
}

async fn disconnect(State(shared): State<Arc<Shared>>) -> Json<serde_json::Value> {
    let connections = shared
        .counters
        .binds_active
        .load(std::sync::atomic::Ordering::Relaxed);
    shared.kick.send_modify(|n| *n += 1);
    Json(serde_json::json!({ "connections": connections }))
}

async fn behaviour(State(shared): State<Arc<Shared>>) -> Json<Behaviour> {
    Json((**shared.behaviour.load()).clone())
}

async fn set_behaviour(
    State(shared): State<Arc<Shared>>,
    Json(b): Json<Behaviour>,
) -> Json<Behaviour> {
    shared.behaviour.store(Arc::new(b.clone()));
    tracing::info!(?b, "behaviour replaced");
    Json(b)
}

async fn mo(
    State(shared): State<Arc<Shared>>,
    Json(req): Json<MoRequest>,
) -> Result<StatusCode, (StatusCode, String)> {
    shared
        .inject_mo(req)
        .map(|()| StatusCode::ACCEPTED)
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e.to_string()))
}

/// Binds the control port (used by `main` so the address can be announced before serving).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    Ok(tokio::net::TcpListener::bind(addr).await?)
}
