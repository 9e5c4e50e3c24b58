//! What a notification call plays and captures, as stored with its message.

use serde::{Deserialize, Serialize};

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
