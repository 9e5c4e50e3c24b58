//! The simulator's HTTP control port.
//!
//! - `GET /stats` — the counters and per-call media as JSON ([`Stats`]).
//! - `GET /behaviour` / `PUT /behaviour` — read or replace how new calls are answered
//!   ([`Behaviour`]; fields left out take their defaults).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use super::behaviour::Behaviour;
use super::counters::Snapshot;
use super::media::CallMedia;
use super::Shared;

/// The body of `GET /stats`.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// The totals.
    #[serde(flatten)]
    pub counters: Snapshot,
    /// RTP per call that received any, by Call-ID.
    pub calls: BTreeMap<String, CallMedia>,
}

/// Binds the control port (so `main` can announce it before serving).
pub async fn bind(addr: SocketAddr) -> anyhow::Result<tokio::net::TcpListener> {
    Ok(tokio::net::TcpListener::bind(addr).await?)
}

/// Serves the control port until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/behaviour", get(behaviour).put(set_behaviour))
        .with_state(shared);
    axum::serve(listener, app).await?;
    Ok(())
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<Stats> {
    Json(Stats {
        counters: shared.counters.snapshot(),
        calls: shared.calls.lock().clone(),
    })
}

async fn behaviour(State(shared): State<Arc<Shared>>) -> Json<Behaviour> {
    Json((**shared.behaviour.load()).clone())
}

async fn set_behaviour(
    State(shared): State<Arc<Shared>>,
    Json(b): Json<Behaviour>,
) -> Result<Json<Behaviour>, (StatusCode, String)> {
    b.validate()
        .map_err(|e| (StatusCode::UNPROCESSABLE_ENTITY, e))?;
    shared.behaviour.store(Arc::new(b.clone()));
    tracing::info!(?b, "behaviour replaced");
    Ok(Json(b))
}
