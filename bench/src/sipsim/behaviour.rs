//! How the simulator answers calls: read from the command line at start, replaced whole by
//! `PUT /behaviour`. A call keeps the behaviour it started with.

use serde::{Deserialize, Serialize};
use switchyard_protocols::sip::dtmf;

/// What the UAS does with each new INVITE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behaviour {
    /// The final response code (200 answers the call; 486, 503, 404, … reject it).
    pub final_code: u16,
    /// Retry-After seconds added to a non-2xx final response (503 overload tests).
    pub retry_after_s: Option<u32>,
    /// Milliseconds between the INVITE and the final response.
    pub final_delay_ms: u64,
    /// Send `180 Ringing` before the final response.
    pub ring: bool,
    /// Send `183 Session Progress` with an SDP answer (early media) before the final response.
    pub early_media: bool,
    /// Milliseconds between the INVITE and the provisional responses.
    pub provisional_delay_ms: u64,
    /// Answer the offer with SDP in the 2xx (off: a 2xx without body, to test callers).
    pub answer_sdp: bool,
    /// Hang up (send BYE) this many milliseconds after answering; `None` waits for the
    /// caller's BYE.
    pub hangup_after_ms: Option<u64>,
    /// Decode RFC 4733 telephone-events in received RTP and count the digits.
    pub decode_dtmf: bool,
    /// Digits (`0`–`9`, `*`, `#`, `A`–`D`) to send as RFC 4733 events after answering, when
    /// the caller's offer has telephone-event (the caller presses keys).
    pub send_dtmf: Option<String>,
    /// Milliseconds between the answer and the first digit sent; digits follow 250 ms apart.
    pub dtmf_delay_ms: u64,
}

impl Default for Behaviour {
    fn default() -> Self {
        Behaviour {
            final_code: 200,
            retry_after_s: None,
            final_delay_ms: 0,
            ring: true,
            early_media: false,
            provisional_delay_ms: 0,
            answer_sdp: true,
            hangup_after_ms: None,
            decode_dtmf: true,
            send_dtmf: None,
            dtmf_delay_ms: 500,
        }
    }
}

impl Behaviour {
    /// Rejects settings the UAS cannot act on (a final code outside 200..=699).
    pub fn validate(&self) -> Result<(), String> {
        if !(200..=699).contains(&self.final_code) {
            return Err(format!(
                "final_code {} is not a final response code (200..=699)",
                self.final_code
            ));
        }
        if let Some(d) = &self.send_dtmf {
            if let Some(bad) = d.chars().find(|c| dtmf::key_event(*c).is_none()) {
                return Err(format!(
                    "send_dtmf: {bad:?} is not a DTMF key (0-9 * # A-D)"
                ));
            }
        }
        Ok(())
    }
}

/// The standard reason phrase for the codes the simulator is asked to send.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => "Simulated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_json_keeps_defaults() {
        let b: Behaviour = serde_json::from_str(r#"{"final_code":486}"#).unwrap();
        assert_eq!(b.final_code, 486);
        assert!(b.ring && b.answer_sdp);
        assert!(serde_json::from_str::<Behaviour>(r#"{"nope":1}"#).is_err());
    }

    #[test]
    fn validate_rejects_provisional_codes() {
        let b = Behaviour {
            final_code: 180,
            ..Behaviour::default()
        };
        assert!(b.validate().is_err());
        assert!(Behaviour::default().validate().is_ok());
    }
}
