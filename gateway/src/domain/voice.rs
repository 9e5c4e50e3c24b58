//! Notification calls: what a call plays and captures (stored with its message), and a call on
//! its way to a trunk.

use serde::{Deserialize, Serialize};
use switchyard_routing::{Priority, E164};

use super::{MessageId, UnixMs};

/// What a call plays and captures, as stored with the message (`messages.voice`, JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VoiceSpec {
    /// The audio.
    pub audio: AudioSource,
    /// Digits to capture, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtmf: Option<DtmfCapture>,
    /// Hang up after this long at the latest (from the answer).
    pub max_duration_s: u32,
}

/// Where the audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AudioSource {
    /// Text-to-speech of the message body.
    Tts {
        /// espeak-ng language (`en`, `de`, `en-us`, …).
        language: String,
    },
    /// A tenant's WAV file.
    Url {
        /// http(s) URL.
        url: String,
    },
}

/// `voice.dtmf`: capture keypresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtmfCapture {
    /// Stop after this many digits.
    pub max_digits: u8,
    /// Wait this long for digits once the audio has played.
    pub timeout_s: u32,
}

/// A voice message on its way to a trunk.
#[derive(Debug, Clone)]
pub struct VoiceJob {
    /// The message.
    pub id: MessageId,
    /// Its tenant (routing plan).
    pub tenant: String,
    /// The callee.
    pub to: E164,
    /// Caller id, E.164 with `+`.
    pub from: String,
    /// The text to speak (TTS).
    pub body: String,
    /// Audio and capture options.
    pub spec: VoiceSpec,
    /// Routing weights.
    pub priority: Priority,
    /// Give up (expired) if not dialled by then.
    pub expires_at: Option<UnixMs>,
}
