//! The simulator's HTTP control port.
//!
//! - `GET /stats`: counters per provider, the last received requests and sent webhooks.
//! - `POST /reset`: forgets counters, lists, windows, chats and RBM messages (configuration
//!   and scripts stay).
//! - `GET|PUT /{provider}/config`: credentials, identities and callback URL of `whatsapp`,
//!   `telegram`, `messenger` or `rbm` (PUT replaces the whole config; fields left out take
//!   their defaults).
//! - `GET|PUT /{provider}/behaviour`: the default [`Behaviour`]; `PUT|DELETE
//!   /{provider}/behaviour/{recipient}`: one recipient's override.
//! - `POST /{provider}/inbound`: a message from a user ([`Inbound`]), which opens the
//!   customer-service window and is POSTed to the callback like the provider would.

use std::time::SystemTime;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::exchange::{Inbound, Provider};
use super::script::Behaviour;
use super::server::{deliver, Shared};
use super::{messenger, rbm, telegram, whatsapp};

type Error = (StatusCode, String);

/// Serves the control port until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, shared: Shared) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/reset", post(reset))
        .route("/{provider}/config", get(config).put(set_config))
        .route("/{provider}/behaviour", get(behaviour).put(set_behaviour))
        .route(
            "/{provider}/behaviour/{recipient}",
            put(set_recipient).delete(delete_recipient),
        )
        .route("/{provider}/inbound", post(inbound))
        .with_state(shared);
    axum::serve(listener, app).await?;
    Ok(())
}

fn provider(name: &str) -> Result<Provider, Error> {
    Provider::parse(name).ok_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            format!("unknown provider {name:?} (whatsapp, telegram, messenger, rbm)"),
        )
    })
}

fn bad(e: impl std::fmt::Display) -> Error {
    (StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
}

async fn stats(State(shared): State<Shared>) -> Json<Value> {
    let s = shared.state.lock();
    Json(serde_json::to_value(&s.stats).unwrap_or(Value::Null))
}

async fn reset(State(shared): State<Shared>) -> StatusCode {
    shared.state.lock().reset();
    StatusCode::NO_CONTENT
}

async fn config(State(shared): State<Shared>, Path(p): Path<String>) -> Result<Json<Value>, Error> {
    let p = provider(&p)?;
    let s = shared.state.lock();
    let v = match p {
        Provider::Whatsapp => serde_json::to_value(&s.whatsapp.config),
        Provider::Telegram => serde_json::to_value(&s.telegram.config),
        Provider::Messenger => serde_json::to_value(&s.messenger.config),
        Provider::Rbm => serde_json::to_value(&s.rbm.config),
    };
    v.map(Json).map_err(bad)
}

async fn set_config(
    State(shared): State<Shared>,
    Path(p): Path<String>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, Error> {
    let p = provider(&p)?;
    let mut s = shared.state.lock();
    match p {
        Provider::Whatsapp => {
            s.whatsapp.config = serde_json::from_value::<whatsapp::Config>(body).map_err(bad)?;
        }
        Provider::Telegram => {
            s.telegram.config = serde_json::from_value::<telegram::Config>(body).map_err(bad)?;
        }
        Provider::Messenger => {
            s.messenger.config = serde_json::from_value::<messenger::Config>(body).map_err(bad)?;
        }
        Provider::Rbm => s.rbm.config = serde_json::from_value::<rbm::Config>(body).map_err(bad)?,
    }
    tracing::info!(provider = p.as_str(), "config replaced");
    Ok(Json(json!({"ok": true})))
}

async fn behaviour(
    State(shared): State<Shared>,
    Path(p): Path<String>,
) -> Result<Json<Behaviour>, Error> {
    let p = provider(&p)?;
    Ok(Json(shared.state.lock().script(p).default.clone()))
}

async fn set_behaviour(
    State(shared): State<Shared>,
    Path(p): Path<String>,
    Json(b): Json<Behaviour>,
) -> Result<Json<Behaviour>, Error> {
    let p = provider(&p)?;
    b.validate().map_err(bad)?;
    shared.state.lock().script(p).default = b.clone();
    Ok(Json(b))
}

async fn set_recipient(
    State(shared): State<Shared>,
    Path((p, recipient)): Path<(String, String)>,
    Json(b): Json<Behaviour>,
) -> Result<Json<Behaviour>, Error> {
    let p = provider(&p)?;
    b.validate().map_err(bad)?;
    shared
        .state
        .lock()
        .script(p)
        .recipients
        .insert(recipient, b.clone());
    Ok(Json(b))
}

async fn delete_recipient(
    State(shared): State<Shared>,
    Path((p, recipient)): Path<(String, String)>,
) -> Result<StatusCode, Error> {
    let p = provider(&p)?;
    let removed = shared.state.lock().script(p).recipients.remove(&recipient);
    Ok(if removed.is_some() {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::NOT_FOUND
    })
}

async fn inbound(
    State(shared): State<Shared>,
    Path(p): Path<String>,
    Json(msg): Json<Inbound>,
) -> Result<Json<Value>, Error> {
    let p = provider(&p)?;
    let scheduled = shared
        .state
        .lock()
        .inbound(p, &msg, SystemTime::now())
        .map_err(bad)?;
    let n = scheduled.len();
    if n > 0 {
        tokio::spawn(deliver(shared.clone(), scheduled));
    }
    Ok(Json(json!({ "webhooks": n })))
}
