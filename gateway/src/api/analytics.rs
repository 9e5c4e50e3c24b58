//! `GET /v1/analytics/messages` and `GET /v1/analytics/calls`: counts, rates, latency
//! percentiles and money per time bucket, read from the store's rollups
//! ([`crate::domain::analytics`]), for the tenant's own traffic; and the operator's
//! `GET /v1/operator/analytics/…` across tenants, which may group by tenant and also sees
//! cost and margin.
//!
//! Buckets are aligned: `since` is rounded down and `until` up to whole buckets (UTC), and
//! each bucket counts the messages *accepted* (calls *set up*) in it, with everything that
//! happened to them since.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::messages::parse_time;
use super::problem::Problem;
use super::{AppState, Operator, Tenant};
use crate::domain::analytics::{
    percentiles, CallTotals, Latency, MessageDimension, MessageTotals, Resolution, RollupQuery,
    COUNTED, DISPOSITIONS,
};
use crate::domain::{now_ms, rfc3339, UnixMs};

/// Most buckets one answer may span (a day of minutes, two months of hours).
pub(crate) const MAX_BUCKETS: i64 = 1_500;

/// Query of the analytics endpoints.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnalyticsQuery {
    /// Start (RFC 3339), rounded down to its bucket; default `until` less 24 hours.
    pub(crate) since: Option<String>,
    /// End (RFC 3339), rounded up to a whole bucket; default now.
    pub(crate) until: Option<String>,
    /// Bucket size: `minute`, `hour` (default) or `day`. At most 1,500 buckets per answer.
    pub(crate) bucket: Option<String>,
    /// Comma-separated dimensions to group by: `channel`, `carrier`, `country`, `sender`,
    /// `batch`, and `tenant` (operator only). Calls group by `carrier` and `tenant` only.
    pub(crate) group_by: Option<String>,
    /// Only this channel (`sms`, `voice`, `email`, `rcs`, `whatsapp`, …). Messages only.
    pub(crate) channel: Option<String>,
    /// Only this carrier (for messages: the one chosen at acceptance).
    pub(crate) carrier: Option<String>,
    /// Only this destination country (ISO 3166). Messages only.
    pub(crate) country: Option<String>,
    /// Only this sender. Messages only.
    pub(crate) sender: Option<String>,
    /// Only this batch. Messages only.
    pub(crate) batch: Option<String>,
    /// Only this tenant (operator only).
    pub(crate) tenant: Option<String>,
}

/// Which kind of rollups a query reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Messages,
    Calls,
}

/// A checked query.
struct Parsed {
    /// What the store reads and sums (with the groups' dimensions in the order asked).
    rollups: RollupQuery,
}

fn parse(
    q: &AnalyticsQuery,
    tenant: Option<&str>,
    kind: Kind,
    now: UnixMs,
) -> Result<Parsed, Problem> {
    let operator = tenant.is_none();
    let resolution = match q.bucket.as_deref() {
        None => Resolution::Hour,
        Some(b) => Resolution::parse(b).ok_or_else(|| {
            Problem::invalid(
                "bucket",
                "invalid_bucket",
                format!("{b:?} is not one of minute, hour, day"),
            )
        })?,
    };
    let until = q
        .until
        .as_deref()
        .map(|s| parse_time("until", s))
        .transpose()?
        .unwrap_or(now);
    let since = q
        .since
        .as_deref()
        .map(|s| parse_time("since", s))
        .transpose()?
        .unwrap_or(until - Resolution::Day.millis());
    let (since, until) = (
        resolution.floor(since),
        resolution.floor(until + resolution.millis() - 1),
    );
    if until <= since {
        return Err(Problem::invalid(
            "until",
            "invalid_range",
            "until must be after since",
        ));
    }
    if (until - since) / resolution.millis() > MAX_BUCKETS {
        return Err(Problem::invalid(
            "bucket",
            "too_many_buckets",
            format!(
                "the range holds more than {MAX_BUCKETS} {} buckets: use a larger bucket or a shorter range",
                resolution.as_str()
            ),
        ));
    }
    let allowed = |d: MessageDimension| match kind {
        Kind::Messages => operator || d != MessageDimension::Tenant,
        Kind::Calls => {
            matches!(d, MessageDimension::Carrier) || (operator && d == MessageDimension::Tenant)
        }
    };
    let mut group_by = Vec::new();
    for name in q
        .group_by
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match MessageDimension::parse(name).filter(|d| allowed(*d)) {
            Some(d) if !group_by.contains(&d) => group_by.push(d),
            Some(_) => {}
            None => {
                return Err(Problem::invalid(
                    "group_by",
                    "invalid_group_by",
                    format!("cannot group by {name:?} here"),
                ))
            }
        }
    }
    let mut filters = Vec::new();
    for (d, v) in [
        (MessageDimension::Channel, &q.channel),
        (MessageDimension::Carrier, &q.carrier),
        (MessageDimension::Country, &q.country),
        (MessageDimension::Sender, &q.sender),
        (MessageDimension::Batch, &q.batch),
    ] {
        if let Some(v) = v {
            if !allowed(d) {
                return Err(Problem::invalid(
                    d.as_str(),
                    "invalid_filter",
                    format!("calls cannot be filtered by {}", d.as_str()),
                ));
            }
            filters.push((d, v.clone()));
        }
    }
    let tenant = match (tenant, &q.tenant) {
        (Some(_), Some(_)) => {
            return Err(Problem::invalid(
                "tenant",
                "operator_only",
                "only an operator key may name a tenant",
            ))
        }
        (Some(t), None) => Some(t.to_owned()),
        (None, t) => t.clone(),
    };
    Ok(Parsed {
        rollups: RollupQuery {
            tenant,
            resolution,
            since,
            until,
            filters,
            group_by,
        },
    })
}

/// Billionths as decimal text (the API's money format).
fn money(nanos: u64) -> String {
    switchyard_routing::Price::from_nanos(nanos).to_string()
}

/// `price - cost` as decimal text, negative when we lose money.
fn margin(price: u64, cost: u64) -> String {
    if price >= cost {
        money(price - cost)
    } else {
        format!("-{}", money(cost - price))
    }
}

fn latency_json(h: Option<&Latency>) -> Value {
    match percentiles(h) {
        Some((count, [p50, p90, p99])) => {
            json!({"count": count, "p50": p50, "p90": p90, "p99": p99})
        }
        None => Value::Null,
    }
}

fn message_metrics(t: &MessageTotals) -> Map<String, Value> {
    let counts: Map<String, Value> = COUNTED
        .iter()
        .map(|s| (s.as_str().to_owned(), t.count(*s).into()))
        .collect();
    let mut m = Map::new();
    m.insert("counts".into(), counts.into());
    m.insert("delivery_rate".into(), t.delivery_rate().into());
    m.insert(
        "latency_ms".into(),
        json!({
            "accepted_to_sent": latency_json(t.to_sent.as_ref()),
            "sent_to_delivered": latency_json(t.to_delivered.as_ref()),
            "accepted_to_delivered": latency_json(t.end_to_end.as_ref()),
        }),
    );
    m.insert("price".into(), money(t.price_nanos).into());
    m
}

fn call_metrics(t: &CallTotals, operator: bool) -> Map<String, Value> {
    let dispositions: Map<String, Value> = DISPOSITIONS
        .iter()
        .zip(t.dispositions)
        .map(|(d, n)| ((*d).to_owned(), n.into()))
        .collect();
    let answered = t.answered();
    let mut m = Map::new();
    m.insert("calls".into(), t.calls.into());
    m.insert("dispositions".into(), dispositions.into());
    m.insert(
        "asr".into(),
        (t.calls > 0)
            .then(|| answered as f64 / t.calls as f64)
            .into(),
    );
    m.insert(
        "acd_seconds".into(),
        (answered > 0)
            .then(|| t.duration_ms as f64 / 1000.0 / answered as f64)
            .into(),
    );
    m.insert("minutes".into(), (t.duration_ms as f64 / 60_000.0).into());
    m.insert(
        "billed_minutes".into(),
        (t.billed_secs as f64 / 60.0).into(),
    );
    m.insert(
        "setup_to_answer_ms".into(),
        latency_json(t.to_answer.as_ref()),
    );
    m.insert("price".into(), money(t.price_nanos).into());
    if operator {
        m.insert("cost".into(), money(t.cost_nanos).into());
        m.insert("margin".into(), margin(t.price_nanos, t.cost_nanos).into());
    }
    m
}

fn group_json(group_by: &[MessageDimension], values: &[String]) -> Value {
    group_by
        .iter()
        .zip(values)
        .map(|(d, v)| {
            let v = if v.is_empty() {
                Value::Null
            } else {
                v.clone().into()
            };
            (d.as_str().to_owned(), v)
        })
        .collect::<Map<String, Value>>()
        .into()
}

fn envelope(p: &Parsed, data: Vec<Value>, total: Map<String, Value>) -> Value {
    json!({
        "since": rfc3339(p.rollups.since),
        "until": rfc3339(p.rollups.until),
        "bucket": p.rollups.resolution.as_str(),
        "group_by": p.rollups.group_by.iter().map(|d| d.as_str()).collect::<Vec<_>>(),
        "data": data,
        "total": total,
    })
}

/// The answer to a message query (`tenant`: `None` for the operator).
async fn messages_answer(
    state: &AppState,
    tenant: Option<&str>,
    q: AnalyticsQuery,
) -> Result<Value, Problem> {
    let p = parse(&q, tenant, Kind::Messages, now_ms())?;
    let grouped = state.store.message_rollups(p.rollups.clone()).await?;
    let mut total = MessageTotals::default();
    let mut data = Vec::with_capacity(grouped.len());
    for ((start, group), t) in &grouped {
        total.add(t);
        let mut m = message_metrics(t);
        m.insert("start".into(), rfc3339(*start).into());
        m.insert("group".into(), group_json(&p.rollups.group_by, group));
        data.push(m.into());
    }
    Ok(envelope(&p, data, message_metrics(&total)))
}

/// The answer to a call query (`tenant`: `None` for the operator).
async fn calls_answer(
    state: &AppState,
    tenant: Option<&str>,
    q: AnalyticsQuery,
) -> Result<Value, Problem> {
    let operator = tenant.is_none();
    let p = parse(&q, tenant, Kind::Calls, now_ms())?;
    let grouped = state.store.call_rollups(p.rollups.clone()).await?;
    let mut total = CallTotals::default();
    let mut data = Vec::with_capacity(grouped.len());
    for ((start, group), t) in &grouped {
        total.add(t);
        let mut m = call_metrics(t, operator);
        m.insert("start".into(), rfc3339(*start).into());
        m.insert("group".into(), group_json(&p.rollups.group_by, group));
        data.push(m.into());
    }
    Ok(envelope(&p, data, call_metrics(&total, operator)))
}

const MESSAGES_200: &str = "`{since, until, bucket, group_by, data: [{start, group: {dimension: value}, counts: {accepted, sent, delivered, read, undeliverable, expired, rejected, failed, cancelled}, delivery_rate, latency_ms: {accepted_to_sent, sent_to_delivered, accepted_to_delivered: {count, p50, p90, p99}}, price}], total: {…the same without start and group}}`";
const CALLS_200: &str = "`{since, until, bucket, group_by, data: [{start, group, calls, dispositions: {answered, busy, no_answer, cancelled, rejected, failed}, asr, acd_seconds, minutes, billed_minutes, setup_to_answer_ms: {count, p50, p90, p99}, price}], total}`; the operator's also cost and margin";

/// `GET /v1/analytics/messages`: the tenant's messages per bucket (and group).
#[utoipa::path(get, path = "/v1/analytics/messages", tag = "analytics", params(AnalyticsQuery),
    responses((status = 200, description = MESSAGES_200), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn messages(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<AnalyticsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let q = super::page::query(query)?;
    Ok(Json(messages_answer(&state, Some(&tenant), q).await?))
}

/// `GET /v1/analytics/calls`: the tenant's calls (SIP proxy CDRs) per bucket (and carrier).
#[utoipa::path(get, path = "/v1/analytics/calls", tag = "analytics", params(AnalyticsQuery),
    responses((status = 200, description = CALLS_200), (status = 401, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn calls(
    State(state): State<AppState>,
    Tenant(tenant, _): Tenant,
    query: Result<Query<AnalyticsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let q = super::page::query(query)?;
    Ok(Json(calls_answer(&state, Some(&tenant), q).await?))
}

/// `GET /v1/operator/analytics/messages`: every tenant's messages (or `?tenant=`'s), may group
/// by tenant. Operator keys only.
#[utoipa::path(get, path = "/v1/operator/analytics/messages", tag = "operator", params(AnalyticsQuery),
    responses((status = 200, description = MESSAGES_200), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn operator_messages(
    State(state): State<AppState>,
    _: Operator,
    query: Result<Query<AnalyticsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let q = super::page::query(query)?;
    Ok(Json(messages_answer(&state, None, q).await?))
}

/// `GET /v1/operator/analytics/calls`: every tenant's calls, with cost and margin. Operator
/// keys only.
#[utoipa::path(get, path = "/v1/operator/analytics/calls", tag = "operator", params(AnalyticsQuery),
    responses((status = 200, description = CALLS_200), (status = 401, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub(crate) async fn operator_calls(
    State(state): State<AppState>,
    _: Operator,
    query: Result<Query<AnalyticsQuery>, QueryRejection>,
) -> Result<Json<Value>, Problem> {
    let q = super::page::query(query)?;
    Ok(Json(calls_answer(&state, None, q).await?))
}

/// The analytics of `tenant` for the dashboard: totals and per-minute counts over the last
/// `window` milliseconds before `now`, minute buckets (`None` tenant: every tenant).
pub(crate) async fn recent_messages(
    state: &AppState,
    tenant: Option<Arc<str>>,
    now: UnixMs,
    window: i64,
    resolution: Resolution,
) -> Result<Vec<(UnixMs, MessageTotals)>, crate::store::StoreError> {
    let rollups = RollupQuery {
        tenant: tenant.map(|t| t.to_string()),
        resolution,
        since: resolution.floor(now - window),
        until: resolution.floor(now) + resolution.millis(),
        filters: Vec::new(),
        group_by: Vec::new(),
    };
    Ok(state
        .store
        .message_rollups(rollups)
        .await?
        .into_iter()
        .map(|((start, _), t)| (start, t))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UnixMs = 1_780_000_000_000;

    fn query(pairs: &[(&str, &str)]) -> AnalyticsQuery {
        let qs: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let uri: axum::http::Uri = format!("/?{}", qs.join("&")).parse().unwrap();
        Query::<AnalyticsQuery>::try_from_uri(&uri).unwrap().0
    }

    #[test]
    fn ranges_align_to_buckets_and_default_to_a_day_of_hours() {
        let p = parse(&query(&[]), Some("acme"), Kind::Messages, NOW).unwrap();
        assert_eq!(p.rollups.resolution, Resolution::Hour);
        assert_eq!(p.rollups.until, Resolution::Hour.floor(NOW) + 3_600_000);
        assert_eq!(p.rollups.until - p.rollups.since, 25 * 3_600_000);
        assert_eq!(p.rollups.tenant.as_deref(), Some("acme"));
    }

    #[test]
    fn tenants_cannot_name_or_group_by_tenants() {
        for q in [
            query(&[("tenant", "globex")]),
            query(&[("group_by", "tenant")]),
        ] {
            assert!(parse(&q, Some("acme"), Kind::Messages, NOW).is_err());
        }
        let p = parse(
            &query(&[("group_by", "tenant,carrier")]),
            None,
            Kind::Messages,
            NOW,
        )
        .unwrap();
        assert_eq!(
            p.rollups.group_by,
            vec![MessageDimension::Tenant, MessageDimension::Carrier]
        );
        assert_eq!(p.rollups.tenant, None);
    }

    #[test]
    fn calls_group_by_carrier_only_and_ranges_are_bounded() {
        assert!(parse(
            &query(&[("group_by", "country")]),
            Some("a"),
            Kind::Calls,
            NOW
        )
        .is_err());
        assert!(parse(&query(&[("country", "GB")]), Some("a"), Kind::Calls, NOW).is_err());
        let month = query(&[
            ("bucket", "minute"),
            ("since", "2026-01-01T00:00:00Z"),
            ("until", "2026-02-01T00:00:00Z"),
        ]);
        assert!(parse(&month, Some("a"), Kind::Messages, NOW).is_err());
        assert!(parse(
            &query(&[("bucket", "week")]),
            Some("a"),
            Kind::Messages,
            NOW
        )
        .is_err());
    }

    #[test]
    fn margin_may_be_negative() {
        assert_eq!(margin(3_000_000, 1_000_000), money(2_000_000));
        assert_eq!(
            margin(1_000_000, 3_000_000),
            format!("-{}", money(2_000_000))
        );
    }
}
