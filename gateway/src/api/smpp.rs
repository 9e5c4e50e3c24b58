//! `GET /v1/smpp/binds`: the SMPP binds open now on the server for tenants. A tenant sees its
//! own; an operator key sees every tenant's.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use switchyard_protocols::smpp::session::BindType;

use super::{AppState, Caller, Problem, Tenant};

/// One open bind.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BindView {
    /// The SMPP user.
    system_id: String,
    /// Its tenant (operator keys only).
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<String>,
    /// `transmitter`, `receiver` or `transceiver`.
    bind_type: &'static str,
    /// The ESME's address.
    peer: String,
    /// The SMPP version it bound with (`3.3`, `3.4`, `5.0`).
    interface_version: String,
    /// When it bound (RFC 3339).
    since: String,
}

/// The binds open now.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BindList {
    /// Oldest connection first per system_id.
    binds: Vec<BindView>,
}

/// The SMPP binds open now: the tenant's own, or every tenant's for an operator key. An empty
/// list when the server is not configured.
#[utoipa::path(get, path = "/v1/smpp/binds", tag = "smpp",
    responses((status = 200, body = BindList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn binds(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BindList>, Problem> {
    let Some(server) = &state.smpp else {
        return Ok(Json(BindList { binds: Vec::new() }));
    };
    let users = server.users.load();
    let binds = server
        .binds()
        .snapshot()
        .into_iter()
        .filter_map(|(system_id, b)| {
            let owner = users.get(&system_id).map(|u| u.tenant.to_string());
            let tenant = match &caller {
                Caller::Operator => owner,
                Caller::Tenant(Tenant(own, _)) if owner.as_deref() == Some(&**own) => None,
                Caller::Tenant(_) => return None,
            };
            Some(BindView {
                system_id,
                tenant,
                bind_type: match b.bind_type {
                    BindType::Transmitter => "transmitter",
                    BindType::Receiver => "receiver",
                    _ => "transceiver",
                },
                peer: b.peer.to_string(),
                interface_version: format!(
                    "{}.{}",
                    b.interface_version >> 4,
                    b.interface_version & 0x0F
                ),
                since: crate::domain::rfc3339(b.since),
            })
        })
        .collect();
    Ok(Json(BindList { binds }))
}
