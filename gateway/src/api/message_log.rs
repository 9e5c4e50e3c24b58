//! `GET /v1/messages.csv` and `GET /v1/messages.ndjson`: the tenant's message log with the
//! list's filters, newest first, streamed page by page ([`super::export`]); and the operator's
//! `GET /v1/operator/messages.csv` / `.ndjson`, every tenant's (one after another, in
//! configuration order, or one with `?tenant=`), with a tenant column and without bodies.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::export::{self, Exportable, Format, Pages};
use super::messages::{parse_time, MessageView};
use super::problem::Problem;
use super::{AppState, Operator, Tenant};
use crate::domain::{ListFilter, MessageId, MessageRecord};
use crate::store::Store;

/// Query of the exports.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExportQuery {
    /// Only this status.
    pub(crate) status: Option<String>,
    /// Only to this number.
    pub(crate) to: Option<String>,
    /// Accepted at or after (RFC 3339).
    pub(crate) since: Option<String>,
    /// Accepted before (RFC 3339).
    pub(crate) until: Option<String>,
    /// Only with this tag.
    pub(crate) tag: Option<String>,
    /// Only this tenant's messages (operator keys only).
    pub(crate) tenant: Option<String>,
}

/// The list filter of an export's query (one page of [`export::PAGE`]).
fn filter(q: &ExportQuery) -> Result<ListFilter, Problem> {
    Ok(ListFilter {
        status: q
            .status
            .as_deref()
            .map(|s| {
                s.parse()
                    .map_err(|e: String| Problem::invalid("status", "invalid_status", e))
            })
            .transpose()?,
        to: q.to.clone(),
        since: q
            .since
            .as_deref()
            .map(|s| parse_time("since", s))
            .transpose()?,
        until: q
            .until
            .as_deref()
            .map(|s| parse_time("until", s))
            .transpose()?,
        tag: q.tag.clone(),
        before: None,
        limit: export::PAGE,
    })
}

/// CSV columns of the tenant's export.
const TENANT_HEADER: &[&str] = &[
    "id",
    "status",
    "to",
    "from",
    "country",
    "channel",
    "encoding",
    "segments",
    "carrier",
    "price",
    "currency",
    "tags",
    "batch_id",
    "created_at",
    "updated_at",
    "body",
];

/// CSV columns of the operator's export: the tenant first, no body.
const OPERATOR_HEADER: &[&str] = &[
    "tenant",
    "id",
    "status",
    "to",
    "from",
    "country",
    "channel",
    "encoding",
    "segments",
    "carrier",
    "price",
    "currency",
    "tags",
    "batch_id",
    "created_at",
    "updated_at",
];

/// One message of an export.
struct Row {
    /// The message as the API shows it.
    view: MessageView,
    /// Its tenant, shown (and its body hidden) in the operator's export.
    tenant: Option<String>,
    /// Its batch.
    batch_id: Option<String>,
}

impl Row {
    fn new(record: MessageRecord, operator: bool) -> Row {
        let tenant = operator.then(|| record.message.tenant.clone());
        let batch_id = record.message.batch_id.clone();
        Row {
            view: MessageView::from(record),
            tenant,
            batch_id,
        }
    }
}

impl Exportable for Row {
    fn fields(&self) -> Vec<String> {
        let v = &self.view;
        let mut f = Vec::with_capacity(16);
        if let Some(t) = &self.tenant {
            f.push(t.clone());
        }
        f.extend([
            v.id.clone(),
            v.status.as_str().to_owned(),
            v.to.clone(),
            v.from.clone(),
            v.country.clone().unwrap_or_default(),
            v.channel.to_owned(),
            v.encoding.clone(),
            v.segments.to_string(),
            v.carrier.clone().unwrap_or_default(),
            v.price.clone().unwrap_or_default(),
            v.currency.clone().unwrap_or_default(),
            v.tags.join(" "),
            self.batch_id.clone().unwrap_or_default(),
            v.created_at.clone(),
            v.updated_at.clone(),
        ]);
        if self.tenant.is_none() {
            f.push(v.body.clone());
        }
        f
    }

    fn json(&self) -> serde_json::Value {
        let mut j = serde_json::to_value(&self.view).unwrap_or_default();
        if let Some(o) = j.as_object_mut() {
            o.insert("batch_id".into(), self.batch_id.clone().into());
            if let Some(t) = &self.tenant {
                o.remove("body");
                o.insert("tenant".into(), t.clone().into());
            }
        }
        j
    }
}

/// Every page of `tenants`' messages matching `filter`, tenant after tenant, newest first.
fn pages(
    store: Arc<dyn Store>,
    tenants: Vec<Arc<str>>,
    filter: ListFilter,
    operator: bool,
) -> Pages<Row> {
    // The cursor: which tenant, and the id the next page of it starts below.
    type Cursor = (usize, Option<MessageId>);
    let tenants = Arc::new(tenants);
    export::paginate::<Row, Cursor, _, _>((0, None), move |(i, before)| {
        let (store, tenants, filter) = (store.clone(), tenants.clone(), filter.clone());
        async move {
            let Some(tenant) = tenants.get(i) else {
                return Ok((Vec::new(), None));
            };
            let page = store
                .list(
                    tenant,
                    ListFilter {
                        before,
                        ..filter.clone()
                    },
                )
                .await?;
            let next = if page.len() == filter.limit {
                page.last().map(|r| (i, Some(r.message.id)))
            } else if i + 1 < tenants.len() {
                Some((i + 1, None))
            } else {
                None
            };
            Ok((
                page.into_iter().map(|r| Row::new(r, operator)).collect(),
                next,
            ))
        }
    })
}

fn tenant_export(
    state: AppState,
    tenant: Arc<str>,
    q: ExportQuery,
    format: Format,
) -> Result<Response, Problem> {
    if q.tenant.is_some() {
        return Err(Problem::invalid(
            "tenant",
            "operator_only",
            "only an operator key may name a tenant",
        ));
    }
    let filter = filter(&q)?;
    let pages = pages(state.store.clone(), vec![tenant], filter, false);
    Ok(export::response(format, "messages", TENANT_HEADER, pages))
}

/// `GET /v1/messages.csv`: every message matching the filters, newest first, one CSV line each.
#[utoipa::path(get, path = "/v1/messages.csv", tag = "messages", params(ExportQuery),
    responses((status = 200, description = "CSV: id, status, to, from, country, channel, encoding, segments, carrier, price, currency, tags (space-separated), batch_id, created_at, updated_at, body. Streamed; any size.", content_type = "text/csv"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn csv(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    tenant_export(state, tenant, super::page::query(query)?, Format::Csv)
}

/// `GET /v1/messages.ndjson`: the same as one JSON object per line (the list's message view,
/// plus `batch_id`).
#[utoipa::path(get, path = "/v1/messages.ndjson", tag = "messages", params(ExportQuery),
    responses((status = 200, description = "One message view per line. Streamed; any size.", content_type = "application/x-ndjson"),
        (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn ndjson(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    tenant_export(state, tenant, super::page::query(query)?, Format::Ndjson)
}

fn operator_export(state: AppState, q: ExportQuery, format: Format) -> Result<Response, Problem> {
    let filter = filter(&q)?;
    let tenants = match &q.tenant {
        Some(t) => vec![Arc::from(t.as_str())],
        None => super::tenants(&state),
    };
    let pages = pages(state.store.clone(), tenants, filter, true);
    Ok(export::response(format, "messages", OPERATOR_HEADER, pages))
}

/// `GET /v1/operator/messages.csv`: every tenant's messages (or `?tenant=`'s), tenant by
/// tenant, newest first; a tenant column, no bodies. Operator keys only.
#[utoipa::path(get, path = "/v1/operator/messages.csv", tag = "operator", params(ExportQuery),
    responses((status = 200, description = "CSV: tenant, id, status, to, from, country, channel, encoding, segments, carrier, price, currency, tags, batch_id, created_at, updated_at. Streamed; any size.", content_type = "text/csv"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn operator_csv(
    State(state): State<AppState>,
    _: Operator,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    operator_export(state, super::page::query(query)?, Format::Csv)
}

/// `GET /v1/operator/messages.ndjson`: the same as one JSON object per line (with `tenant`,
/// without `body`).
#[utoipa::path(get, path = "/v1/operator/messages.ndjson", tag = "operator", params(ExportQuery),
    responses((status = 200, description = "One message view per line, with tenant, without body. Streamed; any size.", content_type = "application/x-ndjson"),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn operator_ndjson(
    State(state): State<AppState>,
    _: Operator,
    query: Result<Query<ExportQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    operator_export(state, super::page::query(query)?, Format::Ndjson)
}
