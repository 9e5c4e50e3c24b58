//! SMPP towards carriers: per-bind tasks driving the protocols crate's ESME session.
//!
//! - [`submit`]: a [`crate::dispatch::Job`] → its submit_sm segments, per the carrier's settings.
//! - [`bind`]: one task per bind: connect, bind, window + TPS throttle, responses, receipts, MO,
//!   reconnect with backoff and jitter, re-queue of what was in flight.
//! - [`mo`]: each carrier's multipart MO messages in progress, bounded and durable.
//! - [`rate`]: each carrier's `max_tps`, shared by its binds (split between nodes by the bind
//!   slots each runs).
//! - [`supervisor`]: the binds of every carrier, started, replaced and stopped as the
//!   configuration changes (SIGHUP).

pub(crate) mod bind;
#[cfg(test)]
mod bind_tests;
pub(crate) mod mo;
pub(crate) mod rate;
pub(crate) mod submit;
pub(crate) mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use switchyard_protocols::smpp::session::BindType;

use crate::domain::IdFormats;

/// How a carrier wants messages longer than one SMS.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LongMessages {
    /// Concatenation UDH with an 8-bit reference (the most widely supported).
    Udh8,
    /// Concatenation UDH with a 16-bit reference.
    Udh16,
    /// sar_* TLVs, no UDH.
    Sar,
    /// The whole text in one submit_sm's message_payload TLV; the SMSC splits it.
    Payload,
}

/// Everything one bind needs to know about its carrier. Its `Debug` leaves the password out.
#[derive(Clone)]
pub(crate) struct BindSettings {
    /// The carrier's name (routing, store, logs).
    pub(crate) carrier: String,
    /// `host:port` of the SMSC.
    pub(crate) address: String,
    /// TLS on the connection; `None`: clear TCP.
    pub(crate) tls: Option<crate::tls::TlsSettings>,
    /// Credentials.
    pub(crate) system_id: String,
    /// Credentials.
    pub(crate) password: String,
    /// system_type sent in the bind.
    pub(crate) system_type: String,
    /// Transmitter, receiver or transceiver.
    pub(crate) bind_type: BindType,
    /// Outstanding submit_sm allowed.
    pub(crate) window: usize,
    /// submit_sm per second on this bind (None: unthrottled).
    pub(crate) tps: Option<u32>,
    /// Keep-alive interval.
    pub(crate) enquire_link: Duration,
    /// How long a submit_sm may wait for its response.
    pub(crate) response_timeout: Duration,
    /// First reconnect delay; doubles up to `reconnect_max`, with jitter.
    pub(crate) reconnect_min: Duration,
    /// Longest reconnect delay.
    pub(crate) reconnect_max: Duration,
    /// TON/NPI for numeric senders and destinations.
    pub(crate) source_ton: u8,
    /// See `source_ton`.
    pub(crate) source_npi: u8,
    /// See `source_ton`.
    pub(crate) dest_ton: u8,
    /// See `source_ton`.
    pub(crate) dest_npi: u8,
    /// registered_delivery for every submit (1: receipt on final state).
    pub(crate) registered_delivery: u8,
    /// How long texts are split.
    pub(crate) long_messages: LongMessages,
    /// Largest PDU accepted from the SMSC.
    pub(crate) max_pdu_len: usize,
    /// How many times a segment is retried on this carrier after a transient error before the
    /// message fails over to the next carrier.
    pub(crate) max_retries: u32,
    /// How the carrier writes message ids (`None` on a side: learned by the store).
    pub(crate) id_formats: IdFormats,
    /// Multipart MO messages waiting for their other parts, shared by the carrier's binds (an
    /// SMSC may deliver the parts of one message over different binds) and kept across
    /// re-binds on reload.
    pub(crate) mo_parts: Arc<mo::MoParts>,
    /// The carrier's `max_tps`, shared by its binds in this process.
    pub(crate) rate: Arc<rate::CarrierRate>,
}

impl std::fmt::Debug for BindSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured so that a new field must be placed here (shown or redacted) to compile.
        let BindSettings {
            carrier,
            address,
            tls,
            system_id,
            password: _,
            system_type,
            bind_type,
            window,
            tps,
            enquire_link,
            response_timeout,
            reconnect_min,
            reconnect_max,
            source_ton,
            source_npi,
            dest_ton,
            dest_npi,
            registered_delivery,
            long_messages,
            max_pdu_len,
            max_retries,
            id_formats,
            // Held MO parts (message text) are not configuration: left out.
            mo_parts: _,
            // Shared runtime state, not configuration.
            rate: _,
        } = self;
        f.debug_struct("BindSettings")
            .field("carrier", carrier)
            .field("address", address)
            .field("tls", tls)
            .field("system_id", system_id)
            .field("password", &switchyard_ops::config::REDACTED)
            .field("system_type", system_type)
            .field("bind_type", bind_type)
            .field("window", window)
            .field("tps", tps)
            .field("enquire_link", enquire_link)
            .field("response_timeout", response_timeout)
            .field("reconnect_min", reconnect_min)
            .field("reconnect_max", reconnect_max)
            .field("source_ton", source_ton)
            .field("source_npi", source_npi)
            .field("dest_ton", dest_ton)
            .field("dest_npi", dest_npi)
            .field("registered_delivery", registered_delivery)
            .field("long_messages", long_messages)
            .field("max_pdu_len", max_pdu_len)
            .field("max_retries", max_retries)
            .field("id_formats", id_formats)
            .finish_non_exhaustive()
    }
}

/// How many times a segment is retried on the same carrier after a transient error before
/// the message fails over to the next carrier.
pub(crate) const MAX_RETRIES: u32 = 2;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_leaves_the_password_out() {
        let config = switchyard_ops::config::Config::embedded_default();
        let carrier = &config.carriers[0];
        let smpp = carrier.smpp.as_ref().unwrap();
        let sandbox = Some("127.0.0.1:2775".parse().unwrap());
        let mut s = supervisor::bind_settings(carrier, smpp, sandbox, std::path::Path::new("."))
            .unwrap()
            .unwrap();
        s.system_id = "esme_acme".into();
        s.password = "PW_SECRET".into();
        let printed = format!("{s:?} {s:#?}");
        assert!(!printed.contains("PW_SECRET"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(printed.contains("esme_acme"), "{printed}");
    }
}
