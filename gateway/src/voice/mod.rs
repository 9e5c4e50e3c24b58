//! Notification calls from the API: `POST /v1/messages` with `"channel": "voice"` places a
//! call through the LCR-chosen voice trunk (failing over like the proxy), plays text-to-speech
//! or a tenant's WAV over RTP when answered, optionally captures DTMF digits (RFC 4733), hangs
//! up, and reports the outcome as the message's status and events.
//!
//! # Data flow
//! ```text
//! API ──► validate (api::validate::voice) ──► store: accepted (+ voice spec) ──► 202
//!     ──► Voice::submit ──► bounded queue ──► runner: a preparation slot (max_preparing_calls)
//!         ──► queued: audio (tts: espeak-ng + cache │ audio_url: HTTP GET) → 8 kHz PCM
//!         ──► a line: one permit per call (max_concurrent_calls), taken once the audio is ready
//!         ──► submitting (committed before the INVITE) ──► call::place: INVITE → trunk 1 …
//!             ──► 2xx: ACK, RTP 20 ms packets, DTMF, BYE ──► Update::Call: delivered | failed
//! ```
//!
//! # Statuses
//! `accepted` → `queued` (the audio is being prepared, then the call waits for a line) →
//! `submitting` (being
//! dialled or in the call) → `delivered` (answered; the call outcome has the talk time) or
//! `failed` with an error code: `busy`, `no_answer`, `declined`, `rejected`,
//! `carrier_error`, `media_error`, `tts_failed`, `audio_unavailable`, `audio_invalid`,
//! `no_route`, `interrupted`; or `expired` (validity ran out before dialling). The outcome
//! ([`CallOutcome`]) is stored with the message and carried by every later event as `call`.
//!
//! # Crash recovery
//! Calls `accepted` or `queued` at a crash were never dialled: they are dialled after the
//! restart. A call in `submitting` may have rung or been heard: it becomes `failed` with
//! error `interrupted`, never re-dialled (calling a person twice about the same thing is worse
//! than telling the tenant to decide). `submitting` is committed before the INVITE is sent,
//! so no call is dialled without the store knowing. A graceful stop is not a crash: ringing
//! calls are CANCELled (`interrupted`), answered ones get a BYE (`hangup_reason: shutdown`),
//! and the SIP endpoint lives on for [`endpoint::DRAIN`] so those requests complete.
//!
//! # Layout
//! - [`tts`]: espeak-ng subprocess, language list, cache; [`fetch`]: `audio_url` downloads;
//!   [`audio`]: WAV decoding, resampling to 8 kHz, G.711.
//! - [`endpoint`]: the caller's SIP socket and transactions, shared by every call;
//!   [`dialog`]: what a call and the endpoint share (events, INVITE, ACK and BYE).
//! - [`caller`]: one call as a state machine without I/O: INVITE/failover, CANCEL, ACK, when
//!   to play and hang up, DTMF capture, BYE, the outcome; [`latch`]: which RTP packets count
//!   (the answer's address, the first stream's SSRC).
//! - [`call`]: drives a [`caller::Caller`]: the endpoint's events, timers, RTP pacing.
//! - [`engine`]: the [`Voice`] engine: routing, the queue, the concurrency limit, statuses.

pub(crate) mod audio;
pub(crate) mod call;
pub(crate) mod caller;
pub(crate) mod dialog;
pub(crate) mod endpoint;
pub(crate) mod engine;
pub(crate) mod fetch;
pub(crate) mod latch;
pub(crate) mod tts;

use serde::{Deserialize, Serialize};

pub(crate) use engine::Voice;

pub(crate) use crate::domain::{AudioSource, DtmfCapture, VoiceJob, VoiceSpec};

/// One trunk tried and the SIP code it gave (408 for a timeout, 503 for a transport error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TrunkTry {
    /// Carrier name.
    pub(crate) carrier: String,
    /// SIP code.
    pub(crate) code: u16,
}

/// How a call went: stored with the message (`messages.call`) and carried by its events.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct CallOutcome {
    /// `answered`, or the error code.
    pub(crate) outcome: String,
    /// The callee answered (the message is delivered).
    pub(crate) answered: bool,
    /// Why it failed (see the module doc); `None` when answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Human-readable detail of the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
    /// The final SIP code of the INVITE (the last one when every trunk failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) sip_code: Option<u16>,
    /// The trunk that answered or gave the final answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) trunk: Option<String>,
    /// Every trunk tried, in order.
    pub(crate) tried: Vec<TrunkTry>,
    /// From the first INVITE to the final response, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) setup_ms: Option<u64>,
    /// From the first 180/183 to the answer (or the end), seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ring_s: Option<f64>,
    /// From the answer to the hang-up, seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) talk_s: Option<f64>,
    /// Seconds billed by the deck's increments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) billed_s: Option<u64>,
    /// Price of the answered call for the tenant (per-minute rate, increments, connection
    /// fee, plan markup), decimal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cost: Option<String>,
    /// Currency of `cost` (the voice deck's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) currency: Option<String>,
    /// Negotiated codec (`PCMU`, `PCMA`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) codec: Option<String>,
    /// Length of the audio, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) audio_ms: Option<u64>,
    /// RTP packets sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) packets_sent: Option<u64>,
    /// Digits captured (present when capture was asked for, possibly empty).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) digits: Option<String>,
    /// `switchyard` or `callee`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hangup_by: Option<String>,
    /// `completed`, `digits`, `max_duration`, `callee`, `media_error`, `shutdown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) hangup_reason: Option<String>,
}

impl CallOutcome {
    /// Nothing happened yet.
    pub(crate) fn new() -> Self {
        CallOutcome::default()
    }

    /// A call that failed before any trunk was tried.
    pub(crate) fn failed(error: &str, detail: impl Into<String>) -> Self {
        CallOutcome {
            outcome: error.to_owned(),
            error: Some(error.to_owned()),
            detail: Some(detail.into()),
            ..CallOutcome::default()
        }
    }
}

/// Why the audio of a call could not be prepared. Says whose fault it is through its code.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum AudioError {
    /// Text-to-speech failed (the program is missing, timed out or failed): ours.
    #[error("text-to-speech failed: {0}")]
    Tts(String),
    /// The tenant's URL could not be fetched (unreachable, not 200, too large, too slow).
    #[error("audio_url could not be fetched: {0}")]
    Fetch(String),
    /// The audio is not a WAV we can play: the tenant's file.
    #[error("audio is not a playable WAV: {0}")]
    Format(String),
}

impl AudioError {
    /// The call's error code.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            AudioError::Tts(_) => "tts_failed",
            AudioError::Fetch(_) => "audio_unavailable",
            AudioError::Format(_) => "audio_invalid",
        }
    }
}
