//! The `voice` options of `POST /v1/messages` parsed into a [`VoiceSpec`], or a 422 naming the
//! field at fault. What can be checked before the 202 is checked here (language, URL shape,
//! both or neither audio source, lengths); what cannot (the URL answers, the file is a WAV)
//! fails the call later with a clear error code.

use serde::Deserialize;

use super::{Limits, SendRequest};
use crate::api::problem::Problem;
use crate::domain::{AudioSource, DtmfCapture, VoiceSpec};

/// Longest text spoken by text-to-speech, in characters (≈ 2 minutes of speech).
pub(crate) const MAX_TTS_CHARS: usize = 2000;
/// Most digits a call may capture.
pub(crate) const MAX_DIGITS: u8 = 20;
/// Longest wait for digits after the audio ended, seconds.
pub(crate) const MAX_DTMF_TIMEOUT_S: u32 = 60;

/// `voice` as the tenant writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VoiceRequest {
    /// Speak `body` with text-to-speech.
    tts: Option<bool>,
    /// The text-to-speech language (espeak-ng voice name, e.g. `en`, `en-us`, `de`).
    language: Option<String>,
    /// A WAV file to play instead.
    audio_url: Option<String>,
    /// Capture keypresses.
    dtmf: Option<DtmfRequest>,
    /// Hang up after this many seconds at the latest.
    max_duration_s: Option<u32>,
}

/// `voice.dtmf`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DtmfRequest {
    /// Stop listening after this many digits (default 1).
    max_digits: Option<u8>,
    /// Seconds to wait for digits once the audio has played (default 5).
    timeout_s: Option<u32>,
}

fn bad(field: &'static str, code: &'static str, detail: impl Into<String>) -> Problem {
    Problem::invalid(field, code, detail)
}

/// Checks the voice options of `req` (whose channel is `voice`).
pub(crate) fn parse(req: &SendRequest, limits: &Limits) -> Result<VoiceSpec, Problem> {
    let v: VoiceRequest = match &req.voice {
        None => VoiceRequest::default(),
        Some(value) => serde_json::from_value(value.clone())
            .map_err(|e| bad("voice", "invalid_voice", format!("voice: {e}")))?,
    };
    if req.encoding.is_some() {
        return Err(bad(
            "encoding",
            "unsupported_for_voice",
            "encoding applies to SMS only",
        ));
    }
    let audio = match (v.tts, v.audio_url) {
        (Some(true), Some(_)) => {
            return Err(bad(
                "voice",
                "conflicting_audio",
                "give either \"tts\": true or \"audio_url\", not both",
            ))
        }
        (_, Some(url)) => {
            if v.language.is_some() {
                return Err(bad(
                    "voice.language",
                    "conflicting_audio",
                    "language applies to text-to-speech, not to audio_url",
                ));
            }
            let parsed = url::Url::parse(&url)
                .map_err(|e| bad("voice.audio_url", "invalid_url", format!("{e}")))?;
            if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
                return Err(bad(
                    "voice.audio_url",
                    "invalid_url",
                    "must be an http or https URL",
                ));
            }
            if url.len() > 2048 {
                return Err(bad(
                    "voice.audio_url",
                    "invalid_url",
                    "at most 2048 characters",
                ));
            }
            AudioSource::Url { url }
        }
        (Some(false), None) => {
            return Err(bad(
                "voice",
                "no_audio",
                "a call needs \"tts\": true (speaking body) or an \"audio_url\"",
            ))
        }
        (_, None) => {
            let language = v.language.unwrap_or_else(|| "en".to_owned());
            if !crate::voice::tts::language_known(&language) {
                return Err(bad(
                    "voice.language",
                    "unknown_language",
                    format!("{language:?} is not a text-to-speech language here (e.g. en, en-us, de, fr, es)"),
                ));
            }
            let body = req.body.as_deref().unwrap_or_default();
            if body.trim().is_empty() {
                return Err(bad(
                    "body",
                    "empty_body",
                    "text-to-speech needs the text to speak in body",
                ));
            }
            if body.chars().count() > MAX_TTS_CHARS {
                return Err(bad(
                    "body",
                    "body_too_long",
                    format!("at most {MAX_TTS_CHARS} characters are spoken"),
                ));
            }
            AudioSource::Tts { language }
        }
    };
    let dtmf = match v.dtmf {
        None => None,
        Some(d) => {
            let max_digits = d.max_digits.unwrap_or(1);
            if !(1..=MAX_DIGITS).contains(&max_digits) {
                return Err(bad(
                    "voice.dtmf.max_digits",
                    "invalid_dtmf",
                    format!("between 1 and {MAX_DIGITS}"),
                ));
            }
            let timeout_s = d.timeout_s.unwrap_or(5);
            if !(1..=MAX_DTMF_TIMEOUT_S).contains(&timeout_s) {
                return Err(bad(
                    "voice.dtmf.timeout_s",
                    "invalid_dtmf",
                    format!("between 1 and {MAX_DTMF_TIMEOUT_S} seconds"),
                ));
            }
            Some(DtmfCapture {
                max_digits,
                timeout_s,
            })
        }
    };
    let max_duration_s = v.max_duration_s.unwrap_or(limits.max_call_s);
    if !(1..=limits.max_call_s).contains(&max_duration_s) {
        return Err(bad(
            "voice.max_duration_s",
            "invalid_duration",
            format!("between 1 and {} seconds", limits.max_call_s),
        ));
    }
    Ok(VoiceSpec {
        audio,
        dtmf,
        max_duration_s,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(json: serde_json::Value) -> SendRequest {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn reads_tts_url_and_dtmf() {
        let l = Limits::default();
        let s = parse(
            &req(serde_json::json!({"to": "+447400123456", "from": "+15550001111", "channel": "voice",
                "body": "Hello", "voice": {"tts": true, "language": "en", "dtmf": {"max_digits": 1}}})),
            &l,
        )
        .unwrap();
        assert_eq!(
            s.audio,
            AudioSource::Tts {
                language: "en".into()
            }
        );
        assert_eq!(
            s.dtmf,
            Some(DtmfCapture {
                max_digits: 1,
                timeout_s: 5
            })
        );
        assert_eq!(s.max_duration_s, l.max_call_s);
        let s = parse(
            &req(serde_json::json!({"to": "+447400123456", "from": "+15550001111", "channel": "voice",
                "voice": {"audio_url": "http://example.com/a.wav", "max_duration_s": 30}})),
            &l,
        )
        .unwrap();
        assert!(matches!(s.audio, AudioSource::Url { .. }));
        assert_eq!(s.max_duration_s, 30);
    }

    #[test]
    fn names_what_is_wrong() {
        let cases = [
            (
                serde_json::json!({"tts": true, "audio_url": "http://x/a.wav"}),
                "Hi",
                "conflicting_audio",
            ),
            (serde_json::json!({"tts": true}), "", "empty_body"),
            (
                serde_json::json!({"tts": true, "language": "xx-nope"}),
                "Hi",
                "unknown_language",
            ),
            (serde_json::json!({"tts": false}), "Hi", "no_audio"),
            (
                serde_json::json!({"audio_url": "ftp://x/a.wav"}),
                "",
                "invalid_url",
            ),
            (
                serde_json::json!({"tts": true, "dtmf": {"max_digits": 0}}),
                "Hi",
                "invalid_dtmf",
            ),
            (
                serde_json::json!({"tts": true, "max_duration_s": 100000}),
                "Hi",
                "invalid_duration",
            ),
            (
                serde_json::json!({"tts": true, "speed": 2}),
                "Hi",
                "invalid_voice",
            ),
        ];
        for (voice, body, code) in cases {
            let r = req(
                serde_json::json!({"to": "+447400123456", "from": "+15550001111",
                "channel": "voice", "body": body, "voice": voice}),
            );
            let p = parse(&r, &Limits::default()).unwrap_err();
            assert_eq!(p.code, code, "{voice}: {p:?}");
            assert_eq!(p.status, 422);
        }
    }
}
