//! `POST /v1/messages` with `"channel": "voice"`: the same admission as SMS (tenant channel,
//! country and quota rules, opt-outs, idempotency, durable before the 202), then the call goes
//! to the [`crate::voice::Voice`] engine instead of a carrier queue.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchyard_routing::{Channel, RouteError};

use super::idempotent;
use super::messages::{dispatch_problem, Accepted, Delivery};
use super::problem::Problem;
use super::validate::ValidSms;
use super::AppState;
use crate::api::idempotency::InFlight;
use crate::dispatch::DispatchError;
use crate::domain::{now_ms, MessageId, NewMessage};
use crate::voice::engine::VoiceError;
use crate::voice::VoiceJob;

fn voice_problem(e: VoiceError) -> Problem {
    match e {
        VoiceError::Route(r) => dispatch_problem(&DispatchError::Route(r)),
        VoiceError::NoTrunk => dispatch_problem(&DispatchError::Route(RouteError::NoRoute(
            switchyard_routing::Channel::Voice,
        ))),
        VoiceError::QueueFull => Problem::unavailable(
            "queue_full",
            "too many calls are waiting to be placed; retry shortly",
            2,
        ),
    }
}

/// Accepts a validated voice message (`sms.voice` is set).
pub(crate) async fn send(
    state: &AppState,
    tenant: &str,
    running: Option<InFlight>,
    sms: ValidSms,
) -> Result<Response, Problem> {
    let (Some(voice), Some(spec)) = (state.voice.as_ref(), sms.voice.clone()) else {
        return Err(Problem::invalid(
            "channel",
            "voice_unavailable",
            "voice calls are not available: no voice carrier has a [carriers.sip] trunk, or the \
             caller could not start (see the gateway's log)",
        ));
    };
    state
        .tenant_limits
        .policy(tenant, Channel::Voice, sms.country.as_deref(), 1)?;
    state.events.opt_outs.check(tenant, &sms.to, &sms.from)?;
    let now = now_ms();
    let id = MessageId::generate(now);
    let job = VoiceJob {
        id,
        tenant: tenant.to_owned(),
        to: sms.to,
        from: sms.from.clone(),
        body: sms.body.clone(),
        spec: spec.clone(),
        priority: sms.priority,
        expires_at: sms.expires_at,
    };
    // Refuse before storing anything when no trunk can take it now.
    let (carrier, price) = voice.quote(&job).map_err(voice_problem)?;
    let reservation = state
        .tenant_limits
        .admit(tenant, 1, now, std::time::Instant::now())?;
    let voice_json = serde_json::to_string(&spec)
        .map_err(|e| Problem::unavailable("internal", format!("cannot encode the call: {e}"), 1))?;
    let accepted = Accepted {
        id: id.to_string(),
        status: "accepted",
        deliveries: vec![Delivery {
            id: id.to_string(),
            channel: "voice",
            to: format!("+{}", sms.to.as_str()),
            carrier: Some(carrier.clone()),
            segments: 1,
            encoding: "voice",
            estimated_cost: price.as_ref().map(|(p, _)| p.clone()),
            currency: price.as_ref().map(|(_, c)| c.clone()),
        }],
    };
    let message = NewMessage {
        id,
        tenant: tenant.to_owned(),
        to: format!("+{}", sms.to.as_str()),
        country: sms.country,
        from: sms.from,
        body: sms.body,
        encoding: "voice".to_owned(),
        segments: 1,
        priority: format!("{:?}", sms.priority).to_lowercase(),
        scheduled_at: None,
        expires_at: sms.expires_at,
        callback_url: sms.callback_url,
        tags: sms.tags,
        metadata: sms.metadata,
        carrier: Some(carrier),
        price: price.as_ref().map(|(p, _)| p.clone()),
        currency: price.map(|(_, c)| c),
        created_at: now,
        batch_id: None,
        voice: Some(voice_json),
        request: idempotent::record(running.as_ref(), StatusCode::ACCEPTED, &accepted, None, now)?,
    };
    state.store.insert(vec![message]).await.map_err(|e| {
        tracing::error!("store refused a voice message: {e}");
        Problem::unavailable(
            "store_unavailable",
            "the message store cannot take writes right now",
            2,
        )
    })?;
    reservation.keep();
    drop(running);
    // Durable now: the engine places it (or a restart does).
    voice.submit(job);
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}
