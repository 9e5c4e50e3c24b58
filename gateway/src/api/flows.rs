//! `POST /v1/messages` with `mode`: one message to a person over several channels (a flow; see
//! [`crate::flows`]), and how `GET /v1/messages/{id}` shows one.
//!
//! ```json
//! {"mode": "cascade",
//!  "to": {"phone": "+447911123456", "email": "ana@example.org"},
//!  "from": "Acme", "body": "Your code is 1234",
//!  "channels": [
//!    {"channel": "email", "from": "alerts@acme.example", "subject": "Your code", "timeout_s": 60},
//!    {"channel": "sms", "success": "delivered"}]}
//! ```
//!
//! Each step is a single-channel send: the fields outside `channels` are shared, a step's own
//! fields override them, and `to` gives each channel its address (`phone` for SMS and voice,
//! `email` for email; a plain string serves the channels it fits). Every step is checked as a
//! single send would be before anything is stored (422 naming the step); the steps' requests
//! are stored with the flow and checked again when each starts. A `staged` step has
//! `delay_s` instead of `timeout_s`; a `smart` flow's steps are ordered here, once, by the
//! recipient's history with the tenant ([`crate::domain::rank`]), and stored in that order.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::idempotent::{self, InFlight, RawJson};
use super::problem::Problem;
use super::validate::{self, validate, SendRequest, ValidSms};
use super::views::{rfc3339, Delivery};
use super::{AppState, Tenant};
use crate::domain::{
    decide, now_ms, rank, Decision, FlowLink, FlowMode, FlowRecord, FlowState, FlowStep, FlowWrite,
    MessageId, StepRequest, StepScore, Success, UnixMs, HISTORY_DAYS, HISTORY_LIMIT,
};
use crate::submit::{Placement, Prepared};

/// Most steps in a flow.
const MAX_STEPS: usize = 8;
/// What `success` may be, said when it is not.
const SUCCESS_CHOICES: &str = "success is \"sent\", \"delivered\" or \"read\" (email and \
     telegram end at \"sent\"; only rcs and whatsapp report reads)";
/// Longest time limit or stage delay of a step (7 days).
const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;

/// The 202 answer to a flow.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowAccepted {
    /// The flow's id (`GET /v1/messages/{id}` shows it).
    pub(crate) id: String,
    /// "accepted".
    pub(crate) status: &'static str,
    /// `cascade`, `primary_backup`, `all_channels`, `staged` or `smart`.
    pub(crate) mode: &'static str,
    /// The deliveries started now (the first step, or every step for `all_channels`; for
    /// `smart`, the first step of the chosen order).
    pub(crate) deliveries: Vec<Delivery>,
    /// When `to` names a contact: the steps left out because the contact denied consent on
    /// their channel or has no address there (absent when none were).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) dropped: Option<Vec<super::contacts::recipient::DroppedStep>>,
}

/// A flow as `GET /v1/messages/{id}` shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct FlowView {
    /// Its id.
    pub(crate) id: String,
    /// `cascade`, `primary_backup`, `all_channels`, `staged` or `smart`.
    pub(crate) mode: &'static str,
    /// `running`, `succeeded` or `failed`.
    pub(crate) status: &'static str,
    /// Per step, in the order they run: channel, success condition, time limit (`delay_s`
    /// for a stage), for `smart` its place in the request and score (`smart`), and its
    /// delivery (message id and status) once started, or why it was skipped.
    #[schema(value_type = Vec<Object>)]
    pub(crate) steps: Vec<Value>,
    /// Accepted at.
    pub(crate) created_at: String,
    /// Last change of the flow itself.
    pub(crate) updated_at: String,
}

impl From<FlowRecord> for FlowView {
    fn from(f: FlowRecord) -> Self {
        let steps = f
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut v = serde_json::json!({
                    "step": i,
                    "channel": s.channel,
                    "success": s.success,
                    "timeout_s": s.timeout_s,
                });
                if f.mode == FlowMode::Staged {
                    v["delay_s"] = Value::from(s.delay_s.unwrap_or(0));
                }
                if let Some(score) = &s.smart {
                    v["smart"] = smart_view(score);
                }
                let deliveries: Vec<Value> = f
                    .deliveries
                    .iter()
                    .filter(|d| usize::from(d.step) == i)
                    .map(|d| {
                        serde_json::json!({
                            "id": d.id.to_string(),
                            "status": d.status,
                            "started_at": rfc3339(d.started_at),
                        })
                    })
                    .collect();
                if let Some(d) = deliveries.first() {
                    v["delivery"] = d.clone();
                }
                if let Some((_, reason)) = f.skipped.iter().find(|(s, _)| usize::from(*s) == i) {
                    v["skipped"] = Value::String(reason.clone());
                }
                v
            })
            .collect();
        FlowView {
            id: f.id.to_string(),
            mode: f.mode.as_str(),
            status: f.state.as_str(),
            steps,
            created_at: rfc3339(f.created_at),
            updated_at: rfc3339(f.updated_at),
        }
    }
}

/// Why a `smart` step is where it is, as `GET` shows it: its place in the request, its score
/// and the history behind it (rates and score from 0 to 1).
fn smart_view(s: &StepScore) -> Value {
    let unit = |t: u16| f64::from(t) / 1000.0;
    serde_json::json!({
        "given": s.given,
        "score": unit(s.score),
        "messages": s.messages,
        "delivery_rate": s.delivery_rate.map(unit),
        "read_rate": s.read_rate.map(unit),
        "latency_ms": s.latency_ms,
        "cost": s.cost_micros.map(|c| c as f64 / 1e6),
    })
}

/// Whether a send request asks for a flow (`mode` other than `single`).
pub(crate) fn is_flow(raw: &RawJson) -> bool {
    #[derive(serde::Deserialize)]
    struct Mode {
        mode: Option<String>,
    }
    serde_json::from_slice::<Mode>(&raw.bytes)
        .ok()
        .and_then(|m| m.mode)
        .is_some_and(|m| m != "single")
}

/// The draft builder the flow engine uses for later steps: the step's stored request, checked
/// again as a single send.
pub(crate) fn builder(limits: validate::Limits) -> Arc<crate::flows::DraftBuilder> {
    Arc::new(move |tenant, request| {
        let req: SendRequest = serde_json::from_str(request.json()).map_err(|e| e.to_string())?;
        let valid = validate(req, &limits).map_err(|p| p.detail)?;
        Ok(valid.into_draft(tenant))
    })
}

/// A step: its rules and its checked single send.
struct Step {
    spec: FlowStep,
    valid: ValidSms,
}

/// A flow checked, with its first deliveries prepared; nothing taken or stored yet.
pub(crate) struct Planned {
    /// The flow to insert, its deliveries the prepared messages (stored as those messages;
    /// listed here for the flow runner's view of the flow).
    pub(crate) flow: FlowRecord,
    /// The deliveries the rules start now.
    pub(crate) prepared: Vec<Prepared>,
    /// The answer, once stored.
    pub(crate) accepted: FlowAccepted,
}

/// Accepts a flow: checks every step, starts the first step(s) in the same commit as the
/// flow, and answers 202.
pub(crate) async fn send(
    state: &AppState,
    caller: &Tenant,
    raw: &RawJson,
    running: Option<&InFlight>,
) -> Result<Response, Problem> {
    let tenant = caller.0.clone();
    let body: Value = raw.parse()?;
    let now = now_ms();
    let Planned {
        flow,
        prepared,
        accepted,
    } = plan(state, &tenant, body, None, now).await?;
    let id = flow.id;
    let reservation = state
        .submit
        .admit(&tenant, prepared.len() as u32, now)
        .map_err(Problem::from)?;
    let mut record = idempotent::record(running, StatusCode::ACCEPTED, &accepted, None, now)?
        .map(|r| (*r).clone())
        .unwrap_or_default();
    let answer = idempotent::answer(StatusCode::ACCEPTED, &accepted, Some(&record));
    let view = flow.with_unstarted_requests();
    record.flows = vec![FlowWrite::Insert(Box::new(flow))];
    state
        .submit
        .commit(
            prepared,
            Some(Arc::new(record)),
            reservation,
            crate::submit::Queueing::Admitted,
        )
        .await
        .map_err(Problem::from)?;
    state.flows.track(id, tenant, Some(view));
    Ok(answer)
}

/// Checks a flow request (`body`, as `POST /v1/messages` takes it) of `tenant` and prepares
/// the deliveries its rules start now; `batch_id` marks them as a batch's. A step refused for
/// good is skipped (the next one starts); when none can start, the first refusal is the
/// error. A refusal that passes (full queues, open breakers, the tenant's rate) is the error
/// at once (503/429 with Retry-After), as for a single send.
pub(crate) async fn plan(
    state: &AppState,
    tenant: &Arc<str>,
    body: Value,
    batch_id: Option<&str>,
    now: UnixMs,
) -> Result<Planned, Problem> {
    let tenant = tenant.clone();
    let mut body = body;
    let dropped = super::contacts::recipient::resolve_flow(state, &tenant, &mut body).await?;
    let (mode, mut steps) = parse(body, &state.limits)?;
    for step in &steps {
        state.submit.check_priority(&tenant, step.valid.priority)?;
        validate::check_callback_signing(
            &state.events.directory,
            &tenant,
            step.valid.callback_url.as_deref(),
        )?;
        validate::check_webhook_signing(&state.events.directory, &tenant, &step.valid)?;
    }
    if mode == FlowMode::Smart {
        steps = order_by_history(state, &tenant, steps, now).await?;
    }
    let id = MessageId::generate(now);
    let mut flow = FlowRecord {
        id,
        tenant: tenant.to_string(),
        mode,
        steps: steps.iter().map(|s| s.spec.clone()).collect(),
        state: FlowState::Running,
        skipped: Vec::new(),
        created_at: now,
        updated_at: now,
        deliveries: Vec::new(),
    };
    let mut prepared: Vec<(Prepared, &Step)> = Vec::new();
    let mut first_refusal: Option<Problem> = None;
    for _ in 0..=steps.len() {
        let Decision::Start(start) = decide(&flow, now) else {
            break;
        };
        for k in start {
            let Some(step) = steps.get(usize::from(k)) else {
                continue;
            };
            let mut draft = step.valid.clone().into_draft(tenant.clone());
            draft.flow = Some(FlowLink { flow: id, step: k });
            draft.withdrawable = mode.supersedes();
            draft.batch_id = batch_id.map(str::to_owned);
            let child = MessageId::generate(now);
            match state.submit.prepare(draft, child, now, Placement::Now) {
                Ok(p) => {
                    flow.deliveries.push(crate::domain::FlowDelivery {
                        step: k,
                        id: child,
                        status: crate::domain::Status::Accepted,
                        started_at: now,
                    });
                    prepared.push((p, step));
                }
                Err(e) if e.is_transient() => return Err(Problem::from(e)),
                Err(e) => {
                    let problem = Problem::from(e);
                    flow.skipped.push((k, problem.detail.clone()));
                    first_refusal.get_or_insert(problem);
                }
            }
        }
        if !prepared.is_empty() {
            break;
        }
    }
    if prepared.is_empty() {
        return Err(first_refusal.unwrap_or_else(|| {
            Problem::invalid("channels", "flow_not_started", "no step could start")
        }));
    }
    let accepted = FlowAccepted {
        id: id.to_string(),
        status: "accepted",
        mode: mode.as_str(),
        deliveries: prepared
            .iter()
            .map(|(p, step)| delivery(p, &step.valid))
            .collect(),
        dropped: (!dropped.is_empty()).then_some(dropped),
    };
    Ok(Planned {
        flow,
        prepared: prepared.into_iter().map(|(p, _)| p).collect(),
        accepted,
    })
}

/// Orders a `smart` flow's steps by the recipient's history with the tenant
/// ([`crate::domain::rank`]): best first, ties in the order given; each step keeps its place
/// in the request and its score, stored with the flow.
async fn order_by_history(
    state: &AppState,
    tenant: &str,
    steps: Vec<Step>,
    now: UnixMs,
) -> Result<Vec<Step>, Problem> {
    let mut to: Vec<String> = Vec::new();
    for step in &steps {
        let address = step.valid.to.stored();
        if !to.contains(&address) {
            to.push(address);
        }
    }
    let since = now - HISTORY_DAYS * 24 * 3_600_000;
    let history = state
        .store
        .recipient_history(tenant, to, since, HISTORY_LIMIT)
        .await
        .map_err(Problem::from)?;
    let channels: Vec<&str> = steps.iter().map(|s| s.spec.channel.as_str()).collect();
    let ranked = rank(&channels, &history);
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    Ok(ranked
        .into_iter()
        .filter_map(|(i, score)| {
            let mut step = slots.get_mut(i)?.take()?;
            step.spec.smart = Some(score);
            Some(step)
        })
        .collect())
}

/// How the 202 shows a delivery.
fn delivery(p: &Prepared, valid: &ValidSms) -> Delivery {
    let m = &p.message;
    let (channel, encoding, segments) = valid.shown();
    Delivery {
        id: m.id.to_string(),
        channel,
        to: m.to.clone(),
        carrier: Some(p.quote.carrier.clone()),
        segments,
        encoding,
        estimated_cost: p.quote.price.map(|p| p.amount.to_string()),
        currency: p.quote.price.map(|p| p.currency.to_string()),
    }
}

/// Reads the flow request: its mode and each step, checked as a single send.
fn parse(body: Value, limits: &validate::Limits) -> Result<(FlowMode, Vec<Step>), Problem> {
    let Value::Object(mut common) = body else {
        return Err(Problem::invalid(
            "mode",
            "invalid_request",
            "the body must be a JSON object",
        ));
    };
    let mode = match common.remove("mode") {
        Some(Value::String(m)) => FlowMode::from_name(&m).ok_or_else(|| {
            Problem::invalid(
                "mode",
                "invalid_mode",
                format!(
                    "mode {m:?} is not one of single, cascade (failover), primary_backup, \
                     all_channels, staged, smart"
                ),
            )
        })?,
        _ => {
            return Err(Problem::invalid(
                "mode",
                "invalid_mode",
                "mode must be a string",
            ))
        }
    };
    let to = common
        .remove("to")
        .ok_or_else(|| Problem::invalid("to", "invalid_recipient", "a flow needs \"to\""))?;
    let channels = match common.remove("channels") {
        Some(Value::Array(c)) if !c.is_empty() && c.len() <= MAX_STEPS => c,
        _ => {
            return Err(Problem::invalid(
                "channels",
                "invalid_channels",
                format!("a flow needs \"channels\": 1 to {MAX_STEPS} steps"),
            ))
        }
    };
    if mode == FlowMode::PrimaryBackup && channels.len() != 2 {
        return Err(Problem::invalid(
            "channels",
            "invalid_channels",
            "primary_backup takes exactly two steps: the primary and the backup",
        ));
    }
    for field in ["channel", "scheduled_at"] {
        if common.contains_key(field) {
            return Err(Problem::invalid(
                if field == "channel" {
                    "channel"
                } else {
                    "scheduled_at"
                },
                "not_for_flows",
                format!(
                    "{field} does not apply to a flow; give each step's channel in \"channels\""
                ),
            ));
        }
    }
    let mut steps = Vec::with_capacity(channels.len());
    for (i, step) in channels.into_iter().enumerate() {
        let at = |p: Problem| Problem {
            detail: format!("channels[{i}]: {}", p.detail),
            ..p
        };
        let Value::Object(mut own) = step else {
            return Err(at(Problem::invalid(
                "channels",
                "invalid_channels",
                "a step is an object with \"channel\"",
            )));
        };
        let channel = match own.remove("channel") {
            Some(Value::String(c)) if c.parse::<switchyard_routing::Channel>().is_ok() => c,
            _ => {
                return Err(at(Problem::invalid(
                    "channel",
                    "unsupported_channel",
                    "a step's channel is \"sms\", \"voice\", \"email\", \"rcs\", \
                     \"whatsapp\", \"telegram\", \"messenger\" or \"webhook\"",
                )))
            }
        };
        // Email and Telegram report nothing after the hand-over: they end at `sent`; only RCS
        // and WhatsApp report reads.
        let ends_at_sent = matches!(channel.as_str(), "email" | "telegram");
        let reports_reads = matches!(channel.as_str(), "rcs" | "whatsapp");
        let success = match own.remove("success") {
            None if ends_at_sent => Success::Sent,
            None => Success::Delivered,
            Some(Value::String(s)) if s == "sent" => Success::Sent,
            Some(Value::String(s)) if s == "delivered" && !ends_at_sent => Success::Delivered,
            Some(Value::String(s)) if s == "read" && reports_reads => Success::Read,
            Some(_) => {
                return Err(at(Problem::invalid(
                    "success",
                    "invalid_success",
                    SUCCESS_CHOICES,
                )))
            }
        };
        let timeout_s = match own.remove("timeout_s") {
            None => None,
            Some(_) if mode == FlowMode::Staged => {
                return Err(at(Problem::invalid(
                    "timeout_s",
                    "invalid_timeout",
                    "a stage has no time limit: give delay_s, when it starts after the \
                     previous stage started",
                )))
            }
            Some(v) => match v.as_u64() {
                Some(t) if (1..=MAX_TIMEOUT_S).contains(&t) => Some(t as u32),
                _ => {
                    return Err(at(Problem::invalid(
                        "timeout_s",
                        "invalid_timeout",
                        format!("timeout_s is whole seconds, 1 to {MAX_TIMEOUT_S}"),
                    )))
                }
            },
        };
        let delay_s = stage_delay(mode, i, own.remove("delay_s")).map_err(at)?;
        let mut request: Map<String, Value> = common.clone();
        request.extend(own);
        request.insert("channel".into(), Value::String(channel.clone()));
        request.insert("to".into(), address(&to, &channel).map_err(at)?);
        let request = Value::Object(request);
        let stored = StepRequest::new(&request).map_err(|e| {
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("cannot store the step's request: {e}"),
            )
        })?;
        let req: SendRequest = serde_json::from_value(request).map_err(|e| {
            at(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_request",
                e.to_string(),
            ))
        })?;
        let valid = validate(req, limits).map_err(at)?;
        steps.push(Step {
            spec: FlowStep {
                channel,
                success,
                timeout_s,
                delay_s,
                smart: None,
                request: stored,
            },
            valid,
        });
    }
    Ok((mode, steps))
}

/// A step's `delay_s`: staged flows only; none (or 0) for the first stage, 0 to
/// [`MAX_TIMEOUT_S`] seconds after the previous stage started for the others.
fn stage_delay(mode: FlowMode, i: usize, delay: Option<Value>) -> Result<Option<u32>, Problem> {
    let invalid = |detail: String| Problem::invalid("delay_s", "invalid_delay", detail);
    match (mode, i, delay) {
        (FlowMode::Staged, 0, None) => Ok(None),
        (FlowMode::Staged, 0, Some(v)) if v.as_u64() == Some(0) => Ok(None),
        (FlowMode::Staged, 0, Some(_)) => Err(invalid(
            "the first stage starts with the flow: its delay_s is 0 or absent".into(),
        )),
        (FlowMode::Staged, _, None) => Err(invalid(format!(
            "every stage after the first needs delay_s: whole seconds after the previous \
             stage started, 0 to {MAX_TIMEOUT_S}"
        ))),
        (FlowMode::Staged, _, Some(v)) => match v.as_u64() {
            Some(d) if d <= MAX_TIMEOUT_S => Ok(Some(d as u32)),
            _ => Err(invalid(format!(
                "delay_s is whole seconds after the previous stage started, 0 to \
                 {MAX_TIMEOUT_S}"
            ))),
        },
        (_, _, None) => Ok(None),
        (_, _, Some(_)) => Err(invalid(
            "delay_s applies to staged flows only (a cascade step's time limit is timeout_s)"
                .into(),
        )),
    }
}

/// The address `to` gives `channel`: `phone` for SMS and voice, `whatsapp` and `rcs` for
/// those (else `phone`), `email` for email, `telegram`, `messenger` and `webhook` (the
/// endpoint's URL) for those; a plain string serves the steps it fits (an address with `@`
/// for email, a number for the phone channels).
fn address(to: &Value, channel: &str) -> Result<Value, Problem> {
    const KINDS: [&str; 7] = [
        "phone",
        "email",
        "whatsapp",
        "telegram",
        "messenger",
        "rcs",
        "webhook",
    ];
    let key = match channel {
        "email" | "telegram" | "messenger" | "webhook" => channel,
        "whatsapp" | "rcs" if to.get(channel).is_some() => channel,
        _ => "phone",
    };
    let found = match to {
        Value::String(s) if key == "email" && s.contains('@') => Some(s.clone()),
        Value::String(s) if key == "phone" && !s.contains('@') => Some(s.clone()),
        Value::Object(o) => {
            if let Some(k) = o.keys().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(Problem::invalid(
                    "to",
                    "invalid_recipient",
                    format!(
                        "unknown address kind {k:?}; give \"phone\", \"email\", \"whatsapp\", \
                         \"telegram\", \"messenger\", \"rcs\" and/or \"webhook\" (or \
                         {{\"contact\": …}} alone)"
                    ),
                ));
            }
            o.get(key).and_then(Value::as_str).map(str::to_owned)
        }
        _ => None,
    };
    found.map(Value::String).ok_or_else(|| {
        Problem::invalid(
            "to",
            "invalid_recipient",
            format!("\"to\" has no {key} for the {channel} step"),
        )
    })
}

/// The property the `api_flow` fuzz target checks (`fuzz/fuzz_targets/api_flow.rs`), and the
/// corpus replay test runs on stable: any bytes either are not JSON, or are refused with a
/// client error that has a code, or give steps each of which is a valid single send on its
/// own channel whose stored request reads back to the same send, with a success condition its
/// channel can report, and a delay only on later stages of a `staged` flow. Never a panic.
#[doc(hidden)]
#[allow(clippy::expect_used)]
pub fn check_flow_bytes(data: &[u8]) {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let limits = validate::Limits::default();
    match parse(body, &limits) {
        Err(p) => {
            assert!((400..500).contains(&p.status), "{p:?}");
            assert!(!p.code.is_empty());
        }
        Ok((mode, steps)) => {
            assert!(!steps.is_empty() && steps.len() <= MAX_STEPS);
            if let Some(first) = steps.first() {
                assert_eq!(
                    first.spec.delay_s, None,
                    "the first stage starts with the flow"
                );
            }
            for step in steps {
                assert!(mode == FlowMode::Staged || step.spec.delay_s.is_none());
                assert!(mode != FlowMode::Staged || step.spec.timeout_s.is_none());
                let again: SendRequest = serde_json::from_str(step.spec.request.json())
                    .expect("a stored step request reads back");
                let valid = validate(again, &limits).expect("a stored step stays valid");
                assert_eq!(valid.to, step.valid.to);
                let channel = valid.channel().as_str();
                assert_eq!(channel, step.spec.channel);
                if matches!(channel, "email" | "telegram") {
                    assert_eq!(step.spec.success, Success::Sent);
                }
                if step.spec.success == Success::Read {
                    assert!(matches!(channel, "rcs" | "whatsapp"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_corpus_replays_cleanly() {
        crate::replay_fuzz_corpus("api_flow", super::check_flow_bytes);
    }

    #[test]
    fn whatsapp_and_rcs_steps_take_their_own_number_then_the_phone() {
        let to = serde_json::json!({"phone": "+447911123456", "whatsapp": "+447911123457"});
        let at = |channel| super::address(&to, channel).unwrap();
        assert_eq!(at("whatsapp"), "+447911123457");
        assert_eq!(at("rcs"), "+447911123456");
        assert_eq!(at("sms"), "+447911123456");
        let contact = serde_json::json!({"contact": "ct_0000000000000001"});
        assert_eq!(
            super::address(&contact, "sms").unwrap_err().code,
            "invalid_recipient"
        );
    }

    #[test]
    fn staged_and_smart_seeds_read_their_delays_and_conditions() {
        use crate::domain::{FlowMode, Success};
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/api_flow");
        let read = |name: &str| {
            let body = serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap();
            super::parse(body, &super::validate::Limits::default()).unwrap()
        };
        let (mode, steps) = read("seed-staged");
        assert_eq!(mode, FlowMode::Staged);
        let delays: Vec<Option<u32>> = steps.iter().map(|s| s.spec.delay_s).collect();
        assert_eq!(delays, [None, Some(300), Some(1800)]);
        assert_eq!(steps[0].spec.success, Success::Read);
        let (mode, steps) = read("seed-smart");
        assert_eq!(mode, FlowMode::Smart);
        assert_eq!(steps[1].spec.success, Success::Read);
        assert!(
            steps.iter().all(|s| s.spec.smart.is_none()),
            "ranked when accepted"
        );
    }
}
